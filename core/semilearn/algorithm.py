"""``AlgorithmBase``: the training loop, top to bottom in lifecycle order.

An SSL algorithm subclasses :class:`AlgorithmBase` and writes :meth:`train_step`: the
math of one step on a batch of views, returning the loss and the step's metrics as
tensors. Everything around it -- sampling and augmenting batches on the device, the
optimizer and schedule, mixed precision, the hook calls, interrupts, resume -- is here.
What is not the loop itself (EMA, evaluation, throughput, logging, checkpoints) is a
plugin.

The lifecycle (see :mod:`semilearn.hookspecs` for each hook point)::

    before_run
    load_checkpoint                      (on resume)
    per epoch:  before_train_epoch
      per step:   before_train_step
                  train step             (sample, augment, forward, backward, update)
                  after_train_step
                  log(split="train")     (every num_log_iter steps and the last)
                  evaluate, after_evaluate, log(split="eval")   (every num_eval_iter and the last)
                  on_step_end
                after_train_epoch
    after_run(status)                    (always: completed | failed | interrupted)
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from .cli import CONSOLE_EXTRA
from .config import Config, Option
from .data.lazy import LazyLoading, LazySamples
from .data.modality import Views, count, modality_of, move, samples_device, take
from .data.sampler import SampleStream
from .data.transfer import HostGather
from .distributed import StopVote, all_reduce_sum, global_rank, is_distributed, world_size
from .errors import CheckpointError, ConfigError, SemilearnError, TrainingError
from .metrics import missing_monitor_message
from .optim import build_optimizer, cosine_schedule_with_warmup
from .rundir import CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION

if TYPE_CHECKING:
    from .data.base import SSLData
    from .plugins import PluginManager

__all__ = ["AlgorithmBase", "CHECKPOINT_FORMAT", "CHECKPOINT_FORMAT_VERSION", "RunLogger"]

_SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class RunLogger:
    """Where the engine reports what it does (the ``semilearn`` logger, rank 0 only)."""

    def __init__(self) -> None:
        import logging

        self._logger = logging.getLogger("semilearn")

    def info(self, message: str, console: bool = True) -> None:
        """``console=False``: to the run's files only (a line the console showed already)."""
        if global_rank() == 0:
            self._logger.info(message, extra={CONSOLE_EXTRA: console})

    def warning(self, message: str) -> None:
        if global_rank() == 0:
            self._logger.warning(message)

    def error(self, message: str) -> None:
        self._logger.error(message)


class AlgorithmBase:
    """Base class of SSL algorithms.

    Class attributes a subclass sets:

    * ``name`` and ``description`` -- shown by ``semilearn algorithms``;
    * ``config_options`` -- its hyperparameters (USB's key names), validated like every key;
    * ``uses_unlabelled`` -- whether steps draw unlabelled batches (False for supervised);
    * ``labels_every_image`` -- whether the labelled set is the whole training set, labels
      and all, where the data set knows them (USB's ``fullysupervised``).

    What a plugin may read, write and call of it is :class:`semilearn.RunView`, the type
    the hook points give ``algorithm``; the rest is the engine's.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    config_options: ClassVar[tuple[Option, ...]] = ()
    uses_unlabelled: ClassVar[bool] = True
    labels_every_image: ClassVar[bool] = False
    # The modalities whose views the algorithm can use (None: any). Algorithms that work on
    # pixels (rotations, MixUp of inputs) name "image", and are refused on other data unless
    # supports_modality (which may read the config) accepts it.
    modalities: ClassVar[tuple[str, ...] | None] = None
    # what needs those modalities, for the refusal ("rotates its inputs" ...)
    modality_reason: ClassVar[str] = ""

    def __init__(
        self,
        config: Config,
        data: SSLData,
        model: nn.Module,
        manager: PluginManager,
        run_dir: Path,
        device: torch.device,
    ) -> None:
        self.started = time.monotonic()  # the run's clock: its summary's duration counts from here
        self.config = config
        self.data = data
        self.net_name = resolved_net_name(config, data)
        self.device = device
        self.run_dir = Path(run_dir)
        self.manager = manager
        self.hook = manager.hook
        self.log = RunLogger()
        self.rank = global_rank()
        self.world_size = world_size()

        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        module = model.to(device).to(memory_format=self.memory_format)  # type: ignore[call-overload]
        if config.sync_bn and self.world_size > 1:
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        self.module: nn.Module = module
        self.model: nn.Module = _wrap_for_distributed(module, device) if is_distributed() else module
        if config.compile:
            self.model = torch.compile(self.model)  # type: ignore[assignment]
        self.ema_model: nn.Module | None = None
        self.optimizer = build_optimizer(self.module, config)
        self.scheduler = cosine_schedule_with_warmup(self.optimizer, config.num_train_iter, config.num_warmup_iter)
        self.amp_dtype = self._amp_dtype()
        self.amp = bool(config.amp)
        if self.amp and device.type == "cpu" and self.amp_dtype == torch.bfloat16 and not cpu_has_fast_bfloat16():
            self.amp = False  # bfloat16 emulated without AVX-512: about ten times slower than float32
            self.log.warning("amp: this CPU has no native bfloat16 (AVX2 only), where bfloat16 autocast runs about "
                             "ten times slower than float32: training in float32 instead")
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=self.amp_dtype == torch.float16 and device.type == "cuda"
        )

        self.num_train_iter: int = config.num_train_iter
        self.iters_per_epoch: int = math.ceil(config.num_train_iter / config.epoch)
        self.global_step = 0
        self.epoch = 0
        # Watch for a non-finite loss on the device: the first such step and how many there
        # were, read back only where the host waits anyway (see check_finite).
        self._nonfinite_first = torch.zeros((), dtype=torch.long, device=device)
        self._nonfinite_count = torch.zeros((), dtype=torch.long, device=device)
        self._nonfinite_reported = 0
        self.last_checkpoint: tuple[str, int] | None = None  # (path, step), set by the plugin that writes them
        self.eval_history: list[dict[str, float]] = []
        self._monitor_missing_said = False
        self.resuming = False
        self.status: str | None = None
        self.error: BaseException | None = None  # what ended the run, when something did
        self.stop_reason: str | None = None
        self.stopped_by_plugin = False
        self._signal_received: signal.Signals | None = None
        self._stop_vote: StopVote | None = None
        self._ending = False  # after_run has begun

        # Every random draw of a step comes from generators seeded by (seed, rank, step)
        # at its start (see _seed_step), so a resumed run draws exactly what the
        # uninterrupted one would have, on every rank.
        self.augment_generator = torch.Generator(device=device)
        # the data set's modality makes the views (for images: BatchAugment, batched on the device)
        self.modality = modality_of(data)
        self.check_modality(data, config)
        self.augment: Views = manager.registry("modality").get(self.modality)(data, self.augment_generator)
        if hasattr(self.augment, "algorithm"):  # views that name the algorithm in their errors
            self.augment.algorithm = f"algorithm '{self.name}'"
        # Samples live on the device, or in (pinned) host memory for data sets too big for it.
        self.data_device = samples_device(data.labelled_samples)
        host_resident = self.data_device != device or config.data_device == "host"
        self._host_gather = HostGather(device) if host_resident else None
        # samples read lazily (data_loading: lazy) come from worker processes, per stream
        self.lazy_loading = LazyLoading(config, device)
        self.labelled_stream = self.sample_stream(data.labelled_samples, config.batch_size, "labelled")
        self.unlabelled_stream: SampleStream | None = None
        if self.uses_unlabelled:
            self.unlabelled_stream = self.sample_stream(data.unlabelled_samples,
                                                        config.batch_size * config.uratio, "unlabelled")

    # ------------------------------------------------------------------
    # The run, in lifecycle order.
    # ------------------------------------------------------------------

    @classmethod
    def supports_modality(cls, modality: str, config: Config) -> bool:
        """Whether the algorithm, as ``config`` sets it up, can use views of ``modality``.

        By default: ``modality`` is one of :attr:`modalities`. An algorithm whose pixel work
        can be switched off (MixUp of features instead of inputs, no rotation loss) says so
        here, and names the settings in :meth:`modality_remedy`.
        """
        return cls.modalities is None or modality in cls.modalities

    @classmethod
    def views_per_sample(cls, config: Config) -> tuple[int, int]:
        """How many weak and strong views of each drawn sample a step reads at most (FixMatch:
        one of each). CPU-side transforms (:mod:`semilearn.data.transformed`) make that many
        per sample in the workers; an algorithm whose ``sample_batch`` reads more says so here."""
        return 1, 1

    @classmethod
    def modality_remedy(cls, modality: str, config: Config) -> str:
        """The settings that would make ``modality`` usable, for the refusal ("" when none would)."""
        return ""

    @classmethod
    def check_modality(cls, data: SSLData, config: Config) -> None:
        """ConfigError when the algorithm, as ``config`` sets it up, cannot use the views of ``data``'s modality."""
        modality = modality_of(data)
        if cls.supports_modality(modality, config):
            return
        needed = " or ".join(cls.modalities or ())
        reason = f" ({cls.modality_reason})" if cls.modality_reason else ""
        remedy = cls.modality_remedy(modality, config)
        raise ConfigError(
            f"algorithm '{cls.name}' needs {needed} data{reason}; data set '{data.name}' is {modality}"
            + (f": {remedy}" if remedy else "")
        )

    def fit(
        self, resume_state: Mapping[str, Any] | None = None, banner: Sequence[tuple[str, str]] = ()
    ) -> str:
        """Train to ``num_train_iter`` (or ``stop_step``, or an interrupt) and return the status.

        ``banner`` holds ``(level, message)`` lines describing the run; they are logged once
        plugins are set up (after ``before_run``), so log files receive them too.
        """
        status = "failed"
        error: BaseException | None = None
        # The handlers stay through after_run: a launcher stopping the job (torchrun sends SIGTERM
        # when another process fails) lets this one finish its checkpoint, trackers and report.
        with self._stop_on_signals():
            try:
                if is_distributed():
                    self._stop_vote = StopVote()
                self.resuming = resume_state is not None
                self.hook.before_run(algorithm=self)
                for level, message in banner:
                    if level == "warning":
                        self.log.warning(message)
                    else:  # "file": shown on the console before the run was built (the headline)
                        self.log.info(message, console=level != "file")
                if resume_state is not None:
                    self.load_checkpoint_state(resume_state)
                    self.hook.load_checkpoint(algorithm=self, state=resume_state)
                    self.log.info(f"resumed at step {self.global_step} of {self.num_train_iter}")
                self.model.train()
                with self.lazy_loading.running():  # from the streams' positions (a resume's included)
                    self._train()
                replaced = self.lazy_loading.skipped_report()
                if replaced:
                    self.log.warning(replaced)
                status = "completed" if self.global_step >= self.num_train_iter else "interrupted"
            except KeyboardInterrupt as interrupt:
                status, error, self.stop_reason = "interrupted", interrupt, "SIGINT"
                raise
            except BaseException as failure:
                error = failure
                raise
            finally:
                self.status, self.error = status, error
                self._ending = True
                if self._stop_vote is not None:
                    self._stop_vote.close()
                    self._stop_vote = None
                try:
                    self._after_run(status, error)
                finally:
                    # The run is over: drop DistributedDataParallel's reducer (which holds the process
                    # group and its last gradient buckets), so the group can be destroyed while Python
                    # is alive; gloo's threads outliving the interpreter abort the process at exit.
                    if is_distributed():
                        self.model = self.module
        return status

    def _train(self) -> None:
        last_step = self.num_train_iter
        stop_step = self.config.stop_step
        if stop_step is not None and self.global_step >= stop_step and self.global_step < last_step:
            self.stop_reason = "stop_step"  # a resumed run already at its stop step does nothing
        while self.global_step < last_step and not self.stop_reason:
            self.epoch = self.global_step // self.iters_per_epoch
            epoch_end = min((self.epoch + 1) * self.iters_per_epoch, last_step)
            self.hook.before_train_epoch(algorithm=self, epoch=self.epoch)
            while self.global_step < epoch_end and not self.stop_reason:
                self._one_step(self.global_step + 1)
            if self.stop_reason:
                break
            self.hook.after_train_epoch(algorithm=self, epoch=self.epoch)
        self._check_finite_everywhere()
        self._report_nonfinite()

    def _one_step(self, step: int) -> None:
        config = self.config
        self.hook.before_train_step(algorithm=self, step=step)
        self._seed_step(step)
        outputs = self.run_train_step()
        self.global_step = step
        self.hook.after_train_step(algorithm=self, step=step, outputs=outputs)
        last = step == self.num_train_iter
        if step % config.num_log_iter == 0 or last:
            self._log_train(step, outputs)
        if step % config.num_eval_iter == 0 or last:
            self._evaluate(step)
        self.hook.on_step_end(algorithm=self, step=step)
        if last:
            return
        if config.stop_step is not None and step >= config.stop_step:
            self.stop_reason = "stop_step"
        signal_number = int(self._signal_received or 0)
        if self._stop_vote is not None:
            signal_number = self._stop_vote.exchange(signal_number)
        if signal_number and not self.stop_reason:
            self.stop_reason = signal.Signals(signal_number).name

    def _log_train(self, step: int, outputs: Mapping[str, torch.Tensor]) -> None:
        names = list(outputs)
        # The non-finite count rides along (summed over the processes): one transfer for both.
        stacked = torch.stack([*(outputs[name].detach().float() for name in names),
                               self._nonfinite_count.to(torch.float32)])
        if self.world_size > 1:  # the mean over the ranks, at log points only
            stacked = all_reduce_sum(stacked)
            stacked[:-1] /= self.world_size
        *values, elsewhere = stacked.tolist()
        self.check_finite(_elsewhere=int(elsewhere))
        metrics: dict[str, float] = dict(zip(names, values, strict=True))
        metrics["lr"] = float(self.optimizer.param_groups[-1]["lr"])  # as USB: the top layer's, with layer_decay
        self._log("train", step, metrics)

    def _evaluate(self, step: int) -> None:
        self._check_finite_everywhere(weights=True)  # no evaluation (nor "best" checkpoint) of spoilt weights
        metrics = self.hook.evaluate(algorithm=self, step=step)
        if metrics is None:
            return
        metrics = {name: float(value) for name, value in metrics.items()}
        if self.config.monitor not in metrics and not self._monitor_missing_said:
            self._monitor_missing_said = True  # said once per process: the same plugin answers every evaluation
            self.log.warning(missing_monitor_message(self.config.monitor, metrics))
        self.eval_history.append({"step": step, **metrics})
        self.hook.after_evaluate(algorithm=self, step=step, metrics=metrics)
        self._log("eval", step, metrics)

    def _log(self, split: str, step: int, metrics: dict[str, float]) -> None:
        for extra in self.hook.collect_metrics(algorithm=self, step=step, split=split):
            if extra:
                metrics.update({name: float(value) for name, value in extra.items()})
        self.hook.log(algorithm=self, step=step, split=split, metrics=metrics)

    def _after_run(self, status: str, error: BaseException | None) -> None:
        def report(plugin: str, failure: BaseException) -> None:
            self.log.error(f"plugin '{plugin}' failed in after_run: {type(failure).__name__}: {failure}")

        self.manager.call_each("after_run", report, algorithm=self, status=status, error=error)

    # ------------------------------------------------------------------
    # One training step.
    # ------------------------------------------------------------------

    def _seed_step(self, step: int) -> None:
        """Seed every generator a step may draw from by (seed, rank, step)."""
        seed = _derived_seed(self.config.seed, f"step:{step}", self.rank)
        self.augment_generator.manual_seed(seed)
        torch.default_generator.manual_seed(seed + 1)
        if self.device.type == "cuda":
            torch.cuda.default_generators[self.device.index or 0].manual_seed(seed + 2)
        random.seed(seed + 3)
        np.random.seed((seed + 4) % (2**32))

    def run_train_step(self) -> dict[str, torch.Tensor]:
        """Sample, augment, forward, backward and update; return the step's outputs."""
        batch = self.sample_batch()
        if self.config.channels_last:
            batch = {name: _channels_last(value) if isinstance(value, torch.Tensor) else value
                     for name, value in batch.items()}
        with self.autocast():
            loss, outputs = self.train_step(**batch)
        self._watch_loss(loss)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return {"loss": loss.detach(), **{name: value.detach() for name, value in outputs.items()}}

    def _watch_loss(self, loss: torch.Tensor) -> None:
        bad = ~torch.isfinite(loss.detach())
        step = self.global_step + 1
        self._nonfinite_first = torch.where((self._nonfinite_first == 0) & bad, step, self._nonfinite_first)
        self._nonfinite_count = self._nonfinite_count + bad.long()

    def check_finite(self, weights: bool = False, *, _elsewhere: int | None = None) -> None:
        """Stop (``nonfinite_loss: stop``) or warn once the loss has been NaN or infinite.

        Reads two numbers back from the device, so the engine calls it where the host waits
        anyway (log points, evaluations, the end of the run); a plugin calls it with
        ``weights=True`` before it writes a checkpoint, which then also looks at every
        parameter, so that a checkpoint never holds weights a non-finite loss produced (in a
        distributed run another process's loss may have spoilt them). Raises
        :class:`~semilearn.errors.TrainingError` naming the step and the last checkpoint
        (``last_checkpoint``), which holds the last finite weights.
        """
        count = int(self._nonfinite_count.item())
        spoilt = False
        if weights and count == 0 and self.config.nonfinite_loss == "stop":
            spoilt = not bool(torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all())
        if not (count or spoilt or _elsewhere):
            return
        if self.config.nonfinite_loss == "warn":
            if count and not self._nonfinite_reported:
                first = int(self._nonfinite_first.item())
                self.log.warning(f"the loss became NaN or infinite at step {first} (nonfinite_loss: warn: "
                                 "training goes on; the end of the run tells how many steps were affected)")
            self._nonfinite_reported = count
            return
        if count:
            what = f"the loss became NaN or infinite at step {int(self._nonfinite_first.item())}"
        elif spoilt:
            what = f"the weights became NaN or infinite by step {self.global_step}"
        else:
            what = f"the loss became NaN or infinite in another process by step {self.global_step}"
        saved = (f"the last checkpoint, with finite weights, is {self.last_checkpoint[0]} (step "
                 f"{self.last_checkpoint[1]})" if self.last_checkpoint else "no checkpoint was written")
        raise TrainingError(f"{what}: training diverged (is the learning rate too high?); {saved}; "
                            "`--set nonfinite_loss=warn` trains on regardless")

    def _check_finite_everywhere(self, weights: bool = False) -> None:
        """:meth:`check_finite` with the count summed over the processes (all of them call it)."""
        elsewhere = None
        if self.world_size > 1:
            elsewhere = int(all_reduce_sum(self._nonfinite_count.clone()).item())
        self.check_finite(weights, _elsewhere=elsewhere)

    def _report_nonfinite(self) -> None:
        count = int(self._nonfinite_count.item())
        if count:
            self.log.warning(f"the loss was NaN or infinite at {count} of {self.global_step} steps "
                             f"(first at step {int(self._nonfinite_first.item())})")

    def sample_batch(self) -> dict[str, torch.Tensor]:
        """Draw the step's batch and make its views (by the data set's modality).

        Labelled samples get the weak view (``x_lb``, ``y_lb``); unlabelled samples a weak
        and a strong view (``x_ulb_w``, ``x_ulb_s``). Override to make other views.
        """
        data = self.data
        index = self.labelled_stream.next()
        batch = {"x_lb": self.augment.weak(self.gather(data.labelled_samples, index)),
                 "y_lb": self.gather(data.labelled_targets, index)}
        if self.unlabelled_stream is not None:
            unlabelled = self.gather(data.unlabelled_samples, self.unlabelled_stream.next())
            batch["x_ulb_w"] = self.augment.weak(unlabelled)
            batch["x_ulb_s"] = self.augment.strong(unlabelled)
        return batch

    def sample_stream(self, samples: Any, batch_size: int, name: str) -> SampleStream:
        """A seeded stream of ``batch_size`` index draws over ``samples`` (its seed derived from
        the run's seed and ``name``), which :meth:`gather` serves (read ahead by worker processes
        when the samples are lazy). Make every stream a step draws from with this."""
        stream = SampleStream(count(samples), batch_size, _derived_seed(self.config.seed, name), self.data_device,
                              self.rank, self.world_size, name=name)
        if hasattr(samples, "views"):  # views made by CPU-side transforms: as many as a step reads
            samples.views = type(self).views_per_sample(self.config)
        return self.lazy_loading.register(stream, samples)  # type: ignore[no-any-return]

    def gather(self, samples: Any, index: torch.Tensor) -> Any:
        """Rows ``index`` of a data tensor (or of each tensor of a dict of samples), on the
        training device (copied from host memory if need be; read by the lazy path's workers
        for lazy samples)."""
        if isinstance(samples, LazySamples):
            return move(self.lazy_loading.gather(samples, index), self.device, non_blocking=True)
        if self._host_gather is None:
            return take(samples, index)
        if isinstance(samples, torch.Tensor):
            return self._host_gather.gather(samples, index)
        return {name: self._host_gather.gather(tensor, index) for name, tensor in samples.items()}

    def train_step(self, **batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The algorithm's math: return the loss and its parts as tensors (no ``.item()``)."""
        raise NotImplementedError

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _amp_dtype(self) -> torch.dtype:
        choice = self.config.amp_dtype
        if choice == "float16":
            return torch.float16
        if choice == "bfloat16" or self.device.type != "cuda" or torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16

    # ------------------------------------------------------------------
    # Evaluation support.
    # ------------------------------------------------------------------

    def versions(self) -> dict[str, Any]:
        """The versions of the core and of every active plugin (as ``config.yaml`` records them)."""
        return self.manager.versions()

    @property
    def eval_model(self) -> nn.Module:
        """The network evaluation uses: the EMA model when there is one, else :attr:`module`."""
        return self.ema_model if self.ema_model is not None else self.module

    @torch.no_grad()
    def predict(self, images: Any, model: nn.Module | None = None) -> torch.Tensor:
        """Logits of ``model`` (default: :attr:`eval_model`) for samples of the data set's
        modality (uint8 images), in eval mode."""
        model = model if model is not None else self.eval_model
        was_training = model.training
        model.eval()
        try:
            chunks = []
            size = self.config.eval_batch_size
            parts = self.lazy_loading.batches(images, size) if isinstance(images, LazySamples) else \
                (take(images, slice(start, start + size)) for start in range(0, count(images), size))
            for part in parts:
                chunk = move(part, self.device, non_blocking=True)
                batch = self.augment.plain(chunk)
                if self.config.channels_last and isinstance(batch, torch.Tensor):
                    batch = _channels_last(batch)
                with self.autocast():
                    chunks.append(model(batch)["logits"].float())
            return torch.cat(chunks) if chunks else torch.empty(0, self.data.num_classes, device=self.device)
        finally:
            model.train(was_training)

    # ------------------------------------------------------------------
    # Interrupts.
    # ------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """Stop after the current step (for plugins: early stopping, a time budget ...).

        The step finishes (evaluation, logging, ``on_step_end``), then ``after_run`` fires
        with status ``"interrupted"`` (so the checkpoint plugin saves, and the run can be
        resumed, for example with more patience) and the process exits with 0. The first
        reason wins. Under torchrun every process must ask at the same step (decide from
        values that are equal on all ranks, such as eval metrics).
        """
        if not self.stop_reason:
            self.stop_reason = reason
            self.stopped_by_plugin = True

    @property
    def exit_code(self) -> int:
        """Process exit code for this run's end (130 / 143 after SIGINT / SIGTERM, 3 when it diverged)."""
        if self.status == "interrupted":
            return _SIGNAL_EXIT_CODES.get(self.stop_reason or "", 0)
        if self.status == "completed":
            return 0
        return self.error.exit_code if isinstance(self.error, SemilearnError) else 1

    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """SIGINT / SIGTERM: finish the current step, then stop; a second signal aborts."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        first_at = 0.0

        def request_stop(signum: int, frame: Any) -> None:
            nonlocal first_at
            received = signal.Signals(signum)
            now = time.monotonic()
            if self._signal_received is not None:
                if now - first_at < 1.0:
                    return  # the same interrupt delivered twice (a terminal and a launcher both send it)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
                return
            self._signal_received, first_at = received, now
            if self._ending:
                self.log.warning(f"{received.name} received while the run ends: finishing "
                                 "(send it again to abort at once)")
                return
            self.log.warning(
                f"{received.name} received: finishing step {self.global_step + 1}, then saving and stopping "
                "(send it again to abort at once)"
            )

        for sig in previous:
            signal.signal(sig, request_stop)
        try:
            yield
        finally:
            # A torchrun worker keeps them until it exits: when another process fails, the launcher
            # sends SIGTERM to this one, which then still reports its own error after the run.
            if world_size() == 1:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    # ------------------------------------------------------------------
    # Checkpoint state.
    # ------------------------------------------------------------------

    def algorithm_state(self) -> dict[str, Any]:
        """State of the algorithm itself that must survive a resume (thresholds, queues ...)."""
        return {}

    def load_algorithm_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`algorithm_state` returned."""

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to continue this run bit for bit, plus every plugin's state.

        Fires ``save_checkpoint`` so each plugin adds its entry under ``state["plugins"]``.
        All values load with ``torch.load(weights_only=True)``.
        """
        state: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "algorithm": self.name,
            "step": self.global_step,
            "epoch": self.epoch,
            "num_train_iter": self.num_train_iter,
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "algorithm_state": self.algorithm_state(),
            "rng": _capture_rng(),
            "augment_generator": self.augment_generator.get_state(),
            "streams": {
                "labelled": self.labelled_stream.state_dict(),
                "unlabelled": self.unlabelled_stream.state_dict() if self.unlabelled_stream else None,
            },
            "eval_history": [dict(entry) for entry in self.eval_history],
            "world_size": self.world_size,
            "config": self.config.to_dict(),
            "versions": self.manager.versions(),
            "model_card": self.model_card(),
            "plugins": {},
        }
        self.hook.save_checkpoint(algorithm=self, state=state)
        return state

    def model_card(self) -> dict[str, Any]:
        """What using the trained network needs without the training data (``semilearn
        evaluate | predict | export``): the network's registered name, the sample it takes
        (``input``: the data set's :class:`~semilearn.data.modality.InputSpec`, from which the
        network is built again), the normalisation of the views where the modality has one
        (images: ``mean`` and ``std``), the class names."""
        spec = self.data.input_spec
        card: dict[str, Any] = {
            "net": self.net_name,
            "num_classes": self.data.num_classes,
            "modality": spec.modality,
            "input": spec.to_dict(),
            "classes": self.data.class_names,
            "dataset": self.data.name,
            "algorithm": self.name,
        }
        mean, std = getattr(self.data.augment, "mean", None), getattr(self.data.augment, "std", None)
        if mean is not None and std is not None:
            card["mean"], card["std"] = [float(value) for value in mean], [float(value) for value in std]
        return card

    def load_checkpoint_state(self, state: Mapping[str, Any]) -> None:
        """Restore the engine's part of a checkpoint (plugins get ``load_checkpoint``)."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError("not a semilearn checkpoint (its 'format' entry is missing)")
        if state.get("algorithm") != self.name:
            raise CheckpointError(
                f"the checkpoint was written by algorithm '{state.get('algorithm')}', this run is '{self.name}'"
            )
        saved_world = state.get("world_size", 1)
        if saved_world != self.world_size:
            raise CheckpointError(
                f"the checkpoint was written by {saved_world} process(es); resume it with the same number "
                f"(this run has {self.world_size})"
            )
        try:
            self.module.load_state_dict(state["model"])
        except RuntimeError as error:
            raise CheckpointError(f"the checkpoint's model does not fit this network: {error}") from error
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.load_algorithm_state(state.get("algorithm_state", {}))
        _restore_rng(state["rng"])
        self.augment_generator.set_state(state["augment_generator"])
        self.labelled_stream.load_state_dict(state["streams"]["labelled"])
        if self.unlabelled_stream is not None and state["streams"].get("unlabelled") is not None:
            self.unlabelled_stream.load_state_dict(state["streams"]["unlabelled"])
        self.eval_history = [dict(entry) for entry in state.get("eval_history", [])]
        self.global_step = int(state["step"])
        self.epoch = self.global_step // self.iters_per_epoch


def cpu_has_fast_bfloat16() -> bool:
    """Whether this CPU runs bfloat16 kernels natively (AVX-512 or AMX, as oneDNN uses them);
    with AVX2 alone bfloat16 is emulated, about ten times slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN: assume not
        return False


def resolved_net_name(config: Config, data: SSLData) -> str:
    """The registered name of the network a run trains: ``net``, or the data set's default
    network when ``net`` is ``auto``."""
    return data.default_net if config.net == "auto" else str(config.net)


def _wrap_for_distributed(module: nn.Module, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def _channels_last(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.contiguous(memory_format=torch.channels_last) if tensor.ndim == 4 else tensor


def _derived_seed(seed: int, purpose: str, rank: int = 0) -> int:
    """A seed per purpose (and rank), stable across Python runs."""
    digest = 0
    for char in f"{purpose}:{rank}":
        digest = (digest * 131 + ord(char)) % (2**31)
    return (seed * 1_000_003 + digest) % (2**63 - 1)


def _capture_rng() -> dict[str, Any]:
    kind, keys, position, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def _restore_rng(state: Mapping[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(item) for item in value)
    return value
