"""Configuration files written for USB run as they are."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import installed
from datafiles import write_cifar10
from semilearn.errors import ConfigError
from semilearn.usb import translate

# Every key of USB's classic-CV FixMatch file for CIFAR-10 (config/classic_cv/fixmatch/
# fixmatch_cifar10_40_0.yaml) and the remaining classic-CV arguments of USB's train.py,
# with USB's values; only the sizes are made small enough for a test.
USB_CLASSIC_CV = {
    "algorithm": "fixmatch", "save_dir": "./saved_models/classic_cv", "save_name": "fixmatch_cifar10_40_0",
    "resume": True, "load_path": "./saved_models/classic_cv/fixmatch_cifar10_40_0/latest_model.pth",
    "overwrite": True, "use_tensorboard": True, "use_wandb": False, "use_aim": False,
    "epoch": 1, "num_train_iter": 2, "num_warmup_iter": 0, "num_eval_iter": 2, "num_log_iter": 1,
    "num_labels": 40, "batch_size": 4, "eval_batch_size": 256, "hard_label": True, "T": 0.5, "p_cutoff": 0.95,
    "ulb_loss_ratio": 1.0, "uratio": 1, "ema_m": 0.999, "crop_ratio": 0.875, "img_size": 32,
    "optim": "SGD", "lr": 0.03, "momentum": 0.9, "weight_decay": 0.0005, "layer_decay": 1.0,
    "amp": False, "clip": 0.0, "use_cat": True, "net": "wrn_28_2", "net_from_name": False, "use_pretrain": False,
    "pretrain_path": "", "data_dir": "./data", "dataset": "cifar10", "train_sampler": "RandomSampler",
    "num_classes": 10, "num_workers": 1, "include_lb_to_ulb": True, "seed": 0, "world_size": 1, "rank": 0,
    "multiprocessing_distributed": True, "dist_url": "tcp://127.0.0.1:10008", "dist_backend": "nccl",
    "gpu": "None",
}


@pytest.mark.together
def test_a_usb_classic_cv_file_runs_with_one_warning(cli, tmp_path: Path) -> None:
    write_cifar10(tmp_path / "data")
    (tmp_path / "usb.yaml").write_text(yaml.safe_dump(USB_CLASSIC_CV, sort_keys=False))
    quiet = ("-p", "no:recorder", "-p", "no:recorder_late") if installed("semilearn-test-recorder") else ()
    result = cli("run", "usb.yaml", *quiet)
    assert result.code == 0, result.err
    warnings = [line for line in (result.out + result.err).splitlines() if line.startswith(("warning", "error"))]
    assert warnings == [
        "warning: ignoring USB keys handled differently here: overwrite (run directories are never overwritten; "
        "a new run gets a new name); use_tensorboard (the tracker plugins (semilearn-wandb, semilearn-aim)); "
        "world_size (torchrun / --nproc-per-node); "
        "rank (torchrun); multiprocessing_distributed (torchrun / --nproc-per-node); dist_url (torchrun's "
        "rendezvous); dist_backend (gloo on CPU, NCCL on GPUs, chosen by the engine); gpu (the device key and "
        "torchrun's LOCAL_RANK)"
    ] + ([] if installed("semilearn-checkpoint") else [
        "warning: resume: no plugin reads checkpoints (pip install semilearn-checkpoint); starting a new run"])
    assert "cifar10: 40 labelled" in result.out and "net: wrn_28_2" in result.out
    assert "completed at step 2/2" in result.out
    written = yaml.safe_load((tmp_path / "saved_models/classic_cv/fixmatch_cifar10_40_0/config.yaml").read_text())
    assert written["clip_grad"] == 0.0 and written["img_size"] == 32 and written["p_cutoff"] == 0.95
    assert "world_size" not in written and written["use_cat"] is True
    assert written["num_workers"] == 1  # the lazy path's workers (this small set is held in memory)


def test_usb_spellings_and_tracker_switches() -> None:
    translation = translate({"use_amp": True, "clip": 1.5, "use_wandb": True, "use_aim": "False", "lr": 0.1})
    assert translation.config == {"amp": True, "clip_grad": 1.5, "lr": 0.1}
    assert translation.enable_plugins == ["wandb"] and translation.disable_plugins == ["aim"]
    assert translation.warnings == [] and translation.resume is None
    with pytest.raises(ConfigError, match="'use_amp' and 'amp' set the same option"):
        translate({"use_amp": True, "amp": False})


def test_use_cat_is_an_option_in_both_values() -> None:
    """USB's text and audio files set use_cat: False (a pass for each view); it carries over as it is."""
    assert translate({"use_cat": False}).config == {"use_cat": False}
    assert translate({"use_cat": True}).config == {"use_cat": True}


# The algorithm keys of USB's usb_nlp and usb_audio files beyond the classic-CV ones (MixUp of
# features, VAT on word embeddings, no rotation), with their values there.
USB_TEXT_AND_AUDIO_KEYS = {
    "mixmatch": {"mixup_manifold": True},
    "remixmatch": {"mixup_manifold": True, "rot_loss_ratio": 0.0},
    "crmatch": {"rot_loss_ratio": 0.0},
    "vat": {"vat_embed": True},
}


@pytest.mark.parametrize("algorithm", sorted(USB_TEXT_AND_AUDIO_KEYS))
def test_usbs_text_and_audio_algorithm_keys_resolve(cli, tmp_path: Path, algorithm: str) -> None:
    raw = {"algorithm": algorithm, **USB_TEXT_AND_AUDIO_KEYS[algorithm]}
    (tmp_path / "usb.yaml").write_text(yaml.safe_dump(raw))
    result = cli("config", "show", "usb.yaml", "-p", "no:recorder", "-p", "no:recorder_late") \
        if installed("semilearn-test-recorder") else cli("config", "show", "usb.yaml")
    assert result.code == 0, result.err
    resolved = yaml.safe_load(result.out[result.out.index("algorithm:"):])
    for key, value in USB_TEXT_AND_AUDIO_KEYS[algorithm].items():
        assert resolved[key] == value, key


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("net_from_name", True, "networks come from the network registry"),
        ("imb_algorithm", "abc", "imbalanced-SSL algorithms are not implemented"),
    ],
)
def test_usb_behaviour_semilearn_does_not_have_is_refused(cli, key: str, value: object, reason: str) -> None:
    result = cli("run", "--set", f"{key}={value}")
    assert result.code == 2
    assert result.err.strip().startswith(f"error: configuration key '{key}' can only be")
    assert reason in result.err


@pytest.mark.together
def test_resume_true_without_a_checkpoint_starts_fresh_and_with_one_continues(cli, tmp_path: Path) -> None:
    if not installed("semilearn-checkpoint"):
        pytest.skip("needs semilearn-checkpoint")
    common = ("--set", "num_train_iter=10", "--set", "batch_size=8", "--set", "uratio=1", "--set", "save_dir=runs")
    fresh = cli("run", *common, "--set", "resume=true", "--set", "stop_step=4")
    assert fresh.code == 0 and "starting a new run" in fresh.out
    last = tmp_path / "runs/flexmatch_digits_40_0/checkpoints/last.pt"
    resumed = cli("run", *common, "--set", "resume=true", "--set", f"load_path={last}")
    assert resumed.code == 0, resumed.err
    assert f"resuming from {last} (step 4)" in resumed.out and "completed at step 10/10" in resumed.out


def test_use_wandb_without_the_plugin_says_so(cli) -> None:
    if installed("semilearn-wandb"):
        pytest.skip("semilearn-wandb is installed")
    result = cli("config", "show", "--set", "use_wandb=true")
    assert result.code == 0
    assert "warning: use_wandb: the wandb plugin is not installed (pip install semilearn-wandb)" in result.out


# The keys of each folder of USB's config/classic_cv (its repository since 0.3.2, 254 files)
# beyond the FixMatch file's, with their CIFAR-10 values.
USB_CLASSIC_CV_ALGORITHMS = {
    "adamatch": {"ema_p": 0.999}, "crmatch": {}, "fixmatch": {}, "vat": {}, "uda": {"T": 0.4, "p_cutoff": 0.8,
                                                                                     "tsa_schedule": "none"},
    "comatch": {"hard_label": False, "T": 0.2, "contrast_p_cutoff": 0.8, "contrast_loss_ratio": 1.0,
                "proj_size": 64, "queue_batch": 5, "smoothing_alpha": 0.9, "da_len": 32, "use_epass": True},
    "dash": {"gamma": 1.27, "C": 1.0001, "rho_min": 0.05, "num_wu_iter": 2048},
    "defixmatch": {"ulb_loss_ratio": 0.5},
    "flexmatch": {"thresh_warmup": True, "use_refix": False},
    "freematch": {"ent_loss_ratio": 0.001, "use_quantile": False, "clip_thresh": False, "ema_p": 0.999},
    "fullysupervised": {}, "supervised": {},
    "meanteacher": {"unsup_warm_up": 0.4, "ulb_loss_ratio": 50, "uratio": 1},
    "mixmatch": {"mixup_alpha": 0.5, "unsup_warm_up": 0.4, "ulb_loss_ratio": 100, "uratio": 1},
    "pimodel": {"unsup_warm_up": 0.4, "ulb_loss_ratio": 10, "uratio": 1},
    "pseudolabel": {"unsup_warm_up": 0.4, "uratio": 1},
    "refixmatch": {},
    "remixmatch": {"kl_loss_ratio": 0.5, "rot_loss_ratio": 0.5, "unsup_warm_up": 0.015625, "mixup_alpha": 0.75,
                   "ulb_loss_ratio": 1.5, "uratio": 1},
    "sequencematch": {"thresh_warmup": True},
    "simmatch": {"T": 0.1, "proj_size": 128, "K": 40, "in_loss_ratio": 1.0, "smoothing_alpha": 0.9, "da_len": 32,
                 "use_epass": True},
    "softmatch": {"dist_align": True, "dist_uniform": True, "per_class": False, "n_sigma": 2, "ema_p": 0.999},
}
# Keys the FixMatch file has that other folders leave out (USB ignores them where the algorithm has none)
_FIXMATCH_ONLY = {"hard_label", "T", "p_cutoff"}


@pytest.mark.parametrize("algorithm", sorted(USB_CLASSIC_CV_ALGORITHMS))
def test_each_classic_cv_algorithm_of_usb_resolves_with_its_keys(cli, tmp_path: Path, algorithm: str) -> None:
    left_out = _FIXMATCH_ONLY | ({"ulb_loss_ratio", "uratio"} if "supervised" in algorithm else set())
    raw = {key: value for key, value in USB_CLASSIC_CV.items() if key not in left_out}
    raw.update({"algorithm": algorithm, "save_name": f"{algorithm}_cifar10_40_0"}, **USB_CLASSIC_CV_ALGORITHMS[algorithm])
    if algorithm == "dash":
        raw["p_cutoff"] = 0.95  # USB's Dash files carry it; Dash has no such key (in USB neither)
    (tmp_path / "usb.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    result = cli("config", "show", "usb.yaml", "-p", "no:recorder", "-p", "no:recorder_late") \
        if installed("semilearn-test-recorder") else cli("config", "show", "usb.yaml")
    assert result.code == 0, result.err
    warnings = [line for line in result.out.splitlines() if line.startswith("warning")]
    assert warnings[0].startswith("warning: ignoring USB keys handled differently here: overwrite")
    if algorithm == "dash":
        # (without the checkpoint plugin a 'resume: ...' warning comes between the two)
        assert [line for line in warnings if "does not have" in line] == [
            "warning: ignoring keys algorithm 'dash' does not have (other algorithms': "
            "p_cutoff (adamatch, comatch, crmatch ...))"]
    assert len(warnings) == (2 if algorithm == "dash" else 1) + (0 if installed("semilearn-checkpoint") else 1)
    resolved = yaml.safe_load(result.out[result.out.index("algorithm:"):])
    assert resolved["algorithm"] == algorithm
    for key, value in USB_CLASSIC_CV_ALGORITHMS[algorithm].items():
        if key != "K":
            assert resolved[key] == value, key


def test_usbs_top_level_text_and_audio_keys_go_to_the_plugin_sections() -> None:
    translation = translate({"max_length": 512, "max_length_seconds": 5, "sample_rate": 16000, "lr": 5e-5,
                             "audio": {"storage": "float16"}})
    assert translation.config == {"lr": 5e-5, "nlp": {"max_length": 512},
                                  "audio": {"storage": "float16", "max_length_seconds": 5, "sample_rate": 16000}}
    with pytest.raises(ConfigError, match=r"configuration keys 'max_length' and 'nlp.max_length' set the same option"):
        translate({"max_length": 512, "nlp": {"max_length": 128}})
