"""Parity of the text and audio networks, and of a FixMatch step on them, with USB's own code.

``tests/parity/usb_generate_text_audio.py`` built USB's ``ClassificationBert``,
``ClassificationBertMultihead``, ``ClassificationHubert`` and ``ClassificationWave2Vec``
from tiny random transformers models (768 wide, one layer: USB's classifier is 768 wide
whatever the encoder), overwrote every parameter from a seeded generator, and recorded
their outputs and three FixMatch steps (``use_cat: False``, SGD) in
``fixtures/text_audio/text_audio.pt`` (see ``tests/parity/README.md``). Here this
project's ``TextClassifier``, ``MultiHeadTextClassifier`` and ``AudioClassifier`` are built
through the plugins' ``load_backbone`` from folders the test writes with
``save_pretrained``, get the same parameters from the same generator (:func:`fill`), and
are compared: parameter names and shapes, the classifier USB builds at a given torch seed,
the logits and features in evaluation mode and in training mode (dropout, layer drop and
time masking drawn from the same seeds), and this engine's FixMatch step by step (losses,
mask, gradients, weights). Both sides compute in float64 from the float32 fill, compared by
the parity rule of tests/parity/compare.py (a gradient against its layer's scale: the key
bias's gradient is zero in exact arithmetic, softmax ignoring a shift shared by every key).

Needs semilearn-nlp, semilearn-audio and transformers (the nox session ``all``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import torch
from parity.compare import DECISION_MARGIN, Comparison
from parity.sketch import PRECISION, fill, sketch_row
from test_usb_parity import _our_settings, _seed_like_usb, _stand_in_data
from torch import nn

from semilearn.plugins import PluginManager
from semilearn.runner import load_config

try:
    import semilearn_audio  # noqa: F401
    import semilearn_nlp  # noqa: F401
    import transformers  # noqa: F401
except ImportError:
    IMPORTABLE = False
else:
    IMPORTABLE = True

pytestmark = [pytest.mark.together,
              pytest.mark.skipif(not IMPORTABLE, reason="semilearn-nlp, semilearn-audio or transformers missing")]

FIXTURE = Path(__file__).resolve().parent / "parity" / "fixtures" / "text_audio" / "text_audio.pt"
NETS = ("bert", "bert_multihead", "hubert", "wav2vec2")
OUR_NET = {"bert": "bert_base_uncased", "bert_multihead": "bert_base_uncased", "hubert": "hubert_base",
           "wav2vec2": "wave2vecv2_base"}


@functools.cache
def _fixture() -> dict[str, Any]:
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny encoders of the fixture's configurations, saved with save_pretrained (their weights are
    overwritten by :func:`fill` after loading)."""
    from transformers import BertConfig, BertModel, HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model

    root = tmp_path_factory.mktemp("tiny")
    fixture = _fixture()
    torch.manual_seed(0)
    found = {"bert": root / "bert", "hubert": root / "hubert", "wav2vec2": root / "wav2vec2"}
    BertModel(BertConfig(**fixture["bert_config"])).save_pretrained(found["bert"])
    HubertModel(HubertConfig(**fixture["speech_config"])).save_pretrained(found["hubert"])
    Wav2Vec2Model(Wav2Vec2Config(**fixture["speech_config"])).save_pretrained(found["wav2vec2"])
    found["bert_multihead"] = found["bert"]
    return found


def build(name: str, folder: Path) -> nn.Module:
    classes = _fixture()["classes"]
    if name.startswith("bert"):
        from semilearn_nlp.nets import MultiHeadTextClassifier, TextClassifier
        from semilearn_nlp.pretrained import load_backbone

        backbone = load_backbone(OUR_NET[name], str(folder))
        if name == "bert_multihead":
            return MultiHeadTextClassifier(backbone, classes, num_heads=_fixture()["heads"])
        return TextClassifier(backbone, classes)
    from semilearn_audio.nets import AudioClassifier
    from semilearn_audio.pretrained import load_backbone as load_audio_backbone

    return AudioClassifier(load_audio_backbone(OUR_NET[name], str(folder)), classes)


def audio_view(values: torch.Tensor) -> dict[str, torch.Tensor]:
    """This engine's audio views: waveforms and their mask (unused by USB's networks, and by default here)."""
    values = values.to(PRECISION)
    return {"input_values": values, "attention_mask": torch.ones(values.shape, dtype=torch.long)}


def view(name: str, value: Any) -> Any:
    return value if name.startswith("bert") else audio_view(value)


def _named(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach() for name, value in model.named_parameters()}


@pytest.mark.parametrize("name", NETS)
def test_classifier_at_a_seed_is_usbs(name: str, folders: dict[str, Path]) -> None:
    """The classifier layers built after loading the encoder, with torch seeded the same: USB's values."""
    theirs = _fixture()["nets"].get(name)
    if theirs is None:
        pytest.skip(f"{name} was not generated (needs --usb-repo)")
    torch.manual_seed(_fixture()["seed"])
    model = build(name, folders[name])
    comparison = Comparison()
    classifier = {key: value for key, value in _named(model).items() if key.startswith("classifier.")}
    comparison.table(classifier, theirs["classifier_at_seed"], f"{name} classifier at seed")
    assert not comparison.failures, comparison.report()


@pytest.mark.parametrize("name", NETS)
def test_network_matches_usb(name: str, folders: dict[str, Path]) -> None:
    fixture = _fixture()
    theirs = fixture["nets"].get(name)
    if theirs is None:
        pytest.skip(f"{name} was not generated (needs --usb-repo)")
    model = build(name, folders[name])
    fill(model, fixture["fill_seeds"][name])
    comparison = Comparison()
    comparison.table(_named(model), theirs["parameters"], f"{name} parameters")
    model.to(PRECISION)
    x = view(name, fixture["inputs"]["text" if name.startswith("bert") else "audio"])
    _outputs(name, model, x, theirs, comparison)  # the default dtype stays float32, as the generator's
    print(f"{name}: largest relative difference {comparison.largest[0]:.3g} ({comparison.largest[1]})")
    assert not comparison.failures, comparison.report()


def _outputs(name: str, model: nn.Module, x: Any, theirs: dict[str, Any], comparison: Comparison) -> None:
    for mode in ("eval", "train"):
        model.train(mode == "train")
        _seed_like_usb(_fixture()["seed"])
        with torch.no_grad():
            out = model(x)
        if name == "bert_multihead":  # USB's list of heads, stacked; its evaluation reads their mean
            comparison.tensor(out["head_logits"], theirs[f"{mode}_logits"], f"{name} {mode} head logits")
            comparison.tensor(out["logits"], theirs[f"{mode}_logits"].mean(dim=1), f"{name} {mode} mean logits")
        else:
            comparison.tensor(out["logits"], theirs[f"{mode}_logits"], f"{name} {mode} logits")
        comparison.row(sketch_row(out["feat"]), theirs[f"{mode}_feat"], list(out["feat"].shape), f"{name} {mode} feat")


def _fixmatch(settings: dict[str, Any], net: nn.Module, tmp_path: Path) -> Any:
    manager = PluginManager().load(environ={"SEMILEARN_DISABLE_PLUGIN_AUTOLOAD": "1"})
    record = {"args": {"dataset": "cifar10", **settings}}
    config = load_config(manager, None, _our_settings("fixmatch", record, tmp_path)).config
    for key, value in settings.items():
        if key not in ("T", "hard_label"):
            assert config[key] == value, key
    cls = manager.registry("algorithm").get("fixmatch")
    return cls(config, _stand_in_data(_fixture()["classes"]), net, manager, tmp_path / "run", torch.device("cpu"))


@pytest.mark.parametrize("name", ["bert", "hubert"])
def test_fixmatch_steps_match_usb(name: str, folders: dict[str, Path], tmp_path: Path) -> None:
    """USB's FixMatch with use_cat False (a pass per view, the weak one last without gradients) on the
    tiny network, three steps with SGD: this engine's FixMatch computes the same."""
    fixture = _fixture()
    record = fixture["training"][name]
    assert record["decisions"]["stable_under"] >= DECISION_MARGIN, f"{name}: a mask of USB's record is within reach " \
        "of rounding"
    model = build(name, folders[name])
    fill(model, fixture["fill_seeds"][name])
    model.to(PRECISION).train()
    algorithm = _fixmatch(record["settings"], model, tmp_path)
    _steps(name, fixture, record, model, algorithm)  # the default dtype stays float32, as the generator's


def _steps(name: str, fixture: dict[str, Any], record: dict[str, Any], model: nn.Module, algorithm: Any) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=record["lr"])
    steps = fixture["inputs"]["text_steps" if name == "bert" else "audio_steps"]
    comparison = Comparison()
    for it, (step, theirs) in enumerate(zip(steps, record["steps"], strict=True)):
        algorithm.global_step = it
        _seed_like_usb(fixture["step_seed"] + it)
        optimizer.zero_grad()
        loss, out = algorithm.train_step(x_lb=view(name, step["x_lb"]), y_lb=step["y_lb"],
                                         x_ulb_w=view(name, step["x_ulb_w"]), x_ulb_s=view(name, step["x_ulb_s"]))
        loss.backward()
        where = f"{name} step {it}"
        comparison.tensor(loss, theirs["loss"], f"{where} loss")
        comparison.scalar(float(out["sup_loss"].detach()), float(theirs["sup_loss"]), f"{where} sup_loss")
        comparison.scalar(float(out["unsup_loss"].detach()), float(theirs["unsup_loss"]), f"{where} unsup_loss")
        comparison.scalar(float(out["mask_ratio"].float()), float(theirs["util_ratio"]),  # USB: mask.float().mean()
                          f"{where} mask ratio")
        comparison.table({key: p.grad for key, p in model.named_parameters() if p.grad is not None}, theirs["grads"],
                         f"{where} gradients")
        optimizer.step()
        comparison.table(_named(model), theirs["weights"], f"{where} weights")
    print(f"{name}: largest relative difference {comparison.largest[0]:.3g} ({comparison.largest[1]})")
    assert not comparison.failures, comparison.report()


def test_the_fixture_exercises_what_it_claims() -> None:
    """Masks with kept and dropped samples, the unlabelled loss at work, training-mode draws that matter."""
    fixture = _fixture()
    for name, record in fixture["training"].items():
        masks = torch.stack([step["mask"] for step in record["steps"]])
        assert bool((masks == 0).any()) and bool((masks == 1).any()), name
        assert all(float(step["unsup_loss"]) > 0 for step in record["steps"]), name
    for name, record in fixture["nets"].items():
        assert not torch.equal(record["eval_logits"], record["train_logits"]), name
