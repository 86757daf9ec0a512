"""The plugin tutorial (docs/writing-plugins.md) shows its code as plain Markdown, so it
reads on a code host as in the site, and every code block stays equal to the tested
example distribution it comes from (examples/early-stopping).

A block taken from the example is preceded by ``<!-- code: FILE[:SECTION] ... -->``; a
SECTION is the part of FILE between ``# --8<-- [start:SECTION]`` and ``# --8<-- [end:SECTION]``,
dedented. ``python tests/test_tutorial.py --write`` refreshes the blocks after the example changes.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "writing-plugins.md"
_BLOCK = re.compile(r"<!-- code: (?P<refs>[^>]+?) -->\n```(?P<lang>\w*)\n(?P<body>.*?)\n```", re.S)


def section(reference: str, dedent: bool = True) -> str:
    """The text a ``FILE[:SECTION]`` reference names (a section without an end runs to the
    next section's start)."""
    path, _, name = reference.partition(":")
    text = (ROOT / path).read_text(encoding="utf-8")
    if not name:
        return text.rstrip("\n")
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"# --8<-- [start:{name}]")
    end = next((i for i, line in enumerate(lines[start + 1 :], start + 1)
                if line.strip() in (f"# --8<-- [end:{name}]",) or line.strip().startswith("# --8<-- [start:")),
               len(lines))
    body = "\n".join(lines[start + 1 : end])
    return (textwrap.dedent(body) if dedent else body).strip("\n")


def expected(references: str) -> str:
    """One section dedented; several, consecutive parts of one listing, as they stand."""
    parts = references.split()
    return "\n\n".join(section(reference, dedent=len(parts) == 1) for reference in parts)


def refreshed(markdown: str) -> str:
    return _BLOCK.sub(lambda m: f"<!-- code: {m['refs']} -->\n```{m['lang']}\n{expected(m['refs'])}\n```", markdown)


def test_the_tutorial_is_plain_markdown_with_the_examples_code() -> None:
    markdown = TUTORIAL.read_text(encoding="utf-8")
    assert "--8<--" not in markdown  # nothing left for a build step to fill in
    blocks = list(_BLOCK.finditer(markdown))
    assert len(blocks) >= 7
    for block in blocks:
        assert block["body"] == expected(block["refs"]), f"{block['refs']}: run python tests/test_tutorial.py --write"
    assert 'early_stopping = "semilearn_early_stopping:EarlyStopping"' in markdown


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    TUTORIAL.write_text(refreshed(TUTORIAL.read_text(encoding="utf-8")), encoding="utf-8")


def run_block(name: str) -> dict:
    """The code block after ``<!-- tested: NAME -->`` in the tutorial, executed."""
    markdown = TUTORIAL.read_text(encoding="utf-8")
    start = markdown.index(f"<!-- tested: {name} -->")
    code = markdown[markdown.index("```python\n", start) + len("```python\n"):]
    namespace: dict = {"__name__": f"tutorial_{name.replace('-', '_')}"}
    exec(compile(code[: code.index("```")], f"docs/writing-plugins.md ({name})", "exec"), namespace)  # noqa: S102
    return namespace


def test_the_tutorial_algorithm_is_fixmatch_at_power_zero_and_trains(tmp_path: Path) -> None:
    import torch

    from conftest import train_in_process

    example = run_block("add-an-algorithm")
    plugin = example["ConfidentFixMatchPlugin"]()
    ours = train_in_process(tmp_path / "ours", "algorithm=confident_fixmatch", "confidence_power=0",
                            "num_train_iter=3", "p_cutoff=0.1", plugins=[plugin])
    theirs = train_in_process(tmp_path / "fixmatch", "algorithm=fixmatch", "num_train_iter=3", "p_cutoff=0.1")
    assert ours.status == theirs.status == "completed"
    for (name, mine), (_, reference) in zip(ours.algorithm.module.state_dict().items(),
                                            theirs.algorithm.module.state_dict().items(), strict=True):
        assert torch.equal(mine, reference), name  # weight 1: the very same steps as FixMatch
    weighted = train_in_process(tmp_path / "weighted", "algorithm=confident_fixmatch", "confidence_power=2",
                                "num_train_iter=3", "p_cutoff=0.1", plugins=[example["ConfidentFixMatchPlugin"]()])
    assert weighted.status == "completed"
    changed = weighted.algorithm.module.state_dict()
    assert any(not torch.equal(changed[name], value) for name, value in theirs.algorithm.module.state_dict().items())


def test_the_tutorial_data_set_trains_and_names_its_classes(tmp_path: Path) -> None:
    import semilearn
    from conftest import train_in_process

    example = run_block("add-a-data-set")
    result = train_in_process(tmp_path, "dataset=stripes", "num_labels=10", "num_train_iter=2",
                              plugins=[example["StripesPlugin"]()])
    assert result.status == "completed"
    data = result.algorithm.data
    assert data.name == "stripes" and data.image_shape == (1, 8, 8) and len(data.labelled_targets) == 10
    assert data.class_names == ["horizontal", "vertical"]
    path = tmp_path / "model.pt"
    import torch

    torch.save(result.algorithm.checkpoint_state(), path)
    assert semilearn.load(path).classes == ["horizontal", "vertical"]


def test_the_tutorial_modality_trains_fixmatch_and_refuses_pixel_algorithms(tmp_path: Path) -> None:
    import pytest

    from conftest import train_in_process
    from semilearn.errors import ConfigError

    example = run_block("add-a-modality")
    result = train_in_process(tmp_path / "ok", "dataset=blobs", "num_labels=30", "algorithm=fixmatch",
                              "num_train_iter=40", "num_eval_iter=40", "batch_size=8", "lr=0.1",
                              plugins=[example["FeaturesPlugin"]()])
    assert result.status == "completed"
    assert result.algorithm.data.summary() == "blobs: 30 labelled, 600 unlabelled, 150 test samples (features), " \
                                              "3 classes"
    assert result.algorithm.eval_history[-1]["top1_acc"] > 0.6  # it learns (chance: 1/3)
    with pytest.raises(ConfigError) as refused:
        train_in_process(tmp_path / "refused", "dataset=blobs", "num_labels=30", "algorithm=remixmatch",
                         plugins=[example["FeaturesPlugin"]()])
    assert str(refused.value) == ("algorithm 'remixmatch' needs image data (rotates its inputs and mixes them pixel "
                                  "by pixel (MixUp)); data set 'blobs' is features: set mixup_manifold: true to mix "
                                  "features instead (USB's usb_nlp and usb_audio files do); set rot_loss_ratio: 0 to "
                                  "drop the rotation loss (USB's usb_nlp and usb_audio files do)")


def test_the_tutorial_tracker_records_every_log_call_and_the_end(tmp_path: Path) -> None:
    from conftest import train_in_process

    example = run_block("add-a-tracker")
    tracker = example["CsvTracker"]()
    result = train_in_process(tmp_path, "num_train_iter=4", "num_log_iter=2", "num_eval_iter=4", plugins=[tracker])
    assert result.status == "completed"
    rows = (result.run_dir / f"tracker-{result.run_dir.name}-0.csv").read_text().splitlines()
    assert rows[0] == "step,split,metric,value" and rows[-1] == "# completed, exit code 0"
    logged = [row.split(",") for row in rows[1:-1]]
    assert {(int(step), split) for step, split, _, _ in logged} == {(2, "train"), (4, "train"), (4, "eval")}
    assert ["4", "eval", "top1_acc"] in [row[:3] for row in logged]
    assert tracker.attempted["log"] == 3 and sum(tracker.dropped.values()) == 0
