"""Configuration: one schema, YAML files, ``--set`` overrides, clear errors.

A configuration is a mapping. Top-level keys are the engine's (USB's flat names:
``algorithm``, ``num_labels``, ``batch_size``, ``lr`` ...) and the selected algorithm's
hyperparameters (``p_cutoff``, ``T`` ...); every plugin with options owns a section named
after it (``checkpoint: {interval: 500}``). Each key has a type and a default; a key
nobody declares is an error with a "did you mean", and a wrong type or value names the
key and what was expected.

Nothing here imports torch.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .paths import CONFIG_FILE_LIMIT, check_name, read_text_file, url_file_name
from .tree import map_tree

__all__ = [
    "Option",
    "Config",
    "Section",
    "CORE_OPTIONS",
    "INFORMATIONAL_KEYS",
    "read_config_file",
    "parse_override",
    "split_commas",
    "apply_overrides",
    "resolve_config",
    "did_you_mean",
]

_MISSING = object()


@dataclass(frozen=True)
class Option:
    """One configuration key: its type, default, allowed values and meaning.

    Args:
        name: the key.
        type: ``int``, ``float``, ``bool``, ``str`` or ``list`` (a list of strings).
        default: used when the key is absent.
        help: one sentence for the reference and ``semilearn config show --schema``.
        choices: the allowed values, if limited.
        minimum, maximum: bounds for numbers (inclusive unless ``exclusive_minimum``).
        nullable: ``null`` is allowed (meaning "automatic" or "off", as the help says).
        aliases: other accepted names (for example the paper's name of a USB key).
        usb: the key exists under this name in USB's configuration files.
        moved_from: former names of an engine key in a plugin's section (``checkpoint.monitor``):
            still accepted, with a warning naming the key to write instead.
        file_name: the value becomes one file or folder name (``save_name``, ``checkpoint.dir``):
            it must be a single portable path component (:func:`semilearn.paths.name_problem`).
    """

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    nullable: bool = False
    aliases: tuple[str, ...] = ()
    usb: bool = False
    moved_from: tuple[str, ...] = ()
    file_name: bool = False

    @property
    def type_name(self) -> str:
        names = {int: "integer", float: "number", bool: "boolean", str: "string", list: "list of strings"}
        name = names.get(self.type, self.type.__name__)
        return f"{name} or null" if self.nullable else name

    def describe_expected(self) -> str:
        """What a valid value looks like, for error messages."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(choice) for choice in self.choices)
        text = "an " + self.type_name if self.type_name[0] in "aeiou" else "a " + self.type_name
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"<= {self.maximum:g}")
        return text + (" " + " and ".join(bounds) if bounds else "")

    def coerce(self, value: Any, key: str | None = None) -> Any:
        """Check ``value`` against this option and return it in canonical form."""
        key = key or self.name
        if value is None:
            if self.nullable:
                return None
            raise ConfigError(f"configuration key '{key}' expects {self.describe_expected()}, got null")
        result: Any
        original = value
        if self.type in (int, float) and isinstance(value, str):
            value = _number(value, value)  # YAML 1.1 reads 1e-4 and 5E-05 as strings; a person means a number
        if self.type is bool:
            if not isinstance(value, bool):
                raise self._type_error(key, value)
            result = value
        elif self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise self._type_error(key, original)
            result = value
        elif self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._type_error(key, original)
            result = float(value)
            if not math.isfinite(result):
                raise self._type_error(key, original)
        elif self.type is str:
            if isinstance(value, (dict, list)):
                raise self._type_error(key, value)
            if isinstance(value, bool):
                # YAML reads on/off/yes/no as booleans; take the spelling the option knows.
                spellings = ("on", "true", "yes") if value else ("off", "false", "no")
                known = [choice for choice in (self.choices or ()) if str(choice).lower() in spellings]
                result = known[0] if known else str(value).lower()
            else:
                result = value if isinstance(value, str) else str(value)
        elif self.type is list:
            if isinstance(value, str):
                value = split_commas(value)
            if not isinstance(value, list) or not all(isinstance(item, (str, int, float)) for item in value):
                raise self._type_error(key, value)
            result = [str(item) for item in value]
        else:  # pragma: no cover - schema mistake
            raise TypeError(f"unsupported option type {self.type!r} for {key}")
        if self.choices is not None and result not in self.choices:
            raise ConfigError(
                f"configuration key '{key}' must be {self.describe_expected()}, got {result!r}"
                + _suggest(str(result), [str(choice) for choice in self.choices])
            )
        if isinstance(result, (int, float)) and not isinstance(result, bool):
            too_small = self.minimum is not None and (
                result <= self.minimum if self.exclusive_minimum else result < self.minimum
            )
            too_large = self.maximum is not None and result > self.maximum
            if too_small or too_large:
                raise ConfigError(f"configuration key '{key}' must be {self.describe_expected()}, got {result!r}")
        if self.file_name:
            check_name(result, f"configuration key '{key}'")
        return result

    def _type_error(self, key: str, value: Any) -> ConfigError:
        return ConfigError(
            f"configuration key '{key}' expects {self.describe_expected()}, "
            f"got {value!r} ({type(value).__name__})"
        )


_NUMBER = re.compile(r"[+-]?(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d+)?")


def _number(text: str, fallback: Any) -> Any:
    """``text`` as the number a person wrote (``1e-4``, ``5E-05``, ``1_000``, ``.5``), else ``fallback``."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return fallback
    if re.fullmatch(r"[+-]?\d(?:_?\d)*", text):
        return int(text)
    return float(text)


def split_commas(text: str | None) -> list[str]:
    """The items of ``"a, b,c"`` (``--set key=a,b``, ``SEMILEARN_PLUGINS=a,b``), blanks dropped."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to ``word``, if any is close."""
    by_lower: dict[str, str] = {}
    for candidate in candidates:
        by_lower.setdefault(candidate.lower(), candidate)
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[matches[0]] if matches else None


def _suggest(word: str, candidates: Iterable[str]) -> str:
    match = did_you_mean(word, candidates)
    return f" (did you mean '{match}'?)" if match else ""


# ---------------------------------------------------------------------------
# The engine's keys. USB's flat names where the concept exists.
# ---------------------------------------------------------------------------

CORE_OPTIONS: tuple[Option, ...] = (
    # what to train
    Option("algorithm", str, "flexmatch", "SSL algorithm (see `semilearn algorithms`); the default with `ema_m` 0.99 "
           "is what reaches 97% on digits over seeds (USB's files name theirs).", usb=True),
    Option("dataset", str, "digits", "Data set (`semilearn datasets` lists them).", usb=True),
    Option("net", str, "auto", "Network; `auto` picks the data set's default network.", usb=True),
    Option("use_pretrain", bool, False, "Load the network's weights from `pretrain_path` before training "
           "(docs/pretrained.md).", usb=True),
    Option("pretrain_path", str, "", "Weight file for `use_pretrain`: a local path, or an http(s) URL fetched once "
           "into the weights cache ($SEMILEARN_CACHE/weights, default ~/.cache/semilearn/weights).", usb=True),
    Option("num_classes", int, None, "Number of classes; taken from the data set when null, checked when set.",
           nullable=True, minimum=2, usb=True),
    Option("num_labels", int, 40, "Labelled samples in total, drawn balanced across classes by `seed`.",
           minimum=1, usb=True),
    Option("data_dir", str, "./data", "Folder holding data set files (not needed for digits and synthetic); for "
           "`npz` and `image_folder`, the file or folder itself.", usb=True),
    Option("img_size", int, None, "Image side the data set is resized to at load time; null keeps the data set's "
           "own size.", nullable=True, minimum=8, usb=True),
    Option("crop_ratio", float, None, "Weak views pad by img_size * (1 - crop_ratio) pixels and crop back; null: "
           "USB's 0.875.", nullable=True, minimum=0, exclusive_minimum=True, maximum=1, usb=True),
    Option("data_device", str, "auto", "Where images are kept: `device` (all on the GPU), `host` (pinned host memory, "
           "batches copied each step) or `auto` (the device when the data takes under half its free memory).",
           choices=("auto", "device", "host")),
    Option("data_loading", str, "auto", "How samples are held: `memory` (decoded before the first step: fastest), "
           "`lazy` (read, decoded and resized as steps need them, by `num_workers` processes: memory does not grow "
           "with the data set) or `auto` (lazy where the decoded samples would take over a quarter of the memory "
           "available, or where the data set prefers it: semi_aves, semi_inat, imagenet).",
           choices=("auto", "memory", "lazy")),
    Option("num_workers", int, 4, "Worker processes reading each lazily read stream of samples (0: the training "
           "process reads them itself).", minimum=0, usb=True),
    Option("prefetch_factor", int, 2, "Batches each worker reads ahead on the lazy path.", minimum=1),
    Option("on_bad_sample", str, "fail", "A sample that cannot be read on the lazy path: `fail` stops the run "
           "naming it; `skip` puts the first readable sample of its batch in its place and counts it.",
           choices=("fail", "skip")),
    # batches
    Option("batch_size", int, 64, "Labelled samples per step (global: split across processes).", minimum=1,
           usb=True),
    Option("uratio", int, 7, "Unlabelled samples per labelled sample in a step.", minimum=1, usb=True),
    Option("eval_batch_size", int, 512, "Samples per forward pass during evaluation.", minimum=1, usb=True),
    # schedule
    Option("num_train_iter", int, 3000, "Training steps of the whole run.", minimum=1, usb=True),
    Option("epoch", int, 6, "Number of epochs `num_train_iter` is split into (for epoch hooks).", minimum=1,
           usb=True),
    Option("num_eval_iter", int, 500, "Evaluate every this many steps (and at the last step).", minimum=1,
           usb=True),
    Option("num_log_iter", int, 50, "Log train metrics every this many steps (and at the last step).", minimum=1,
           usb=True),
    Option("num_warmup_iter", int, 0, "Steps of linear learning-rate warm-up before the cosine decay.",
           minimum=0, usb=True),
    Option("stop_step", int, None, "Stop this process after this global step, saving a resumable checkpoint "
           "(split a long run into jobs); null runs to `num_train_iter`.", nullable=True, minimum=1),
    # the best evaluation
    Option("monitor", str, "top1_acc", "Eval metric that decides the best evaluation (named in the end-of-run "
           "summaries; the checkpoint plugin's best.pt). The built-in evaluation reports `top1_acc`, `balanced_acc` "
           "and `loss`; a plugin replacing `evaluate` reports its own. Formerly `checkpoint.monitor`.",
           moved_from=("checkpoint.monitor",)),
    Option("mode", str, "max", "Whether a larger (`max`) or smaller (`min`) `monitor` value is better; of equal "
           "values the earlier evaluation stays the best. Formerly `checkpoint.mode`.", choices=("max", "min"),
           moved_from=("checkpoint.mode",)),
    # optimisation
    Option("optim", str, "SGD", "Optimizer.", choices=("SGD", "AdamW"), usb=True),
    Option("lr", float, 0.03, "Peak learning rate (cosine decay to 7/16 of a cycle, as USB).", minimum=0,
           exclusive_minimum=True, usb=True),
    Option("momentum", float, 0.9, "SGD momentum (Nesterov unless `nesterov: false`).", minimum=0, maximum=1,
           usb=True),
    Option("nesterov", bool, True, "Use Nesterov momentum with SGD."),
    Option("weight_decay", float, 5e-4, "Weight decay of weights (not of biases and norm layers).", minimum=0,
           usb=True),
    Option("layer_decay", float, 1.0, "Layer-wise learning-rate decay: each layer below the classifier learns at "
           "this times the rate of the one above (ViTs, wide ResNets, ResNet-18; docs/pretrained.md); 1 turns it off.",
           minimum=0, maximum=1, usb=True),
    Option("clip_grad", float, 0.0, "Clip the gradient norm to this value; 0 turns clipping off (USB also: clip).",
           minimum=0, usb=True),
    Option("use_cat", bool, True, "Put the labelled and unlabelled views of a step through the network in one "
           "pass (as USB's use_cat). With false, the algorithms that have USB's use_cat branch (FixMatch and its "
           "family, CoMatch, SimMatch, CR-Match) give each view a pass of its own in USB's order, each moving the "
           "batch-norm statistics, the weak view last and without gradients (SimMatch: in order, all with "
           "gradients); the others ignore it, as USB does (docs/algorithms.md).", usb=True),
    Option("compile", bool, False, "Compile the training forward pass with torch.compile (minutes of start-up; "
           "faster steps on GPUs)."),
    Option("ema_m", float, 0.99, "Decay of the EMA model used for evaluation (and Mean Teacher's teacher), "
           "from the first step as USB; 0 turns EMA off. The default suits short runs such as digits' 3000 steps; "
           "USB's files set 0.999 (their runs are 1M steps).", minimum=0, maximum=1, usb=True),
    Option("nonfinite_loss", str, "stop", "When the loss becomes NaN or infinite: `stop` the run (status failed, "
           "exit code 3; checkpoints keep the last finite weights) or `warn` and train on. Checked without "
           "waiting for the device, at log points, evaluations, checkpoints and the end.", choices=("stop", "warn")),
    Option("ema_warmup", bool, False, "Ramp the EMA decay as min(ema_m, (1 + t) / (10 + t)) at step t, so that "
           "short runs get a useful average (USB: ema_m from the first step)."),
    # device
    Option("device", str, "auto", "`auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`."),
    Option("channels_last", bool, True, "Keep images and convolution weights in channels-last memory order "
           "(faster convolutions on CPU and recent GPUs)."),
    Option("sync_bn", bool, False, "Under torchrun, synchronise batch-norm statistics across processes "
           "(SyncBatchNorm)."),
    Option("dist_timeout", int, 600, "Under torchrun, seconds a collective waits for a missing process before "
           "failing.", minimum=1),
    Option("amp", bool, False, "Automatic mixed precision (USB also: use_amp). On a CPU without native bfloat16 "
           "(AVX2 only), where bfloat16 runs about ten times slower, the run trains in float32 and says so.",
           usb=True),
    Option("amp_dtype", str, "auto", "Mixed-precision type: `auto` (bfloat16 where supported, else float16), "
           "`float16` or `bfloat16`.", choices=("auto", "float16", "bfloat16")),
    # the run on disk
    Option("seed", int, 0, "Seed of the labelled split, initialisation, sampling and augmentation.", minimum=0,
           usb=True),
    Option("save_dir", str, "./saved_models", "Folder holding run directories.", usb=True),
    Option("save_name", str, None, "Name of the run directory inside `save_dir`: one folder name, no `/` or `..`; "
           "null uses `<algorithm>_<dataset>_<num_labels>_<seed>`. A name already used gets a numbered suffix, so "
           "no run is overwritten.", nullable=True, usb=True, file_name=True),
    Option("disable_plugins", list, [], "Plugins to turn off for this run (as `-p no:NAME`)."),
)

# Keys a resolved config file carries for the record; accepted and ignored on input.
INFORMATIONAL_KEYS = ("versions",)

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


# ---------------------------------------------------------------------------
# Reading and overriding.
# ---------------------------------------------------------------------------


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a YAML configuration file into a mapping.

    The path must be a regular file of at most 10 MiB (:data:`~semilearn.paths.CONFIG_FILE_LIMIT`):
    a folder, a device (``/dev/zero``), a named pipe or a larger file is refused in one line
    before it is read.
    """
    path = Path(path)
    text = read_text_file(path, "configuration file", limit=CONFIG_FILE_LIMIT)
    conflict = next((number for number, line in enumerate(text.splitlines(), 1) if line.startswith("<<<<<<< ")), None)
    if conflict is not None:
        raise ConfigError(f"{path} holds unresolved merge-conflict markers (from line {conflict}): keep one side of "
                          "the conflict and delete the <<<<<<<, ======= and >>>>>>> lines")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys to values, not a {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into its key path and its YAML-parsed value."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects KEY=VALUE (for example --set lr=0.01), got '{text}'")
    parts = key.split(".")
    if any(not part for part in parts):
        raise ConfigError(f"--set key '{key}' has an empty part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``KEY=VALUE`` override applied in order."""
    result = map_tree(raw)
    for text in overrides:
        parts, value = parse_override(text)
        target = result
        for part in parts[:-1]:
            child = target.get(part)
            if child is None:
                child = target[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {text}: '{part}' is a value, not a section")
            target = child
        target[parts[-1]] = value
    return result


# ---------------------------------------------------------------------------
# The resolved configuration.
# ---------------------------------------------------------------------------


class Section(Mapping[str, Any]):
    """A read-only mapping whose keys are also attributes (``section.interval``)."""

    def __init__(self, values: Mapping[str, Any] | None = None, name: str = "") -> None:
        self._values = dict(values or {})
        self._name = name

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._values[key]
        except KeyError:
            where = f"section '{self._name}'" if self._name else "the configuration"
            raise AttributeError(f"{where} has no key '{key}'") from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._values!r})"

    def to_dict(self) -> dict[str, Any]:
        return {key: value.to_dict() if isinstance(value, Section) else map_tree(value)
                for key, value in self._values.items()}


class Config(Section):
    """The resolved configuration of a run: every key with its value (defaults filled in).

    ``config.lr`` is an engine or algorithm key; ``config.checkpoint.interval`` a plugin's.
    """

    def __init__(self, values: Mapping[str, Any], sections: Iterable[str] = ()) -> None:
        super().__init__(values)
        self.sections = tuple(sections)

    def section(self, name: str) -> Section:
        """A plugin's section (empty when the plugin has no options)."""
        value = self._values.get(name)
        return value if isinstance(value, Section) else Section({}, name)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)


@dataclass
class Resolution:
    """The result of resolving a raw configuration.

    ``resume`` is what a USB-style file's ``resume``/``load_path`` asked for (the CLI's
    ``--resume`` wins over it).
    """

    config: Config
    warnings: list[str] = field(default_factory=list)
    resume: str | None = None


def _all_names(options: Iterable[Option]) -> dict[str, Option]:
    names: dict[str, Option] = {}
    for option in options:
        names[option.name] = option
        for alias in option.aliases:
            names[alias] = option
    return names


def _take_moved_keys(raw: Mapping[str, Any], options: Sequence[Option], values: dict[str, Any],
                     seen: dict[str, str], warnings: list[str]) -> Mapping[str, Any]:
    """Set the engine keys given under a former name (``checkpoint.monitor``); ``raw`` without them.

    Each one warns once, naming the key to write instead; giving both names is an error. A
    section left empty is dropped, so that it is not reported as a missing plugin's section.
    """
    result = dict(raw)
    for option in options:
        for former in option.moved_from:
            section, _, key = former.partition(".")
            given = result.get(section)
            if not isinstance(given, dict) or key not in given:
                continue
            written = [name for name in (option.name, *option.aliases) if name in raw] + (
                [seen[option.name]] if option.name in seen else [])
            if written:
                raise ConfigError(f"configuration keys '{written[0]}' and '{former}' set the same option: keep "
                                  f"'{option.name}' ('{former}' is its former name)")
            remaining = dict(given)
            values[option.name] = option.coerce(remaining.pop(key), former)
            seen[option.name] = former
            if remaining:
                result[section] = remaining
            else:
                del result[section]
            warnings.append(f"configuration key '{former}' is deprecated: write the top-level key "
                            f"'{option.name}' instead ({option.name}: {values[option.name]})")
    return result


def resolve_config(
    raw: Mapping[str, Any],
    *,
    algorithm_options: Mapping[str, Sequence[Option]],
    plugin_sections: Mapping[str, Sequence[Option]],
    core_options: Sequence[Option] = CORE_OPTIONS,
) -> Resolution:
    """Check ``raw`` against the schema and fill in every default.

    Args:
        raw: the merged file and overrides.
        algorithm_options: for each known algorithm, its own keys.
        plugin_sections: for each active plugin with options, its section's keys.
    """
    warnings: list[str] = []
    core = _all_names(core_options)
    algorithm_option = core["algorithm"]
    algorithm = algorithm_option.coerce(raw.get("algorithm", algorithm_option.default))
    if algorithm not in algorithm_options:
        known = ", ".join(sorted(algorithm_options))
        raise ConfigError(
            f"unknown algorithm '{algorithm}'{_suggest(algorithm, algorithm_options)}; known: {known}"
        )
    own = _all_names(algorithm_options[algorithm])
    foreign: dict[str, list[str]] = {}  # key -> the other algorithms that have it
    for other, options in sorted(algorithm_options.items()):
        for name in _all_names(options):
            if other != algorithm and name not in own and name not in core:
                foreign.setdefault(name, []).append(other)
    ignored: list[str] = []

    values: dict[str, Any] = {}
    seen: dict[str, str] = {}  # canonical name -> key as written
    raw = _take_moved_keys(raw, core_options, values, seen, warnings)
    for key, value in raw.items():
        if not isinstance(key, str):
            raise ConfigError(f"configuration keys must be strings, got {key!r}")
        option = core.get(key) or own.get(key)
        if option is not None:
            if option.name in seen:
                raise ConfigError(f"configuration keys '{seen[option.name]}' and '{key}' set the same option")
            seen[option.name] = key
            values[option.name] = option.coerce(value, key)
            continue
        if key in plugin_sections:
            continue  # handled below
        if key in INFORMATIONAL_KEYS:
            continue
        if key in foreign:
            owners = foreign[key]
            ignored.append(f"{key} ({', '.join(owners[:3])}{' ...' if len(owners) > 3 else ''})")
            continue
        candidates = list(core) + list(own) + list(plugin_sections)
        suggestion = did_you_mean(key, candidates)
        if isinstance(value, dict) and suggestion is None:
            warnings.append(
                f"ignoring section '{key}': no active plugin is named '{key}' (not installed, or disabled)"
            )
            continue
        hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
        raise ConfigError(f"unknown configuration key '{key}'{hint}")

    if ignored:
        warnings.append(f"ignoring keys algorithm '{algorithm}' does not have (other algorithms': "
                        + ", ".join(ignored) + ")")
    for option in list(core_options) + list(algorithm_options[algorithm]):
        if option.name not in values:
            values[option.name] = map_tree(option.default)

    if not _DEVICE_PATTERN.match(values["device"]):
        raise ConfigError(
            f"configuration key 'device' must be auto, cpu, cuda, cuda:N or mps, got '{values['device']}'"
        )
    pretrain = str(values.get("pretrain_path") or "")
    if values.get("use_pretrain") and pretrain.lower().startswith(("http://", "https://")):
        url_file_name(pretrain, "configuration key 'pretrain_path'")  # the weights cache keeps the file by this name

    for name, options in plugin_sections.items():
        given = raw.get(name, {})
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise ConfigError(f"configuration key '{name}' is the section of plugin '{name}': expected a mapping")
        schema = _all_names(options)
        section: dict[str, Any] = {}
        for key, value in given.items():
            option = schema.get(key)
            if option is None:
                match = did_you_mean(str(key), schema)
                hint = f" (did you mean '{name}.{match}'?)" if match else ""
                known = ", ".join(sorted(o.name for o in options))
                raise ConfigError(f"unknown key '{name}.{key}'{hint}; plugin '{name}' knows: {known}")
            section[option.name] = option.coerce(value, f"{name}.{key}")
        for option in options:
            section.setdefault(option.name, map_tree(option.default))
        values[name] = Section(section, name)
    return Resolution(Config(values, plugin_sections), warnings)
