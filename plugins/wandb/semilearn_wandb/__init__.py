"""semilearn-wandb: track runs with Weights & Biases, offline unless asked otherwise.

* one wandb run per training run, in ``<run_dir>/wandb/`` by default; ``mode`` is
  ``offline`` unless the section says ``online`` (or ``disabled``);
* the resolved configuration (secrets removed) and the versions of the core, the plugins
  and wandb go into the run's config;
* train metrics at every log point as ``train/<name>``, eval metrics after every
  evaluation as ``eval/<name>``, all against ``global_step`` (declared with
  ``define_metric``, and used as wandb's own step); the summary of the monitored metric
  (the engine keys ``monitor`` and ``mode``; ``eval/top1_acc`` by default) is its best;
* the run id is saved in every checkpoint, so ``semilearn run --resume`` continues the
  same wandb run, and a step is never logged twice or backwards;
* ``after_run`` finishes the run with exit code 0 when it completed and non-zero
  otherwise; ``upload_checkpoints`` first logs ``best.pt`` and ``last.pt`` as artifacts
  with the aliases ``best`` and ``latest``;
* a failure of wandb never stops training unless ``strict`` is on (see
  :mod:`semilearn.tracking`).

wandb is imported when a run starts, never at plugin discovery.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semilearn import ConfigError, Option, hookimpl
from semilearn.tracking import STRICT_OPTION, TrackerHook, import_tracker_library

if TYPE_CHECKING:
    from semilearn import RunView
    from semilearn.config import Config

__all__ = ["WandbHook", "__version__", "STEP_METRIC"]
__version__ = "0.1.0"

STEP_METRIC = "global_step"
"""The x-axis of every chart: the engine's global step (finished steps, monotonic over resumes)."""

_log = logging.getLogger("semilearn")
_PROJECT_FORBIDDEN = re.compile(r"[/\\#?%:]")
_MAX_TAG_LENGTH = 64
_MAX_PROJECT_LENGTH = 128
_CHECKPOINT_FILES = (("best.pt", "best"), ("last.pt", "latest"))  # best first: wandb moves "latest" to the newest


class WandbHook(TrackerHook):
    """Weights & Biases tracking of every run (global rank 0 only).

    Configuration (section ``wandb``):

    * ``project`` (default ``semilearn``), ``entity`` (default: your wandb default),
      ``name`` (default: the run directory's name), ``group``, ``tags``, ``notes``: as
      ``wandb.init`` takes them;
    * ``mode`` (``offline`` | ``online`` | ``disabled``, default ``offline``): offline runs
      are written to disk only; ``wandb sync DIR`` uploads them later;
    * ``dir`` (default: the run directory): the folder that receives ``wandb/``;
    * ``system_metrics_interval`` (default null: off, as the Aim plugin's system tracking):
      wandb's CPU, memory and GPU usage, sampled every this many seconds;
    * ``upload_checkpoints`` (default false): at the end, log the checkpoint plugin's
      ``best.pt`` and ``last.pt`` as versions of the artifact ``checkpoint-<run id>``
      (type ``model``) with the aliases ``best`` and ``latest``;
    * ``strict`` (default false): a wandb failure stops the run instead of being counted.
    """

    library = "wandb"
    config_options = (
        Option("project", str, "semilearn", "wandb project."),
        Option("entity", str, None, "wandb entity (user or team); null: your default entity.", nullable=True),
        Option("name", str, None, "Run name shown by wandb; null: the run directory's name.", nullable=True),
        Option("group", str, None, "wandb group of the run (e.g. one per sweep).", nullable=True),
        Option("tags", list, [], "wandb tags of the run."),
        Option("notes", str, None, "A longer description of the run.", nullable=True),
        Option("mode", str, "offline", "offline (files only; `wandb sync` uploads them), online, or disabled.",
               choices=("offline", "online", "disabled")),
        Option("dir", str, None, "Folder that receives wandb/ (relative to the working directory); null: the run "
               "directory.", nullable=True),
        Option("system_metrics_interval", float, None, "Record CPU, memory and GPU usage every this many seconds "
               "(wandb's system metrics); null: off, as Aim's system_tracking_interval.", nullable=True,
               minimum=0.1, maximum=86400),
        Option("upload_checkpoints", bool, False, "At the end, log best.pt and last.pt as a model artifact with "
               "the aliases best and latest (needs the checkpoint plugin)."),
        STRICT_OPTION,
    )

    def __init__(self) -> None:
        super().__init__()
        self._run: Any = None
        self._first_new_step = 0
        self.skipped_steps = 0
        self._checkpoint_folder: Path | None = None

    # -- configuration -------------------------------------------------------------

    @hookimpl
    def configure(self, config: Config) -> None:
        section = self.config
        project = section.project
        if not project or len(project) > _MAX_PROJECT_LENGTH or _PROJECT_FORBIDDEN.search(project):
            raise ConfigError(
                f"wandb.project must be 1 to {_MAX_PROJECT_LENGTH} characters without / \\ # ? % or :, "
                f"got {project!r}"
            )
        for tag in section.tags:
            if not tag or len(tag) > _MAX_TAG_LENGTH:
                raise ConfigError(f"wandb.tags: each tag must be 1 to {_MAX_TAG_LENGTH} characters, got {tag!r}")
        self._checkpoint_folder = None
        if section.upload_checkpoints:
            if "checkpoint" in config.sections:
                self._checkpoint_folder = Path(str(config.section("checkpoint").get("dir", "checkpoints")))
            else:
                _log.warning("wandb.upload_checkpoints is on, but the checkpoint plugin is not active: "
                             "no checkpoint will be uploaded")

    # -- the tracker ---------------------------------------------------------------

    def start_run(self, algorithm: RunView, resume_id: str | None) -> str:
        wandb: Any = import_tracker_library("wandb", "semilearn-wandb", self.name)
        section = self.config
        # absolute: wandb's service process resolves paths against its own working directory
        directory = (Path(section.dir) if section.dir else Path(algorithm.run_dir)).absolute()
        directory.mkdir(parents=True, exist_ok=True)
        if resume_id is not None:
            _wait_for_a_free_run_folder(directory / "wandb", resume_id)
        run = wandb.init(
            project=section.project,
            entity=section.entity,
            name=self.run_name(algorithm, section.name),
            group=section.group,
            tags=list(section.tags) or None,
            notes=section.notes,
            mode=section.mode,
            dir=str(directory),
            id=resume_id,
            resume="allow" if resume_id is not None else None,
            config=self.run_config(algorithm),
            allow_val_change=True,  # a resume may change settings that do not affect the trajectory
            reinit="create_new",  # never hand back another run still open in this process
            settings=wandb.Settings(silent=True, console="off", **_system_metrics(section.system_metrics_interval)),
        )
        try:
            run.define_metric(STEP_METRIC)
            run.define_metric("train/*", step_metric=STEP_METRIC)
            run.define_metric("eval/*", step_metric=STEP_METRIC)
            # the summary of the monitored metric is its best, as the engine's summaries say it
            run.define_metric(f"eval/{algorithm.config.monitor}", step_metric=STEP_METRIC,
                              summary=algorithm.config.mode)
            # On resume, an online run may already hold steps logged after the checkpoint by the
            # process that stopped; resume is exact, so those rows are kept, not logged again.
            first_new_step = int(run.step) if resume_id is not None else 0
        except BaseException:
            run.finish(exit_code=1)  # not started: nothing else would finish it
            raise
        self._run, self._first_new_step, self.skipped_steps = run, first_new_step, 0
        return str(run.id)

    def record(self, algorithm: RunView, step: int, split: str, metrics: Mapping[str, float]) -> None:
        if step < self._first_new_step:
            self.skipped_steps += 1
            return
        data: dict[str, float | int] = {STEP_METRIC: step}
        data.update({f"{split}/{name}": float(value) for name, value in metrics.items()})
        self._run.log(data, step=step)

    def finish_run(self, algorithm: RunView, status: str, exit_code: int) -> None:
        run = self._run
        if self.config.upload_checkpoints and self._checkpoint_folder is not None:
            folder = Path(algorithm.run_dir) / self._checkpoint_folder
            for file_name, alias in _CHECKPOINT_FILES:
                path = folder / file_name
                if path.is_file():
                    self.call("upload", algorithm.global_step, self._upload, run, path, alias)
        if self.skipped_steps:
            _log.info(f"wandb: {self.skipped_steps} log calls at steps the resumed wandb run already held were "
                      "not sent again")
        run.finish(exit_code=exit_code)

    def describe_run(self) -> str:
        run = self._run
        if run is None:
            return f"run {self.run_id}"
        mode = self.config.mode
        if mode == "offline":
            return f"offline run {run.id} in {run.settings.sync_dir}"
        if mode == "disabled":
            return f"run {run.id} (mode disabled: nothing is recorded)"
        return f"run {run.id} at {run.url}"

    def viewing_hint(self) -> str:
        if self._run is None or self.config.mode != "offline":
            return ""
        return f"upload it with `wandb sync {self._run.settings.sync_dir}`"

    @staticmethod
    def _upload(run: Any, path: Path, alias: str) -> None:
        import wandb

        artifact = wandb.Artifact(f"checkpoint-{run.id}", type="model", metadata={"file": path.name})
        artifact.add_file(str(path), name="checkpoint.pt")  # one entry name: identical files share a version
        run.log_artifact(artifact, aliases=[alias])


def _wait_for_a_free_run_folder(wandb_dir: Path, run_id: str) -> None:
    """Wait (at most a second) until no run folder of ``run_id`` carries the current second.

    wandb names a run's folder ``[offline-]run-<start second>-<id>``. A resumed part that
    starts within the same second as an earlier part of the run (an in-process resume right
    after a short run) would write into the earlier part's folder and replace its records.
    """
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline and any(wandb_dir.glob(f"*run-{time.strftime('%Y%m%d_%H%M%S')}-{run_id}")):
        time.sleep(0.05)


def _system_metrics(interval: float | None) -> dict[str, Any]:
    """wandb's settings for its system metrics: off (the default, as Aim's), or sampled every ``interval`` s."""
    if interval is None:
        return {"x_disable_stats": True}
    return {"x_disable_stats": False, "x_stats_sampling_interval": float(interval)}
