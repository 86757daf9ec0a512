"""The semilearn hook contract: every hook point a plugin can implement.

A plugin is any object (a module, or an instance of :class:`semilearn.Hook`) whose
methods are marked with :data:`semilearn.hookimpl` and named after a hook point below.
Plugins are found through the entry-point group ``semilearn.plugins``; installed means
active (see :mod:`semilearn.plugins`). Hook points are called with keyword arguments, and
an implementation may accept any subset of the arguments of its specification.

Hook points appear in the order they fire. Unless a hook point says otherwise:

* it fires on every process of a distributed run; a :class:`~semilearn.Hook` subclass with
  ``rank_zero_only = True`` (loggers, trackers, checkpoint writers) is only called on
  global rank 0, so it acts once per run;
* implementations run last-registered first (built-in plugins are registered before
  installed ones, installed ones in name order); ``tryfirst=True`` / ``trylast=True`` on
  the marker move an implementation to the front or back. ``semilearn plugins`` prints
  the resulting order at every hook point;
* the return value is ignored.

The hook points of a run receive it as ``algorithm``, typed :class:`semilearn.RunView`: the
attributes a plugin may read, the two it may write (``ema_model``, ``last_checkpoint``)
and the methods it may call (:mod:`semilearn.view`).

``firstresult`` hook points stop at the first implementation that returns something
other than ``None``; that is how a plugin replaces a built-in behaviour (an evaluation,
a resume source) without touching the engine.

How the contract evolves (as pytest's does): hook points and arguments are added freely,
since an implementation takes any subset of the arguments and existing plugins keep
working. An argument or a hook point is retired in steps: its specification gets
``@hookspec(warn_on_impl_args={"name": PluginDeprecationWarning("...")})``, or
``warn_on_impl=PluginDeprecationWarning("...")`` for the whole hook point, so that pluggy
warns every plugin that implements it when the plugin is registered, pointing at the
plugin's code (a ``FutureWarning``: shown by default); it stays so, still called, for at
least one release, which announces it, and is then removed. The retired hook points are
at the end of this module.

Nothing here imports torch: argument types are only named in annotations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import pluggy

from .errors import PluginDeprecationWarning

if TYPE_CHECKING:
    import click
    import torch

    from .config import Config
    from .rundir import ResumePoint
    from .view import RunView

hookspec = pluggy.HookspecMarker("semilearn")

# ---------------------------------------------------------------------------
# Registration: called when the engine first needs the corresponding catalogue.
# ---------------------------------------------------------------------------


@hookspec
def register_algorithms(register: Callable[..., None]) -> None:
    """Add algorithms to the algorithm registry.

    Called once, the first time the engine needs the list of algorithms (a run,
    ``semilearn algorithms``, ``semilearn config show``).

    :param register: ``register(name, cls, replace=False)`` where ``cls`` is a subclass of
        :class:`semilearn.AlgorithmBase`. Registering a name twice is an error unless
        ``replace=True`` is given, which lets a plugin substitute a built-in algorithm.
    """


@hookspec
def register_datasets(register: Callable[..., None]) -> None:
    """Add data sets to the data set registry.

    :param register: ``register(name, builder, description="", replace=False)`` where
        ``builder(config, device)`` returns a :class:`semilearn.data.SSLData`.
    """


@hookspec
def register_nets(register: Callable[..., None]) -> None:
    """Add networks to the network registry.

    :param register: ``register(name, builder, description="", replace=False)`` where
        ``builder(num_classes, spec)`` returns a ``torch.nn.Module`` following the
        interface in :mod:`semilearn.nets`; ``spec`` is the data set's
        :class:`~semilearn.data.modality.InputSpec` (what one sample is: its modality, shape
        and dtype; a network of images reads ``spec.image_shape``, which refuses samples of
        any other kind in one line).
    """


@hookspec
def register_modalities(register: Callable[..., None]) -> None:
    """Add modalities (what a sample is, how a step's views are made) to the modality registry.

    A data set names its modality (:attr:`semilearn.data.SSLData.modality`, ``"image"`` by
    default); the engine asks this registry for the views of that modality. See
    :mod:`semilearn.data.modality`.

    :param register: ``register(name, factory, description="", replace=False)`` where
        ``factory(data, generator)`` returns an object with ``weak``, ``strong``, ``plain``
        (rows of samples on the device -> a view the network takes) and ``join`` (views ->
        one batch), every random draw from ``generator``.
    """


@hookspec
def register_policies(register: Callable[..., None]) -> None:
    """Add SSL policies (confidence masks, pseudo-labels, distribution alignment) to the
    policy registry.

    The decisions SSL algorithms share are named policies, so that a plugin can replace
    one for every algorithm that uses it without subclassing any (see
    :mod:`semilearn.policy`). An algorithm asks for a policy by kind and name and passes
    its parameters as keyword arguments; the policy's function takes the subset it names.
    The built-in ``policies`` plugin registers the policies of the built-in algorithms
    (:data:`semilearn.algorithms.policies.BUILTIN_POLICIES`). Called once, when a run
    first needs a policy.

    Policies run every step, inside the step's autocast region: keep them cheap, work on
    the device, and never synchronise with the host (no ``.item()``, no boolean-mask
    indexing; use ``torch.where`` and multiplicative masks). Inputs are detached float32
    tensors; return detached tensors on the same device.

    Arguments every built-in algorithm gives (besides the policy's own parameters):

    * ``probs``: ``[B, C]`` class probabilities (of the weak views of the unlabelled
      batch, after distribution alignment if any);
    * ``state`` (mask and alignment policies): a dict the algorithm owns, one per use of
      a policy, where a policy keeps what it carries from step to step (class-wise
      thresholds, EMA estimates, queues). It is saved in every checkpoint and restored on
      resume, so values must load with ``torch.load(weights_only=True)``: tensors,
      numbers, strings, booleans, ``None``, lists and dicts of those. In a distributed run
      it must be the same on every process (only rank 0's is saved): update it from the
      global batch, gathered with ``gather``;
    * ``gather`` (mask and alignment policies): returns a tensor from every process,
      concatenated (the identity outside a distributed run).

    Mask policies return ``[B]`` float weights in ``[0, 1]``; pseudo-label policies
    ``[B]`` class indices or ``[B, C]`` distributions (losses accept both); alignment
    policies ``[B, C]`` probabilities. The built-in policies, with their parameters:

    * mask ``"fixed"`` (``p_cutoff``); ``"flexmatch"`` (``indices``, ``p_cutoff``,
      ``thresh_warmup``, ``num_samples``); ``"freematch"`` (``momentum``,
      ``use_quantile``, ``clip_thresh``); ``"softmatch"`` (``momentum``, ``n_sigma``,
      ``per_class``); ``"adamatch"`` (``probs_lb``, ``p_cutoff``); ``"dash"`` (``rho``,
      ``hard``, ``temperature``);
    * pseudo-labels ``"hard"`` (the arg-max class); ``"soft"`` (``temperature``: the
      distribution sharpened, ``p ** (1 / T)`` renormalised; 1 keeps it);
    * alignment ``"ema"`` (``target``, ``momentum``, ``probs_lb``, ``labelled``);
      ``"queue"`` (``target``, ``length``, ``probs_lb``, ``labelled``); targets
      ``"uniform"``, ``"labelled"`` (the labelled set's class frequencies) and
      ``"model"`` (the running mean prediction on labelled batches, ``probs_lb``).

    The functions are documented in :mod:`semilearn.algorithms.policies`.

    :param register: ``register(policy, replace=False)`` where ``policy`` is a
        :class:`semilearn.Policy`. Registering a kind and name twice is an error unless
        ``replace=True`` is given, which lets a plugin substitute a built-in policy.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``semilearn`` command line.

    Called once at start-up of the CLI, on every invocation (also ``--help``), so an
    implementation must be cheap: import heavy libraries inside the command, not here.

    :param cli: the top-level click group; use ``@cli.command()`` or ``cli.add_command``.
    """


# ---------------------------------------------------------------------------
# Configuration and resume: before anything is built.
# ---------------------------------------------------------------------------


@hookspec
def configure(config: Config) -> None:
    """See the resolved configuration before a run is built.

    Fires once per process, after the configuration file and overrides have been
    merged and every key checked against its schema, and before the run directory,
    data or model exist. The plugin's own section has been validated against its
    ``config_options`` and is available as ``self.config`` on a :class:`~semilearn.Hook`.

    Raise :class:`semilearn.ConfigError` to reject a combination of values; its message
    is shown to the user as one line.

    :param config: the resolved configuration (read only).
    """


@hookspec(firstresult=True)
def find_resume_point(config: Config, resume: str) -> ResumePoint | None:
    """Locate and read the checkpoint a run continues from.

    Fires on every process when the run was started with ``--resume``, before the run
    directory is chosen. The checkpoint plugin implements it; a plugin reading
    checkpoints from elsewhere (object storage, a cluster's scratch space) can answer
    first.

    :param config: the resolved configuration.
    :param resume: ``"auto"`` (the newest intact checkpoint of this run, if any) or a path.
    :return: a :class:`semilearn.rundir.ResumePoint`, or ``None`` when this plugin does not
        handle the request. With ``"auto"`` and nothing to resume, return
        ``ResumePoint.fresh()`` to start a new run.
    """


# ---------------------------------------------------------------------------
# The run.
# ---------------------------------------------------------------------------


@hookspec
def before_run(algorithm: RunView) -> None:
    """The run is built and about to train.

    Fires once per process. The run directory exists (``algorithm.run_dir``) and holds
    ``config.yaml``; model, optimizer and data streams are built; nothing has trained.
    ``algorithm.resuming`` tells whether :func:`load_checkpoint` follows, in which case
    state restored from the checkpoint is not there yet. Open files and start trackers
    here (a tracker that continues a previous run should wait for ``load_checkpoint``
    when ``algorithm.resuming`` is true).

    :param algorithm: the run, as :class:`semilearn.RunView` describes what a plugin may read,
        write and call of it (the same for every hook point with an ``algorithm``).
    """


@hookspec
def load_checkpoint(algorithm: RunView, state: Mapping[str, Any]) -> None:
    """Restore plugin state from the checkpoint the run resumes from.

    Fires once per process, on every rank, right after :func:`before_run` when the run
    resumes. The engine has already restored what it owns (model, optimizer, scheduler,
    scaler, step, algorithm state, random number generators, sample streams).

    :param algorithm: the running algorithm; ``algorithm.global_step`` is the step saved.
    :param state: the whole checkpoint. A plugin finds what it saved in
        ``state["plugins"][name]`` (``Hook.plugin_state(state)`` returns it, or ``{}``).
    """


@hookspec
def before_train_epoch(algorithm: RunView, epoch: int) -> None:
    """An epoch begins (``num_train_iter`` is split into ``epoch`` epochs).

    Fires on a resume too, for the epoch the resumed step falls in.

    :param epoch: index of the epoch, from 0.
    """


@hookspec
def before_train_step(algorithm: RunView, step: int) -> None:
    """A training step is about to run.

    Fires every step: keep it cheap, and never synchronise with the device here.

    :param step: number of the step about to run, from 1 to ``num_train_iter``;
        ``algorithm.global_step`` is ``step - 1``.
    """


# ---------------------------------------------------------------------------
# The run, continued: after each training step.
# ---------------------------------------------------------------------------


@hookspec
def after_train_step(algorithm: RunView, step: int, outputs: Mapping[str, Any]) -> None:
    """A training step (forward, backward, optimizer and scheduler step) has finished.

    Fires every step. The built-in ``ema`` plugin updates the EMA model here
    (``tryfirst``), so later implementations see the updated EMA.

    :param step: number of the step just finished; equal to ``algorithm.global_step``.
    :param outputs: the step's detached 0-d tensors (``loss``, ``sup_loss``, ...). Reading
        a value with ``.item()`` synchronises with the device; do it at log points only.
    """


@hookspec
def collect_metrics(algorithm: RunView, step: int, split: str) -> Mapping[str, float] | None:
    """Contribute metrics to the next :func:`log` call.

    Fires just before each :func:`log` call of ``split``; the returned values are added
    to that call's metrics (the built-in ``timing`` plugin adds throughput this way).

    :param split: ``"train"`` or ``"eval"``.
    :return: metric name to float, or ``None``.
    """


@hookspec
def log(algorithm: RunView, step: int, split: str, metrics: Mapping[str, float]) -> None:
    """Metrics are ready to record.

    Fires every ``num_log_iter`` steps and at the last step with ``split="train"``
    (the step's losses, mask ratio, learning rate, throughput), and after every
    evaluation with ``split="eval"``. Values are Python floats.

    :param step: the global step the metrics belong to (monotonic over a run and its resumes).
    :param split: ``"train"`` or ``"eval"``.
    :param metrics: metric name (without the split) to value.
    """


@hookspec(firstresult=True)
def evaluate(algorithm: RunView, step: int) -> Mapping[str, float] | None:
    """Evaluate the model and return the metrics.

    Fires every ``num_eval_iter`` steps and at the last step. The built-in
    ``evaluation`` plugin evaluates the EMA model (the model itself when EMA is off) on
    the test split: ``top1_acc``, ``balanced_acc`` and ``loss``. A plugin that returns
    first replaces it.

    :return: metric name to float, or ``None`` to let the next implementation answer.
    """


@hookspec
def after_evaluate(algorithm: RunView, step: int, metrics: Mapping[str, float]) -> None:
    """An evaluation has finished.

    Fires after :func:`evaluate` returned metrics; the same metrics then go to
    :func:`log` with ``split="eval"``. ``algorithm.eval_history`` holds all evaluations
    of the run so far.
    """


@hookspec
def save_checkpoint(algorithm: RunView, state: MutableMapping[str, Any]) -> None:
    """A checkpoint is being assembled: add this plugin's state.

    Fires whenever a checkpoint writer asks the engine for the run's state
    (``algorithm.checkpoint_state()``), on the rank that writes (global rank 0). The
    engine's own state is already in ``state``; put yours in
    ``state["plugins"][name]`` (``Hook.plugin_state(state)`` creates and returns it).
    Values must load with ``torch.load(weights_only=True)``: tensors, numbers, strings,
    booleans, ``None`` and lists, tuples and dicts of those.
    """


@hookspec
def on_step_end(algorithm: RunView, step: int) -> None:
    """Everything of a step is done: training, logging and evaluation.

    Fires every step, after :func:`after_train_step` and, on the steps that have them,
    the :func:`log` and :func:`after_evaluate` calls. State seen here is complete for the
    step (the checkpoint plugin saves here, so a saved "best" agrees with its metrics).
    """


@hookspec
def after_train_epoch(algorithm: RunView, epoch: int) -> None:
    """An epoch has finished (after :func:`on_step_end` of its last step)."""


@hookspec
def after_run(algorithm: RunView, status: str, error: BaseException | None) -> None:
    """The run has ended, however it ended.

    Fires once per process, always: after the last step, when a step or a hook raised,
    and after an interrupt. On an interrupt (SIGINT, SIGTERM) or at ``stop_step`` the
    engine finishes the current step first, so the state is consistent; the checkpoint
    plugin saves it here. An exception raised here is reported but does not stop the
    other implementations.

    :param status: ``"completed"``, ``"failed"`` or ``"interrupted"``.
    :param error: the exception for ``"failed"``, else ``None``.
    """


# ---------------------------------------------------------------------------
# Retired: still called for one release, then removed. pluggy warns every plugin that
# implements them (a PluginDeprecationWarning, shown by default) when it is registered.
# No typed alias is generated for them in semilearn.protocols.
# ---------------------------------------------------------------------------

_POLICY_HOOKS_RETIRED = PluginDeprecationWarning(
    "the SSL policy hook points compute_mask, make_pseudo_labels and align_distribution are retired: register a "
    "semilearn.Policy through register_policies instead (docs/algorithms.md, 'Policies'); until they are removed "
    "an implementation is still asked first"
)


@hookspec(firstresult=True, warn_on_impl=_POLICY_HOOKS_RETIRED)
def compute_mask(
    algorithm: RunView,
    policy: str,
    probs: torch.Tensor,
    state: MutableMapping[str, Any],
    probs_lb: torch.Tensor | None,
    indices: torch.Tensor | None,
) -> torch.Tensor | None:
    """Retired: a mask policy is a :class:`semilearn.Policy` (``register_policies``).

    Asked before the registry when a plugin implements it: the first tensor returned is
    the mask for ``policy``; ``None`` leaves it to the registered policy.
    """


@hookspec(firstresult=True, warn_on_impl=_POLICY_HOOKS_RETIRED)
def make_pseudo_labels(
    algorithm: RunView, policy: str, probs: torch.Tensor, temperature: float
) -> torch.Tensor | None:
    """Retired: a pseudo-label policy is a :class:`semilearn.Policy` (``register_policies``)."""


@hookspec(firstresult=True, warn_on_impl=_POLICY_HOOKS_RETIRED)
def align_distribution(
    algorithm: RunView,
    policy: str,
    probs: torch.Tensor,
    state: MutableMapping[str, Any],
    target: str,
    probs_lb: torch.Tensor | None,
) -> torch.Tensor | None:
    """Retired: an alignment policy is a :class:`semilearn.Policy` (``register_policies``)."""
