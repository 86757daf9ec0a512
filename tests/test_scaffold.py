"""``semilearn new-plugin``: the skeleton it writes installs with pip and works unchanged.

The end-to-end test makes a fresh virtual environment, installs the core and the
generated distribution into it with pip (as a stranger would), and checks that
``semilearn plugins`` lists the plugin, that its hook fires during ``semilearn run``, and
that the skeleton's own test passes there. To keep it fast, the heavy dependencies the
core needs (torch, numpy, scikit-learn ... and pytest) are not downloaded and unpacked
again: their installed files are linked into the new environment's site-packages, so pip
finds them installed (with their metadata) and installs only the core and the plugin.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import pytest

from conftest import FAST

ROOT = Path(__file__).resolve().parents[1]
# mypy analyses torch once per machine, not once per test run
MYPY_CACHE = Path(tempfile.gettempdir()) / f"semilearn-test-mypy-cache-{os.getuid()}" / "strict"


def test_new_plugin_writes_a_complete_distribution(cli, tmp_path: Path) -> None:
    result = cli("new-plugin", "loss_watch", "--directory", "plugins-here")
    assert result.code == 0, result.err
    root = tmp_path / "plugins-here" / "semilearn-loss-watch"
    files = sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())
    assert files == ["README.md", "pyproject.toml", "semilearn_loss_watch/__init__.py",
                     "semilearn_loss_watch/py.typed", "tests/test_loss_watch.py"]
    pyproject = (root / "pyproject.toml").read_text()
    assert 'name = "semilearn-loss-watch"' in pyproject
    assert '[project.entry-points."semilearn.plugins"]\nloss_watch = "semilearn_loss_watch:LossWatch"' in pyproject
    module = (root / "semilearn_loss_watch" / "__init__.py").read_text()
    assert "class LossWatch(Hook):" in module and "@hookimpl" in module and "config_options" in module
    compile(module, "__init__.py", "exec")
    compile((root / "tests" / "test_loss_watch.py").read_text(), "test_loss_watch.py", "exec")
    assert "semilearn run --set loss_watch.every=2" in (root / "README.md").read_text()
    assert "pip install -e" in result.out


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Loss Watch", "is not usable"),
        ("2fast", "is not usable"),
        ("ema", "the name of a built-in plugin"),
        ("logging", "'logging' is the name of a plugin semilearn ships (semilearn-logging)"),
        ("semilearn-checkpoint", "'checkpoint' is the name of a plugin semilearn ships"),
        ("class", "is a Python keyword"),
    ],
)
def test_new_plugin_refuses_unusable_names(cli, name: str, message: str) -> None:
    result = cli("new-plugin", name)
    assert result.code != 0
    assert result.err.startswith("error: ") and message in result.err


def test_new_plugin_never_overwrites(cli, tmp_path: Path) -> None:
    assert cli("new-plugin", "semilearn-watch").code == 0  # the prefix is dropped: plugin 'watch'
    readme = tmp_path / "semilearn-watch" / "README.md"
    readme.write_text("mine")
    result = cli("new-plugin", "watch")
    assert result.code != 0 and "already exists" in result.err
    assert readme.read_text() == "mine"


# ---------------------------------------------------------------------------
# A fresh virtual environment next to this one.
# ---------------------------------------------------------------------------


def _requirement_names(distribution: importlib.metadata.Distribution) -> list[str]:
    names = []
    for requirement in distribution.requires or []:
        if "extra ==" in requirement.replace("extra==", "extra =="):
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        if match:
            names.append(match.group(0))
    return names


def dependency_closure(roots: list[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``roots`` need, transitively (extras left out)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # pip installs it from the index
        found[key] = distribution
        pending.extend(_requirement_names(distribution))
    return list(found.values())


def link_distributions(distributions: list[importlib.metadata.Distribution], site_packages: Path) -> None:
    """Make installed distributions installed in ``site_packages`` too, by linking their files."""
    for distribution in distributions:
        base = Path(str(distribution.locate_file("")))
        tops = {file.parts[0] for file in distribution.files or [] if file.parts and file.parts[0] != ".."}
        for top in tops:
            source = base / top
            target = site_packages / top
            if source.exists() and not target.exists() and not top.endswith(".pth"):
                target.symlink_to(source, target_is_directory=source.is_dir())


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the core installed by pip from this repository."""
    if not hasattr(os, "symlink"):
        pytest.skip("needs symbolic links")
    root = tmp_path_factory.mktemp("fresh-env")
    env = root / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env)
    python = env / "bin" / "python"
    site_packages = Path(
        subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       check=True, capture_output=True, text=True).stdout.strip()
    )
    core = importlib.metadata.distribution("semilearn-core")
    link_distributions(dependency_closure([*_requirement_names(core), "pytest", "setuptools"]), site_packages)
    # built from a copy: setuptools leaves build/ and egg-info folders beside the sources
    source = root / "semilearn-core"
    shutil.copytree(ROOT / "core", source / "core", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    _pip(python, "install", "--no-build-isolation", str(source))
    return python


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pip of this environment working on another one (``--python``)."""
    result = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check",
                             "--quiet", *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _in_env(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("SEMILEARN_") and key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_a_generated_plugin_installs_with_pip_and_its_hook_fires(fresh_env: Path, tmp_path: Path) -> None:
    python = fresh_env
    bin_dir = python.parent
    created = _in_env(python, str(bin_dir / "semilearn"), "new-plugin", "acc_reporter", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    distribution = tmp_path / "semilearn-acc-reporter"
    _pip(python, "install", "--no-build-isolation", str(distribution))
    try:
        _pip(python, "check")  # every requirement of the core and the plugin is met in the new environment
        listing = _in_env(python, str(bin_dir / "semilearn"), "plugins", "--json", cwd=tmp_path)
        assert listing.returncode == 0, listing.stderr
        records = {record["name"]: record for record in json.loads(listing.stdout)["plugins"]}
        assert records["acc_reporter"]["distribution"] == "semilearn-acc-reporter"
        assert records["acc_reporter"]["status"] == "active"
        assert records["acc_reporter"]["hooks"] == ["after_evaluate"]

        run = _in_env(python, str(bin_dir / "semilearn"), "run", *FAST, "--set", "acc_reporter.every=1",
                      cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        reports = [line for line in run.stdout.splitlines() if line.startswith("acc_reporter: ")]
        assert [line.split(" · ")[0] for line in reports] == ["acc_reporter: step 10", "acc_reporter: step 20"]
        assert re.fullmatch(r"acc_reporter: step 20 · top1_acc \d\.\d{4}", reports[-1])

        # the skeleton's own test passes, unchanged, against the installed distribution
        own_test = _in_env(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(distribution / "tests"),
                           cwd=distribution)
        assert own_test.returncode == 0, own_test.stdout + own_test.stderr
        assert re.search(r"\b2 passed\b", own_test.stdout)
    finally:
        _pip(python, "uninstall", "--yes", "semilearn-acc-reporter")


def test_the_generated_plugin_type_checks_against_the_protocols(cli, tmp_path: Path) -> None:
    mypy = pytest.importorskip("mypy.api")
    assert cli("new-plugin", "typed_good").code == 0
    assert cli("new-plugin", "typed_bad").code == 0
    good = tmp_path / "semilearn-typed-good" / "semilearn_typed_good" / "__init__.py"
    bad = tmp_path / "semilearn-typed-bad" / "semilearn_typed_bad" / "__init__.py"
    # the second one gets a wrong argument type; the protocol must catch it
    bad.write_text(bad.read_text().replace("step: int, metrics", "step: str, metrics"))
    out, err, status = mypy.run(["--strict", "--cache-dir", str(MYPY_CACHE), "--config-file", os.devnull,
                                 str(good), str(bad)])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1 and len(errors) == 1, out + err
    assert "semilearn_typed_bad/__init__.py:" in errors[0], errors
    assert re.search(r"Incompatible types in assignment .*_AfterEvaluate__algorithm__step__metrics\[None\]",
                     errors[0]), errors
