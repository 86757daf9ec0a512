"""Write the text and audio parity fixture with USB's own networks and FixMatch (run beside USB 0.3.2).

    python tests/parity/usb_generate_text_audio.py --out tests/parity/fixtures/text_audio \\
        [--usb-repo /path/to/Semi-supervised-learning/.git]

USB's text and audio networks load pretrained weights with ``from_pretrained(name)``, which
also reads a local folder: this script writes tiny random transformers models there with
``save_pretrained`` and builds USB's own classes from those folders (the real
``transformers`` is needed beside USB 0.3.2; the stand-ins of ``usb_generate.py`` are not
used for it). USB's classifier layers are ``Linear(768, 768)`` and ``Linear(768, C)``
whatever the encoder (its ``num_features`` is a constant 768), so the tiny encoders are 768
wide, with one layer, two attention heads and a feed-forward width of 32.

Every parameter of each network (encoder and classifier) is then overwritten from a seeded
generator (:func:`fill`, in ``named_parameters`` order), which the test repeats on its own
networks: the weights are the same on both sides without storing them, whatever
transformers' own initialisation does. What USB's classifier is at a given torch seed is
recorded too (its initial layers, sketched), before the fill.

- Networks: USB's ``ClassificationBert``, ``ClassificationHubert`` and
  ``ClassificationWave2Vec`` (and ``ClassificationBertMultihead`` from USB's repository,
  with ``--usb-repo``: not in 0.3.2, read with ``git show`` into a temporary folder outside
  this repository): the parameters (names, shapes, sketches), and the logits and pooled
  features of fixed inputs in evaluation mode and in training mode with torch, NumPy and
  Python seeded (dropout, HuBERT / wav2vec 2.0's layer drop and time masking).
- Training: USB's FixMatch ``train_step`` with ``use_cat: False`` (USB's text and audio
  configurations), its object made with ``object.__new__`` and given what the step reads,
  three steps on the tiny BERT (dict views of ``input_ids`` and ``attention_mask``, each
  view padded on its own) and on the tiny HuBERT (waveforms), each followed by a plain SGD
  step (lr 0.05) that the test repeats by hand; before step *k* torch, NumPy and Python are
  seeded with 1000 + *k*. Recorded: the losses, the mask, the gradients and the weights
  after the step (sketches).
"""

from __future__ import annotations

import argparse
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sketch import PRECISION, fill, sketch_row  # noqa: E402

COMMIT = "1ef4cbebcc0b368158315aeb425053858cf6c845"
WIDTH, CLASSES, VOCAB, HEADS = 768, 3, 40, 3
SEED, DATA_SEED, STEP_SEED = 0, 1234, 1000
FILL_SEEDS = {"bert": 7, "bert_multihead": 7, "hubert": 8, "wav2vec2": 9}  # of each network's weights
STEPS, LR = 3, 0.01
SAMPLES = 800  # waveform length
BERT = dict(vocab_size=VOCAB, hidden_size=WIDTH, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=16)
SPEECH = dict(conv_dim=(32, 32), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8,
              num_conv_pos_embedding_groups=16, hidden_size=WIDTH, num_hidden_layers=1, num_attention_heads=2,
              intermediate_size=32, mask_time_length=2, vocab_size=8)
FIXMATCH = dict(T=0.5, hard_label=True, ulb_loss_ratio=1.0, use_cat=False)
P_CUTOFF = {"bert": 0.365, "hubert": 0.345}  # between the first step's confidences: some samples masked, some not


def table(named: dict[str, torch.Tensor]) -> dict[str, Any]:
    names = list(named)
    return {"names": names, "shapes": [list(named[name].shape) for name in names],
            "stats": torch.stack([sketch_row(named[name]) for name in names])}


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def text_batch(generator: torch.Generator, size: int) -> dict[str, torch.Tensor]:
    """Token ids of ``size`` texts of 3 to 10 words, [CLS] first and [SEP] last, padded to the longest."""
    lengths = torch.randint(3, 11, (size,), generator=generator)
    longest = int(lengths.max()) + 2
    ids = torch.zeros(size, longest, dtype=torch.long)
    mask = torch.zeros(size, longest, dtype=torch.long)
    for row, length in enumerate(lengths.tolist()):
        ids[row, 0], ids[row, length + 1] = 2, 3
        ids[row, 1:length + 1] = torch.randint(5, VOCAB, (length,), generator=generator)
        mask[row, :length + 2] = 1
    return {"input_ids": ids, "attention_mask": mask}


def audio_batch(generator: torch.Generator, size: int) -> torch.Tensor:
    """Waveforms: a tone per row and noise, on the float16 grid."""
    t = torch.arange(SAMPLES, dtype=torch.float32) / 800
    tones = torch.sin(2 * torch.pi * (20 + 40 * torch.rand(size, 1, generator=generator)) * t)
    return (tones + 0.1 * torch.randn(size, SAMPLES, generator=generator)).half().float()


def make_inputs() -> dict[str, Any]:
    generator = torch.Generator().manual_seed(DATA_SEED)
    inputs: dict[str, Any] = {"text": text_batch(generator, 3), "audio": audio_batch(generator, 3)}
    for kind, batch in (("text", text_batch), ("audio", audio_batch)):
        steps = []
        for _ in range(STEPS):
            steps.append({"x_lb": batch(generator, 2), "y_lb": torch.randint(0, CLASSES, (2,), generator=generator),
                          "x_ulb_w": batch(generator, 3), "x_ulb_s": batch(generator, 3)})
        inputs[f"{kind}_steps"] = steps
    return inputs


def write_backbones(folder: Path) -> dict[str, Path]:
    from transformers import BertConfig, BertModel, HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(SEED)
    folders = {"bert": folder / "bert", "hubert": folder / "hubert", "wav2vec2": folder / "wav2vec2"}
    BertModel(BertConfig(**BERT)).save_pretrained(folders["bert"])
    HubertModel(HubertConfig(**SPEECH)).save_pretrained(folders["hubert"])
    Wav2Vec2Model(Wav2Vec2Config(**SPEECH)).save_pretrained(folders["wav2vec2"])
    return folders


def load_multihead(repo: Path, commit: str) -> Any:
    """USB's ``semilearn/nets/bert/bert_multihead.py`` at ``commit``, imported from a temporary folder."""
    text = subprocess.run(["git", "--git-dir", str(repo), "show", f"{commit}:semilearn/nets/bert/bert_multihead.py"],
                          check=True, capture_output=True, text=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="usb-bert-multihead-"))
    (folder / "usb_bert_multihead.py").write_text(text)
    sys.path.insert(0, str(folder))
    import usb_bert_multihead  # type: ignore[import-not-found]

    return usb_bert_multihead


def outputs(model: nn.Module, x: Any) -> dict[str, Any]:
    """Logits and pooled features in evaluation mode and in training mode (everything seeded with SEED)."""
    found: dict[str, Any] = {}
    for mode in ("eval", "train"):
        model.train(mode == "train")
        seed_all(SEED)
        with torch.no_grad():
            out = model(x)
        logits = out["logits"]
        found[f"{mode}_logits"] = torch.stack(logits, dim=1) if isinstance(logits, list) else logits
        found[f"{mode}_feat"] = sketch_row(out["feat"])
    model.train()
    return found


def in_precision(x: Any) -> Any:
    """Floating inputs in ``PRECISION`` (token ids and masks stay integers)."""
    if isinstance(x, dict):
        return {name: in_precision(value) for name, value in x.items()}
    return x.to(PRECISION) if isinstance(x, torch.Tensor) and x.is_floating_point() else x


def network_record(model: nn.Module, x: Any, seed: int) -> dict[str, Any]:
    """Filled in float32, then computed in float64 (tests/parity/README.md, "Tolerances"). The default
    dtype stays float32: the layer drop draws ``torch.rand([])`` in it, and a float64 draw would drop
    the tiny encoders' only layer at some seeds, where USB's networks then find no hidden states."""
    classifier = {name: value.detach().clone() for name, value in model.named_parameters()
                  if name.startswith("classifier.")}
    fill(model, seed)
    parameters = table({name: value.detach() for name, value in model.named_parameters()})
    return {"classifier_at_seed": table(classifier), "parameters": parameters,
            **outputs(model.to(PRECISION), in_precision(x))}


def fixmatch(model: nn.Module, settings: dict[str, Any]) -> Any:
    from usb_generate import set_step_hooks

    from semilearn.algorithms.fixmatch import FixMatch
    from semilearn.core.criterions import CELoss, ConsistencyLoss

    usb = object.__new__(FixMatch)
    usb.args = argparse.Namespace(**settings, num_classes=CLASSES, gpu=None)
    usb.model, usb.num_classes, usb.use_cat, usb.lambda_u = model, CLASSES, settings["use_cat"], \
        settings["ulb_loss_ratio"]
    usb.gpu, usb.distributed, usb.world_size, usb.print_fn = None, False, 1, lambda *a, **k: None
    usb.use_amp, usb.amp_cm = False, __import__("contextlib").nullcontext
    usb.ce_loss, usb.consistency_loss = CELoss(), ConsistencyLoss()
    usb.init(T=settings["T"], p_cutoff=settings["p_cutoff"], hard_label=settings["hard_label"])
    usb.it, usb.epoch = 0, 0
    set_step_hooks(usb)
    return usb


def train(model: nn.Module, steps: list[dict[str, Any]], seed: int, p_cutoff: float,
          perturbation: float = 0.0) -> dict[str, Any]:
    """USB's FixMatch steps, each followed by a plain SGD step, in float64 from the float32 fill (with
    ``perturbation``, the weights and waveforms multiplied by ``1 + perturbation * noise`` first)."""
    fill(model, seed)
    model.to(PRECISION)
    steps = [in_precision(step) for step in steps]
    if perturbation:
        from usb_generate import VIEW_SEED, perturbed

        generator = torch.Generator().manual_seed(VIEW_SEED)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.copy_(perturbed(parameter, perturbation, generator))
        steps = [{name: perturbed(value, perturbation, generator)
                  if isinstance(value, torch.Tensor) and value.is_floating_point() else value
                  for name, value in step.items()} for step in steps]
    return _train(model, steps, p_cutoff)  # the default dtype stays float32 (see network_record)


def decision_margin(build: Any, steps: list[dict[str, Any]], seed: int, p_cutoff: float,
                    record: dict[str, Any]) -> dict[str, Any]:
    """As usb_generate.decision_margin: the largest relative perturbation (both signs) under which every
    step's mask stays as it is; the smallest distance of a confidence from ``p_cutoff`` too."""
    from usb_generate import PERTURBATIONS

    masks = [step["mask"] for step in record["steps"]]
    closest = min(float((step["probs"].max(-1).values - p_cutoff).abs().min()) for step in record["steps"])
    found = {"count": sum(mask.numel() for mask in masks), "closest_confidence": closest, "stable_under": 0.0}
    for size in PERTURBATIONS:
        if all(all(torch.equal(mask, step["mask"]) for mask, step in zip(masks, train(
                build(), steps, seed, p_cutoff, sign * size)["steps"], strict=True)) for sign in (1, -1)):
            return {**found, "stable_under": size}
    return found


def _train(model: nn.Module, steps: list[dict[str, Any]], p_cutoff: float) -> dict[str, Any]:
    model.train()
    settings = {**FIXMATCH, "p_cutoff": p_cutoff}
    usb = fixmatch(model, settings)
    hook = usb.hooks_dict["MaskingHook"]
    masks: list[torch.Tensor] = []
    probs: list[torch.Tensor] = []
    masking = hook.masking

    def recording(algorithm: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        mask = masking(algorithm, *args, **kwargs)
        masks.append(mask.detach().clone())
        probs.append(kwargs["logits_x_ulb"].detach().clone())
        return mask

    hook.masking = recording
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    records: list[dict[str, Any]] = []
    for it, step in enumerate(steps):
        usb.it = it
        seed_all(STEP_SEED + it)
        optimizer.zero_grad()
        out, log = usb.train_step(**step)
        out["loss"].backward()
        grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
        optimizer.step()
        records.append({"loss": out["loss"].detach().clone(), "mask": masks[-1], "probs": probs[-1],
                        **{name: torch.tensor(log[f"train/{name}"], dtype=torch.float64)
                           for name in ("sup_loss", "unsup_loss", "total_loss", "util_ratio")},
                        "grads": table(grads),
                        "weights": table({name: p.detach() for name, p in model.named_parameters()})})
    return {"settings": settings, "lr": LR, "steps": records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "fixtures" / "text_audio")
    parser.add_argument("--usb-repo", type=Path, help="git directory of a clone of microsoft/Semi-supervised-learning"
                        " (for USB's multi-head BERT, not in 0.3.2)")
    parser.add_argument("--commit", default=COMMIT)
    options = parser.parse_args()
    import transformers  # the real one, before usb_generate's stand-ins could take its place
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    from usb_generate import cpu_name, import_usb

    usb_package = import_usb()
    from transformers import BertModel

    assert BertModel.__module__.startswith("transformers.models."), "transformers must be the real package here"
    from semilearn.nets.bert.bert import ClassificationBert
    from semilearn.nets.hubert.hubert import ClassificationHubert
    from semilearn.nets.wave2vecv2.wave2vecv2 import ClassificationWave2Vec

    torch.set_num_threads(2)
    inputs = make_inputs()
    folders = write_backbones(Path(tempfile.mkdtemp(prefix="usb-tiny-")))
    nets: dict[str, Any] = {}
    builders: dict[str, Any] = {
        "bert": lambda: ClassificationBert(str(folders["bert"]), num_classes=CLASSES),
        "hubert": lambda: ClassificationHubert(str(folders["hubert"]), num_classes=CLASSES),
        "wav2vec2": lambda: ClassificationWave2Vec(str(folders["wav2vec2"]), num_classes=CLASSES),
    }
    if options.usb_repo:
        module = load_multihead(options.usb_repo, options.commit)
        builders["bert_multihead"] = lambda: module.ClassificationBertMultihead(str(folders["bert"]), CLASSES, HEADS,
                                                                                False)
    for name, build in builders.items():
        torch.manual_seed(SEED)
        model = build()
        nets[name] = network_record(model, inputs["text" if name.startswith("bert") else "audio"], FILL_SEEDS[name])
    training = {}
    for name, kind in (("bert", "text"), ("hubert", "audio")):
        torch.manual_seed(SEED)
        training[name] = train(builders[name](), inputs[f"{kind}_steps"], FILL_SEEDS[name], P_CUTOFF[name])
        training[name]["decisions"] = decision_margin(builders[name], inputs[f"{kind}_steps"], FILL_SEEDS[name],
                                                      P_CUTOFF[name], training[name])
    provenance = {"semilearn (USB)": "0.3.2", "transformers": transformers.__version__,
                  "torch": str(torch.__version__), "python": platform.python_version(), "machine": platform.machine(),
                  "precision": str(PRECISION), "cpu": cpu_name(), "threads": torch.get_num_threads(),
                  "usb_module": str(Path(usb_package.__file__).parent)}
    if options.usb_repo:
        provenance["bert_multihead"] = f"{options.commit}:semilearn/nets/bert/bert_multihead.py"
    stored = {**inputs, "audio": inputs["audio"].half(),  # on the float16 grid: exact, and half the size
              "audio_steps": [{name: value.half() if value.is_floating_point() else value for name, value in step.items()}
                              for step in inputs["audio_steps"]]}
    options.out.mkdir(parents=True, exist_ok=True)
    torch.save({"bert_config": BERT, "speech_config": SPEECH, "classes": CLASSES, "heads": HEADS, "seed": SEED,
                "fill_seeds": FILL_SEEDS, "step_seed": STEP_SEED, "inputs": stored, "nets": nets, "training": training,
                "provenance": provenance}, options.out / "text_audio.pt")
    for name, record in nets.items():
        print(name, "eval", record["eval_logits"].tolist(), flush=True)
    for name, record in training.items():
        print(name, "loss", [round(float(step["loss"]), 5) for step in record["steps"]],
              "mask", [step["mask"].tolist() for step in record["steps"]],
              "max p", [step["probs"].max(-1).values.tolist() for step in record["steps"]], flush=True)


if __name__ == "__main__":
    main()
