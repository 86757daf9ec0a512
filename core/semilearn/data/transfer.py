"""Batches from data kept in host memory, for data sets larger than the device.

Images stay as uint8 on the host (pinned when CUDA is there); each step gathers the drawn
rows into one of two pinned staging buffers and copies them to the device without
blocking, so the copy overlaps the previous step's compute. A buffer is reused only after
the copy that last read it has finished (a CUDA event), so two steps never share one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["HostGather", "data_bytes"]


def data_bytes(*samples: Any) -> int:
    """Bytes held by tensors, or by each tensor of dicts of them (``None`` counts 0)."""
    total = 0
    for item in samples:
        for tensor in item.values() if isinstance(item, Mapping) else [item]:
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


class HostGather:
    """``gather(images, index)``: rows ``index`` of host ``images`` as a tensor on ``device``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.pinned = device.type == "cuda" and torch.cuda.is_available()
        self._buffers: dict[tuple[int, int], list[tuple[torch.Tensor, torch.cuda.Event | None]]] = {}
        self._turn: dict[tuple[int, int], int] = {}

    def gather(self, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        index = index.to("cpu")
        if not self.pinned:
            return images.index_select(0, index).to(self.device)
        key = (id(images), len(index))
        if key not in self._buffers:
            shape = (len(index), *images.shape[1:])
            self._buffers[key] = [
                (torch.empty(shape, dtype=images.dtype, pin_memory=True), None) for _ in range(2)
            ]
            self._turn[key] = 0
        turn = self._turn[key]
        self._turn[key] = 1 - turn
        buffer, previous_copy = self._buffers[key][turn]
        if previous_copy is not None:
            previous_copy.synchronize()  # the copy that read this buffer two steps ago
        torch.index_select(images, 0, index, out=buffer)
        on_device = buffer.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._buffers[key][turn] = (buffer, event)
        return on_device
