"""semilearn-nlp: the text modality, USB's BERT networks and its json text data sets.

No network: a tiny random BERT and a tiny WordPiece vocabulary are written to a folder with
``save_pretrained`` and read through ``nlp.pretrain_path``, the code path of real weights;
the data is a stand-in of USB's ag_news json files (``ori``, ``aug_0``, ``aug_1``,
``label``) written by the test.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import FAST, installed
from mechanism import check_fixmatch_step, draw, hand_fixmatch, resume_in_halves
from semilearn.data import InputSpec
from semilearn.errors import ConfigError, DataError
from semilearn.plugins import PluginManager
from semilearn.runner import build_algorithm, load_config

HAS_NLP = installed("semilearn-nlp")
try:
    import semilearn_nlp  # noqa: F401 - importable from a checkout (PYTHONPATH) or installed
    import transformers  # noqa: F401
except ImportError:
    IMPORTABLE = False
else:
    IMPORTABLE = True
needs_nlp = pytest.mark.skipif(not IMPORTABLE, reason="semilearn-nlp is not installed")
needs_entry_point = pytest.mark.skipif(not HAS_NLP, reason="semilearn-nlp is not installed")

# word -> class (ag_news' four topics); the other words are shared
TOPICS = {0: ("world", "war", "election"), 1: ("sport", "match", "goal"), 2: ("market", "stock", "bank"),
          3: ("science", "space", "computer")}
COMMON = ("the", "a", "news", "today", "new", "big", "report", "says", "of", "in")
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *COMMON, *(word for words in TOPICS.values() for word in words)]
MAX_LENGTH = 12


def _text(rng: np.random.Generator, label: int, words: int) -> str:
    topic = list(TOPICS[label])
    return " ".join(rng.choice(topic + list(COMMON), words))


def write_stand_in(folder: Path, train: int = 24, dev: int = 8, test: int = 8) -> Path:
    """USB's json layout for ag_news under ``folder/ag_news``: train.json, dev.json, test.json."""
    rng = np.random.default_rng(7)
    home = folder / "ag_news"
    home.mkdir(parents=True)
    for name, size in (("train", train), ("dev", dev), ("test", test)):
        samples = {}
        for index in range(size):
            label = index % 4
            sample = {"ori": _text(rng, label, int(rng.integers(3, 16))), "label": str(label)}
            if name == "train":
                sample |= {"aug_0": _text(rng, label, int(rng.integers(3, 10))),
                           "aug_1": _text(rng, label, int(rng.integers(3, 10)))}
            else:  # USB's dev and test files carry the back-translations too; they are not read
                sample |= {"aug_0": "unused", "aug_1": "unused"}
            samples[str(index)] = sample
        (home / f"{name}.json").write_text(json.dumps(samples))
    return folder


def write_tiny_bert(folder: Path) -> Path:
    """A random 1-layer BERT and its WordPiece tokenizer, saved as a real checkpoint folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    if "vocab_file" in inspect.signature(BertTokenizerFast.__init__).parameters:  # transformers 4
        tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    else:  # transformers 5
        tokenizer = BertTokenizerFast(vocab={word: index for index, word in enumerate(VOCAB)}, do_lower_case=True)
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data_dir, model folder)."""
    if not IMPORTABLE:
        pytest.skip("semilearn-nlp is not installed")
    root = tmp_path_factory.mktemp("nlp")
    return write_stand_in(root / "data"), write_tiny_bert(root / "tiny-bert")


def text_settings(stand_in: tuple[Path, Path]) -> tuple[str, ...]:
    data_dir, model = stand_in
    return ("dataset=ag_news", f"data_dir={data_dir}", f"nlp.pretrain_path={model}", f"nlp.max_length={MAX_LENGTH}",
            "num_labels=8", "batch_size=4", "uratio=1", "eval_batch_size=8", "optim=AdamW", "lr=0.001",
            "weight_decay=0.0005", "device=cpu")


def manager_with_nlp(blocked: tuple[str, ...] = ()) -> PluginManager:
    """The installed plugins, and semilearn-nlp from the checkout where it is not installed."""
    manager = PluginManager().load(blocked=blocked)
    if "nlp" not in manager.infos:
        from semilearn_nlp import NlpPlugin

        manager.add(NlpPlugin())
    return manager


def build(tmp_path: Path, stand_in: tuple[Path, Path], *overrides: str) -> Any:
    manager = manager_with_nlp()
    settings = [item for item in FAST if item != "--set"]
    config = load_config(manager, None, [*settings, *text_settings(stand_in), *overrides,
                                         f"save_dir={tmp_path}"]).config
    return build_algorithm(config, manager, tmp_path / "run")


# --- the views --------------------------------------------------------------------------


@needs_nlp
def test_views_trim_each_batch_to_its_longest_text_and_draw_a_back_translation_per_sample() -> None:
    from semilearn_nlp.views import TextSpec, TextViews

    class Data:
        augment = TextSpec(pad_token_id=0, max_length=8, tokenizer="tiny")

    ids = torch.zeros(3, 3, 6, dtype=torch.int32)
    length = torch.tensor([[2, 5, 3], [4, 2, 6], [3, 3, 2]])
    for row in range(3):
        for text in range(3):
            ids[row, text, : length[row, text]] = 10 * row + text + 1
    samples = {"input_ids": ids, "length": length}
    generator = torch.Generator().manual_seed(3)
    views = TextViews(Data(), generator)  # type: ignore[arg-type]

    weak = views.weak(samples)
    assert weak["input_ids"].shape == (3, 4) and weak["input_ids"].dtype == torch.int64  # longest original: 4
    assert weak["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0]]
    assert torch.equal(views.plain(samples)["input_ids"], weak["input_ids"])

    strong = views.strong(samples)
    chosen = strong["input_ids"][:, 0] % 10 - 1  # which stored text each row got
    assert set(chosen.tolist()) <= {1, 2}  # a back-translation, never the original
    assert strong["attention_mask"].sum(1).tolist() == [int(length[row, int(chosen[row])]) for row in range(3)]
    assert strong["input_ids"].shape[1] == int(strong["attention_mask"].sum(1).max())
    # the draw is the generator's: the same seed draws the same back-translations
    again = TextViews(Data(), torch.Generator().manual_seed(3)).strong(samples)  # type: ignore[arg-type]
    assert torch.equal(again["input_ids"], strong["input_ids"])
    draws = torch.stack([views.strong(samples)["input_ids"][:, 0] % 10 - 1 for _ in range(40)])
    assert set(draws.flatten().tolist()) == {1, 2}

    joined = views.join([weak, strong])
    width = max(weak["input_ids"].shape[1], strong["input_ids"].shape[1])
    assert joined["input_ids"].shape == (6, width)
    assert torch.equal(joined["attention_mask"].sum(1), torch.cat([weak["attention_mask"].sum(1),
                                                                    strong["attention_mask"].sum(1)]))
    assert torch.all(joined["input_ids"][joined["attention_mask"] == 0] == 0)  # padded with the pad id


# --- the data ---------------------------------------------------------------------------


@needs_nlp
def test_the_labelled_split_is_usbs_draw_for_the_same_seed() -> None:
    from semilearn_nlp.data import usb_text_split

    targets = np.random.default_rng(0).integers(0, 4, 200)
    labelled, unlabelled = usb_text_split(targets, 40, 4, seed=5)
    # USB: np.random.seed(seed); per class in class order: np.random.shuffle(its indices), the first are labelled
    np.random.seed(5)
    expected_labelled, expected_rest = [], []
    for label in range(4):
        members = np.where(targets == label)[0]
        np.random.shuffle(members)
        expected_labelled.extend(members[:10])
        expected_rest.extend(members[10:])
    assert labelled.tolist() == expected_labelled
    assert unlabelled.tolist() == expected_labelled + expected_rest  # the labelled texts first, then the rest
    with pytest.raises(ConfigError, match=r"multiple of the 4 classes"):
        usb_text_split(targets, 42, 4, seed=0)


@needs_nlp
def test_usbs_json_files_are_tokenised_once_with_the_networks_tokenizer(tmp_path: Path, stand_in) -> None:
    from transformers import AutoTokenizer

    data_dir, model = stand_in
    manager = manager_with_nlp()
    config = load_config(manager, None, [*text_settings(stand_in), "nlp.max_length=8"]).config
    data = manager.registry("dataset").get("ag_news")(config, torch.device("cpu"))
    assert data.modality == "text" and data.num_classes == 4 and data.default_net == "bert_base_uncased"
    assert data.summary() == "ag_news: 8 labelled, 24 unlabelled, 8 test samples (text), 4 classes"
    labelled = data.labelled_samples
    assert labelled["input_ids"].shape[:2] == (8, 3) and labelled["input_ids"].dtype == torch.int32
    assert int(data.unlabelled_samples["length"].max()) <= 8  # cut to nlp.max_length
    assert data.test_samples["input_ids"].shape[1] == 1  # evaluation: the original text only

    train = json.loads((data_dir / "ag_news" / "train.json").read_text())
    dev = json.loads((data_dir / "ag_news" / "dev.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(model)
    first = data.unlabelled_samples  # the labelled texts first (USB's order), drawn as USB draws them
    from semilearn_nlp.data import usb_text_split

    labelled_index, _ = usb_text_split(np.array([int(s["label"]) for s in train.values()]), 8, 4, 0)
    sample = list(train.values())[labelled_index[0]]
    for text, field in enumerate(("ori", "aug_0", "aug_1")):
        expected = tokenizer(sample[field], truncation=True, max_length=8)["input_ids"]
        assert first["length"][0, text] == len(expected)
        assert first["input_ids"][0, text, : len(expected)].tolist() == expected
    assert data.labelled_targets.tolist() == [int(list(train.values())[i]["label"]) for i in labelled_index]
    # evaluation reads dev.json (USB's eval split) unless nlp.eval_split says test
    assert data.test_targets.tolist() == [int(s["label"]) for s in dev.values()]
    expected = tokenizer(list(dev.values())[0]["ori"], truncation=True, max_length=8)["input_ids"]
    assert data.test_samples["input_ids"][0, 0, : len(expected)].tolist() == expected


@needs_nlp
def test_a_missing_json_file_or_field_is_one_line(tmp_path: Path, stand_in) -> None:
    _, model = stand_in
    manager = manager_with_nlp()
    broken = tmp_path / "data"
    (broken / "ag_news").mkdir(parents=True)
    (broken / "ag_news" / "train.json").write_text(json.dumps({"0": {"ori": "the news", "label": 0}}))
    config = load_config(manager, None, ["dataset=ag_news", f"data_dir={broken}", f"nlp.pretrain_path={model}"]).config
    builder = manager.registry("dataset").get("ag_news")
    with pytest.raises(DataError, match=r"ag_news/dev.json not found \(data_dir is .*\); put USB's json files"):
        builder(config, torch.device("cpu"))
    for split in ("dev", "test"):
        (broken / "ag_news" / f"{split}.json").write_text(json.dumps({"0": {"ori": "the news", "label": 0}}))
    with pytest.raises(DataError, match=r"train.json: sample '0' needs ori, aug_0, aug_1 and an integer label"):
        builder(config, torch.device("cpu"))


# --- the networks -----------------------------------------------------------------------


@needs_nlp
def test_the_network_is_usbs_pooled_bert_with_usbs_parameter_names(stand_in) -> None:
    _, model = stand_in
    manager = manager_with_nlp()
    load_config(manager, None, [f"nlp.pretrain_path={model}"])
    net = manager.registry("net").get("bert_base_uncased")(4, InputSpec("text"))
    names = list(net.state_dict())
    assert names[0] == "bert.embeddings.word_embeddings.weight"
    assert [name for name in names if not name.startswith("bert.")] == [
        "classifier.0.weight", "classifier.0.bias", "classifier.2.weight", "classifier.2.bias"]
    assert net.num_features == 16
    # the encoder holds the saved weights: loaded through nlp.pretrain_path, as real weights are
    from transformers import AutoModel

    saved = AutoModel.from_pretrained(model).state_dict()
    assert all(torch.equal(tensor, net.bert.state_dict()[name]) for name, tensor in saved.items())

    net.eval()
    views = {"input_ids": torch.tensor([[2, 5, 6, 3, 0, 0], [2, 7, 8, 9, 10, 3]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6])}
    with torch.no_grad():
        out = net(views)
        hidden = net.bert(**views).last_hidden_state
    assert out["logits"].shape == (2, 4) and out["feat"].shape == (2, 16)
    assert torch.allclose(out["feat"], hidden.mean(1), atol=1e-6)  # USB: every position, padding included
    net.pooling = "masked_mean"
    with torch.no_grad():
        masked = net(views)["feat"]
    assert torch.allclose(masked[0], hidden[0, :4].mean(0), atol=1e-6)
    assert torch.allclose(masked[1], hidden[1].mean(0), atol=1e-6)


@needs_nlp
def test_weights_neither_in_a_folder_nor_cached_offline_are_one_line(tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub.constants
    from semilearn_nlp.pretrained import load_backbone, load_tokenizer

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(DataError) as caught:
        load_backbone("bert_base_uncased", None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("net 'bert_base_uncased' needs the weights of bert-base-uncased: not in the Hugging "
                              "Face cache, and the hub cannot be reached")
    assert message.endswith("set --set nlp.pretrain_path=FOLDER)")
    with pytest.raises(DataError, match=r"needs the tokenizer of bert-base-uncased"):
        load_tokenizer("bert_base_uncased", None)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty \(nlp.pretrain_path\) holds no weights of a transformers model"):
        load_backbone("bert_base_uncased", str(empty))
    with pytest.raises(ConfigError, match=r"nlp.pretrain_path '.*missing' is not a folder"):
        load_backbone("bert_base_uncased", str(tmp_path / "missing"))


# --- runs -------------------------------------------------------------------------------


@needs_nlp
def test_fixmatch_on_text_resumes_bit_for_bit(tmp_path: Path, stand_in) -> None:
    settings = ("algorithm=fixmatch", "num_train_iter=6", "num_eval_iter=3", "p_cutoff=0.3")
    straight, _ = resume_in_halves(lambda path, *overrides: build(path, stand_in, *overrides), tmp_path, settings,
                                   stop_step=2)
    assert [entry["step"] for entry in straight.eval_history] == [3, 6]


def tokens(view: dict[str, torch.Tensor], row: int) -> list[int]:
    """The real tokens of one row of a view (its attention mask's ones)."""
    return view["input_ids"][row][view["attention_mask"][row].bool()].tolist()


def stored(samples: dict[str, torch.Tensor], index: int, text: int) -> list[int]:
    """The token ids of stored text ``text`` (0: the original) of sample ``index``."""
    return samples["input_ids"][index, text, : int(samples["length"][index, text])].tolist()


@needs_nlp
def test_fixmatch_on_a_drawn_text_batch_is_the_hand_computed_mechanism(tmp_path: Path, stand_in) -> None:
    # 0.265 splits the tiny BERT's top probabilities of this batch (0.259 .. 0.285): some pass, some not
    algorithm = build(tmp_path, stand_in, "algorithm=fixmatch", "p_cutoff=0.265")
    algorithm.model.eval()  # no dropout: every number below is reproducible
    batch, labelled, unlabelled = draw(algorithm)
    data = algorithm.data

    # the views that reach the network: labelled samples' original texts with their labels,
    # the unlabelled samples' originals (weak) and one of their back-translations (strong)
    assert batch["y_lb"].tolist() == data.labelled_targets[labelled].tolist()
    for row, index in enumerate(labelled.tolist()):
        assert tokens(batch["x_lb"], row) == stored(data.labelled_samples, index, 0)
    for row, index in enumerate(unlabelled.tolist()):
        assert tokens(batch["x_ulb_w"], row) == stored(data.unlabelled_samples, index, 0)
        assert tokens(batch["x_ulb_s"], row) in (stored(data.unlabelled_samples, index, 1),
                                                 stored(data.unlabelled_samples, index, 2))
    assert tokens(batch["x_ulb_s"], 0) != tokens(batch["x_ulb_w"], 0)

    check_fixmatch_step(algorithm, batch, 0.265)  # ulb_loss_ratio 1


@needs_nlp
def test_flexmatch_on_text_records_each_confident_sample_and_lowers_thresholds_of_rare_classes(
        tmp_path: Path, stand_in) -> None:
    algorithm = build(tmp_path, stand_in, "algorithm=flexmatch", "p_cutoff=0.265", "thresh_warmup=false")
    algorithm.model.eval()
    batch, _, unlabelled = draw(algorithm)
    assert torch.equal(batch["idx_ulb"], unlabelled)  # the record is kept per drawn unlabelled sample
    first = hand_fixmatch(algorithm, batch, 0.0)  # no class has a learning effect yet: threshold 0
    _, out = algorithm.train_step(**batch)
    assert float(out["mask_ratio"]) == 1.0
    assert torch.allclose(out["unsup_loss"], first["unsup_loss"], atol=1e-6)

    with torch.no_grad():
        probs = algorithm.model(batch["x_ulb_w"])["logits"].softmax(-1)
    confidence, predicted = probs.max(-1)
    selected = algorithm.policy_state["mask"]["selected_label"]
    expected = torch.full((len(selected),), -1)
    expected[unlabelled] = torch.where(confidence >= 0.265, predicted, -1)
    assert 0 < int((expected >= 0).sum()) < len(unlabelled)
    assert selected.tolist() == expected.tolist()

    # the next batch: class c's threshold is p_cutoff * b / (2 - b), its learning effect b = n_c / max(n_0, ...)
    # (thresh_warmup off: the never-selected samples do not count)
    batch, _, _ = draw(algorithm)
    counts = torch.bincount(selected + 1, minlength=5)[1:].float()
    effect = counts / counts.max()
    with torch.no_grad():
        probs = algorithm.model(batch["x_ulb_w"])["logits"].softmax(-1)
    confidence, predicted = probs.max(-1)
    mask = (confidence >= 0.265 * effect[predicted] / (2 - effect[predicted])).float()
    assert 0 < float(mask.mean()) < 1
    _, out = algorithm.train_step(**batch)
    assert float(out["mask_ratio"]) == float(mask.mean())


@needs_entry_point
def test_the_cli_trains_on_usbs_text_layout(cli, stand_in, tmp_path: Path) -> None:
    data_dir, model = stand_in
    result = cli("run", "-p", "no:wandb", "-p", "no:aim", "--set", "dataset=ag_news", "--set", f"data_dir={data_dir}", "--set",
                 f"nlp.pretrain_path={model}", "--set", "nlp.max_length=10", "--set", "num_labels=8", "--set",
                 "batch_size=4", "--set", "uratio=1", "--set", "num_train_iter=3", "--set", "num_eval_iter=3",
                 "--set", "num_log_iter=3", "--set", "epoch=1", "--set", "eval_batch_size=8", "--set",
                 "device=cpu", "--set", "algorithm=fixmatch", "--set", f"save_dir={tmp_path / 'runs'}")
    assert result.code == 0, result.text
    assert "ag_news: 8 labelled, 24 unlabelled, 8 test samples (text), 4 classes" in result.text
    saved = (tmp_path / "runs" / "fixmatch_ag_news_8_0" / "config.yaml").read_text()
    assert f"pretrain_path: {model}" in saved and "max_length: 10" in saved


# --- without the plugin -----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name"), [("net", "bert_base_uncased"), ("dataset", "ag_news"),
                                            ("dataset", "yahoo_answers")])
def test_without_the_plugin_a_text_name_says_which_distribution_to_install(kind: str, name: str) -> None:
    manager = PluginManager().load(blocked=["nlp"])
    with pytest.raises(ConfigError) as caught:
        manager.registry(kind).get(name)
    assert str(caught.value) == (f"{kind} '{name}' comes with the plugin distribution semilearn-nlp, which is not "
                                 "installed or is disabled (pip install ./plugins/nlp from a semilearn checkout)")


def test_without_the_plugin_the_cli_says_it_in_one_line(cli) -> None:
    result = cli("run", "-p", "no:nlp", "--set", "dataset=ag_news") if HAS_NLP else cli(
        "run", "--set", "dataset=ag_news")
    assert result.code != 0
    lines = [line for line in result.err.splitlines() if "semilearn-nlp" in line]
    assert len(lines) == 1 and "pip install ./plugins/nlp" in lines[0], result.text
