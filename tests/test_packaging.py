"""The package metadata states the Python versions the test matrix covers, and no others."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["pyproject.toml", "plugins/logging/pyproject.toml", "plugins/checkpoint/pyproject.toml",
           "plugins/wandb/pyproject.toml", "plugins/aim/pyproject.toml", "plugins/nlp/pyproject.toml",
           "plugins/audio/pyproject.toml"]


def _matrix() -> list[str]:
    match = re.search(r"^PYTHONS = \[(.*?)\]", (ROOT / "noxfile.py").read_text(), re.MULTILINE)
    assert match, "noxfile.py defines PYTHONS"
    return re.findall(r'"(3\.\d+)"', match.group(1))


def _not_on() -> dict[str, list[str]]:
    match = re.search(r"^NOT_ON = \{(.*?)\}", (ROOT / "noxfile.py").read_text(), re.MULTILINE)
    assert match, "noxfile.py defines NOT_ON"
    return {plugin: re.findall(r'"(3\.\d+)"', versions)
            for plugin, versions in re.findall(r'"([^"]+)": \(([^)]*)\)', match.group(1))}


def _toml():  # noqa: ANN202 - the module
    """The standard library's TOML reader, or tomli (its origin, a test requirement) before 3.11."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib


@pytest.mark.parametrize("path", SHIPPED)
def test_requires_python_and_classifiers_are_the_tested_versions(path: str) -> None:
    tomllib = _toml()
    project = tomllib.loads((ROOT / path).read_text())["project"]
    left_out = _not_on().get(str(Path(path).parent), [])
    versions = [version for version in _matrix() if version not in left_out]
    assert versions == [f"3.{minor}" for minor in range(10, 10 + len(versions))]  # no gaps
    last_minor = int(versions[-1].split(".")[1])
    assert project["requires-python"] == f">={versions[0]},<3.{last_minor + 1}"
    stated = [c.rsplit(" :: ", 1)[1] for c in project["classifiers"] if re.fullmatch(r".* :: 3\.\d+", c)]
    assert stated == versions
