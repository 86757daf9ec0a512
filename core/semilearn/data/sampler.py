"""Seeded, resumable streams of sample indices.

A stream walks through random permutations of ``range(size)``: each pass is a fresh
permutation drawn from the stream's own generator, and a batch that crosses the end of a
pass takes the rest of it and the head of the next one. Batches are *global*: with
``world_size`` processes every rank draws the same global batch and keeps its own
contiguous slice, so the ranks see disjoint samples and together do the work of a single
process with the same global batch. The whole position (generator state, current
permutation, offset) is in :meth:`SampleStream.state_dict`, so a resumed run draws
exactly the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError

__all__ = ["SampleStream"]


class SampleStream:
    """Endless stream of index batches over ``size`` samples.

    Args:
        size: number of samples to draw from.
        batch_size: global batch size (all ranks together).
        seed: seed of the stream's generator.
        device: where permutations and indices live (the data's device).
        rank, world_size: this process's share of each global batch.
        name: used in error messages ("labelled", "unlabelled").
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
        name: str = "sample",
    ) -> None:
        if size <= 0:
            raise ConfigError(f"the {name} stream has no samples to draw from")
        if batch_size % world_size:
            raise ConfigError(
                f"the {name} batch ({batch_size}) must split evenly across {world_size} processes"
            )
        self.size = size
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.local_batch_size = batch_size // world_size
        self.name = name
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self._permutation = self._new_permutation()
        self._offset = 0
        self.passes = 0

    def _new_permutation(self) -> torch.Tensor:
        return torch.randperm(self.size, generator=self.generator, device=self.device)

    @property
    def position(self) -> tuple[int, int]:
        """Where the next draw starts: (passes over the samples, offset in this pass's order)."""
        return self.passes, self._offset

    def next_global(self) -> torch.Tensor:
        """The next global batch of indices (every rank gets the same)."""
        parts = []
        needed = self.batch_size
        while needed:
            if self._offset == self.size:
                self._permutation = self._new_permutation()
                self._offset = 0
                self.passes += 1
            take = min(needed, self.size - self._offset)
            parts.append(self._permutation[self._offset : self._offset + take])
            self._offset += take
            needed -= take
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def next(self) -> torch.Tensor:
        """The next batch of indices for this rank."""
        batch = self.next_global()
        if self.world_size == 1:
            return batch
        start = self.rank * self.local_batch_size
        return batch[start : start + self.local_batch_size]

    def copy(self) -> SampleStream:
        """A stream at this one's position, drawing the same batches from here on."""
        twin = SampleStream(self.size, self.batch_size, 0, self.device, self.rank, self.world_size, self.name)
        twin.load_state_dict(self.state_dict())
        return twin

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "permutation": self._permutation.cpu(),
            "offset": self._offset,
            "passes": self.passes,
            "size": self.size,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["size"] != self.size or state["batch_size"] != self.batch_size:
            raise ConfigError(
                f"the checkpoint's sample stream drew batches of {state['batch_size']} from "
                f"{state['size']} samples; this run draws {self.batch_size} from {self.size}: "
                "resume with the same data set, num_labels and batch sizes"
            )
        self.generator.set_state(state["generator"])
        self._permutation = state["permutation"].to(self.device)
        self._offset = int(state["offset"])
        self.passes = int(state["passes"])
