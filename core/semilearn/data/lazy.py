"""The lazy data path: samples read when a step needs them, by worker processes.

The in-memory path decodes a whole data set into uint8 tensors before the first step. The lazy
path keeps only what finds a sample: a :class:`SampleReader` (image files and how to resize
them, a ``torch.utils.data.Dataset`` ...) wrapped in :class:`LazySamples`, which stands where a
tensor of samples would (``SSLData.labelled_samples`` ...). Memory then does not grow with the
data set: a list of file names, and the batches in flight.

During training, each seeded index stream that draws from lazy samples gets a
:class:`StreamLoader`: a ``torch.utils.data.DataLoader`` whose batch sampler is a copy of the
stream, run ahead of it. ``num_workers`` processes read, decode and resize the rows of the
coming batches (``prefetch_factor`` batches each, into pinned memory on CUDA machines); the
engine's own stream draws the same indices when the step comes, and the loader hands over the
batch it read for them. What a step sees therefore depends on the seed, the step and the
sample, never on the number of workers or their timing, and a resumed run (whose streams are
restored from the checkpoint before the loaders start) reads exactly what the uninterrupted
run read. The engine then makes views on the device as it does for in-memory samples.

A sample that cannot be read is a :class:`~semilearn.errors.DataError` naming it, raised in
the training process as one line; with ``on_bad_sample: skip`` it is replaced by the first
readable sample of its batch and counted instead. A worker that dies stops the run with a
DataError saying which and how (no hang).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import ConfigError, DataError
from . import WORKER_START_VARIABLE
from .imagefiles import decode_file

__all__ = [
    "SampleReader",
    "ImageFileReader",
    "LazySamples",
    "StreamLoader",
    "LazyLoading",
    "select",
    "concatenate",
    "lazy_batches",
    "choose_loading",
    "available_memory",
    "storage",
    "LOADINGS",
]

LOADINGS = ("auto", "memory", "lazy")


@runtime_checkable
class SampleReader(Protocol):
    """What the lazy path reads samples through: ``len(reader)`` samples, each a uint8 tensor
    ``[C, H, W]`` of the same shape. It travels to worker processes, so it holds names and
    settings, not open files."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> torch.Tensor:
        """Sample ``index`` (0-based), read and resized; a DataError naming it if it cannot be."""
        ...


class ImageFileReader:
    """Image files, each converted to Pillow ``mode`` and passed through ``prepare`` (which must
    give ``size``, height and width): the reader of the file-backed data sets' lazy path."""

    def __init__(self, files: Sequence[str | Path], prepare: Callable[[Any], Any], size: tuple[int, int],
                 mode: str = "RGB") -> None:
        self.files = [str(path) for path in files]  # strings: smaller than Paths, for large lists
        self.prepare, self.size, self.mode = prepare, size, mode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        array = decode_file(self.files[index], self.prepare, self.size, self.mode)
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))  # one copy, writable


class LazySamples:
    """Samples read on demand: rows ``rows`` of ``reader`` (all of them when ``rows`` is None),
    each a uint8 tensor of ``sample_shape``. It stands where a tensor of samples would: ``len``,
    ``shape`` and ``dtype`` as a tensor's; :func:`~semilearn.data.modality.take` of a slice is
    a lazy subset, of an index tensor the rows read in this process."""

    dtype = torch.uint8
    device = torch.device("cpu")

    def __init__(self, reader: SampleReader, sample_shape: Sequence[int], rows: np.ndarray | None = None,
                 describe: Callable[[int], str] | None = None) -> None:
        self.reader = reader
        self.sample_shape = tuple(int(size) for size in sample_shape)
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self._describe = describe

    def __len__(self) -> int:
        return len(self.reader) if self.rows is None else len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.sample_shape)

    @property
    def nbytes(self) -> int:
        """What the samples would take decoded in memory."""
        return len(self) * math.prod(self.sample_shape)

    def source_index(self, row: int) -> int:
        return int(row) if self.rows is None else int(self.rows[row])

    def describe(self, row: int) -> str:
        """How a row is named in errors: its file, or its index in the reader."""
        index = self.source_index(row)
        if self._describe is not None:
            return self._describe(index)
        describe = getattr(self.reader, "describe", None)
        if callable(describe):
            return str(describe(index))
        files = getattr(self.reader, "files", None)
        return str(files[index]) if files is not None else f"sample {index} of {type(self.reader).__name__}"

    def subset(self, index: torch.Tensor | slice | Sequence[int] | np.ndarray) -> LazySamples:
        """The rows ``index`` of these samples, still lazy."""
        positions = np.arange(len(self))[index] if isinstance(index, slice) else \
            np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index, dtype=np.int64)
        rows = positions if self.rows is None else self.rows[positions]
        return self.with_rows(rows)

    def with_rows(self, rows: np.ndarray | None) -> LazySamples:
        """The same samples, rows ``rows`` of the reader (None: all of them)."""
        return LazySamples(self.reader, self.sample_shape, rows, self._describe)

    def draw_keys(self, stream: Any) -> Callable[[tuple[int, int], int], Any] | None:
        """What a worker reading a draw of ``stream`` is given beside each row (None: the row alone):
        samples made anew at each draw (CPU-side transforms) take a key of the draw and the place."""
        return None

    def stack(self, rows: list[Any]) -> Any:
        """Rows read one by one, as one batch (what a worker's batch is)."""
        return torch.stack(rows) if rows else torch.empty((0, *self.sample_shape), dtype=self.dtype)

    def batch(self, batch: Any) -> Any:
        """A batch the workers read, as a step takes it."""
        return batch

    def fetch(self, row: int) -> Any:
        """What the reader gives for row ``row``, unchecked (a failure names the sample)."""
        try:
            return self.reader[self.source_index(row)]
        except DataError:
            raise
        except Exception as error:  # a user's Dataset: name the sample, keep the cause
            raise DataError(f"{self.describe(row)}: reading it failed: {type(error).__name__}: {error}") from error

    def read(self, row: int, key: Any = None) -> torch.Tensor:
        """Row ``row``, read now, checked for its type and shape (``key``: see :meth:`draw_keys`)."""
        sample = self.fetch(row)
        if not isinstance(sample, torch.Tensor) or sample.dtype != torch.uint8 \
                or tuple(sample.shape) != self.sample_shape:
            got = f"{sample.dtype} {list(sample.shape)}" if isinstance(sample, torch.Tensor) else type(sample).__name__
            raise DataError(f"{self.describe(row)}: read as {got}, expected uint8 {list(self.sample_shape)} like "
                            "the other samples (img_size resizes every image to one size)")
        return sample

    def materialize(self, workers: int = 0) -> torch.Tensor:
        """Every row read into one uint8 tensor ``[N, ...]`` (with ``workers`` processes)."""
        if not len(self):
            return torch.empty((0, *self.sample_shape), dtype=torch.uint8)
        return torch.cat([batch for batch in lazy_batches(self, 256, workers)])

    def __repr__(self) -> str:
        return f"LazySamples({len(self)} x {list(self.sample_shape)}, {type(self.reader).__name__})"


def select(samples: Any, index: torch.Tensor | np.ndarray) -> Any:
    """Rows ``index`` of samples held in memory (a tensor), or still lazy (:class:`LazySamples`)."""
    if isinstance(samples, LazySamples):
        return samples.subset(index)
    return samples[torch.as_tensor(index)]


def concatenate(first: Any, second: Any) -> Any:
    """``first`` then ``second``: tensors joined, or lazy rows of one reader joined (still lazy)."""
    if isinstance(first, LazySamples) and isinstance(second, LazySamples):
        if first.reader is not second.reader:
            raise ValueError("lazy samples of two readers cannot be joined")
        every = np.arange(len(first.reader))
        rows = np.concatenate([every if part.rows is None else part.rows for part in (first, second)])
        return first.with_rows(rows)
    return torch.cat([first, second])


# ---------------------------------------------------------------------------
# Reading in worker processes.
# ---------------------------------------------------------------------------


class _Rows(torch.utils.data.Dataset[tuple[int, Any]]):
    """What a loader's workers read: ``(row, sample or None, error or None)``, so that a sample
    that cannot be read comes back as one line rather than a worker's traceback."""

    def __init__(self, samples: LazySamples) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: int | tuple[int, Any]) -> tuple[int, Any]:
        row, key = item if isinstance(item, tuple) else (item, None)
        try:
            return row, self.samples.read(row) if key is None else self.samples.read(row, key)
        except DataError as error:
            return row, str(error)


def _collate(items: list[tuple[int, Any]]) -> tuple[torch.Tensor, torch.Tensor | None, list[tuple[int, str]]]:
    rows = torch.tensor([row for row, _ in items], dtype=torch.int64)
    good = [sample for _, sample in items if not isinstance(sample, str)]
    errors = [(position, sample) for position, (_, sample) in enumerate(items) if isinstance(sample, str)]
    if not good:
        return rows, None, errors
    if errors:  # keep the batch's size: a bad sample's place holds the first readable one
        filler = good[0]
        good = [filler if isinstance(sample, str) else sample for _, sample in items]
    # stacked as PyTorch's own collate stacks: in a worker, straight into shared memory (no copy to send it)
    return rows, torch.utils.data.default_collate(good), errors


def _loader(samples: LazySamples, batch_sampler: Any, workers: int, prefetch_factor: int,
            pin_memory: bool) -> torch.utils.data.DataLoader[Any]:
    return torch.utils.data.DataLoader(
        _Rows(samples), batch_sampler=batch_sampler, num_workers=workers, collate_fn=_collate,
        pin_memory=pin_memory, prefetch_factor=prefetch_factor if workers else None,
        persistent_workers=False, generator=quiet_generator(),
        multiprocessing_context=worker_context() if workers and isinstance(samples.reader, ImageFileReader) else None,
        worker_init_fn=_FollowTheRun(os.getpid()) if workers else None,
    )


class _FollowTheRun:
    """A worker's start: a thread that ends the worker once the training process is gone. A
    worker started by the fork server is the server's child, so PyTorch's own check (is my parent
    still there?) cannot see a training process killed with SIGKILL."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __call__(self, worker_id: int) -> None:
        import threading

        threading.Thread(target=self._watch, name="semilearn-follow-the-run", daemon=True).start()

    def _watch(self) -> None:
        import time

        while self._alive():
            time.sleep(0.5)
        os._exit(0)

    def _alive(self) -> bool:
        try:  # a process killed and not yet reaped is a zombie: gone, though its pid answers
            with open(f"/proc/{self.pid}/stat", "rb") as handle:
                return handle.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
        except FileNotFoundError:
            return False
        except OSError:  # no /proc here
            try:
                os.kill(self.pid, 0)
            except (ProcessLookupError, PermissionError):
                return False
            return True


def worker_context() -> Any:
    """How the workers reading image files start: ``SEMILEARN_WORKER_START`` (``forkserver``,
    ``spawn`` or ``fork``; the platform's default, fork on Linux, when unset or unavailable).

    The ``semilearn`` command sets ``forkserver``: workers then start from a small process that
    imported torch and the readers once. A worker forked from the training process inherits its
    memory (network, optimizer, activations) and keeps a private copy of every page training
    then changes, up to the training process's size per worker. A fork server or spawn imports
    the main module again in each worker, which a script without ``if __name__ == "__main__":``
    cannot survive: from Python the default stays PyTorch's own. The reader (its file list) is
    pickled to each worker. A ``Dataset`` of the user's always keeps the platform's default: it may
    hold its data in memory, which forking shares, or be defined in a notebook."""
    import multiprocessing

    method = os.environ.get(WORKER_START_VARIABLE, "")
    if method not in multiprocessing.get_all_start_methods():
        return None
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["torch", "semilearn.data.lazy"])
    return context


def quiet_generator() -> torch.Generator:
    """A generator for a DataLoader's base seed, which it otherwise draws from torch's global one:
    reading data must not move the draws of the network's initialisation or of a step."""
    return torch.Generator().manual_seed(0)


_DEAD_WORKER = re.compile(r"DataLoader worker \(pid\(?s?\)? ?([\d, {}]+)\)? (is killed by signal: .*|exited unexpectedly.*)")


def _worker_failure(error: RuntimeError, what: str) -> DataError | None:
    """A DataLoader's report of a dead worker as one line, or None for other errors."""
    text = str(error).splitlines()[0] if str(error) else ""
    match = _DEAD_WORKER.search(text)
    if match is None:
        return None
    return DataError(f"a worker process reading {what} died (pid {match.group(1).strip(' {}')}: "
                     f"{match.group(2).rstrip('. ')}); the run stops here, resume from the last checkpoint")


class _Skipped:
    """How many reads failed and were replaced (``on_bad_sample: skip``), and the first failure."""

    def __init__(self) -> None:
        self.count = 0
        self.first: str | None = None


def _checked(batch: tuple[torch.Tensor, torch.Tensor | None, list[tuple[int, str]]], samples: LazySamples,
             on_bad_sample: str, skipped: _Skipped) -> torch.Tensor:
    rows, data, errors = batch
    if errors and on_bad_sample != "skip":
        raise DataError(errors[0][1] + " (or set on_bad_sample: skip to go on without it)")
    if data is None:
        raise DataError(f"no sample of a batch of {len(rows)} could be read; the first: {errors[0][1]}")
    if errors:
        skipped.count += len(errors)
        skipped.first = skipped.first or errors[0][1]
    return data


def lazy_batches(samples: LazySamples, batch_size: int, workers: int = 0, prefetch_factor: int = 2,
                 pin_memory: bool = False, on_bad_sample: str = "fail") -> Iterator[torch.Tensor]:
    """The rows of ``samples`` in order, ``batch_size`` at a time, read by ``workers`` processes
    (evaluation and prediction on lazy data)."""
    order = [list(range(start, min(start + batch_size, len(samples))))
             for start in range(0, len(samples), batch_size)]
    loader = _loader(samples, order, workers, prefetch_factor, pin_memory)
    skipped = _Skipped()
    iterator = iter(loader)
    try:
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except RuntimeError as error:
                failure = _worker_failure(error, "the evaluation data")
                if failure is None:
                    raise
                raise failure from None
            yield samples.batch(_checked(batch, samples, on_bad_sample, skipped))
    finally:
        del iterator


class _Ahead:
    """A copy of a sample stream, drawn ahead of it: the loader's batch sampler (this rank's rows,
    each with the key of its draw and place where the samples take one)."""

    def __init__(self, stream: Any, keys: Callable[[tuple[int, int], int], Any] | None = None) -> None:
        self.stream, self.keys = stream, keys

    def __iter__(self) -> Iterator[list[Any]]:
        while True:
            position = self.stream.position
            rows = self.stream.next().tolist()
            if self.keys is None:
                yield rows
            else:
                start = self.stream.rank * self.stream.local_batch_size  # the place in the global batch
                yield [(row, self.keys(position, start + place)) for place, row in enumerate(rows)]


class StreamLoader:
    """The batches of one seeded index stream over lazy samples, read ahead by worker processes.

    Made when training starts, from the stream's position then (after a resume, the restored
    one): a copy of the stream draws ahead and feeds the loader; :meth:`batch` takes the batch
    read for the indices the stream itself draws at its step, and checks they are the same.
    """

    def __init__(self, stream: Any, samples: LazySamples, workers: int, prefetch_factor: int = 2,
                 pin_memory: bool = False, on_bad_sample: str = "fail") -> None:
        self.stream, self.samples, self.on_bad_sample = stream, samples, on_bad_sample
        self.skipped = _Skipped()
        self.name = getattr(stream, "name", "sample")
        copy = stream.copy()
        self._loader = _loader(samples, _Ahead(copy, samples.draw_keys(copy)), workers, prefetch_factor, pin_memory)
        self._batches: Iterator[Any] | None = iter(self._loader)
        self._next: Any = None

    def peek(self) -> torch.Tensor:
        """The indices of the next batch read (waiting for it)."""
        if self._next is None:
            if self._batches is None:
                raise RuntimeError(f"the {self.name} loader is closed")
            try:
                self._next = next(self._batches)
            except RuntimeError as error:
                failure = _worker_failure(error, f"the {self.name} samples")
                if failure is None:
                    raise
                self.close()
                raise failure from None
        return self._next[0]  # type: ignore[no-any-return]

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """The samples of ``index``, the indices the stream drew for this step."""
        if not torch.equal(self.peek(), index.cpu()):
            raise RuntimeError(f"the {self.name} loader read ahead of another draw than the stream's: a stream "
                               "drew outside the step's batch (draw from lazy data with gather in sample_batch)")
        batch, self._next = self._next, None
        return self.samples.batch(_checked(batch, self.samples, self.on_bad_sample, self.skipped))

    def close(self) -> None:
        """Stop the worker processes (the loader is done with)."""
        self._batches = self._next = None  # the iterator's finaliser shuts its workers down


class LazyLoading:
    """A run's loaders of lazy samples: the engine registers each seeded stream with the samples
    it draws from (:meth:`register`); while :meth:`running`, :meth:`gather` gives the rows a
    stream drew, read ahead by ``num_workers`` processes per stream."""

    def __init__(self, config: Any, device: torch.device) -> None:
        self.workers = int(config.get("num_workers", 0) or 0)
        self.prefetch_factor = int(config.get("prefetch_factor", 2) or 2)
        self.on_bad_sample = str(config.get("on_bad_sample", "fail"))
        self.pin_memory = device.type == "cuda" and torch.cuda.is_available()
        self._streams: list[tuple[Any, Any]] = []
        self._loaders: dict[int, list[StreamLoader]] = {}
        self.skipped = _Skipped()

    def register(self, stream: Any, samples: Any) -> Any:
        """Note that ``stream`` draws rows of ``samples``; returns the stream."""
        self._streams.append((stream, samples))
        return stream

    @property
    def active(self) -> bool:
        return any(isinstance(samples, LazySamples) for _, samples in self._streams)

    def skipped_report(self) -> str | None:
        """What ``on_bad_sample: skip`` replaced while training, in one line (None: nothing)."""
        if not self.skipped.count:
            return None
        return (f"on_bad_sample: skip: {self.skipped.count} reads of samples could not be read and were replaced by "
                f"another sample of their batch (the first: {self.skipped.first})")

    def running(self) -> Any:
        """A context: the loaders of every registered stream over lazy samples, from the streams'
        positions now, closed at its end."""
        import contextlib

        @contextlib.contextmanager
        def started() -> Iterator[None]:
            for stream, samples in self._streams:
                if isinstance(samples, LazySamples):
                    self._loaders.setdefault(id(samples), []).append(StreamLoader(
                        stream, samples, self.workers, self.prefetch_factor, self.pin_memory, self.on_bad_sample))
            try:
                yield
            finally:
                for loaders in self._loaders.values():
                    for loader in loaders:
                        self.skipped.count += loader.skipped.count
                        self.skipped.first = self.skipped.first or loader.skipped.first
                        loader.close()
                self._loaders.clear()

        return started()

    def gather(self, samples: LazySamples, index: torch.Tensor) -> torch.Tensor:
        """Rows ``index`` of ``samples`` (host memory): read ahead by the loader of the stream
        that drew them, or read now where no loader runs (outside training)."""
        for loader in self._loaders.get(id(samples), []):
            if torch.equal(loader.peek(), index.cpu()):
                return loader.batch(index)
        from .modality import take

        return take(samples, index)  # type: ignore[return-value]

    def batches(self, samples: LazySamples, batch_size: int) -> Iterator[torch.Tensor]:
        """The rows of ``samples`` in order, ``batch_size`` at a time, read by the workers."""
        return lazy_batches(samples, batch_size, self.workers, self.prefetch_factor, self.pin_memory,
                            self.on_bad_sample)


# ---------------------------------------------------------------------------
# Choosing the path.
# ---------------------------------------------------------------------------


def available_memory() -> int | None:
    """Bytes of memory the system could give now (``MemAvailable``), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def choose_loading(config: Any, decoded_bytes: int, prefer_lazy: bool = False) -> str:
    """``"memory"`` or ``"lazy"`` for a data set whose samples take ``decoded_bytes`` decoded.

    ``data_loading: memory`` or ``lazy`` decides; ``auto`` reads lazily where the data set
    prefers it (``prefer_lazy``: semi_aves, semi_inat, imagenet) or where the samples would take more
    than a quarter of the memory available now.
    """
    choice = str(config.get("data_loading", "auto"))
    if choice not in LOADINGS:
        raise ConfigError(f"data_loading must be one of {', '.join(LOADINGS)}, got {choice!r}")
    if choice != "auto":
        return choice
    if prefer_lazy:
        return "lazy"
    free = available_memory()
    return "lazy" if free is not None and decoded_bytes > free // 4 else "memory"


def _size(bytes_: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if bytes_ < 1000 or unit == "GB":
            return f"{bytes_:.0f} {unit}" if unit == "B" else f"{bytes_:.1f} {unit}"
        bytes_ /= 1000
    return f"{bytes_:.1f} GB"


def storage(data: Any, config: Any) -> str:
    """Where a data set's samples are, for the banner: ``in memory (N MB)``, or ``read as steps need
    them by W workers per stream (N GB decoded)``."""
    from .transfer import data_bytes

    fields = (data.labelled_samples, data.unlabelled_samples, data.test_samples)
    lazy = [field for field in fields if isinstance(field, LazySamples)]
    if not lazy:
        return f"in memory ({_size(data_bytes(*fields))})"
    workers = int(config.get("num_workers", 0) or 0)
    readers = f"by {workers} worker{'s' if workers != 1 else ''} per stream" if workers else "by the training process"
    decoded = sum(field.nbytes for field in (data.unlabelled_samples, data.test_samples) if isinstance(field, LazySamples))
    return f"read from disk as steps need them, {readers} ({_size(decoded)} if decoded)"
