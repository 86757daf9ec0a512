"""USB's usb_nlp (229 files) and usb_audio (171 files) configuration files resolve, with
semilearn-nlp and semilearn-audio installed.

As tests/test_usb_cv_config.py, the tables hold USB's keys and values as facts (no file of
USB's is copied): the keys every file of a family has, each data set's network, learning
rate, layer decay and lengths, and each algorithm folder's own keys. Every algorithm is
resolved on every data set of its family with ``semilearn config show``, and the resolved
values are USB's, the plugin keys in the plugins' sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import installed

pytestmark = [
    pytest.mark.together,
    pytest.mark.skipif(not (installed("semilearn-nlp") and installed("semilearn-audio")),
                       reason="semilearn-nlp and semilearn-audio are not installed"),
]

_RUN = {"amp": False, "batch_size": 8, "clip": 0.0, "data_dir": "./data", "dist_backend": "nccl", "epoch": 100,
        "momentum": 0.9, "multiprocessing_distributed": False, "net_from_name": False, "num_eval_iter": 2048,
        "num_log_iter": 256, "num_train_iter": 102400, "num_warmup_iter": 5120, "num_workers": 4, "optim": "AdamW",
        "overwrite": True, "rank": 0, "resume": True, "seed": 0, "train_sampler": "RandomSampler", "uratio": 1,
        "use_cat": False, "use_tensorboard": True, "use_wandb": False, "world_size": 1, "gpu": "None"}
# The keys every file of the family has (USB writes some learning rates in a form YAML reads as text)
USB_NLP_COMMON = {**_RUN, "eval_batch_size": 8, "max_length": 512, "weight_decay": 0.0005,
                  "save_dir": "./saved_models/usb_nlp", "net": "bert_base_uncased"}
USB_AUDIO_COMMON = {**_RUN, "eval_batch_size": 16, "sample_rate": 16000, "weight_decay": "2e-05",
                    "save_dir": "./saved_models/usb_audio"}

# data set -> (its values, its first label count)
USB_NLP_DATASETS: dict[str, tuple[dict[str, Any], int]] = {
    "aclImdb": ({"num_classes": 2, "layer_decay": 0.75, "lr": "5e-05"}, 20),
    "ag_news": ({"num_classes": 4, "layer_decay": 0.65, "lr": "5e-05"}, 40),
    "amazon_review": ({"num_classes": 5, "layer_decay": 0.75, "lr": "1e-05"}, 250),
    "dbpedia": ({"num_classes": 14, "layer_decay": 0.75, "lr": "1e-05"}, 70),
    "yahoo_answers": ({"num_classes": 10, "layer_decay": 0.65, "lr": 0.0001}, 500),
    "yelp_review": ({"num_classes": 5, "layer_decay": 0.75, "lr": "5e-05"}, 250),
}
USB_AUDIO_DATASETS: dict[str, tuple[dict[str, Any], int]] = {
    "esc50": ({"num_classes": 50, "layer_decay": 0.85, "lr": 0.0001, "max_length_seconds": 5.0,
               "net": "hubert_base"}, 250),
    "fsdnoisy": ({"num_classes": 20, "layer_decay": 0.75, "lr": 0.0005, "max_length_seconds": 5.0,
                  "net": "hubert_base"}, 1773),
    "gtzan": ({"num_classes": 10, "layer_decay": 1.0, "lr": "2e-05", "max_length_seconds": 3.0,
               "net": "wave2vecv2_base"}, 100),
    "superbks": ({"num_classes": 10, "layer_decay": 0.75, "lr": "5e-05", "max_length_seconds": 1.0,
                  "net": "wave2vecv2_base"}, 50),
    "urbansound8k": ({"num_classes": 10, "layer_decay": 0.75, "lr": "5e-05", "max_length_seconds": 4.0,
                      "net": "hubert_base"}, 100),
}

# algorithm folder -> the keys its files add, in both families unless noted
_FIXMATCH_LIKE = {"T": 0.5, "hard_label": True, "p_cutoff": 0.95, "ulb_loss_ratio": 1.0, "ema_m": 0.0}
USB_ALGORITHMS: dict[str, dict[str, Any]] = {
    "adamatch": {**_FIXMATCH_LIKE, "ema_p": 0.999},
    "comatch": {"T": 0.2, "contrast_loss_ratio": 1.0, "contrast_p_cutoff": 0.8, "da_len": 32, "ema_m": 0.0,
                "hard_label": False, "p_cutoff": 0.95, "proj_size": 64, "queue_batch": 128, "smoothing_alpha": 0.9,
                "ulb_loss_ratio": 1.0},
    "crmatch": {"ema_m": 0.0, "hard_label": True, "p_cutoff": 0.95, "rot_loss_ratio": 0.0, "ulb_loss_ratio": 1.0},
    "dash": {"C": 1.0001, "T": 0.5, "ema_m": 0.0, "gamma": 1.27, "num_wu_iter": 2048, "p_cutoff": 0.95,
             "rho_min": 0.05, "ulb_loss_ratio": 1.0},
    "defixmatch": {**_FIXMATCH_LIKE, "ulb_loss_ratio": 0.5},
    "fixmatch": dict(_FIXMATCH_LIKE),
    "flexmatch": {**_FIXMATCH_LIKE, "thresh_warmup": True},
    "freematch": {"T": 0.5, "ema_m": 0.0, "ema_p": 0.999, "ent_loss_ratio": 0.001, "hard_label": True},
    "fullysupervised": {"ema_m": 0.0},
    "meanteacher": {"ema_m": 0.0, "ulb_loss_ratio": 50, "unsup_warm_up": 0.4},  # audio: ema_m 0.999
    "mixmatch": {"T": 0.5, "ema_m": 0.0, "mixup_alpha": 0.5, "mixup_manifold": True, "ulb_loss_ratio": 100,
                 "unsup_warm_up": 0.4},  # audio: ulb_loss_ratio 10
    "pimodel": {"ema_m": 0.999, "ulb_loss_ratio": 10, "unsup_warm_up": 0.4},  # audio: ema_m 0
    "pseudolabel": {"ema_m": 0.0, "p_cutoff": 0.95, "ulb_loss_ratio": 1.0, "unsup_warm_up": 0.4},
    "remixmatch": {"T": 0.5, "ema_m": 0.0, "kl_loss_ratio": 0.5, "mixup_alpha": 0.75, "mixup_manifold": True,
                   "rot_loss_ratio": 0.0, "ulb_loss_ratio": 1.5, "unsup_warm_up": 0.015625},
    "simmatch": {"K": 256, "T": 0.1, "da_len": 32, "ema_m": 0.0, "in_loss_ratio": 1.0, "p_cutoff": 0.95,
                 "proj_size": 128, "smoothing_alpha": 0.9, "ulb_loss_ratio": 1.0},  # audio: T 0.2, ema_m 0.999
    "softmatch": {"T": 0.5, "dist_align": True, "dist_uniform": True, "ema_m": 0.0, "ema_p": 0.999,
                  "hard_label": True, "n_sigma": 2, "per_class": False, "ulb_loss_ratio": 1.0},
    "supervised": {"ema_m": 0.0},
    "uda": {"T": 0.4, "ema_m": 0.0, "p_cutoff": 0.8, "tsa_schedule": "exp", "ulb_loss_ratio": 1.0},  # audio: none
    "vat": {"ema_m": 0.0, "vat_embed": True},  # audio: no vat_embed
}
AUDIO_CHANGES: dict[str, dict[str, Any]] = {
    "meanteacher": {"ema_m": 0.999}, "mixmatch": {"ulb_loss_ratio": 10}, "pimodel": {"ema_m": 0.0},
    "simmatch": {"T": 0.2, "ema_m": 0.999}, "uda": {"tsa_schedule": "none"}, "vat": {"vat_embed": None},
}
# USB's one MultiMatch file (ag_news, 200 labels) beside the usb_nlp keys
USB_MULTIMATCH = {"net": "bert_base_uncased_multihead", "lr": 5e-05, "layer_decay": 0.65, "num_classes": 4,
                  "gpu": 0, "save_dir": "./saved_models/usb_nlp/multimatch", "ema_m": 0.0, "hard_label": True,
                  "T": 0.5, "p_cutoff": 0.95, "ulb_loss_ratio": 3.0, "num_heads": 3, "apm_percentile": 0.05,
                  "no_low": True, "apm_disagreement_weight": 3, "threshold_algo": "freematch", "smoothness": 0.997}
# keys an algorithm folder carries that the algorithm has no use for (USB ignores them too)
_IGNORED = {"dash": {"p_cutoff"}, "comatch": {"p_cutoff"}, "simmatch": {"p_cutoff"}}


def usb_file(family: str, algorithm: str, dataset: str) -> dict[str, Any]:
    """The file of ``algorithm`` on ``dataset`` in ``family`` (its first label count, seed 0)."""
    common, datasets = ((USB_NLP_COMMON, USB_NLP_DATASETS) if family == "usb_nlp"
                        else (USB_AUDIO_COMMON, USB_AUDIO_DATASETS))
    values, labels = datasets[dataset]
    keys = {**USB_ALGORITHMS[algorithm], **(AUDIO_CHANGES.get(algorithm, {}) if family == "usb_audio" else {})}
    name = f"{algorithm}_{dataset}_{labels}_0"
    raw = {"algorithm": algorithm, **common, "save_name": name,
           "load_path": f"{common['save_dir']}/{name}/latest_model.pth", "dataset": dataset, "num_labels": labels,
           **values, **{key: value for key, value in keys.items() if value is not None}}
    return raw


def resolve(cli, tmp_path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    (tmp_path / "usb.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    quiet = ("-p", "no:recorder", "-p", "no:recorder_late") if installed("semilearn-test-recorder") else ()
    result = cli("config", "show", "usb.yaml", *quiet)
    assert result.code == 0, result.err
    resolved: dict[str, Any] = yaml.safe_load(result.out[result.out.index("algorithm:"):])
    return resolved


def check(resolved: dict[str, Any], raw: dict[str, Any], algorithm: str) -> None:
    assert resolved["algorithm"] == algorithm and resolved["dataset"] == raw["dataset"]
    assert resolved["net"] == raw["net"] and resolved["num_classes"] == raw["num_classes"]
    assert resolved["lr"] == float(raw["lr"]) and resolved["optim"] == "AdamW"
    assert resolved["layer_decay"] == raw["layer_decay"] and resolved["use_cat"] is False
    assert resolved["weight_decay"] == float(raw["weight_decay"]) and resolved["ema_m"] == raw["ema_m"]
    for key, value in raw.items():
        if key in resolved and key not in _IGNORED.get(algorithm, ()) and key not in ("use_wandb", "K", "gpu"):
            expected = float(value) if key in ("lr", "weight_decay") else value
            assert resolved[key] == expected, key


@pytest.mark.parametrize("dataset", sorted(USB_NLP_DATASETS))
@pytest.mark.parametrize("algorithm", sorted(USB_ALGORITHMS))
def test_every_usb_nlp_algorithm_resolves_on_every_text_data_set(cli, tmp_path: Path, algorithm: str,
                                                                 dataset: str) -> None:
    raw = usb_file("usb_nlp", algorithm, dataset)
    resolved = resolve(cli, tmp_path, raw)
    check(resolved, raw, algorithm)
    assert resolved["nlp"]["max_length"] == 512


@pytest.mark.parametrize("dataset", sorted(USB_AUDIO_DATASETS))
@pytest.mark.parametrize("algorithm", sorted(USB_ALGORITHMS))
def test_every_usb_audio_algorithm_resolves_on_every_audio_data_set(cli, tmp_path: Path, algorithm: str,
                                                                    dataset: str) -> None:
    raw = usb_file("usb_audio", algorithm, dataset)
    resolved = resolve(cli, tmp_path, raw)
    check(resolved, raw, algorithm)
    assert resolved["audio"]["sample_rate"] == 16000
    assert resolved["audio"]["max_length_seconds"] == raw["max_length_seconds"]


def test_usbs_multimatch_file_resolves(cli, tmp_path: Path) -> None:
    raw = {**usb_file("usb_nlp", "fixmatch", "ag_news"), **USB_MULTIMATCH, "algorithm": "multimatch",
           "save_name": "multimatch_ag_news_200_0", "num_labels": 200,
           "load_path": "./saved_models/usb_nlp/multimatch/multimatch_ag_news_200_0/latest_model.pth"}
    resolved = resolve(cli, tmp_path, raw)
    check(resolved, raw, "multimatch")
    assert resolved["net"] == "bert_base_uncased_multihead" and resolved["num_recalibrate_iter"] == 0
