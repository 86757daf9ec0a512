"""USB's usb_cv configuration files (pretrained ViTs fine-tuned with few labels) resolve.

USB's repository has 191 files in config/usb_cv: 19 algorithm folders x 6 data sets x
their label counts. The tables below hold their keys and values as facts (no file of
USB's is copied): the keys every file has, each data set's network, image geometry,
weights, layer decay and learning rate, and each algorithm folder's own keys. Every
algorithm is resolved on every data set with ``semilearn config show``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import installed

RELEASES = "https://github.com/microsoft/Semi-supervised-learning/releases/download/v.0.0.0/"

# The keys every usb_cv file has, with their values in the FixMatch files.
USB_CV_COMMON = {
    "save_dir": "./saved_models/usb_cv/", "resume": True, "overwrite": True, "use_tensorboard": True,
    "epoch": 200, "num_train_iter": 204800, "num_eval_iter": 2048, "batch_size": 8, "eval_batch_size": 16,
    "num_warmup_iter": 5120, "uratio": 1, "ema_m": 0.0, "optim": "AdamW", "momentum": 0.9, "weight_decay": 0.0005,
    "amp": False, "clip": 0.0, "net_from_name": False, "data_dir": "./data", "train_sampler": "RandomSampler",
    "num_workers": 4, "seed": 0, "world_size": 1, "rank": 0, "multiprocessing_distributed": True,
    "dist_url": "tcp://127.0.0.1:10007", "dist_backend": "nccl", "gpu": "None", "use_pretrain": True,
}

# data set -> its values (USB writes the learning rate 5e-05 in a form YAML reads as text)
USB_CV_DATASETS = {
    "cifar100": {"num_labels": 200, "num_classes": 100, "net": "vit_small_patch2_32", "img_size": 32,
                 "crop_ratio": 0.875, "layer_decay": 0.5, "lr": 0.0005,
                 "pretrain_path": RELEASES + "vit_small_patch2_32_mlp_im_1k_32.pth"},
    "eurosat": {"num_labels": 40, "num_classes": 10, "net": "vit_small_patch2_32", "img_size": 32,
                "crop_ratio": 0.875, "layer_decay": 1.0, "lr": "5e-05",
                "pretrain_path": RELEASES + "vit_small_patch2_32_mlp_im_1k_32.pth"},
    "semi_aves": {"num_labels": 3959, "num_classes": 200, "net": "vit_small_patch16_224", "img_size": 224,
                  "crop_ratio": 0.875, "layer_decay": 0.65, "lr": 0.001,
                  "pretrain_path": RELEASES + "vit_small_patch16_224_mlp_im_1k_224.pth"},
    "semi_inat": {"num_labels": 9721, "num_classes": 810, "net": "vit_small_patch16_224", "img_size": 224,
                  "crop_ratio": 0.875, "layer_decay": 0.65, "lr": 0.001, "data_dir": "/home/data",
                  "pretrain_path": RELEASES + "vit_small_patch16_224_mlp_im_1k_224.pth"},
    "stl10": {"num_labels": 40, "num_classes": 10, "net": "vit_base_patch16_96", "img_size": 96,
              "crop_ratio": 0.875, "layer_decay": 0.65, "lr": 0.0001,
              "pretrain_path": RELEASES + "mae_pretrain_vit_base.pth"},
    "tissuemnist": {"num_labels": 80, "num_classes": 8, "net": "vit_tiny_patch2_32", "img_size": 32,
                    "crop_ratio": 0.95, "layer_decay": 0.95, "lr": "5e-05",
                    "pretrain_path": RELEASES + "vit_tiny_patch2_32_mlp_im_1k_32.pth"},
}

# algorithm folder -> the keys its files add (ReFixMatch's and SequenceMatch's files have no
# use_wandb, num_log_iter, layer_decay or use_cat)
_FIXMATCH_LIKE = {"hard_label": True, "T": 0.5, "p_cutoff": 0.95, "ulb_loss_ratio": 1.0}
_USUAL = {"use_wandb": False, "num_log_iter": 256, "use_cat": True}
USB_CV_ALGORITHMS: dict[str, dict] = {
    "adamatch": {**_USUAL, **_FIXMATCH_LIKE, "ema_p": 0.999},
    "comatch": {**_USUAL, "hard_label": False, "p_cutoff": 0.95, "contrast_p_cutoff": 0.8, "contrast_loss_ratio": 1.0,
                "ulb_loss_ratio": 1.0, "proj_size": 64, "queue_batch": 32, "smoothing_alpha": 0.9, "T": 0.2,
                "da_len": 32, "use_epass": True},
    "crmatch": {**_USUAL, "hard_label": True, "p_cutoff": 0.95, "ulb_loss_ratio": 1.0},
    "dash": {**_USUAL, "gamma": 1.27, "C": 1.0001, "rho_min": 0.05, "num_wu_iter": 2048, "T": 0.5, "p_cutoff": 0.95,
             "ulb_loss_ratio": 1.0},
    "defixmatch": {**_USUAL, **_FIXMATCH_LIKE, "ulb_loss_ratio": 0.5},
    "fixmatch": {**_USUAL, **_FIXMATCH_LIKE},
    "flexmatch": {**_USUAL, **_FIXMATCH_LIKE, "thresh_warmup": True},
    "freematch": {**_USUAL, "hard_label": True, "T": 0.5, "ema_p": 0.999, "ent_loss_ratio": 0.001},
    "fullysupervised": dict(_USUAL),
    "meanteacher": {**_USUAL, "ulb_loss_ratio": 50, "unsup_warm_up": 0.4},
    "mixmatch": {**_USUAL, "mixup_alpha": 0.5, "T": 0.5, "ulb_loss_ratio": 10, "unsup_warm_up": 0.4},
    "pimodel": {**_USUAL, "ulb_loss_ratio": 10, "unsup_warm_up": 0.4},
    "pseudolabel": {**_USUAL, "p_cutoff": 0.95, "ulb_loss_ratio": 1.0, "unsup_warm_up": 0.4},
    "refixmatch": dict(_FIXMATCH_LIKE),
    "remixmatch": {**_USUAL, "mixup_alpha": 0.75, "T": 0.5, "kl_loss_ratio": 0.5, "ulb_loss_ratio": 1.5,
                   "rot_loss_ratio": 0.5, "unsup_warm_up": 0.015625},
    "sequencematch": {**_FIXMATCH_LIKE, "thresh_warmup": True},
    "simmatch": {**_USUAL, "p_cutoff": 0.95, "in_loss_ratio": 1.0, "ulb_loss_ratio": 1.0, "proj_size": 128, "K": 256,
                 "da_len": 32, "smoothing_alpha": 0.9, "T": 0.1, "use_epass": True},
    "softmatch": {**_USUAL, "hard_label": True, "T": 0.5, "dist_align": True, "dist_uniform": True, "per_class": False,
                  "ema_p": 0.999, "ulb_loss_ratio": 1.0, "n_sigma": 2},
    "supervised": dict(_USUAL),
    "uda": {**_USUAL, "tsa_schedule": "none", "T": 0.4, "p_cutoff": 0.8, "ulb_loss_ratio": 1.0},
    "vat": dict(_USUAL),
}
# keys of an algorithm folder that the algorithm itself has no use for (USB ignores them too)
_IGNORED = {"dash": {"p_cutoff"}, "comatch": {"p_cutoff"}, "simmatch": {"p_cutoff"}}


def usb_cv_file(algorithm: str, dataset: str) -> dict:
    """The usb_cv file of ``algorithm`` on ``dataset`` (its first label count, seed 0)."""
    values = dict(USB_CV_DATASETS[dataset])
    labels = values["num_labels"]
    raw = {"algorithm": algorithm, **USB_CV_COMMON, "save_name": f"{algorithm}_{dataset}_{labels}_0",
           "load_path": f"./saved_models/usb_cv//{algorithm}_{dataset}_{labels}_0/latest_model.pth",
           "dataset": dataset, **values, **USB_CV_ALGORITHMS[algorithm]}
    if algorithm in ("refixmatch", "sequencematch"):
        raw.pop("layer_decay")
    return raw


@pytest.mark.parametrize("dataset", sorted(USB_CV_DATASETS))
@pytest.mark.parametrize("algorithm", sorted(USB_CV_ALGORITHMS))
def test_every_usb_cv_algorithm_resolves_on_every_usb_cv_data_set(cli, tmp_path: Path, algorithm: str,
                                                                   dataset: str) -> None:
    raw = usb_cv_file(algorithm, dataset)
    (tmp_path / "usb.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    quiet = ("-p", "no:recorder", "-p", "no:recorder_late") if installed("semilearn-test-recorder") else ()
    result = cli("config", "show", "usb.yaml", *quiet)
    assert result.code == 0, result.err
    resolved = yaml.safe_load(result.out[result.out.index("algorithm:"):])
    assert resolved["net"] == raw["net"] and resolved["dataset"] == dataset
    assert resolved["use_pretrain"] is True and resolved["pretrain_path"] == raw["pretrain_path"]
    assert resolved["img_size"] == raw["img_size"] and resolved["crop_ratio"] == raw["crop_ratio"]
    assert resolved["layer_decay"] == raw.get("layer_decay", 1.0)
    assert resolved["lr"] == float(raw["lr"]) and resolved["optim"] == "AdamW"
    for key, value in USB_CV_ALGORITHMS[algorithm].items():
        if key in resolved and key not in _IGNORED.get(algorithm, ()) and key not in ("use_wandb", "use_cat", "K"):
            assert resolved[key] == value, key
