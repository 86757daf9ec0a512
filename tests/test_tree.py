"""semilearn.tree.map_tree: the one recursive copy of nested data."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from semilearn.tree import map_tree


def test_map_tree_rebuilds_containers_and_maps_every_other_value() -> None:
    source = {"a": [1, (2, 3)], "b": OrderedDict(c="x")}
    copy = map_tree(source)
    assert copy == {"a": [1, (2, 3)], "b": {"c": "x"}}
    assert copy["a"] is not source["a"] and type(copy["a"][1]) is tuple and type(copy["b"]) is dict
    assert map_tree(source, lambda leaf: leaf * 2) == {"a": [2, (4, 6)], "b": {"c": "xx"}}


@pytest.mark.together  # the checkpoint plugin's writer
def test_a_checkpoint_snapshot_shares_no_tensor_memory_with_the_run() -> None:
    snapshot = pytest.importorskip("semilearn_checkpoint.writer").snapshot
    weight = torch.ones(3)
    state = {"model": OrderedDict(weight=weight), "history": [{"step": 1}], "shape": (3,)}
    copy = snapshot(state)
    weight.add_(1)
    assert torch.equal(copy["model"]["weight"], torch.ones(3))
    assert copy["history"] == [{"step": 1}] and copy["shape"] == (3,)
