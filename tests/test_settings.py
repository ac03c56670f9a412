from pathlib import Path

from bot.policy import ConfiguredAdmins
from bot.settings import Settings


def test_defaults_point_at_the_real_services_and_a_local_sqlite_file(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = Settings(_env_file=None)
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.onesignal_api_url == "https://api.onesignal.com"
    assert settings.resolved_database_url == f"sqlite:///{(Path('data') / 'pushops.db').resolve()}"
    assert settings.misfire_grace == 600
    assert settings.approval_ttl == 86400


def test_environment_names_are_the_documented_ones(monkeypatch):
    monkeypatch.setenv("PUSHOPS_ADMINS", "U1, U2,,")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("PUSHOPS_MISFIRE_GRACE", "30")
    settings = Settings(_env_file=None)
    assert ConfiguredAdmins.parse(settings.admins).bare == {"U1", "U2"}
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"
    assert settings.misfire_grace == 30
