"""A data set of another modality runs through the engine: samples as named tensors, views
made by the modality a plugin registers, the network taking named views.

The plugin below registers a ``signal`` modality (1-D signals of different lengths, stored
padded beside their lengths), a data set of such signals and a network reading them, the
way the text and audio plugins do. Nothing in the engine or the algorithms knows about it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import FAST, train_in_process
from semilearn import Hook, hookimpl
from semilearn.data import InputSpec
from semilearn.data.augment import AugmentSpec
from semilearn.data.base import SSLData
from semilearn.errors import ConfigError, DataError
from semilearn.plugins import PluginManager
from semilearn.runner import build_algorithm, load_config

LENGTH = 24


def _signals(count: int, rng: np.random.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``count`` noisy sines of three frequencies (the class), of 12 to 24 samples each."""
    targets = rng.integers(0, 3, count)
    lengths = rng.integers(12, LENGTH + 1, count)
    time = np.arange(LENGTH)[None, :]
    values = np.sin(time * (0.3 + 0.5 * targets[:, None]) + rng.uniform(0, 6, (count, 1)))
    values += rng.normal(0, 0.1, values.shape)
    values[time >= lengths[:, None]] = 0.0
    return ({"values": torch.tensor(values, dtype=torch.float32), "length": torch.tensor(lengths)},
            torch.tensor(targets))


class SignalViews:
    """The ``signal`` modality's views: a dict ``values`` [B, L] + ``mask`` [B, L]."""

    def __init__(self, data: SSLData, generator: torch.Generator) -> None:
        self.generator = generator
        self.seen: list[str] = []

    def _view(self, samples: dict[str, torch.Tensor], noise: float, max_shift: int) -> dict[str, torch.Tensor]:
        values, length = samples["values"], samples["length"]
        batch = values.shape[0]
        gain = 1 + noise * (torch.rand(batch, 1, generator=self.generator, device=values.device) - 0.5)
        shift = torch.randint(0, max_shift + 1, (batch,), generator=self.generator, device=values.device)
        positions = torch.arange(values.shape[1], device=values.device)
        source = (positions[None, :] + shift[:, None]).clamp(max=values.shape[1] - 1)
        shifted = values.gather(1, source)
        mask = (positions[None, :] < (length - shift)[:, None]).float()
        jitter = noise * torch.randn(values.shape, generator=self.generator, device=values.device)
        return {"values": (shifted * gain + jitter) * mask, "mask": mask}

    def weak(self, samples: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.seen.append("weak")
        return self._view(samples, 0.05, 1)

    def strong(self, samples: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.seen.append("strong")
        return self._view(samples, 0.5, 4)

    def plain(self, samples: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.seen.append("plain")
        positions = torch.arange(samples["values"].shape[1], device=samples["values"].device)
        return {"values": samples["values"], "mask": (positions[None, :] < samples["length"][:, None]).float()}

    def join(self, views: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {name: torch.cat([view[name] for view in views]) for name in views[0]}


class SignalNet(nn.Module):
    """Masked mean of a 1-D convolution's features, then a linear classifier."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 16, 5, padding=2)
        self.classifier = nn.Linear(16, num_classes)
        self.num_features = 16
        self.inputs: list[tuple[str, ...]] = []

    def forward(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.inputs.append(tuple(sorted(x)))
        features = torch.relu(self.conv(x["values"][:, None]))  # [B, 16, L]
        mask = x["mask"][:, None]
        feat = (features * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return {"logits": self.classifier(feat), "feat": feat}


class SignalPlugin(Hook):
    """What a modality plugin registers: the modality, a data set of it and a network for it."""

    name = "signals"

    def __init__(self) -> None:
        super().__init__()
        self.views: list[SignalViews] = []
        self.nets: list[SignalNet] = []
        self.specs: list[InputSpec] = []

    def make_views(self, data: SSLData, generator: torch.Generator) -> SignalViews:
        views = SignalViews(data, generator)
        self.views.append(views)
        return views

    def make_net(self, num_classes: int, spec: InputSpec) -> SignalNet:
        self.specs.append(spec)
        net = SignalNet(num_classes)
        self.nets.append(net)
        return net

    @staticmethod
    def build(config, device) -> SSLData:
        rng = np.random.default_rng(config.seed)
        unlabelled, unlabelled_targets = _signals(120, rng)
        test, test_targets = _signals(60, rng)
        labelled_index = torch.cat([torch.nonzero(unlabelled_targets == label)[:4, 0] for label in range(3)])
        labelled = {name: tensor[labelled_index] for name, tensor in unlabelled.items()}
        data = SSLData("signals", 3, labelled, unlabelled_targets[labelled_index], unlabelled, unlabelled_targets,
                       test, test_targets, AugmentSpec(mean=(0.0,), std=(1.0,)), "signal_net",
                       classes=("slow", "medium", "fast"), modality="signal")
        return data.to(device)

    @hookimpl
    def register_modalities(self, register) -> None:
        register("signal", self.make_views, "1-D signals of different lengths, padded, with their lengths")

    @hookimpl
    def register_datasets(self, register) -> None:
        register("signals", self.build, "noisy sines of three frequencies")

    @hookimpl
    def register_nets(self, register) -> None:
        register("signal_net", self.make_net, "a 1-D convolution over masked signals")


SIGNALS = ("dataset=signals", "num_labels=12", "num_classes=3", "batch_size=4", "eval_batch_size=32")


def test_fixmatch_trains_on_another_modality_through_its_views(tmp_path: Path) -> None:
    plugin = SignalPlugin()
    result = train_in_process(tmp_path, *SIGNALS, "algorithm=fixmatch", "num_train_iter=6", "num_eval_iter=3",
                              plugins=[plugin])
    assert result.status == "completed", result.error
    assert [entry["step"] for entry in result.algorithm.eval_history] == [3, 6]
    views = plugin.views[0]
    # each step: a weak labelled view, a weak and a strong unlabelled view; evaluation: plain
    assert views.seen[:3] == ["weak", "weak", "strong"] and views.seen.count("strong") == 6
    assert "plain" in views.seen
    # the network got named views, one joined batch per step (labelled + weak + strong)
    assert set(plugin.nets[0].inputs) == {("mask", "values")}
    assert result.algorithm.data.summary() == "signals: 12 labelled, 120 unlabelled, 60 test samples (signal), 3 classes"
    # the network was built from the sample's spec, which the model card records
    (spec,) = plugin.specs
    assert spec == InputSpec("signal", parts={"values": ((LENGTH,), "float32"), "length": ((), "int64")})
    card = result.algorithm.model_card()
    assert card["modality"] == "signal" and card["classes"] == ["slow", "medium", "fast"]
    assert card["input"] == spec.to_dict() and InputSpec.from_dict(card["input"]) == spec
    assert card["mean"] == [0.0] and card["std"] == [1.0]  # the views' normalisation (AugmentSpec)


def _build(tmp_path: Path, plugin: SignalPlugin, *overrides: str):
    manager = PluginManager().load()
    manager.add(plugin)
    settings = [item for item in FAST if item != "--set"]
    config = load_config(manager, None, [*settings, *SIGNALS, *overrides, f"save_dir={tmp_path}"]).config
    return build_algorithm(config, manager, tmp_path / "run")


@pytest.mark.parametrize("data_device", ["auto", "host"])
def test_a_run_on_another_modality_resumes_bit_for_bit(tmp_path: Path, data_device: str) -> None:
    settings = ("algorithm=flexmatch", "num_train_iter=10", "num_eval_iter=5", f"data_device={data_device}")
    straight = _build(tmp_path / "straight", SignalPlugin(), *settings)
    assert straight.fit() == "completed"

    first_half = _build(tmp_path / "halves", SignalPlugin(), *settings, "stop_step=4")
    assert first_half.fit() == "interrupted"
    path = tmp_path / "state.pt"
    torch.save(first_half.checkpoint_state(), path)

    second_half = _build(tmp_path / "halves", SignalPlugin(), *settings)
    torch.manual_seed(99)
    assert second_half.fit(torch.load(path, weights_only=True)) == "completed"
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, second_half.model.state_dict()[name]), name
    assert straight.eval_history == second_half.eval_history
    assert torch.equal(straight.policy_state["mask"]["selected_label"],
                       second_half.policy_state["mask"]["selected_label"])


def test_a_network_of_images_refuses_samples_of_another_modality_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        _build(tmp_path, SignalPlugin(), "net=wrn_28_2", "num_train_iter=2")
    assert str(caught.value) == ("network 'wrn_28_2' on data set 'signals': it takes images [C, H, W]; the data "
                                 f"set's samples are signal {{values: float32 [{LENGTH}], length: int64 []}}")


MANIFOLD = "set mixup_manifold: true to mix features instead (USB's usb_nlp and usb_audio files do)"
NO_ROTATION = "set rot_loss_ratio: 0 to drop the rotation loss (USB's usb_nlp and usb_audio files do)"


@pytest.mark.parametrize(("algorithm", "needs"), [
    ("remixmatch", f"needs image data (rotates its inputs and mixes them pixel by pixel (MixUp)); data set "
                   f"'signals' is signal: {MANIFOLD}; {NO_ROTATION}"),
    ("mixmatch", f"needs image data (mixes its inputs pixel by pixel (MixUp)); data set 'signals' is signal: {MANIFOLD}"),
    ("crmatch", f"needs image data (rotates its inputs); data set 'signals' is signal: {NO_ROTATION}"),
    ("vat", "needs image or audio data (perturbs its inputs adversarially); data set 'signals' is signal"),
    ("sequencematch", "needs image data (its medium view is a one-operation RandAugment); data set 'signals' is "
                      "signal"),
])
def test_algorithms_that_need_images_refuse_other_modalities(tmp_path: Path, algorithm: str, needs: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _build(tmp_path, SignalPlugin(), f"algorithm={algorithm}", "num_train_iter=2")
    assert str(caught.value) == f"algorithm '{algorithm}' {needs}"


def test_a_data_set_of_an_unregistered_modality_names_the_known_ones(tmp_path: Path) -> None:
    class Orphan(SignalPlugin):
        name = "orphan"

        @hookimpl
        def register_modalities(self, register) -> None:  # registers none
            return None

    with pytest.raises(ConfigError, match=r"unknown modality 'signal'; known: (.*, )?image\b"):
        _build(tmp_path, Orphan(), "algorithm=fixmatch", "num_train_iter=2")


def test_using_a_trained_model_of_another_modality_says_it_takes_images_only(tmp_path: Path) -> None:
    from semilearn.errors import InputError
    from semilearn.inference.predictor import ModelCard

    algorithm = _build(tmp_path, SignalPlugin(), "algorithm=fixmatch", "num_train_iter=2")
    with pytest.raises(InputError, match=r"takes signal data \(data set 'signals'\); evaluate, predict, export"):
        ModelCard.from_mapping(algorithm.model_card())
