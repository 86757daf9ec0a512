"""MixMatch, ReMixMatch, CR-Match and VAT on text and audio, as USB's usb_nlp and usb_audio files run them.

``mixup_manifold`` mixes features and classifies them with the classifier alone,
``vat_embed`` perturbs the word embeddings, ``rot_loss_ratio: 0`` drops the rotations;
without them these algorithms are refused on text and audio in one line. The stand-ins
(a tiny random BERT and HuBERT, USB-layout data) come from test_nlp and test_audio.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import test_audio
import test_nlp
import torch
import torch.nn.functional as F
from torch import nn

from semilearn.algorithms.vat import kl_divergence_with_logits, l2_normalize
from semilearn.errors import ConfigError
from semilearn.nets.heads import feature_classifier

pytestmark = pytest.mark.together

needs_nlp = pytest.mark.skipif(not test_nlp.IMPORTABLE, reason="semilearn-nlp is not installed")
needs_audio = pytest.mark.skipif(not test_audio.IMPORTABLE, reason="semilearn-audio is not installed")

SHORT = ("num_train_iter=3", "num_eval_iter=3", "num_log_iter=3")
MANIFOLD = "set mixup_manifold: true to mix features instead (USB's usb_nlp and usb_audio files do)"
NO_ROTATION = "set rot_loss_ratio: 0 to drop the rotation loss (USB's usb_nlp and usb_audio files do)"


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not test_nlp.IMPORTABLE:
        pytest.skip("semilearn-nlp is not installed")
    root = tmp_path_factory.mktemp("text")
    return test_nlp.write_stand_in(root / "data"), test_nlp.write_tiny_bert(root / "tiny-bert")


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    if not test_audio.IMPORTABLE:
        pytest.skip("semilearn-audio is not installed")
    root = tmp_path_factory.mktemp("audio")
    return test_audio.write_stand_in(root / "data"), test_audio.write_tiny_encoders(root)


def _calls(module: nn.Module) -> list[tuple[Any, dict[str, Any], Any]]:
    """Every call of ``module`` from now on: (positional inputs, keyword inputs, output)."""
    calls: list[tuple[Any, dict[str, Any], Any]] = []
    module.register_forward_hook(lambda _, args, kwargs, output: calls.append((args, kwargs, output)),
                                 with_kwargs=True)
    return calls


# --- manifold MixUp ----------------------------------------------------------------------


@needs_nlp
def test_manifold_mixmatch_mixes_features_with_the_biased_lambda_and_classifies_them_alone(
        tmp_path: Path, text) -> None:
    algorithm = test_nlp.build(tmp_path, text, "algorithm=mixmatch", "mixup_manifold=true", *SHORT)
    network = algorithm.module
    assert algorithm.feature_classifier is network.classifier
    batch = algorithm.sample_batch()
    num_lb = batch["y_lb"].shape[0]
    # USB's K = 2 views of a text are the original text twice
    assert batch["x_ulb_w"]["input_ids"].shape[0] == 2 * num_lb * algorithm.config.uratio
    first, second = batch["x_ulb_w"]["input_ids"].chunk(2)
    assert torch.equal(first, second)

    network.eval()  # no dropout: the passes are repeatable
    with torch.no_grad():
        feat_lb = network(batch["x_lb"])["feat"]
        views = network(batch["x_ulb_w"])
    probs = torch.softmax(views["logits"], dim=-1)
    mean = probs.view(2, -1, probs.shape[-1]).mean(0)
    guess = mean ** 2 / (mean ** 2).sum(-1, keepdim=True)  # T = 0.5
    features = torch.cat([feat_lb, views["feat"]])
    targets = torch.cat([F.one_hot(batch["y_lb"], 4).float(), guess, guess])
    np.random.seed(11)
    draw = np.random.beta(0.5, 0.5)
    lam = max(draw, 1 - draw)
    torch.manual_seed(12)
    permutation = torch.randperm(features.shape[0])
    mixed = lam * features + (1 - lam) * features[permutation]
    mixed_targets = lam * targets + (1 - lam) * targets[permutation]

    calls = _calls(network.classifier)
    np.random.seed(11)
    torch.manual_seed(12)
    loss, metrics = algorithm.train_step(**batch)
    chunks = calls[-(mixed.shape[0] // num_lb):]  # USB's only_fc passes: one per labelled-batch-sized chunk
    assert len(calls) == 3 + len(chunks)  # a guessing pass per view (as USB), the labelled pass, the chunks
    assert all(args[0].shape[0] == num_lb for args, _, _ in chunks)
    classified = torch.cat([args[0] for args, _, _ in chunks])
    torch.testing.assert_close(classified, mixed)
    logits = torch.cat([output for _, _, output in chunks])
    torch.testing.assert_close(logits, network.classifier(mixed))
    sup = -(mixed_targets[:num_lb] * F.log_softmax(logits[:num_lb], -1)).sum(-1).mean()
    torch.testing.assert_close(metrics["sup_loss"], sup)
    unsup = ((torch.softmax(logits[num_lb:], -1) - mixed_targets[num_lb:]) ** 2).mean()
    torch.testing.assert_close(metrics["unsup_loss"], unsup)


@needs_nlp
def test_manifold_remixmatch_mixes_labelled_strong_and_weak_features(tmp_path: Path, text) -> None:
    algorithm = test_nlp.build(tmp_path, text, "algorithm=remixmatch", "mixup_manifold=true", "rot_loss_ratio=0",
                               *SHORT)
    network = algorithm.module
    batch = algorithm.sample_batch()
    assert "x_ulb_s_0_rot" not in batch
    network.eval()
    with torch.no_grad():
        outputs = [network(batch[name]) for name in ("x_lb", "x_ulb_s_0", "x_ulb_s_1", "x_ulb_w")]
    features = torch.cat([part["feat"] for part in outputs])  # USB's order: labelled, strong 0, strong 1, weak
    np.random.seed(3)
    draw = np.random.beta(0.75, 0.75)
    lam = max(draw, 1 - draw)
    torch.manual_seed(4)
    permutation = torch.randperm(features.shape[0])

    calls = _calls(network.classifier)
    np.random.seed(3)
    torch.manual_seed(4)
    algorithm.train_step(**batch)
    classified = torch.cat([args[0] for args, _, _ in calls[4:]])  # after the weak, labelled and two strong passes
    torch.testing.assert_close(classified, lam * features + (1 - lam) * features[permutation])


@needs_nlp
def test_remixmatchs_two_strong_texts_are_the_two_back_translations_in_a_drawn_order() -> None:
    from semilearn_nlp.views import TextSpec, TextViews

    from semilearn.data.modality import strong_views

    class Data:
        augment = TextSpec(pad_token_id=0, max_length=8, tokenizer="tiny")

    rows = 32
    ids = torch.zeros(rows, 3, 4, dtype=torch.int32)
    for text_index in range(3):
        ids[:, text_index, 0] = text_index + 1
    samples = {"input_ids": ids, "length": torch.ones(rows, 3, dtype=torch.long)}
    first, second = strong_views(TextViews(Data(), torch.Generator().manual_seed(0)), samples, 2)  # type: ignore[arg-type]
    pairs = torch.stack([first["input_ids"][:, 0], second["input_ids"][:, 0]], dim=1)
    assert sorted(set(map(tuple, pairs.tolist()))) == [(2, 3), (3, 2)]  # never the original, never twice the same


def test_mixup_manifold_on_a_network_without_a_classifier_is_one_line() -> None:
    class Bare(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"logits": x, "feat": x}

    with pytest.raises(ConfigError) as caught:
        feature_classifier(Bare(), "mixup_manifold")
    assert str(caught.value) == ("mixup_manifold needs the network's classifier of its features, and network "
                                 "'Bare' has no 'classifier' module (see semilearn.nets)")


# --- VAT on word embeddings ------------------------------------------------------------------


@needs_nlp
def test_vat_embed_perturbs_the_word_embeddings_by_eps_through_inputs_embeds(tmp_path: Path, text) -> None:
    algorithm = test_nlp.build(tmp_path, text, "algorithm=vat", "vat_embed=true", "vat_eps=2.0", "vat_xi=0.01",
                               *SHORT)
    network = algorithm.module
    batch = algorithm.sample_batch()
    network.eval()
    calls = _calls(network)
    torch.manual_seed(5)
    algorithm.train_step(**batch)
    labelled, clean, probe, adversarial = calls
    assert labelled[0][0] is batch["x_lb"]
    assert clean[0][0] is batch["x_ulb_w"] and clean[1] == {"return_embed": True}
    embed = clean[2]["embed"].detach()
    assert embed.shape == (*batch["x_ulb_w"]["input_ids"].shape, 16)  # [B, L, hidden]
    for call in (probe, adversarial):
        assert set(call[0][0]) == {"inputs_embeds", "attention_mask"}
        assert call[0][0]["attention_mask"] is batch["x_ulb_w"]["attention_mask"]

    torch.manual_seed(5)
    noise = torch.randn(embed.shape)
    start = 0.01 * l2_normalize(noise)
    torch.testing.assert_close(probe[0][0]["inputs_embeds"] - embed, start, atol=1e-6, rtol=0)
    step = start.clone().requires_grad_(True)
    mask = batch["x_ulb_w"]["attention_mask"]
    divergence = kl_divergence_with_logits(clean[2]["logits"].detach(),
                                           network({"attention_mask": mask, "inputs_embeds": embed + step})["logits"])
    (direction,) = torch.autograd.grad(divergence, step)
    r_adv = adversarial[0][0]["inputs_embeds"] - embed
    torch.testing.assert_close(r_adv.flatten(1).norm(dim=1), torch.full((embed.shape[0],), 2.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(r_adv, 2.0 * l2_normalize(direction), atol=1e-4, rtol=0)
    assert adversarial[0][0]["inputs_embeds"].requires_grad  # the embedding layer learns from the smoothness loss


@needs_audio
@pytest.mark.parametrize("normalize", [False, True])
def test_vat_on_audio_perturbs_the_waveform_unnormalised_as_usb_unless_asked(tmp_path: Path, audio,
                                                                             normalize: bool) -> None:
    algorithm = test_audio.build(tmp_path, audio, "algorithm=vat", "vat_xi=0.01", "vat_eps=2.0",
                                 f"vat_normalize_waveform={str(normalize).lower()}", *SHORT)
    network = algorithm.module
    batch = algorithm.sample_batch()
    network.eval()
    calls = _calls(network)
    torch.manual_seed(6)
    algorithm.train_step(**batch)
    clean, probe, adversarial = (call[0][0] for call in calls[1:])
    assert clean["input_values"] is batch["x_ulb_w"]["input_values"]
    for view in (probe, adversarial):
        assert view["attention_mask"] is batch["x_ulb_w"]["attention_mask"]
    waveform = batch["x_ulb_w"]["input_values"]
    torch.manual_seed(6)
    noise = torch.randn(waveform.shape)
    start = 0.01 * (l2_normalize(noise) if normalize else noise)
    torch.testing.assert_close(probe["input_values"] - waveform, start, atol=1e-5, rtol=0)
    r_adv = adversarial["input_values"] - waveform
    if normalize:
        torch.testing.assert_close(r_adv.norm(dim=1), torch.full((waveform.shape[0],), 2.0), atol=1e-4, rtol=0)
    else:  # USB's: 2 x the raw gradient, far below the eps of an image's perturbation
        assert float(r_adv.norm(dim=1).max()) < 0.1


@needs_audio
def test_vat_embed_on_a_network_without_embeddings_is_one_line(tmp_path: Path, audio) -> None:
    with pytest.raises(ConfigError) as caught:
        test_audio.build(tmp_path, audio, "algorithm=vat", "vat_embed=true", *SHORT)
    assert str(caught.value) == ("vat_embed needs a network that takes word embeddings (forward(x, return_embed=True) "
                                 "and x['inputs_embeds'], see semilearn.nets); network 'AudioClassifier' does not")


# --- refusals ---------------------------------------------------------------------------------


@needs_nlp
@pytest.mark.parametrize(("settings", "message"), [
    (("algorithm=mixmatch",), f"algorithm 'mixmatch' needs image data (mixes its inputs pixel by pixel (MixUp)); "
                              f"data set 'ag_news' is text: {MANIFOLD}"),
    (("algorithm=remixmatch", "mixup_manifold=true"),
     f"algorithm 'remixmatch' needs image data (rotates its inputs and mixes them pixel by pixel (MixUp)); data set "
     f"'ag_news' is text: {NO_ROTATION}"),
    (("algorithm=crmatch",), f"algorithm 'crmatch' needs image data (rotates its inputs); data set 'ag_news' is "
                             f"text: {NO_ROTATION}"),
    (("algorithm=vat",), "algorithm 'vat' needs image or audio data (perturbs its inputs adversarially); data set "
                         "'ag_news' is text: set vat_embed: true to perturb the word embeddings instead (USB's "
                         "usb_nlp files do)"),
])
def test_pixel_settings_on_text_are_refused_in_one_line(tmp_path: Path, text, settings, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        test_nlp.build(tmp_path, text, *settings, *SHORT)
    assert str(caught.value) == message


@needs_audio
def test_mixmatch_on_audio_without_manifold_mixup_is_refused_in_one_line(tmp_path: Path, audio) -> None:
    with pytest.raises(ConfigError) as caught:
        test_audio.build(tmp_path, audio, "algorithm=mixmatch", *SHORT)
    assert str(caught.value) == (f"algorithm 'mixmatch' needs image data (mixes its inputs pixel by pixel (MixUp)); "
                                 f"data set 'superbks' is audio: {MANIFOLD}")


# --- short runs, as USB's files set them up ----------------------------------------------------


USB_SETTINGS = {
    "mixmatch": ("algorithm=mixmatch", "mixup_manifold=true"),
    "remixmatch": ("algorithm=remixmatch", "mixup_manifold=true", "rot_loss_ratio=0"),
    "crmatch": ("algorithm=crmatch", "rot_loss_ratio=0"),
    "vat": ("algorithm=vat",),
}


@needs_nlp
@pytest.mark.parametrize("algorithm", list(USB_SETTINGS))
def test_short_runs_on_text_finish(tmp_path: Path, text, algorithm: str) -> None:
    extra = ("vat_embed=true",) if algorithm == "vat" else ()
    run = test_nlp.build(tmp_path, text, *USB_SETTINGS[algorithm], *extra, *SHORT)
    assert run.fit() == "completed"
    assert [entry["step"] for entry in run.eval_history] == [3]


@needs_audio
@pytest.mark.parametrize("algorithm", list(USB_SETTINGS))
def test_short_runs_on_audio_finish(tmp_path: Path, audio, algorithm: str) -> None:
    run = test_audio.build(tmp_path, audio, *USB_SETTINGS[algorithm], *SHORT)
    assert run.fit() == "completed"
    assert [entry["step"] for entry in run.eval_history] == [3]
