"""Steps per second of one FixMatch step on text (BERT) and on audio (HuBERT), on this machine.

The real training step of the engine (sample, make the views, one forward pass over
labelled + weak + strong views, backward, AdamW, EMA) through the semilearn-nlp and
semilearn-audio plugins, on stand-in data written to a temporary folder in USB's layouts
(json texts with two back-translations each; pickled waveforms at 16 kHz) and random
networks saved with ``save_pretrained`` and read through ``pretrain_path``, the code path
of real weights:

* text, the tests' tiny BERT (1 layer, hidden 16) and a small one (4 layers, hidden 256),
  texts of up to ``--tokens`` tokens;
* audio, the tests' tiny HuBERT (1 layer, hidden 16, two convolutions), 1 s crops.

Batch 8, uratio 1 (24 views a step). After ``--warmup`` steps, each of ``--steps`` steps
is timed on its own; reported as markdown table rows: the rate of the median step, and of
the quartiles. A step of a tiny network takes milliseconds, and with two threads on a
machine that runs other work a step now and then waits hundreds of milliseconds for a
core: the median step is the network's rate, where a mean over a block would be the
machine's load.

    python benchmarks/text_audio_step_rate.py
    python benchmarks/text_audio_step_rate.py --threads 2 --steps 41
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import pickle
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from semilearn.plugins import PluginManager
from semilearn.runner import build_algorithm, load_config

TEXT_CLASSES = 4  # ag_news
AUDIO_CLASSES = 10  # superbks
WORDS = [f"w{index}" for index in range(200)]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
RATE = 16000


def write_text(folder: Path, tokens: int) -> Path:
    """USB's ag_news json layout: 40 training texts (each with two back-translations), 8 dev, 8 test."""
    rng = np.random.default_rng(0)
    home = folder / "ag_news"
    home.mkdir(parents=True)
    for split, size in (("train", 40), ("dev", 8), ("test", 8)):
        texts = {str(index): {field: " ".join(rng.choice(WORDS, int(rng.integers(tokens // 2, tokens))))
                              for field in ("ori", "aug_0", "aug_1")} | {"label": str(index % TEXT_CLASSES)}
                 for index in range(size)}
        (home / f"{split}.json").write_text(json.dumps(texts))
    return folder


def write_bert(folder: Path, layers: int, hidden: int) -> Path:
    """A random BERT of ``layers`` layers of width ``hidden`` and its WordPiece tokenizer."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True)
    BertTokenizerFast(vocab={word: index for index, word in enumerate(VOCAB)}, do_lower_case=True).save_pretrained(
        folder)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=max(2, hidden // 64), intermediate_size=4 * hidden,
                        max_position_embeddings=512)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


def write_audio(folder: Path) -> Path:
    """USB's superbks pickle layout: 40 training waveforms of 1 to 2 s, 8 dev, 8 test."""
    rng = np.random.default_rng(0)
    home = folder / "superbks"
    home.mkdir(parents=True)
    for split, size in (("train", 40), ("dev", 8), ("test", 8)):
        samples = {}
        for index in range(size):
            buffer = io.BytesIO()
            np.save(buffer, rng.standard_normal(int(rng.integers(RATE, 2 * RATE))).astype(np.float32))
            samples[str(index)] = {"wav": buffer.getvalue(), "label": index % AUDIO_CLASSES}
        (home / f"{split}.pkl").write_bytes(pickle.dumps(samples))
    return folder


def write_hubert(folder: Path) -> Path:
    """The tests' tiny HuBERT: hidden 16, one layer, a two-layer convolutional feature extractor."""
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    HubertModel(HubertConfig(conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8,
                             num_conv_pos_embedding_groups=2, hidden_size=16, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=32, mask_time_length=2,
                             vocab_size=8)).save_pretrained(folder)
    return folder


def step_times(settings: list[str], folder: Path, warmup: int, steps: int) -> list[float]:
    """Seconds of each timed step of a FixMatch run with ``settings``."""
    manager = PluginManager().load(blocked=["logging", "checkpoint", "wandb", "aim"])
    config = load_config(manager, None, [
        "algorithm=fixmatch", "batch_size=8", "uratio=1", "optim=AdamW", "lr=0.0001", "device=cpu",
        f"num_train_iter={warmup + steps + 1}", "num_eval_iter=1000000", "num_log_iter=1000000",
        f"save_dir={folder}", *settings,
    ]).config
    algorithm = build_algorithm(config, manager, folder / "run")
    manager.hook.before_run(algorithm=algorithm)
    algorithm.model.train()
    for step in range(1, warmup + 1):
        algorithm._one_step(step)
    times = []
    for step in range(warmup + 1, warmup + steps + 1):
        started = time.perf_counter()
        algorithm._one_step(step)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--tokens", type=int, default=64, help="the longest text, in tokens (nlp.max_length)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("semilearn").addHandler(logging.StreamHandler(io.StringIO()))
    logging.getLogger("semilearn").propagate = False
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    print(f"## FixMatch step on text and audio stand-ins, cpu, torch {torch.__version__}, {args.threads} threads, "
          f"batch 8, uratio 1, {args.steps} steps timed after {args.warmup}\n")
    print("| modality | network | input | steps/s (median step) | quartiles |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        text = write_text(root / "text", args.tokens)
        audio = write_audio(root / "audio")
        cases = [
            ("text", "BERT, 1 layer, hidden 16 (the tests')", f"up to {args.tokens} tokens",
             ["dataset=ag_news", "num_labels=8", f"data_dir={text}", f"nlp.max_length={args.tokens}",
              f"nlp.pretrain_path={write_bert(root / 'tiny-bert', 1, 16)}"]),
            ("text", "BERT, 4 layers, hidden 256", f"up to {args.tokens} tokens",
             ["dataset=ag_news", "num_labels=8", f"data_dir={text}", f"nlp.max_length={args.tokens}",
              f"nlp.pretrain_path={write_bert(root / 'small-bert', 4, 256)}"]),
            ("audio", "HuBERT, 1 layer, hidden 16 (the tests')", "1 s crops at 16 kHz",
             ["dataset=superbks", "num_labels=10", f"data_dir={audio}", "net=hubert_base", "audio.max_length_seconds=1",
              f"audio.pretrain_path={write_hubert(root / 'tiny-hubert')}"]),
        ]
        for index, (modality, network, what, settings) in enumerate(cases):
            times = step_times(settings, root / f"run{index}", args.warmup, args.steps)
            fast, median, slow = statistics.quantiles(times, n=4)  # seconds: the fastest quarter first
            print(f"| {modality} | {network} | {what} | {1 / median:.2f} | {1 / slow:.2f} .. {1 / fast:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
