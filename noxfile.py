"""Test sessions: the core alone, each plugin alone with the core, everything together, lint, types.

    nox                      # the default sessions (what CI runs), on the Python that runs nox
    nox -s core              # one session
    nox --force-python 3.12  # the default sessions on another interpreter (an error if it is missing)
    nox -s tests-3.12        # everything installed, every test, on Python 3.12 (tests-3.10 ... tests-3.13)
    nox -s benchmarks        # not run by default: long

Each session has its own virtual environment with only what it tests installed. What no
session is about is shared: PyTorch and the other large wheels every session needs are
installed once per interpreter in ``.nox/_shared/`` and reached from each session's
environment through a ``.pth`` file (pip sees them installed and installs the rest).
``SEMILEARN_TORCH`` picks another torch, e.g. ``SEMILEARN_TORCH="torch==2.13.0 --index-url ..."``;
the pinned CPU build is the default so pip never pulls a multi-GB CUDA build by accident.

Every test runs where its plugins are installed, and nowhere twice without a reason: the
``core`` session runs every test with no plugin installed (plugin tests skip), each plugin
session runs its plugin's tests, ``all`` runs the tests of plugins working together (marked
``together``: they need several plugins, or check what each installed plugin does). The
last default session, ``tests_ran``, reads the JUnit reports of the others and fails if a
test was skipped in every session that collected it (GPU-only tests excepted).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
import shutil
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_missing_interpreters = True  # a missing interpreter fails, never skips quietly
nox.options.download_python = "never"  # use the interpreters this machine has
nox.options.sessions = [
    "lint", "typecheck", "core", "plugin_api", "logging", "checkpoint", "wandb", "aim", "nlp", "audio", "all", "docs", "example",
    "tests_ran",
]

ROOT = Path(__file__).resolve().parent
TORCH = shlex.split(os.environ.get("SEMILEARN_TORCH", "torch==2.13.0"))
# The large wheels every session needs: installed once per interpreter, shared (see the docstring).
SHARED = (*TORCH, "numpy>=1.24", "scikit-learn>=1.2")
# The Python versions requires-python admits, each tested by `nox -s tests-X.Y`.
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
PLUGINS = {"logging": "plugins/logging[plot]", "checkpoint": "plugins/checkpoint"}
TRACKERS = {"wandb": "plugins/wandb", "aim": "plugins/aim"}  # not in PLUGINS: `benchmarks` stays tracker-free
MODALITIES = {"nlp": "plugins/nlp", "audio": "plugins/audio"}  # data beyond images; they pull transformers
# Plugins whose libraries have no build for some of PYTHONS (the matrix leaves them out there)
NOT_ON = {"plugins/aim": ("3.13",)}  # Aim 3.29 needs aimrocks, which has no Python 3.13 build
PLUGIN_PACKAGES = ["plugins/logging/semilearn_logging", "plugins/checkpoint/semilearn_checkpoint",
                   "plugins/wandb/semilearn_wandb", "plugins/aim/semilearn_aim", "plugins/nlp/semilearn_nlp",
                   "plugins/audio/semilearn_audio"]
TEST_PLUGINS = "tests/plugin_dists/recorder"
EXAMPLE = "examples/early-stopping"
DOCS = ("mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26")
# What `import semilearn` of USB 0.3.2 needs beside torch (the rest it imports is stood in for)
USB_IMPORTS = ("numpy", "Pillow", "scikit-learn", "ruamel.yaml", "tqdm", "progress", "tensorboard")
# The one scaffold test that needs mypy (the rest of tests/test_scaffold.py runs in `core`).
SCAFFOLD_TYPES = "tests/test_scaffold.py::test_the_generated_plugin_type_checks_against_the_protocols"
# JUnit reports of this nox invocation, read by `tests_ran`.
REPORTS = ROOT / ".nox" / "_reports" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
# A test skipped everywhere for one of these reasons needs hardware CI does not have.
HARDWARE_SKIPS = ("CUDA", "GPU")
# Wall time of each session of this nox run (its environment included), printed by `tests_ran`.
_TIMES: dict[str, float] = {}
_CLOCK = [time.monotonic()]


def _timed(function: Callable[[nox.Session], None]) -> Callable[[nox.Session], None]:
    """Record the session's wall time: from the end of the previous session (nox then makes
    this one's environment) to its own end."""

    @functools.wraps(function)
    def run(session: nox.Session) -> None:
        try:
            function(session)
        finally:
            now = time.monotonic()
            _TIMES[session.name] = now - _CLOCK[-1]
            _CLOCK.append(now)

    return run


def _bin(environment: Path, name: str) -> str:
    return str(environment / ("Scripts" if os.name == "nt" else "bin") / name)


def _purelib(session: nox.Session, python: str = "python") -> str:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return str(session.run(python, "-c", code, silent=True, external=True)).strip().splitlines()[-1]


def _share_wheels(session: nox.Session) -> None:
    """Make SHARED importable in this session's environment, installing it once per interpreter."""
    tag = str(session.run("python", "-c", "import sys; print(sys.implementation.cache_tag)", silent=True)).strip()
    key = hashlib.sha256("\n".join([tag, *SHARED]).encode()).hexdigest()[:12]
    shared = ROOT / ".nox" / "_shared" / f"{tag}-{key}"
    complete = shared / "complete"
    if not complete.exists():
        shutil.rmtree(shared, ignore_errors=True)
        session.run("python", "-m", "venv", str(shared))
        session.run(_bin(shared, "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *SHARED, external=True)
        complete.write_text("\n".join(SHARED) + "\n")
    (Path(_purelib(session)) / "_semilearn_shared.pth").write_text(_purelib(session, _bin(shared, "python")) + "\n")


def _install_core(session: nox.Session, *extra: str) -> None:
    _share_wheels(session)
    session.install("./[test]", *extra)


def _all_plugins() -> list[str]:
    return [f"./{path}" for path in (*PLUGINS.values(), *TRACKERS.values(), *MODALITIES.values())]


def _tracker_homes(session: nox.Session) -> None:
    """Keep wandb's own folders (config, cache, artifact staging) inside the session."""
    for name in ("CONFIG", "CACHE", "DATA"):
        session.env[f"WANDB_{name}_DIR"] = os.path.join(session.create_tmp(), "wandb", name.lower())


def _pytest(session: nox.Session, *paths: str, report: bool = True) -> None:
    """pytest over ``paths`` (default: every test), with a JUnit report for `tests_ran`."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    junit = ("--junitxml", str(REPORTS / f"{session.name}.xml")) if report else ()
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *junit, *(paths or ("tests",)),
                *session.posargs)


@nox.session
@_timed
def core(session: nox.Session) -> None:
    """The core alone: no plugin installed (plugin tests skip)."""
    _install_core(session)
    session.run("semilearn", "plugins")
    _pytest(session, "-m", "not slow and not heavy", "tests")


@nox.session
@_timed
def plugin_api(session: nox.Session) -> None:
    """A third-party plugin distribution (tests/plugin_dists): discovery, order, blocking, broken plugins."""
    _install_core(session)
    session.install(f"./{TEST_PLUGINS}")
    _pytest(session, "tests/test_plugin_api.py")


@nox.session
@_timed
def logging(session: nox.Session) -> None:
    """The core with semilearn-logging alone."""
    _install_core(session)
    session.install(f"./{PLUGINS['logging']}")
    _pytest(session, "tests/test_logging.py")


@nox.session
@_timed
def checkpoint(session: nox.Session) -> None:
    """The core with semilearn-checkpoint alone, with its chain of killed processes."""
    _install_core(session)
    session.install(f"./{PLUGINS['checkpoint']}")
    _pytest(session, "tests/test_checkpoint.py")


@nox.session
@_timed
def wandb(session: nox.Session) -> None:
    """The core with semilearn-wandb alone (offline runs: no account, no network)."""
    _install_core(session)
    session.install(f"./{TRACKERS['wandb']}")
    session.run("python", "-m", "pip", "check")
    _tracker_homes(session)
    _pytest(session, "tests/test_wandb.py", "tests/test_trackers.py")


@nox.session
@_timed
def aim(session: nox.Session) -> None:
    """The core with semilearn-aim alone (a local Aim repository; `aim up` on loopback)."""
    _install_core(session)
    session.install(f"./{TRACKERS['aim']}")
    session.run("python", "-m", "pip", "check")
    _pytest(session, "tests/test_aim.py", "tests/test_trackers.py")


def _offline_hub(session: nox.Session) -> None:
    """transformers never asks the Hugging Face hub, and its cache is the session's own."""
    session.env["HF_HUB_OFFLINE"] = "1"
    session.env["HF_HOME"] = os.path.join(session.create_tmp(), "huggingface")


def _modality(session: nox.Session, name: str) -> None:
    """The core with the modality plugin ``name`` alone, and its tests (tests/test_NAME.py)."""
    _install_core(session)
    session.install(f"./{MODALITIES[name]}")
    session.run("python", "-m", "pip", "check")
    _offline_hub(session)
    _pytest(session, f"tests/test_{name}.py")


@nox.session
@_timed
def nlp(session: nox.Session) -> None:
    """The core with semilearn-nlp alone (a tiny BERT the tests save; the hub is never asked)."""
    _modality(session, "nlp")


@nox.session
@_timed
def audio(session: nox.Session) -> None:
    """The core with semilearn-audio alone (a tiny HuBERT and wav2vec 2.0 the tests save; the hub is never asked)."""
    _modality(session, "audio")


@nox.session
@_timed
def all(session: nox.Session) -> None:  # noqa: A001 - the session's name on the command line
    """Everything installed together: a clean `pip check`, and the tests of plugins working together."""
    _install_core(session)
    # ONNX export and ONNX Runtime; Hugging Face datasets (a datasets.Dataset trains through the Dataset path)
    session.install(*_all_plugins(), f"./{TEST_PLUGINS}", ".[onnx]", "onnxruntime", "datasets")
    session.run("python", "-m", "pip", "check")
    session.run("semilearn", "plugins")
    _tracker_homes(session)
    _offline_hub(session)
    _pytest(session, "-m", "(together or heavy) and not slow", "tests")


@nox.session(python=PYTHONS, default=False)
@_timed
def tests(session: nox.Session) -> None:
    """Everything installed, every test, on one interpreter of the matrix (tests-3.10 ... tests-3.13).

    Off the 3.11 this machine's pinned CPU wheel is built for, pip downloads torch from the
    index (a CUDA build of several GB); set SEMILEARN_TORCH to pick another.
    """
    _install_core(session)
    python = str(session.python)
    plugins = [path for path in _all_plugins() if python not in NOT_ON.get(path.removeprefix("./"), ())]
    for path in sorted(set(_all_plugins()) - set(plugins)):
        session.log(f"{path} is not installed on Python {python}: its library has no build for it")
    session.install(*plugins, f"./{TEST_PLUGINS}")
    session.run("python", "-m", "pip", "check")
    _tracker_homes(session)
    _offline_hub(session)
    _pytest(session, "tests", report=False)


@nox.session
@_timed
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "core", "plugins", "tests", "benchmarks", "examples", "docs/_gen", "noxfile.py")


@nox.session
@_timed
def typecheck(session: nox.Session) -> None:
    """mypy over the core and the shipped plugins."""
    _install_core(session, "mypy", "types-PyYAML")
    session.install(*_all_plugins(), f"./{EXAMPLE}")
    session.run("mypy", "core/semilearn", *PLUGIN_PACKAGES)
    session.run("mypy", "tests/typing/check_plugins.py")
    _pytest(session, "tests/typing", SCAFFOLD_TYPES)


@nox.session(default=False)
@_timed
def benchmarks(session: nox.Session) -> None:
    """Speed and accuracy measurements (minutes; not part of CI)."""
    _install_core(session)
    session.install(*(f"./{path}" for path in PLUGINS.values()))
    for script in ("step_overhead.py", "checkpoint_stall.py"):
        session.run("python", f"benchmarks/{script}", *session.posargs)


@nox.session
@_timed
def docs(session: nox.Session) -> None:
    """The documentation site: tests/test_docs.py runs mkdocs build --strict (shipped plugins installed) and reads it."""
    _install_core(session, *DOCS)
    session.install(*_all_plugins())
    _pytest(session, "tests/test_docs.py")


@nox.session
@_timed
def example(session: nox.Session) -> None:
    """The example plugin, installed with pip like any third-party package; its tests and the repository's."""
    _install_core(session)
    session.install(f"./{PLUGINS['checkpoint']}", f"./{EXAMPLE}[test]")
    session.run("python", "-m", "pip", "check")
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", EXAMPLE, f"{EXAMPLE}/tests")
    _pytest(session, "tests/test_example_plugin.py")


@nox.session(default=False)
@_timed
def accuracy(session: nox.Session) -> None:
    """Every algorithm on digits with 40 labels, 2 seeds (about half an hour; not part of CI)."""
    _install_core(session)
    session.run("python", "benchmarks/accuracy.py", "--jobs", "2", *session.posargs)


@nox.session(default=False)
@_timed
def usb_parity(session: nox.Session) -> None:
    """Write tests/parity/fixtures with USB 0.3.2's own code (see tests/parity/README.md; minutes).

    USB's package imports as `semilearn` too, so it gets an environment of its own, with only
    what its import needs (its declared requirements would pull a CUDA build of torch and
    more); the tests compare this engine with the files it writes.
    """
    _share_wheels(session)
    session.install("--no-deps", "semilearn==0.3.2")
    session.install(*USB_IMPORTS)
    session.run("python", "tests/parity/usb_generate.py", "--out", "tests/parity/fixtures", *session.posargs)
    if not session.posargs:  # the ViT, optimizer-group, weight-loading and ResNet-50 fixtures (seconds)
        session.run("python", "tests/parity/usb_generate_vit.py", "--out", "tests/parity/fixtures/vit")
        session.run("python", "tests/parity/usb_generate_resnet50.py", "--out", "tests/parity/fixtures/resnet50")
        if os.environ.get("USB_REPO"):  # MultiMatch's files come from a clone of USB's repository (not in 0.3.2)
            session.run("python", "tests/parity/usb_generate_multimatch.py", "--out",
                        "tests/parity/fixtures/multimatch", "--usb-repo", os.environ["USB_REPO"])
        # USB's text and audio networks on tiny random encoders: the real transformers (its multi-head
        # BERT, not in 0.3.2, from the clone when there is one)
        session.install("transformers==5.24.0")
        repo = ["--usb-repo", os.environ["USB_REPO"]] if os.environ.get("USB_REPO") else []
        session.run("python", "tests/parity/usb_generate_text_audio.py", "--out", "tests/parity/fixtures/text_audio",
                    *repo)


@nox.session(venv_backend="none")
def tests_ran(session: nox.Session) -> None:
    """Fail if a test was skipped in every session that collected it (run after the other sessions)."""
    if _TIMES:
        session.log("session times (environment included): " + ", ".join(
            f"{name} {seconds / 60:.1f} min" for name, seconds in _TIMES.items()) +
            f"; {sum(_TIMES.values()) / 60:.1f} min in all")
    reports = sorted(REPORTS.glob("*.xml")) if REPORTS.is_dir() else []
    if not reports:
        session.error("no test reports from this nox run: run tests_ran after the test sessions, in one nox command")
    outcomes: dict[str, list[tuple[str, str]]] = {}
    for report in reports:
        for case in ElementTree.parse(report).getroot().iter("testcase"):
            test = f"{case.get('classname')}::{case.get('name')}"
            skipped = case.find("skipped")
            outcome = "passed" if skipped is None else f"skipped ({skipped.get('message', '')})"
            outcomes.setdefault(test, []).append((report.stem, outcome))
    # (`all` is a session here: "ran" is not any pass, "hardware" not any other reason)
    never = {test: seen for test, seen in outcomes.items() if not any(outcome == "passed" for _, outcome in seen)}
    hardware = {test for test, seen in never.items()
                if not any(not any(word in outcome for word in HARDWARE_SKIPS) for _, outcome in seen)}
    for test in sorted(hardware):
        session.log(f"needs hardware CI lacks, skipped everywhere: {test}")
    missing = sorted(set(never) - hardware)
    for test in missing:
        session.log(f"never ran: {test}: " + "; ".join(f"{name}: {outcome}" for name, outcome in never[test]))
    session.log(f"{len(outcomes)} tests in {len(reports)} sessions' reports; {len(outcomes) - len(never)} ran")
    if missing:
        session.error(f"{len(missing)} test(s) ran in no session: give each a session where its plugins are installed")
