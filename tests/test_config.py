"""The configuration schema: defaults, types, USB names, errors that name the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from semilearn.config import CORE_OPTIONS, Option, apply_overrides, parse_override, read_config_file, resolve_config
from semilearn.errors import ConfigError

FIXMATCH = (
    Option("p_cutoff", float, 0.95, "threshold", minimum=0, maximum=1),
    Option("ulb_loss_ratio", float, 1.0, "weight", minimum=0, aliases=("lambda_u",)),
)
VAT = (Option("vat_eps", float, 6.0, "perturbation size"),)
ALGORITHMS = {"fixmatch": FIXMATCH, "flexmatch": FIXMATCH, "supervised": (), "vat": VAT}
SECTIONS = {"checkpoint": (Option("interval", int, 500, "steps", minimum=1), Option("keep", int, 3, "kept"))}


def resolve(raw: dict, sections=SECTIONS):
    return resolve_config(raw, algorithm_options=ALGORITHMS, plugin_sections=sections)


def test_defaults_fill_every_key_of_engine_algorithm_and_sections() -> None:
    config = resolve({}).config
    for option in CORE_OPTIONS:
        assert option.name in config
    assert config.algorithm == "flexmatch" and config.ema_m == 0.99  # the defaults tuned for digits
    assert config.p_cutoff == 0.95
    assert config.checkpoint.interval == 500
    assert config.section("checkpoint")["keep"] == 3
    assert "vat_eps" not in config


def test_usb_flat_keys_are_accepted_and_coerced() -> None:
    raw = {"algorithm": "fixmatch", "num_labels": 40, "batch_size": 64, "uratio": 7, "p_cutoff": 0.9,
           "ulb_loss_ratio": 1, "ema_m": 0.999, "lr": 0.03, "momentum": 0.9, "weight_decay": 5e-4,
           "num_train_iter": 100, "num_eval_iter": 10, "num_log_iter": 5, "net": "wrn_28_2", "dataset": "digits",
           "seed": 3, "save_dir": "x", "save_name": "y", "amp": False}
    config = resolve(raw).config
    assert config.ulb_loss_ratio == 1.0 and isinstance(config.ulb_loss_ratio, float)
    assert config.seed == 3 and config.save_name == "y"


def test_alias_sets_the_canonical_key_and_both_together_is_an_error() -> None:
    assert resolve({"lambda_u": 2.5}).config.ulb_loss_ratio == 2.5
    with pytest.raises(ConfigError, match="'ulb_loss_ratio' and 'lambda_u' set the same option"):
        resolve({"ulb_loss_ratio": 1.0, "lambda_u": 2.0})


def test_unknown_key_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown configuration key 'p_cutof' \(did you mean 'p_cutoff'\?\)"):
        resolve({"p_cutof": 0.9})
    with pytest.raises(ConfigError, match=r"unknown configuration key 'batchsize' \(did you mean 'batch_size'\?\)"):
        resolve({"batchsize": 3})


def test_unknown_key_without_a_near_name_is_still_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown configuration key 'zzzz'"):
        resolve({"zzzz": 1})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"batch_size": 0}, "'batch_size' must be an integer >= 1, got 0"),
        ({"batch_size": "abc"}, "'batch_size' expects an integer >= 1, got 'abc' \\(str\\)"),
        ({"batch_size": 2.5}, "'batch_size' expects an integer"),
        ({"lr": 0}, "'lr' must be a number > 0"),
        ({"p_cutoff": 1.5}, "'p_cutoff' must be a number >= 0 and <= 1, got 1.5"),
        ({"amp": "yes"}, "'amp' expects a boolean"),
        ({"optim": "sgd"}, "'optim' must be one of 'SGD', 'AdamW', got 'sgd' \\(did you mean 'SGD'\\?\\)"),
        ({"device": "gpu"}, "'device' must be auto, cpu, cuda, cuda:N or mps"),
        ({"num_labels": None}, "'num_labels' expects an integer >= 1, got null"),
    ],
)
def test_wrong_values_name_the_key_and_what_was_expected(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(raw)


def test_unknown_algorithm_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown algorithm 'fixmatc' \(did you mean 'fixmatch'\?\); known: "
                                          r"fixmatch, flexmatch, supervised, vat"):
        resolve({"algorithm": "fixmatc"})


def test_a_key_of_another_algorithm_is_ignored_with_a_warning() -> None:
    resolution = resolve({"algorithm": "supervised", "p_cutoff": 0.9})
    assert "p_cutoff" not in resolution.config
    assert resolution.warnings == ["ignoring keys algorithm 'supervised' does not have (other algorithms': "
                                   "p_cutoff (fixmatch, flexmatch))"]


def test_plugin_sections_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'checkpoint.intervall' \(did you mean 'checkpoint.interval'\?\)"):
        resolve({"checkpoint": {"intervall": 3}})
    with pytest.raises(ConfigError, match="'checkpoint.interval' must be an integer >= 1, got 0"):
        resolve({"checkpoint": {"interval": 0}})
    with pytest.raises(ConfigError, match="expected a mapping"):
        resolve({"checkpoint": 5})


def test_section_of_an_absent_plugin_is_a_warning_but_a_typo_is_an_error() -> None:
    resolution = resolve({"wandb": {"project": "x"}})
    assert resolution.warnings == [
        "ignoring section 'wandb': no active plugin is named 'wandb' (not installed, or disabled)"
    ]
    with pytest.raises(ConfigError, match="did you mean 'checkpoint'"):
        resolve({"chekpoint": {"interval": 3}})


def test_versions_key_of_a_written_config_is_accepted() -> None:
    assert resolve({"versions": {"semilearn-core": "0.1.0"}}).config.algorithm == "flexmatch"


def test_overrides_parse_yaml_values_and_dotted_keys() -> None:
    assert parse_override("lr=0.1") == (["lr"], 0.1)
    assert parse_override("amp=true") == (["amp"], True)
    assert parse_override("save_name=007") == (["save_name"], 7)
    assert parse_override("checkpoint.interval=5") == (["checkpoint", "interval"], 5)
    merged = apply_overrides({"checkpoint": {"keep": 1}}, ["checkpoint.interval=5", "lr=1"])
    assert merged == {"checkpoint": {"keep": 1, "interval": 5}, "lr": 1}
    assert resolve(apply_overrides({}, ["save_name=007"])).config.save_name == "7"


@pytest.mark.parametrize("text", ["lr", "=3", "a..b=1"])
def test_malformed_overrides_are_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        apply_overrides({}, [text])


def test_override_into_a_value_is_an_error() -> None:
    with pytest.raises(ConfigError, match="'lr' is a value, not a section"):
        apply_overrides({"lr": 1}, ["lr.x=2"])


def test_config_files_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        read_config_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 0.1\n  batch_size: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML at line 2"):
        read_config_file(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        read_config_file(listing)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_config_file(empty) == {}


def test_yaml_booleans_given_to_a_string_option_take_its_spelling() -> None:
    option = Option("progress", str, "auto", "bar", choices=("auto", "on", "off"))
    assert option.coerce(True) == "on" and option.coerce(False) == "off"
    assert Option("name", str, "x", "a name").coerce(True) == "true"


def test_numbers_as_people_write_them_in_files_and_overrides(tmp_path: Path) -> None:
    """PyYAML (YAML 1.1) reads 1e-4 and 5E-05 as strings; they are numbers, in files and in --set."""
    path = tmp_path / "run.yaml"
    path.write_text("lr: 5e-05\nweight_decay: 1E-4\nnum_train_iter: 1e3\nnum_eval_iter: 1_000\nema_m: .999\n")
    raw = read_config_file(path)
    assert raw["lr"] == "5e-05" and raw["num_train_iter"] == "1e3"  # what YAML 1.1 gives
    config = resolve(raw).config
    assert config.lr == 5e-05 and config.weight_decay == 1e-4 and config.ema_m == 0.999
    assert config.num_train_iter == 1000 and isinstance(config.num_train_iter, int)
    assert config.num_eval_iter == 1000
    overridden = resolve(apply_overrides(raw, ["lr=1e-4", "num_train_iter=2e3", "p_cutoff=9.5e-1",
                                               "checkpoint.interval=5E2"])).config
    assert overridden.lr == 1e-4 and overridden.num_train_iter == 2000 and overridden.p_cutoff == 0.95
    assert overridden.checkpoint.interval == 500


@pytest.mark.parametrize(("text", "message"), [
    ("lr=abc", "configuration key 'lr' expects a number > 0, got 'abc' (str)"),
    ("num_train_iter=2.5e0", "configuration key 'num_train_iter' expects an integer >= 1, got '2.5e0' (str)"),
    ("num_train_iter=2.5", "configuration key 'num_train_iter' expects an integer >= 1, got 2.5 (float)"),
    ("num_train_iter=1e-3", "configuration key 'num_train_iter' expects an integer >= 1, got '1e-3' (str)"),
    ("lr=nan", "configuration key 'lr' expects a number > 0, got 'nan' (str)"),
    ("lr=.inf", "configuration key 'lr' expects a number > 0, got inf (float)"),
])
def test_what_is_not_a_number_of_the_right_kind_is_still_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        resolve(apply_overrides({}, [text]))
    assert str(error.value) == message


def test_a_file_with_merge_conflict_markers_says_so(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("lr: 0.03\n<<<<<<< HEAD\nnet: wrn_28_8\n=======\nnet: wrn_28_2\n>>>>>>> other\n")
    with pytest.raises(ConfigError, match=r"run.yaml holds unresolved merge-conflict markers \(from line 2\)"):
        read_config_file(path)


def test_every_environment_variable_of_the_core_is_in_the_configuration_page() -> None:
    """The *_ENV constants of the core (SEMILEARN_...) are the rows of its environment table."""
    root = Path(__file__).resolve().parents[1]
    core = root / "core" / "semilearn"
    names = {match for path in core.rglob("*.py")
             for match in re.findall(r'^[A-Z_]+_ENV = "(SEMILEARN_\w+)"', path.read_text(encoding="utf-8"), re.M)}
    assert "SEMILEARN_DEBUG_HOOKS" in names and len(names) >= 6
    table = (root / "docs" / "configuration.md").read_text(encoding="utf-8").split("## Environment variables")[1]
    assert {name for name in names if f"| `{name}" not in table} == set()
