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
