"""compose.yaml read as data, where no Docker runs (tests/docker/ starts it where one does)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _services() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]


def test_postgres_and_two_replicas_after_one_migration():
    services = _services()

    assert set(services) == {"postgres", "migrate", "serve", "worker"}
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["serve"]["command"] == ["serve"]
    assert services["worker"]["command"][0] == "worker"
    for replica in ("serve", "worker"):
        assert services[replica]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_every_pushops_service_takes_its_settings_from_the_env_file_and_needs_the_key():
    services = _services()

    for name in ("migrate", "serve", "worker"):
        service = services[name]
        assert service["env_file"] == "${PUSHOPS_ENV_FILE:-.env}"
        assert service["environment"]["PUSHOPS_SECRET_KEY"].startswith("${PUSHOPS_SECRET_KEY:?")
        # Only what compose itself knows is set here; every other setting is in the env file.
        assert set(service["environment"]) == {
            "DATABASE_URL",
            "PUSHOPS_SECRET_KEY",
            "PUSHOPS_AUTO_MIGRATE",
        }


def test_health_checks_and_named_volumes():
    project = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = project["services"]

    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/healthz" in " ".join(services["worker"]["healthcheck"]["test"])
    assert "HEALTHCHECK" in (ROOT / "Dockerfile").read_text()  # serve uses the image's
    assert set(project["volumes"]) == {"postgres-data", "pushops-data"}
    assert "pushops-data:/data" in services["serve"]["volumes"]
