"""The ``semilearn`` command line (click).

Errors are one line on stderr and a non-zero exit code; ``--debug`` (anywhere on the
command line, or ``SEMILEARN_DEBUG=1``) shows the traceback. ``--help`` and
``semilearn plugins`` do not import torch.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from . import __version__
from .config import CORE_OPTIONS, Option, read_config_file
from .data import WORKER_START_VARIABLE
from .distributed import global_rank, world_size
from .errors import SemilearnError
from .plugins import PluginManager, parse_plugin_args
from .rundir import CONFIG_FILE, check_target

__all__ = ["main", "build_cli", "setup_console", "CONSOLE_HANDLER_NAME", "CONSOLE_EXTRA", "DEBUG_ENV"]

# The name of the handler setup_console adds: the logging plugin finds the console by it.
CONSOLE_HANDLER_NAME = "semilearn-console"
# A log record with this attribute false goes to the run's files only, not the console.
CONSOLE_EXTRA = "semilearn_console"
DEBUG_ENV = "SEMILEARN_DEBUG"


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"error: {message}"
        if record.levelno >= logging.WARNING:
            return f"warning: {message}"
        return message


def setup_console(stream: Any = None) -> logging.Handler:
    """Send the ``semilearn`` logger's records to stdout, one plain line each."""
    logger = logging.getLogger("semilearn")
    for handler in list(logger.handlers):
        if handler.get_name() == CONSOLE_HANDLER_NAME:
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.set_name(CONSOLE_HANDLER_NAME)
    handler.addFilter(lambda record: bool(getattr(record, CONSOLE_EXTRA, True)))
    handler.setFormatter(_ConsoleFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler


class _State:
    def __init__(self, manager: PluginManager, debug: bool, args: Sequence[str] = ()) -> None:
        self.manager = manager
        self.debug = debug
        self.args = list(args)


def _plugin_option(function: Any) -> Any:
    return click.option(
        "-p",
        "plugin_args",
        multiple=True,
        metavar="NAME|no:NAME",
        help="Load plugin NAME (when autoloading is off) or turn it off with no:NAME. Repeatable.",
    )(function)


def _set_option(function: Any) -> Any:
    return click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a configuration key (dotted for plugin sections: checkpoint.interval=100). Repeatable.",
    )(function)


def build_cli(manager: PluginManager) -> click.Group:
    """The command group, with the commands plugins add through ``register_commands``."""

    @click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
    @click.version_option(__version__, prog_name="semilearn")
    @click.option("--debug", is_flag=True, help="Show tracebacks of errors (also: anywhere on the line).")
    def cli(debug: bool) -> None:
        """semilearn: semi-supervised learning on PyTorch, with plugins.

        `semilearn run` with no arguments trains FixMatch on scikit-learn's digits, offline.
        """

    @cli.command()
    @click.argument("config_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
    @_set_option
    @_plugin_option
    @click.option("--resume", metavar="auto|PATH",
                  help="Continue a run: `auto` (the newest intact checkpoint of this configuration's run, if any), "
                       "a checkpoint file, or a run directory.")
    @click.option("--nproc-per-node", type=click.IntRange(min=1), default=None, metavar="N",
                  help="Train with N processes on this machine (hands over to torchrun; gloo on CPU, NCCL on GPUs).")
    @click.pass_obj
    def run(state: _State, config_file: Path | None, overrides: tuple[str, ...], plugin_args: tuple[str, ...],
            resume: str | None, nproc_per_node: int | None) -> int:
        """Train with CONFIG_FILE (YAML; optional) and --set overrides."""
        from .runner import headline_of, load_config
        from .runner import run as run_training

        if nproc_per_node is not None and nproc_per_node > 1 and "LOCAL_RANK" not in os.environ:
            return _launch(nproc_per_node, state.args)

        raw = None
        if resume and resume != "auto":
            check_target(Path(resume), "--resume")  # a pipe or a device is refused before anything reads it
        if config_file is None and resume and resume != "auto":
            beside = _config_beside(Path(resume))
            if beside is not None:
                logging.getLogger("semilearn").info(f"configuration: {beside} (from the resumed run)")
                raw = read_config_file(beside)
                raw.pop("stop_step", None)  # where the earlier process stopped, not where this one should
        # the run's first line, before torch and the trackers start (resolving imports torch)
        announced = headline_of(config_file, overrides, raw) if global_rank() == 0 else None
        if announced is not None:
            logging.getLogger("semilearn").info(announced)
        resolution = load_config(state.manager, config_file, overrides, raw=raw)
        result = run_training(resolution.config, state.manager, resume=resume or resolution.resume,
                              warnings=resolution.warnings, announced=announced)
        return result.exit_code

    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    @_plugin_option
    @click.pass_obj
    def plugins(state: _State, as_json: bool, plugin_args: tuple[str, ...]) -> int:
        """List plugins: distribution, version, hook points, and the call order at each hook point."""
        manager = state.manager
        records = manager.describe()
        order = {name: plugins for name, plugins in manager.call_order().items() if plugins}
        failed = any(record["status"] == "error" for record in records)
        if as_json:
            click.echo(json.dumps({"semilearn": __version__, "plugins": records, "call_order": order}, indent=2))
            return 1 if failed else 0
        click.echo(f"semilearn {__version__}: {sum(r['status'] == 'active' for r in records)} active plugins "
                   f"({sum(r['builtin'] for r in records)} built-in)")
        rows = [("NAME", "DISTRIBUTION", "VERSION", "STATUS", "HOOK POINTS")]
        for record in records:
            rows.append((record["name"], record["distribution"], record["version"], record["status"],
                         ", ".join(record["hooks"]) or "-"))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
        click.echo("\ncall order:")
        for hook_name, names in order.items():
            click.echo(f"  {hook_name}: {' -> '.join(names)}")
        for record in records:
            if record["error"]:
                click.echo(f"\nerror: {record['error']}", err=True)
        return 1 if failed else 0

    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def algorithms(state: _State, as_json: bool) -> int:
        """List algorithms with a one-line description and their configuration keys."""
        registry = state.manager.registry("algorithm")
        entries: list[dict[str, Any]] = []
        for name, cls in registry.items():
            entries.append({
                "name": name,
                "description": registry.description(name),
                "plugin": registry.owner(name),
                "keys": {option.name: option.default for option in cls.config_options},
            })
        if as_json:
            click.echo(json.dumps(entries, indent=2))
            return 0
        for entry in entries:
            click.echo(f"{entry['name']:<12} {entry['description']}")
            if entry["keys"]:
                click.echo(" " * 13 + "keys: " + ", ".join(f"{k}={v}" for k, v in entry["keys"].items()))
        return 0

    @cli.command()
    @click.pass_obj
    def datasets(state: _State) -> int:
        """List data sets."""
        registry = state.manager.registry("dataset")
        for name in registry.names():
            click.echo(f"{name:<12} {registry.description(name)}")
        return 0

    @cli.command()
    @click.pass_obj
    def nets(state: _State) -> int:
        """List networks."""
        registry = state.manager.registry("net")
        for name in registry.names():
            click.echo(f"{name:<12} {registry.description(name)}")
        return 0

    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def policies(state: _State, as_json: bool) -> int:
        """List the SSL policies (masks, pseudo-labels, alignment), their parameters and plugin."""
        registry = state.manager.registry("policy")
        entries = []
        for key, policy in registry.items():
            parameters = sorted(policy.parameters) if policy.parameters is not None else None
            entries.append({"kind": policy.kind, "name": policy.name, "description": registry.description(key),
                            "parameters": parameters, "plugin": registry.owner(key)})
        if as_json:
            click.echo(json.dumps(entries, indent=2))
            return 0
        for entry in entries:
            owner = "" if entry["plugin"] == "policies" else f"  [{entry['plugin']}]"
            click.echo(f"{entry['kind'] + '/' + entry['name']:<22} {entry['description']}{owner}")
            shown = entry["parameters"] if entry["parameters"] is not None else ["any (**kwargs)"]
            click.echo(" " * 23 + "parameters: " + ", ".join(shown))
        return 0

    @cli.group()
    def config() -> None:
        """Inspect configurations."""

    @config.command("show")
    @click.argument("config_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
    @_set_option
    @_plugin_option
    @click.option("--schema", is_flag=True, help="Print every key with its type, default and meaning instead.")
    @click.pass_obj
    def config_show(state: _State, config_file: Path | None, overrides: tuple[str, ...],
                    plugin_args: tuple[str, ...], schema: bool) -> int:
        """Print the resolved configuration (defaults filled in) as YAML."""
        from .runner import load_config

        resolution = load_config(state.manager, config_file, overrides)
        for warning in resolution.warnings:
            logging.getLogger("semilearn").warning(warning)
        if not schema:
            click.echo(resolution.config.to_yaml(), nl=False)
            return 0
        algorithm = state.manager.registry("algorithm").get(resolution.config.algorithm)
        click.echo("# engine")
        _echo_options(CORE_OPTIONS)
        click.echo(f"# algorithm {resolution.config.algorithm}")
        _echo_options(algorithm.config_options)
        for name, options in state.manager.config_sections().items():
            click.echo(f"# plugin {name} (section '{name}')")
            _echo_options(options, prefix=f"{name}.")
        return 0

    manager.hook.register_commands(cli=cli)
    return cli


def _echo_options(options: Sequence[Option], prefix: str = "") -> None:
    for option in options:
        default = json.dumps(option.default)
        click.echo(f"  {prefix}{option.name}: {option.type_name} = {default}  {option.help}")


def _config_beside(path: Path) -> Path | None:
    """The config.yaml of the run a checkpoint file or run directory belongs to."""
    for folder in ([path] if path.is_dir() else []) + list(path.parents)[:2]:
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    return None


def _strip_debug(args: list[str]) -> tuple[list[str], bool]:
    debug = os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
    if "--" in args:
        cut = args.index("--")
        head, tail = args[:cut], args[cut:]
    else:
        head, tail = args, []
    if "--debug" in head:
        debug = True
        head = [arg for arg in head if arg != "--debug"]
    return head + tail, debug


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``semilearn`` console script; returns the exit code."""
    args, debug = _strip_debug(list(sys.argv[1:] if argv is None else argv))
    setup_console()
    # this command's entry points guard their main module: lazy readers' workers may start from a
    # fork server, which imports it again (see semilearn.data.lazy.worker_context)
    os.environ.setdefault(WORKER_START_VARIABLE, "forkserver")
    try:
        blocked, explicit = parse_plugin_args(args)
        manager = PluginManager().load(blocked=blocked, explicit=explicit)
        manager.check_names()
        cli = build_cli(manager)
        result = cli.main(args=args, prog_name="semilearn", standalone_mode=False, obj=_State(manager, debug, args))
        return int(result or 0)
    except click.exceptions.Exit as exit_:
        return int(exit_.exit_code)
    except click.ClickException as error:
        error.show()
        return int(error.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except SemilearnError as error:
        _report(error, debug)
        return error.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as error:  # noqa: BLE001 - the CLI's last line of defence
        _report(error, debug, unexpected=True)
        return 1


def _report(error: BaseException, debug: bool, unexpected: bool = False) -> None:
    if debug:
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    message = str(error) or type(error).__name__
    peer = _peer_failure(error) if world_size() > 1 else None
    if peer is not None:
        message, unexpected = peer, False
    if unexpected:
        message = f"{type(error).__name__}: {message}"
    hint = "" if debug else " (run with --debug for the traceback)" if unexpected else ""
    where = f"[rank {global_rank()}] " if world_size() > 1 else ""
    click.echo(f"error: {where}{message}{hint}", err=True)


_PEER_SIGNS = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "NCCL communicator was aborted")


def _peer_failure(error: BaseException) -> str | None:
    """A short message when a collective failed because another process of the run died."""
    text = str(error)
    if not any(sign in text for sign in _PEER_SIGNS):
        return None
    return "stopped because another process of the run failed (its error is reported by that process)"


def _without_nproc(args: Sequence[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--nproc-per-node":
            skip = True
        elif not arg.startswith("--nproc-per-node="):
            kept.append(arg)
    return kept


def _launch(nproc: int, args: Sequence[str]) -> int:
    """Run ``semilearn ARGS`` in ``nproc`` processes through torchrun's launcher, in this process."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    worker_args = _without_nproc(args)
    launch = torchrun.parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "semilearn", *worker_args])
    try:
        torchrun.run(launch)
    except ChildFailedError as failure:
        # the process that failed first by itself (positive exit code), not one stopped by the launcher
        ranked = sorted(failure.failures.items(), key=lambda item: (item[1].exitcode <= 0, item[1].timestamp))
        rank, first = ranked[0]
        raise SemilearnError(
            f"the distributed run failed: rank {rank} exited with code {first.exitcode} (its error is above)"
        ) from None
    except SignalException as stopped:
        return 128 + int(stopped.sigval)
    return 0


def console_main() -> None:  # pragma: no cover - exercised through the installed script
    sys.exit(main())

