"""The plugin manager: discovery, blocking, validation, listing, registries.

Plugins come from two places:

* built-in plugins of the core (``catalog``, ``ema``, ``evaluation``, ``timing``),
  registered first;
* every entry point of the group ``semilearn.plugins`` in the installed distributions,
  registered in name order. Installed means active.

Turning plugins off, as pytest does it:

* ``-p no:NAME`` on the command line, ``disable_plugins: [NAME]`` in a configuration
  file, or ``SEMILEARN_DISABLE_PLUGINS=NAME,NAME`` in the environment;
* ``SEMILEARN_DISABLE_PLUGIN_AUTOLOAD=1`` loads no entry point at all except those named
  with ``-p NAME`` or in ``SEMILEARN_PLUGINS=NAME,NAME``.

``SEMILEARN_DEBUG_HOOKS=1`` writes a line to stderr for every hook call: the hook point,
its arguments in short, the plugins that ran with their durations, and what it returned
(:mod:`semilearn.hooktrace`; :meth:`PluginManager.trace_hooks` does the same from code).

A plugin that fails to import, or that implements a hook point that does not exist or
with arguments its specification does not have, is a :class:`PluginError` naming the
distribution, its version and how to turn the plugin off. Nothing is skipped silently.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Generic, TypeVar

import pluggy

from . import __version__, hookspecs
from .config import Option, Section, did_you_mean, split_commas
from .distributed import global_rank, world_size
from .errors import ConfigError, PluginError
from .hook import Hook, runs_on_rank
from .hooktrace import DEBUG_HOOKS_ENV, HookTracer
from .policy import Policy

__all__ = [
    "ENTRY_POINT_GROUP",
    "DISABLE_ENV",
    "AUTOLOAD_ENV",
    "LOAD_ENV",
    "DEBUG_HOOKS_ENV",
    "BUILTIN_PLUGINS",
    "ESSENTIAL_PLUGINS",
    "SHIPPED_PLUGINS",
    "ShippedPlugin",
    "install_hint",
    "PluginInfo",
    "PluginManager",
    "Registry",
    "parse_plugin_args",
    "import_target",
]

ENTRY_POINT_GROUP = "semilearn.plugins"
DISABLE_ENV = "SEMILEARN_DISABLE_PLUGINS"
AUTOLOAD_ENV = "SEMILEARN_DISABLE_PLUGIN_AUTOLOAD"
LOAD_ENV = "SEMILEARN_PLUGINS"
CORE_DISTRIBUTION = "semilearn-core"

# name -> "module:attribute", in registration order
BUILTIN_PLUGINS: dict[str, str] = {
    "catalog": "semilearn.builtin.catalog:Catalog",
    "ema": "semilearn.builtin.ema:EMAHook",
    "evaluation": "semilearn.builtin.evaluation:EvaluationHook",
    "timing": "semilearn.builtin.timing:TimingHook",
    "policies": "semilearn.builtin.policies:PolicyHook",
    "scaffold": "semilearn.builtin.scaffold:ScaffoldHook",
}
ESSENTIAL_PLUGINS = frozenset({"catalog"})


@dataclass(frozen=True)
class ShippedPlugin:
    """A plugin distributed with semilearn, which the core's messages can point to."""

    distribution: str
    usb_key: str | None = None  # the key of USB's configuration files that turns it on or off
    folder: str = ""  # where it lives in a semilearn checkout, for `pip install ./FOLDER`
    nets: tuple[str, ...] = ()  # registry names it adds, named by "unknown net/dataset" errors
    datasets: tuple[str, ...] = ()
    usb_keys: tuple[str, ...] = ()  # top-level keys of USB's files that are keys of its section here

    def provides(self, kind: str, name: str) -> bool:
        return name in {"net": self.nets, "dataset": self.datasets}.get(kind, ())


# The one place the core names plugins that are not built in, and only for two things: the
# install hints of its messages (nothing reads checkpoints: "pip install semilearn-checkpoint")
# and USB's configuration keys ``use_wandb`` / ``use_aim`` and the modality keys USB's files
# set at the top level (``max_length`` -> ``nlp.max_length``: semilearn.usb), and the networks and
# data sets a modality plugin adds, so that asking for one without it names what to install.
# The engine calls these plugins through hook points like any other; nothing else depends on
# their names.
SHIPPED_PLUGINS: dict[str, ShippedPlugin] = {
    "logging": ShippedPlugin("semilearn-logging"),
    "checkpoint": ShippedPlugin("semilearn-checkpoint"),
    "wandb": ShippedPlugin("semilearn-wandb", usb_key="use_wandb"),
    "aim": ShippedPlugin("semilearn-aim", usb_key="use_aim"),
    "nlp": ShippedPlugin("semilearn-nlp", folder="plugins/nlp", nets=("bert_base_cased", "bert_base_uncased"),
                         datasets=("aclImdb", "ag_news", "amazon_review", "dbpedia", "yahoo_answers", "yelp_review"),
                         usb_keys=("max_length",)),
    "audio": ShippedPlugin("semilearn-audio", folder="plugins/audio", nets=("hubert_base", "wave2vecv2_base"),
                           datasets=("esc50", "fsdnoisy", "gtzan", "superbks", "urbansound8k"),
                           usb_keys=("max_length_seconds", "sample_rate")),
}


def install_hint(*names: str) -> str:
    """``pip install semilearn-NAME ...`` for shipped plugins named in :data:`SHIPPED_PLUGINS`."""
    return "pip install " + " ".join(SHIPPED_PLUGINS[name].distribution for name in names)


@dataclass
class PluginInfo:
    """What is known about one plugin, loaded or not."""

    name: str
    distribution: str
    version: str
    value: str  # the entry point's target, "module:attribute"
    builtin: bool = False
    plugin: object | None = None
    blocked: bool = False
    error: str | None = None

    @property
    def active(self) -> bool:
        return self.plugin is not None and not self.blocked and self.error is None

    def disable_hint(self) -> str:
        return f"disable it with '-p no:{self.name}' or {DISABLE_ENV}={self.name}"

    def label(self) -> str:
        return f"plugin '{self.name}' (distribution {self.distribution} {self.version})"


def parse_plugin_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Find ``-p NAME`` / ``-p no:NAME`` (also ``-pNAME``) in a command line.

    Returns ``(blocked, explicitly_loaded)``.
    """
    blocked: list[str] = []
    loaded: list[str] = []
    values: list[str] = []
    iterator = iter(args)
    for arg in iterator:
        if arg == "--":
            break
        if arg == "-p":
            value = next(iterator, None)
            if value is not None:
                values.append(value)
        elif arg.startswith("-p") and not arg.startswith("--"):
            values.append(arg[2:])
    for value in values:
        if value.startswith("no:"):
            blocked.append(value[3:])
        else:
            loaded.append(value)
    return blocked, loaded


T = TypeVar("T")


class Registry(Generic[T]):
    """Named things (algorithms, data sets, networks) contributed by plugins."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}
        self._owners: dict[str, str] = {}
        self._current_owner = "?"

    def register(self, name: str, item: T, description: str = "", replace: bool = False) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin '{self._current_owner}' registered a {self.kind} without a name")
        if name in self._items and not replace:
            raise PluginError(
                f"{self.kind} '{name}' is registered by both plugin '{self._owners[name]}' and plugin "
                f"'{self._current_owner}'; pass replace=True to substitute it"
            )
        self._items[name] = item
        self._descriptions[name] = description or (getattr(item, "description", "") or "")
        self._owners[name] = self._current_owner

    def register_policy(self, policy: Policy, replace: bool = False) -> None:
        """``register`` of the ``register_policies`` hook point: a policy under its ``kind/name``."""
        if not isinstance(policy, Policy):
            raise PluginError(f"plugin '{self._current_owner}' registered {policy!r}, not a semilearn.Policy")
        self.register(policy.key, policy, policy.description, replace=replace)  # type: ignore[arg-type]

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            shipped = next((plugin for plugin in SHIPPED_PLUGINS.values() if plugin.provides(self.kind, name)), None)
            if shipped is not None:
                raise ConfigError(
                    f"{self.kind} '{name}' comes with the plugin distribution {shipped.distribution}, which is not "
                    f"installed or is disabled (pip install ./{shipped.folder} from a semilearn checkout)"
                ) from None
            suggestion = did_you_mean(name, self._items)
            hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
            raise ConfigError(
                f"unknown {self.kind} '{name}'{hint}; known: {', '.join(sorted(self._items))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def description(self, name: str) -> str:
        return self._descriptions.get(name, "")

    def owner(self, name: str) -> str:
        return self._owners.get(name, "")

    def __contains__(self, name: object) -> bool:
        return name in self._items


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, with entry-point discovery, rank gating and clear errors."""

    def __init__(self) -> None:
        super().__init__("semilearn")
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.rank = global_rank()
        self._registries: dict[str, Registry[Any]] = {}
        self.requested: list[tuple[str, str, bool]] = []  # (route, name, disabling), see check_names
        self._tracer: HookTracer | None = None
        if _is_set(os.environ.get(DEBUG_HOOKS_ENV)):
            self.trace_hooks()

    # -- tracing (SEMILEARN_DEBUG_HOOKS) ----------------------------------------

    def trace_hooks(self, stream: IO[str] | None = None) -> Callable[[], None]:
        """Write a line for every hook call to ``stream`` (default stderr); see :mod:`semilearn.hooktrace`.

        Returns a function that stops the tracing.
        """
        if self._tracer is not None:
            raise RuntimeError("hook calls are traced already")
        tracer = self._tracer = HookTracer(stream, self.rank if world_size() > 1 else None)
        for plugin in self.get_plugins():
            self._instrument(plugin)
        stop_monitoring = self.add_hookcall_monitoring(tracer.before, tracer.after)

        def stop() -> None:
            stop_monitoring()
            tracer.restore()
            self._tracer = None

        return stop

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        if self._tracer is not None and registered is not None:
            self._instrument(plugin)
        return registered

    def _instrument(self, plugin: object) -> None:
        assert self._tracer is not None
        for caller in self.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin:
                    self._tracer.instrument(impl)

    def _traced(self, hook_name: str, kwargs: Mapping[str, object]) -> contextlib.AbstractContextManager[None]:
        """A hook point the manager calls one implementation at a time, traced like the others."""
        return self._tracer.call(hook_name, kwargs) if self._tracer is not None else contextlib.nullcontext()

    # -- rank gating ----------------------------------------------------------

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None or runs_on_rank(plugin, name, self.rank):
            return opts
        return None  # a rank_zero_only implementation on another rank: not registered here

    # -- loading --------------------------------------------------------------

    def load(
        self,
        *,
        blocked: Iterable[str] = (),
        explicit: Iterable[str] = (),
        autoload: bool | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> PluginManager:
        """Register the built-in plugins and the installed ones.

        Failures are recorded on :attr:`infos` (see :meth:`raise_for_failures`) so that
        ``--help`` and ``semilearn plugins`` still work with a broken plugin installed.
        """
        environ = os.environ if environ is None else environ
        blocked, explicit = list(blocked), list(explicit)
        self.requested = (
            [(f"-p no:{name}", name, True) for name in blocked]
            + [(f"-p {name}", name, False) for name in explicit]
            + [(f"{DISABLE_ENV}={environ.get(DISABLE_ENV, '')}", name, True)
               for name in split_commas(environ.get(DISABLE_ENV))]
            + [(f"{LOAD_ENV}={environ.get(LOAD_ENV, '')}", name, False) for name in split_commas(environ.get(LOAD_ENV))]
        )
        blocked = set(blocked) | set(split_commas(environ.get(DISABLE_ENV)))
        explicit = set(explicit) | set(split_commas(environ.get(LOAD_ENV)))
        if autoload is None:
            autoload = not _is_set(environ.get(AUTOLOAD_ENV))
        essential_blocked = blocked & ESSENTIAL_PLUGINS
        if essential_blocked:
            raise PluginError(
                f"the built-in plugin '{sorted(essential_blocked)[0]}' provides the algorithms, data sets and "
                "networks and cannot be disabled"
            )

        for name, value in BUILTIN_PLUGINS.items():
            info = PluginInfo(name, CORE_DISTRIBUTION, __version__, value, builtin=True)
            self.infos[name] = info
            if name in blocked:
                info.blocked = True
                continue
            self._load_one(info, import_target(value))

        for entry_point in sorted(_entry_points(), key=lambda ep: ep.name):
            name = entry_point.name
            dist = entry_point.dist
            info = PluginInfo(
                name,
                dist.metadata["Name"] if dist is not None else "?",
                dist.version if dist is not None else "?",
                entry_point.value,
            )
            if name in self.infos:
                previous = self.infos[name]
                raise PluginError(
                    f"two plugins are named '{name}': one from {previous.distribution} {previous.version}, "
                    f"one from {info.distribution} {info.version}; uninstall one of them"
                )
            self.infos[name] = info
            if name in blocked:
                info.blocked = True
                continue
            if not autoload and name not in explicit:
                info.blocked = True
                continue
            try:
                target = entry_point.load()
            except Exception as error:  # noqa: BLE001 - any import failure is the plugin's
                info.error = (
                    f"{info.label()} failed to import ({type(error).__name__}: {error}); {info.disable_hint()}"
                )
                continue
            self._load_one(info, target)

        return self

    def check_names(self, requested: Iterable[tuple[str, str, bool]] | None = None) -> None:
        """Raise a one-line :class:`ConfigError` (exit code 2) for a plugin name that is not
        installed, naming where it came from (``-p no:wand``, ``SEMILEARN_DISABLE_PLUGINS=...``,
        ``disable_plugins``) with a did-you-mean.

        ``requested``: ``(route, name, disabling)`` triples; by default those of the command
        line and the environment given to :meth:`load`. Turning off one of the project's own
        plugins that is not installed is no error (there is nothing to turn off); asking to
        load it names the distribution to install.
        """
        for route, name, disabling in (self.requested if requested is None else requested):
            if name in self.infos:
                continue
            if name in SHIPPED_PLUGINS:
                if disabling:
                    continue
                raise ConfigError(f"{route}: plugin '{name}' is not installed ({install_hint(name)})")
            known = sorted(set(self.infos) | set(SHIPPED_PLUGINS))
            suggestion = did_you_mean(name, known)
            hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
            raise ConfigError(f"{route}: no plugin named '{name}' is installed{hint}; installed: "
                              f"{', '.join(sorted(self.infos))}")

    def add(self, plugin: object, name: str | None = None) -> PluginInfo:
        """Register a plugin object from code (not an entry point), as an active plugin.

        Raises :class:`PluginError` when it is invalid.
        """
        name = name or getattr(plugin, "name", None) or type(plugin).__name__.lower()
        module = plugin.__name__ if isinstance(plugin, types.ModuleType) else type(plugin).__module__
        info = PluginInfo(name, "(registered in code)", "-", module)
        if name in self.infos:
            raise PluginError(f"a plugin named '{name}' is already registered")
        self.infos[name] = info
        self._load_one(info, plugin)
        if info.error:
            raise PluginError(info.error)
        return info

    def _load_one(self, info: PluginInfo, target: Any) -> None:
        try:
            plugin = target() if isinstance(target, type) else target
        except Exception as error:  # noqa: BLE001
            info.error = f"{info.label()} could not be created ({type(error).__name__}: {error}); {info.disable_hint()}"
            return
        if isinstance(plugin, Hook) and not plugin.name:
            plugin.name = info.name
        try:
            self.register(plugin, name=info.name)
        except pluggy.PluginValidationError as error:
            info.error = f"{info.label()} {self._invalid_implementation(plugin, error)}; {info.disable_hint()}"
            return
        problem = self._unknown_hooks(plugin)
        if problem:
            self.unregister(plugin)
            info.error = f"{info.label()} {problem}; {info.disable_hint()}"
            return
        info.plugin = plugin

    def _invalid_implementation(self, plugin: object, error: pluggy.PluginValidationError) -> str:
        """pluggy's refusal of a hook implementation, in one line with a did-you-mean."""
        text = str(error)
        match = re.search(r"for hook '(\w+)'.*?Argument\(s\) \{(.*?)\} are declared", text, re.S)
        if match is None:
            return "has an invalid hook implementation: " + " ".join(line.strip() for line in text.splitlines())
        hook_name = match.group(1)
        wrong = sorted(part.strip().strip("'\"") for part in match.group(2).split(","))
        spec = getattr(self.hook, hook_name).spec
        arguments = list(spec.argnames) if spec is not None else []
        guesses = [f"'{guess}'" for guess in (did_you_mean(name, arguments) for name in wrong) if guess]
        hint = f" (did you mean {', '.join(guesses)}?)" if guesses else ""
        return (f"implements {hook_name} with argument(s) {', '.join(repr(name) for name in wrong)}, which the hook "
                f"point does not have{hint}; it has: {', '.join(arguments)}")

    def _unknown_hooks(self, plugin: object) -> str | None:
        known = [name for name in dir(self.hook) if not name.startswith("_")]
        for caller in self.get_hookcallers(plugin) or []:
            if caller.has_spec():
                continue
            if any(impl.plugin is plugin and impl.optionalhook for impl in caller.get_hookimpls()):
                continue
            suggestion = did_you_mean(caller.name, [k for k in known if getattr(self.hook, k).has_spec()])
            hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
            return f"implements '{caller.name}', which is not a semilearn hook point{hint}"
        return None

    def block(self, names: Iterable[str]) -> None:
        """Turn off plugins after loading (a configuration file's ``disable_plugins``)."""
        for name in names:
            info = self.infos.get(name)
            if info is None:
                continue
            if name in ESSENTIAL_PLUGINS:
                raise PluginError(f"the built-in plugin '{name}' cannot be disabled")
            if info.plugin is not None and self.is_registered(info.plugin):
                self.unregister(info.plugin)
            info.blocked = True

    def raise_for_failures(self) -> None:
        """Raise the first recorded failure of a plugin that is not turned off."""
        for info in self.infos.values():
            if info.error and not info.blocked:
                raise PluginError(info.error)

    # -- what is active -------------------------------------------------------

    def active(self) -> list[PluginInfo]:
        return [info for info in self.infos.values() if info.active]

    def active_external(self) -> list[PluginInfo]:
        return [info for info in self.active() if not info.builtin]

    def config_sections(self) -> dict[str, tuple[Option, ...]]:
        sections = {}
        for info in self.active():
            options = getattr(info.plugin, "config_options", ())
            if options:
                sections[info.name] = tuple(options)
        return sections

    def bind_config(self, sections: Mapping[str, Section]) -> None:
        for info in self.active():
            if isinstance(info.plugin, Hook) and info.name in sections:
                info.plugin.bind_config(sections[info.name])

    def versions(self) -> dict[str, Any]:
        """Versions of the core and of every active plugin (for config.yaml and checkpoints)."""
        return {
            CORE_DISTRIBUTION: __version__,
            "plugins": {
                info.name: {"distribution": info.distribution, "version": info.version}
                for info in self.active_external()
            },
        }

    def hook_points(self) -> list[str]:
        return [name for name in dir(self.hook) if not name.startswith("_") and getattr(self.hook, name).has_spec()]

    def call_order(self) -> dict[str, list[str]]:
        """For every hook point, the plugins implementing it in the order they are called."""
        order: dict[str, list[str]] = {}
        for name in self.hook_points():
            impls = getattr(self.hook, name).get_hookimpls()
            wrappers = [impl.plugin_name for impl in reversed(impls) if impl.hookwrapper or impl.wrapper]
            plain = [impl.plugin_name for impl in reversed(impls) if not (impl.hookwrapper or impl.wrapper)]
            order[name] = wrappers + plain
        return order

    def implemented_hooks(self, plugin: object) -> list[str]:
        callers = self.get_hookcallers(plugin) or []
        return sorted(caller.name for caller in callers)

    def describe(self) -> list[dict[str, Any]]:
        """One record per known plugin (for ``semilearn plugins``)."""
        records = []
        for info in self.infos.values():
            hooks: list[str] = []
            if info.plugin is not None and self.is_registered(info.plugin):
                hooks = self.implemented_hooks(info.plugin)
            elif info.plugin is not None:
                hooks = _declared_hooks(info.plugin)
            records.append(
                {
                    "name": info.name,
                    "distribution": info.distribution,
                    "version": info.version,
                    "builtin": info.builtin,
                    "target": info.value,
                    "status": "error" if info.error else ("disabled" if info.blocked else "active"),
                    "hooks": hooks,
                    "config_section": [option.name for option in getattr(info.plugin, "config_options", ())],
                    "error": info.error,
                }
            )
        return records

    def call_each(self, hook_name: str, on_error: Callable[[str, BaseException], None], **kwargs: Any) -> None:
        """Call every implementation of a hook point even if some raise (``after_run``).

        ``on_error(plugin_name, error)`` is called for each implementation that raised;
        hook wrappers are not called.
        """
        caller = getattr(self.hook, hook_name)
        with self._traced(hook_name, kwargs):
            for impl in reversed(caller.get_hookimpls()):
                if impl.hookwrapper or impl.wrapper:
                    continue
                arguments = {name: kwargs[name] for name in impl.argnames if name in kwargs}
                try:
                    impl.function(**arguments)
                except Exception as error:  # noqa: BLE001
                    on_error(impl.plugin_name, error)

    # -- registries -----------------------------------------------------------

    def registry(self, kind: str) -> Registry[Any]:
        """The registry of ``algorithm``, ``dataset``, ``net``, ``modality`` or ``policy`` (built on first use).

        Policies are keyed ``kind/name`` (:attr:`semilearn.Policy.key`).
        """
        if kind not in self._registries:
            registry: Registry[Any] = Registry(kind)
            hook_name = {"algorithm": "register_algorithms", "dataset": "register_datasets", "net": "register_nets",
                         "policy": "register_policies", "modality": "register_modalities"}[kind]
            register: Callable[..., None] = registry.register if kind != "policy" else registry.register_policy
            caller = getattr(self.hook, hook_name)
            # in registration order (built-ins first), so that a plugin's replace=True
            # substitutes a built-in instead of meeting it second
            with self._traced(hook_name, {"register": register}):
                for impl in caller.get_hookimpls():
                    registry._current_owner = impl.plugin_name
                    try:
                        impl.function(register=register)
                    except PluginError:
                        raise
                    except Exception as error:  # noqa: BLE001
                        info = self.infos.get(impl.plugin_name)
                        label = info.label() if info else f"plugin '{impl.plugin_name}'"
                        hint = f"; {info.disable_hint()}" if info else ""
                        raise PluginError(
                            f"{label} failed in {hook_name} ({type(error).__name__}: {error}){hint}"
                        ) from error
            self._registries[kind] = registry
        return self._registries[kind]


def _declared_hooks(plugin: object) -> list[str]:
    names = []
    for attribute in dir(plugin):
        if attribute.startswith("_"):
            continue
        value = getattr(type(plugin), attribute, None) or getattr(plugin, attribute, None)
        if getattr(value, "semilearn_impl", None) is not None:
            names.append(attribute)
    return sorted(names)


def _is_set(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def import_target(target: str) -> Any:
    """Import ``"module:attribute"`` (an entry point's value), or a whole module (``"module"``)."""
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module
