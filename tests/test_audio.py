"""semilearn-audio: the audio modality, USB's HuBERT and wav2vec 2.0 networks and its pickled audio data sets.

No network: tiny random HuBERT and wav2vec 2.0 encoders (hidden size 16, one layer, a
two-layer convolutional feature extractor) are written with ``save_pretrained`` and read
through ``audio.pretrain_path``, the code path of real weights; the data is a stand-in of
USB's pickles (``train.pkl``, ``dev.pkl``, ``test.pkl``: dicts of ``{wav: .npy bytes,
label}``) of short synthetic tones at 1 kHz, written by the test.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import FAST, installed
from mechanism import check_fixmatch_step, draw, resume_in_halves
from semilearn.data import InputSpec
from semilearn.errors import ConfigError, DataError
from semilearn.plugins import PluginManager
from semilearn.runner import build_algorithm, load_config

HAS_AUDIO = installed("semilearn-audio")
try:
    import semilearn_audio  # noqa: F401 - importable from a checkout (PYTHONPATH) or installed
    import transformers  # noqa: F401
except ImportError:
    IMPORTABLE = False
else:
    IMPORTABLE = True
needs_audio = pytest.mark.skipif(not IMPORTABLE, reason="semilearn-audio is not installed")
needs_entry_point = pytest.mark.skipif(not HAS_AUDIO, reason="semilearn-audio is not installed")

RATE = 1000  # the stand-in's sample rate (USB's is 16000)
SECONDS = 0.2  # crops of 200 samples


def _npy(wave: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, wave)
    return buffer.getvalue()


def _tone(rng: np.random.Generator, label: int) -> np.ndarray:
    size = int(rng.integers(150, 400))
    t = np.arange(size) / RATE
    return (np.sin(2 * np.pi * (40 + 30 * label) * t) + 0.1 * rng.standard_normal(size)).astype(np.float32)


def write_split(path: Path, sizes: int, classes: int, rng: np.random.Generator) -> None:
    samples = {str(index): {"wav": _npy(_tone(rng, index % classes)), "label": index % classes}
               for index in range(sizes)}
    path.write_bytes(pickle.dumps(samples))


def write_stand_in(folder: Path, name: str = "superbks", classes: int = 10, train: int = 30) -> Path:
    """USB's pickle layout for ``name`` under ``folder/name``."""
    rng = np.random.default_rng(7)
    home = folder / name
    home.mkdir(parents=True)
    for split, size in (("train", train), ("dev", 10), ("test", 10)):
        write_split(home / f"{split}.pkl", size, classes, rng)
    if name == "fsdnoisy":
        write_split(home / "ulb_train.pkl", 25, classes, rng)
    return folder


def _conv() -> dict[str, Any]:
    return {"conv_dim": (8, 8), "conv_stride": (5, 4), "conv_kernel": (10, 8), "num_conv_pos_embeddings": 8,
            "num_conv_pos_embedding_groups": 2, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 32, "mask_time_length": 2, "vocab_size": 8}


def write_tiny_encoders(folder: Path) -> dict[str, Path]:
    """Random tiny HuBERT and wav2vec 2.0 encoders, saved as real checkpoint folders."""
    from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    folders = {"hubert_base": folder / "tiny-hubert", "wave2vecv2_base": folder / "tiny-wav2vec2"}
    HubertModel(HubertConfig(**_conv())).save_pretrained(folders["hubert_base"])
    Wav2Vec2Model(Wav2Vec2Config(**_conv())).save_pretrained(folders["wave2vecv2_base"])
    return folders


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """(data_dir, model folders by net)."""
    if not IMPORTABLE:
        pytest.skip("semilearn-audio is not installed")
    root = tmp_path_factory.mktemp("audio")
    return write_stand_in(root / "data"), write_tiny_encoders(root)


def audio_settings(stand_in: tuple[Path, dict[str, Path]], net: str = "hubert_base") -> tuple[str, ...]:
    data_dir, models = stand_in
    return ("dataset=superbks", f"data_dir={data_dir}", f"net={net}", f"audio.pretrain_path={models[net]}",
            f"audio.sample_rate={RATE}", f"audio.max_length_seconds={SECONDS}", "num_labels=10", "batch_size=4",
            "uratio=1", "eval_batch_size=10", "optim=AdamW", "lr=0.001", "weight_decay=0.0005", "device=cpu")


def manager_with_audio(blocked: tuple[str, ...] = ()) -> PluginManager:
    """The installed plugins, and semilearn-audio from the checkout where it is not installed."""
    manager = PluginManager().load(blocked=blocked)
    if "audio" not in manager.infos:
        from semilearn_audio import AudioPlugin

        manager.add(AudioPlugin())
    return manager


def build(tmp_path: Path, stand_in: tuple[Path, dict[str, Path]], *overrides: str) -> Any:
    manager = manager_with_audio()
    settings = [item for item in FAST if item != "--set"]
    config = load_config(manager, None, [*settings, *audio_settings(stand_in), *overrides,
                                         f"save_dir={tmp_path}"]).config
    return build_algorithm(config, manager, tmp_path / "run")


# --- the views --------------------------------------------------------------------------


def _samples() -> dict[str, torch.Tensor]:
    length = torch.tensor([300, 120, 250])
    wave = torch.zeros(3, 300)
    for row in range(3):
        wave[row, : length[row]] = torch.arange(1, int(length[row]) + 1, dtype=torch.float32) + 1000 * row
    return {"wave": wave, "length": length}


@needs_audio
def test_weak_views_are_usbs_random_crops_and_plain_views_the_first_seconds() -> None:
    from semilearn_audio.views import AudioSpec, AudioViews

    class Data:
        augment = AudioSpec(sample_rate=RATE, max_length_seconds=SECONDS, normalize="masked")

    samples = _samples()
    views = AudioViews(Data(), torch.Generator().manual_seed(3))  # type: ignore[arg-type]
    weak = views.weak(samples)
    assert weak["input_values"].shape == (3, 200) and weak["input_values"].dtype == torch.float32
    assert weak["attention_mask"].sum(1).tolist() == [200, 120, 200]
    # normalised over the real samples: zero mean, unit variance, padding at 0
    real = weak["attention_mask"].bool()
    assert torch.allclose(weak["input_values"][1, :120].mean(), torch.tensor(0.0), atol=1e-5)
    assert torch.allclose(weak["input_values"][1, :120].var(unbiased=False), torch.tensor(1.0), atol=1e-4)
    assert torch.all(weak["input_values"][~real] == 0)
    plain = views.plain(samples)
    first = AudioViews(Data(), torch.Generator().manual_seed(0)).plain(samples)  # type: ignore[arg-type]
    assert torch.equal(plain["input_values"], first["input_values"])  # no draw
    from semilearn_audio.views import normalise

    expected = normalise(samples["wave"][:, :200], torch.arange(200)[None, :] < torch.tensor([200, 120, 200])[:, None],
                         "masked")
    assert torch.allclose(plain["input_values"], expected)
    # the same seed, the same crops
    again = AudioViews(Data(), torch.Generator().manual_seed(3)).weak(samples)  # type: ignore[arg-type]
    assert torch.equal(again["input_values"], weak["input_values"])


@needs_audio
def test_padded_normalisation_is_what_usbs_feature_extractor_gives() -> None:
    from semilearn_audio.views import AudioSpec, AudioViews
    from transformers import Wav2Vec2FeatureExtractor

    class Data:
        augment = AudioSpec(sample_rate=RATE, max_length_seconds=SECONDS, normalize="padded")

    samples = _samples()
    plain = AudioViews(Data(), torch.Generator()).plain(samples)  # type: ignore[arg-type]
    # the extractor of facebook/hubert-base-ls960 and wav2vec2-base-960h: normalise, no attention mask
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=RATE, padding_value=0.0, do_normalize=True,
                                         return_attention_mask=False)
    waves = [samples["wave"][row, : int(samples["length"][row])].numpy() for row in range(3)]
    expected = extractor(waves, padding=True, max_length=200, truncation=True, sampling_rate=RATE,
                         return_tensors="pt")["input_values"]
    assert torch.allclose(plain["input_values"], expected, atol=1e-4)


@needs_audio
def test_weak_crops_start_anywhere_in_0_to_length_minus_c_minus_1(monkeypatch) -> None:
    import semilearn_audio.views
    from semilearn_audio.views import AudioSpec, AudioViews

    class Data:
        augment = AudioSpec(sample_rate=RATE, max_length_seconds=SECONDS)

    monkeypatch.setattr(semilearn_audio.views, "normalise", lambda values, mask, how: values)  # read raw windows
    samples = _samples()
    views = AudioViews(Data(), torch.Generator().manual_seed(1))  # type: ignore[arg-type]
    starts: list[set[int]] = [set(), set(), set()]
    for _ in range(1000):
        values = views.weak(samples)["input_values"]
        for row in range(3):
            starts[row].add(int(values[row, 0]) - 1000 * row - 1)
            window = values[row, : min(200, int(samples["length"][row]))]
            assert torch.equal(window - window[0], torch.arange(len(window), dtype=torch.float32))
    assert starts[0] == set(range(100))  # USB: randint(0, 300 - 200 - 1)
    assert starts[1] == {0}  # shorter than the crop: kept whole
    assert starts[2] == set(range(50))


@needs_audio
def test_strong_views_are_cropped_to_c_and_drawn_from_the_generator() -> None:
    from semilearn_audio.views import AudioSpec, AudioViews

    class Data:
        augment = AudioSpec(sample_rate=RATE, max_length_seconds=SECONDS)

    samples = _samples()
    views = AudioViews(Data(), torch.Generator().manual_seed(5))  # type: ignore[arg-type]
    strong = views.strong(samples)
    assert strong["input_values"].shape == (3, 200)  # USB pads strong views to max_length
    assert torch.isfinite(strong["input_values"]).all()
    # padded normalisation (USB): zero mean, unit variance over the whole width
    assert torch.allclose(strong["input_values"].mean(1), torch.zeros(3), atol=1e-4)
    again = AudioViews(Data(), torch.Generator().manual_seed(5)).strong(samples)  # type: ignore[arg-type]
    assert torch.equal(again["input_values"], strong["input_values"])
    other = views.strong(samples)
    assert not torch.equal(other["input_values"], strong["input_values"])
    # a 120-sample waveform slowed down (speed < 1) gets longer, sped up shorter: valid lengths vary
    lengths = {int(views.strong(samples)["attention_mask"][1].sum()) for _ in range(40)}
    assert len(lengths) > 3 and max(lengths) <= 200 and min(lengths) >= 60
    joined = views.join([views.weak(samples), strong])
    assert joined["input_values"].shape == (6, 200) and joined["attention_mask"].shape == (6, 200)


# --- the data ---------------------------------------------------------------------------


@needs_audio
def test_the_labelled_split_is_usbs_draw_for_the_same_seed() -> None:
    from semilearn_audio.data import usb_audio_split

    targets = np.random.default_rng(0).integers(0, 4, 200)
    labelled, unlabelled = usb_audio_split(targets, 40, 4, seed=5)
    np.random.seed(5)
    expected_labelled, expected_rest = [], []
    for label in range(4):
        members = np.where(targets == label)[0]
        np.random.shuffle(members)
        expected_labelled.extend(members[:10])
        expected_rest.extend(members[10:])
    assert labelled.tolist() == expected_labelled
    assert unlabelled.tolist() == expected_labelled + expected_rest
    with pytest.raises(ConfigError, match=r"multiple of the 4 classes"):
        usb_audio_split(targets, 42, 4, seed=0)


@needs_audio
def test_usbs_pickles_are_read_into_padded_waveforms(stand_in) -> None:
    from semilearn_audio.data import read_split, usb_audio_split

    data_dir, _ = stand_in
    manager = manager_with_audio()
    config = load_config(manager, None, [*audio_settings(stand_in), "audio.storage=float16"]).config
    data = manager.registry("dataset").get("superbks")(config, torch.device("cpu"))
    assert data.modality == "audio" and data.num_classes == 10 and data.default_net == "wave2vecv2_base"
    assert data.summary() == "superbks: 10 labelled, 30 unlabelled, 10 test samples (audio), 10 classes"
    assert data.labelled_samples["wave"].dtype == torch.float16
    assert data.augment.crop == 200 and data.augment.sample_rate == RATE
    waves, labels = read_split(data_dir / "superbks" / "train.pkl")
    labelled_index, _ = usb_audio_split(np.array(labels), 10, 10, 0)
    first = waves[labelled_index[0]]
    assert int(data.labelled_samples["length"][0]) == len(first)
    assert torch.equal(data.labelled_samples["wave"][0, : len(first)], torch.from_numpy(first).half())
    assert data.labelled_targets.tolist() == [labels[i] for i in labelled_index]
    dev_waves, dev_labels = read_split(data_dir / "superbks" / "dev.pkl")
    assert data.test_targets.tolist() == dev_labels  # dev.pkl: USB's eval split
    assert data.test_samples["wave"].shape == (10, max(len(w) for w in dev_waves))


@needs_audio
def test_fsdnoisy_labels_all_of_train_and_reads_its_unlabelled_pickle(tmp_path: Path, stand_in) -> None:
    _, models = stand_in
    data_dir = write_stand_in(tmp_path / "data", "fsdnoisy", classes=20, train=20)
    manager = manager_with_audio()
    config = load_config(manager, None, ["dataset=fsdnoisy", f"data_dir={data_dir}", "num_labels=20",
                                         f"audio.pretrain_path={models['hubert_base']}"]).config
    data = manager.registry("dataset").get("fsdnoisy")(config, torch.device("cpu"))
    assert data.summary() == "fsdnoisy: 20 labelled, 25 unlabelled, 10 test samples (audio), 20 classes"
    assert data.augment.crop == 5 * 16000  # USB's max_length_seconds for fsdnoisy at 16 kHz


@needs_audio
def test_a_missing_file_or_an_unsafe_pickle_is_one_line(tmp_path: Path, stand_in) -> None:
    broken = tmp_path / "data"
    (broken / "superbks").mkdir(parents=True)
    manager = manager_with_audio()
    config = load_config(manager, None, ["dataset=superbks", f"data_dir={broken}", "num_labels=10"]).config
    builder = manager.registry("dataset").get("superbks")
    with pytest.raises(DataError, match=r"superbks/train.pkl not found \(data_dir is .*\); put USB's pickled"):
        builder(config, torch.device("cpu"))

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("ran",))

    for split in ("train", "dev", "test"):
        (broken / "superbks" / f"{split}.pkl").write_bytes(pickle.dumps({"0": {"wav": Evil(), "label": 0}}))
    with pytest.raises(DataError, match=r"cannot read .*train.pkl: refusing builtins.print"):
        builder(config, torch.device("cpu"))
    (broken / "superbks" / "train.pkl").write_bytes(pickle.dumps({"0": {"label": 0}}))
    with pytest.raises(DataError, match=r"sample '0' needs wav \(the bytes of a .npy waveform\) and an integer label"):
        builder(config, torch.device("cpu"))


# --- the networks -----------------------------------------------------------------------


@needs_audio
@pytest.mark.parametrize("net", ["hubert_base", "wave2vecv2_base"])
def test_the_network_is_usbs_pooled_encoder_with_usbs_parameter_names(stand_in, net: str) -> None:
    from transformers import AutoModel

    _, models = stand_in
    manager = manager_with_audio()
    load_config(manager, None, [f"audio.pretrain_path={models[net]}"])
    model = manager.registry("net").get(net)(5, InputSpec("audio"))
    names = list(model.state_dict())
    assert "model.feature_extractor.conv_layers.0.conv.weight" in names and "model.encoder.layers.0.attention.k_proj.weight" in names
    assert [name for name in names if not name.startswith("model.")] == [
        "classifier.0.weight", "classifier.0.bias", "classifier.2.weight", "classifier.2.bias"]
    assert model.num_features == 16
    saved = AutoModel.from_pretrained(models[net]).state_dict()
    assert all(torch.equal(tensor, model.model.state_dict()[name]) for name, tensor in saved.items())

    model.eval()
    views = {"input_values": torch.randn(2, 200, generator=torch.Generator().manual_seed(0)),
             "attention_mask": torch.ones(2, 200, dtype=torch.int64)}
    with torch.no_grad():
        out = model(views)
        hidden = model.model(views["input_values"]).last_hidden_state
    assert out["logits"].shape == (2, 5) and out["feat"].shape == (2, 16)
    assert torch.allclose(out["feat"], hidden.mean(1), atol=1e-6)  # USB: the mean over every frame


@needs_audio
def test_weights_neither_in_a_folder_nor_cached_offline_are_one_line(tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub.constants
    from semilearn_audio.pretrained import load_backbone

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(DataError) as caught:
        load_backbone("hubert_base", None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("net 'hubert_base' needs the weights of facebook/hubert-base-ls960: not in the Hugging "
                              "Face cache, and the hub cannot be reached")
    assert message.endswith("set --set audio.pretrain_path=FOLDER)")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty \(audio.pretrain_path\) holds no weights of a transformers model"):
        load_backbone("wave2vecv2_base", str(empty))
    with pytest.raises(ConfigError, match=r"audio.pretrain_path '.*missing' is not a folder"):
        load_backbone("hubert_base", str(tmp_path / "missing"))


# --- runs -------------------------------------------------------------------------------


@needs_audio
def test_fixmatch_on_audio_resumes_bit_for_bit(tmp_path: Path, stand_in) -> None:
    settings = ("algorithm=fixmatch", "num_train_iter=6", "num_eval_iter=3", "p_cutoff=0.3")
    straight, _ = resume_in_halves(lambda path, *overrides: build(path, stand_in, *overrides), tmp_path, settings,
                                   stop_step=2)
    assert [entry["step"] for entry in straight.eval_history] == [3, 6]


def crop_offsets(row: torch.Tensor, samples: dict[str, torch.Tensor], index: int) -> list[int]:
    """Where in waveform ``index`` the view row ``row`` (a crop normalised over its padded
    width, USB's) starts: every offset whose crop normalises to ``row``."""
    from semilearn_audio.views import normalise

    wave, length = samples["wave"][index].float(), int(samples["length"][index])
    width = row.shape[0]
    offsets = range(max(1, length - width))
    windows = torch.zeros(len(offsets), width)
    for offset in offsets:
        window = wave[offset: min(offset + width, length)]
        windows[offset, : len(window)] = window
    views = normalise(windows, torch.ones_like(windows, dtype=torch.bool), "padded")
    return [offset for offset in offsets if torch.allclose(views[offset], row, atol=1e-5)]


@needs_audio
def test_fixmatch_on_a_drawn_audio_batch_is_the_hand_computed_mechanism(tmp_path: Path, stand_in) -> None:
    from semilearn_audio.views import AudioViews

    # 0.13 splits the tiny HuBERT's top probabilities of this batch (0.121 .. 0.146): some pass, some not
    algorithm = build(tmp_path, stand_in, "algorithm=fixmatch", "p_cutoff=0.13")
    algorithm.model.eval()  # no dropout, no time masks: every number below is reproducible
    views_state = algorithm.augment_generator.get_state()
    batch, labelled, unlabelled = draw(algorithm)
    data = algorithm.data

    # the views that reach the network: random crops of the drawn waveforms (weak), with the
    # labelled samples' labels, and the strong view's effects drawn after the weak crops
    assert batch["y_lb"].tolist() == data.labelled_targets[labelled].tolist()
    for name, samples, indices in (("x_lb", data.labelled_samples, labelled),
                                   ("x_ulb_w", data.unlabelled_samples, unlabelled)):
        assert batch[name]["input_values"].shape == (4, 200)
        for row, index in enumerate(indices.tolist()):
            assert crop_offsets(batch[name]["input_values"][row], samples, index), (name, row)
    replay = AudioViews(data, torch.Generator().set_state(views_state))
    replay.weak(algorithm.gather(data.labelled_samples, labelled))
    weak = replay.weak(algorithm.gather(data.unlabelled_samples, unlabelled))
    strong = replay.strong(algorithm.gather(data.unlabelled_samples, unlabelled))
    assert torch.equal(weak["input_values"], batch["x_ulb_w"]["input_values"])
    assert torch.equal(strong["input_values"], batch["x_ulb_s"]["input_values"])
    # speed, pitch and reverb change a crop (gain alone is undone by the normalisation)
    assert not all(crop_offsets(batch["x_ulb_s"]["input_values"][row], data.unlabelled_samples, index)
                   for row, index in enumerate(unlabelled.tolist()))

    check_fixmatch_step(algorithm, batch, 0.13)


@needs_audio
def test_fixmatch_on_audio_with_a_pass_per_view_has_the_losses_of_one_joined_pass(tmp_path: Path, stand_in) -> None:
    # use_cat: false (USB's other branch) passes each view on its own; without dropout the
    # encoder treats every waveform on its own (group and layer norms are per sample), so
    # the losses are those of one joined pass, up to the order of float sums
    algorithm = build(tmp_path, stand_in, "algorithm=fixmatch", "p_cutoff=0.13", "use_cat=false")
    algorithm.model.eval()
    batch, _, _ = draw(algorithm)
    check_fixmatch_step(algorithm, batch, 0.13, atol=1e-5)


@needs_entry_point
def test_the_cli_trains_on_usbs_audio_layout(cli, stand_in, tmp_path: Path) -> None:
    data_dir, models = stand_in
    settings = [*audio_settings(stand_in), "num_train_iter=3", "num_eval_iter=3", "num_log_iter=3", "epoch=1",
                "algorithm=fixmatch", f"save_dir={tmp_path / 'runs'}"]
    args = ["run", "-p", "no:wandb", "-p", "no:aim"]
    for item in settings:
        args += ["--set", item]
    result = cli(*args)
    assert result.code == 0, result.text
    assert "superbks: 10 labelled, 30 unlabelled, 10 test samples (audio), 10 classes" in result.text
    saved = (tmp_path / "runs" / "fixmatch_superbks_10_0" / "config.yaml").read_text()
    assert f"pretrain_path: {models['hubert_base']}" in saved


# --- without the plugin -----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name"), [("net", "hubert_base"), ("net", "wave2vecv2_base"), ("dataset", "esc50"),
                                            ("dataset", "urbansound8k")])
def test_without_the_plugin_an_audio_name_says_which_distribution_to_install(kind: str, name: str) -> None:
    manager = PluginManager().load(blocked=["audio"])
    with pytest.raises(ConfigError) as caught:
        manager.registry(kind).get(name)
    assert str(caught.value) == (f"{kind} '{name}' comes with the plugin distribution semilearn-audio, which is not "
                                 "installed or is disabled (pip install ./plugins/audio from a semilearn checkout)")


def test_without_the_plugin_the_cli_says_it_in_one_line(cli) -> None:
    result = cli("run", "-p", "no:audio", "--set", "dataset=esc50") if HAS_AUDIO else cli(
        "run", "--set", "dataset=esc50")
    assert result.code != 0
    lines = [line for line in result.err.splitlines() if "semilearn-audio" in line]
    assert len(lines) == 1 and "pip install ./plugins/audio" in lines[0], result.text
