"""Test sessions: the core alone, each plugin alone with the core, everything together, lint, types.

Every session installs the pinned CPU build of PyTorch first (``SEMILEARN_TORCH`` picks
another, e.g. ``SEMILEARN_TORCH="torch==2.13.0 --index-url ..."``), so pip never pulls a
multi-GB CUDA build by accident.

    nox                      # the default sessions (what CI runs)
    nox -s core              # one session
    nox -s benchmarks        # not run by default: long
"""

from __future__ import annotations

import os
import shlex

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = False
nox.options.sessions = [
    "lint", "typecheck", "core", "plugin_api", "logging", "checkpoint", "wandb", "aim", "all", "docs", "example",
]

TORCH = shlex.split(os.environ.get("SEMILEARN_TORCH", "torch==2.13.0"))
PYTHON = "3.11"
PLUGINS = {"logging": "plugins/logging[plot]", "checkpoint": "plugins/checkpoint"}
TRACKERS = {"wandb": "plugins/wandb", "aim": "plugins/aim"}  # not in PLUGINS: `benchmarks` stays tracker-free
PLUGIN_PACKAGES = ["plugins/logging/semilearn_logging", "plugins/checkpoint/semilearn_checkpoint",
                   "plugins/wandb/semilearn_wandb", "plugins/aim/semilearn_aim"]
TEST_PLUGINS = "tests/plugin_dists/recorder"
EXAMPLE = "examples/early-stopping"
DOCS = ("mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26")
# Two processes for 1000 steps, against one: minutes, so only the `all` session runs it.
HEAVY = "tests/test_distributed.py::test_two_processes_match_one_process_accuracy"


def _install_core(session: nox.Session, *extra: str) -> None:
    session.install(*TORCH)
    session.install("./[test]", *extra)


def _all_plugins() -> list[str]:
    return [f"./{path}" for path in (*PLUGINS.values(), *TRACKERS.values())]


def _tracker_homes(session: nox.Session) -> None:
    """Keep wandb's own folders (config, cache, artifact staging) inside the session."""
    for name in ("CONFIG", "CACHE", "DATA"):
        session.env[f"WANDB_{name}_DIR"] = os.path.join(session.create_tmp(), "wandb", name.lower())


def _pytest(session: nox.Session, *paths: str) -> None:
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *(paths or ("tests",)), *session.posargs)


@nox.session(python=PYTHON)
def core(session: nox.Session) -> None:
    """The core alone: no plugin installed (plugin tests skip)."""
    _install_core(session)
    session.run("semilearn", "plugins")
    _pytest(session, "tests", "--deselect", HEAVY)


@nox.session(python=PYTHON)
def plugin_api(session: nox.Session) -> None:
    """A third-party plugin distribution (tests/plugin_dists): discovery, order, blocking, broken plugins."""
    _install_core(session)
    session.install(f"./{TEST_PLUGINS}")
    _pytest(session, "tests/test_plugin_api.py")


@nox.session(python=PYTHON)
def logging(session: nox.Session) -> None:
    """The core with semilearn-logging alone."""
    _install_core(session)
    session.install(f"./{PLUGINS['logging']}")
    _pytest(session, "tests/test_logging.py")


@nox.session(python=PYTHON)
def checkpoint(session: nox.Session) -> None:
    """The core with semilearn-checkpoint alone."""
    _install_core(session)
    session.install(f"./{PLUGINS['checkpoint']}")
    _pytest(session, "tests/test_checkpoint.py")


@nox.session(python=PYTHON)
def wandb(session: nox.Session) -> None:
    """The core with semilearn-wandb alone (offline runs: no account, no network)."""
    _install_core(session)
    session.install(f"./{TRACKERS['wandb']}")
    session.run("python", "-m", "pip", "check")
    _tracker_homes(session)
    _pytest(session, "tests/test_wandb.py", "tests/test_trackers.py")


@nox.session(python=PYTHON)
def aim(session: nox.Session) -> None:
    """The core with semilearn-aim alone (a local Aim repository; `aim up` on loopback)."""
    _install_core(session)
    session.install(f"./{TRACKERS['aim']}")
    session.run("python", "-m", "pip", "check")
    _pytest(session, "tests/test_aim.py", "tests/test_trackers.py")


@nox.session(python=PYTHON)
def all(session: nox.Session) -> None:  # noqa: A001 - the session's name on the command line
    """Everything installed together: every test, and a clean `pip check` with torch, wandb and aim."""
    _install_core(session)
    session.install(*_all_plugins(), f"./{TEST_PLUGINS}")
    session.run("python", "-m", "pip", "check")
    session.run("semilearn", "plugins")
    _tracker_homes(session)
    _pytest(session)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "core", "plugins", "tests", "benchmarks", "examples", "docs/_gen", "noxfile.py")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy over the core and the shipped plugins."""
    _install_core(session, "mypy", "types-PyYAML")
    session.install(*_all_plugins(), f"./{EXAMPLE}")
    session.run("mypy", "core/semilearn", *PLUGIN_PACKAGES)
    session.run("mypy", "tests/typing/check_plugins.py")
    _pytest(session, "tests/typing")


@nox.session(python=PYTHON)
def benchmarks(session: nox.Session) -> None:
    """Speed and accuracy measurements (minutes; not part of CI)."""
    _install_core(session)
    session.install(*(f"./{path}" for path in PLUGINS.values()))
    for script in ("step_overhead.py", "checkpoint_stall.py"):
        session.run("python", f"benchmarks/{script}", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The documentation site: mkdocs build --strict with the shipped plugins installed, and its tests."""
    _install_core(session, *DOCS)
    session.install(*_all_plugins())
    session.run("mkdocs", "build", "--strict", "--site-dir", os.path.join(session.create_tmp(), "site"))
    _pytest(session, "tests/test_docs.py")


@nox.session(python=PYTHON)
def example(session: nox.Session) -> None:
    """The example plugin, installed with pip like any third-party package; its tests and the repository's."""
    _install_core(session)
    session.install(f"./{PLUGINS['checkpoint']}", f"./{EXAMPLE}[test]")
    session.run("python", "-m", "pip", "check")
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", EXAMPLE, f"{EXAMPLE}/tests")
    _pytest(session, "tests/test_example_plugin.py")


@nox.session(python=PYTHON)
def accuracy(session: nox.Session) -> None:
    """Every algorithm on digits with 40 labels, 2 seeds (about half an hour; not part of CI)."""
    _install_core(session)
    session.run("python", "benchmarks/accuracy.py", "--jobs", "2", *session.posargs)
