"""The package metadata and constraints.txt: every dependency pinned, and the pins installed."""

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"constraints.txt: {line!r} is not NAME==VERSION"
        pins[canonicalize_name(name)] = version
    return pins


def _requirements() -> list[Requirement]:
    project = _project()["project"]
    listed = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        listed.extend(extra)
    return [Requirement(r) for r in listed]


def test_license_is_an_spdx_expression():
    # The table form {text = ...} is deprecated by setuptools and stops building in 2027.
    pyproject = _project()
    assert pyproject["project"]["license"] == "MIT"
    assert any(
        Requirement(r).name == "setuptools" and Requirement(r).specifier.contains("77")
        for r in pyproject["build-system"]["requires"]
    )


def test_every_dependency_is_pinned_within_its_range():
    pins = _pins()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} has no pin in constraints.txt (run make lock)"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject's {req}"
        )


def test_installed_packages_are_the_pinned_ones():
    # make install installs with -c constraints.txt: what the tests run on is what the image ships.
    pins = _pins()
    differ = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name in pins and dist.version != pins[name]:
            differ[name] = (dist.version, pins[name])
    assert not differ, f"installed (version, pin) differ: {differ}; run make install"
