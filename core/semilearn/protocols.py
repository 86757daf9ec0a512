"""Typed hook points: the types mypy checks hook implementations against.

Generated from :mod:`semilearn.hookspecs` by ``python tests/typing/generate_protocols.py``;
do not edit by hand (a test fails when this module and the specifications disagree).

For every hook point ``name`` there is an alias ``Name`` (``after_evaluate`` ->
:data:`AfterEvaluate`): the type of a correct implementation. pluggy passes an
implementation the arguments it names, so an implementation may take any subset of the
hook point's arguments; the alias is the union of one callback protocol per subset, each
with the specification's argument types and return type. Assigning an implementation to
a variable of the alias makes mypy check it::

    from semilearn import protocols

    def _typecheck(plugin: EarlyStopping) -> None:  # never called; read by mypy
        after_evaluate: protocols.AfterEvaluate = plugin.after_evaluate  # noqa: F841

mypy then reports an argument name the hook point does not have, an argument type that
does not accept what the engine passes (``step: str``, or ``metrics: dict`` where the
engine passes a ``Mapping``), and a wrong return type. The error names the union of the
accepted forms. A hook wrapper (``@hookimpl(wrapper=True)``) is checked against
``NameWrapper``: the same arguments, returning a generator.

Nothing here imports torch: argument types are only named in annotations.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, MutableMapping

    import click

    from .config import Config
    from .rundir import ResumePoint
    from .view import RunView

__all__ = [
    "HOOK_POINTS",
    "RegisterAlgorithms",
    "RegisterAlgorithmsWrapper",
    "RegisterDatasets",
    "RegisterDatasetsWrapper",
    "RegisterNets",
    "RegisterNetsWrapper",
    "RegisterModalities",
    "RegisterModalitiesWrapper",
    "RegisterPolicies",
    "RegisterPoliciesWrapper",
    "RegisterCommands",
    "RegisterCommandsWrapper",
    "Configure",
    "ConfigureWrapper",
    "FindResumePoint",
    "FindResumePointWrapper",
    "BeforeRun",
    "BeforeRunWrapper",
    "LoadCheckpoint",
    "LoadCheckpointWrapper",
    "BeforeTrainEpoch",
    "BeforeTrainEpochWrapper",
    "BeforeTrainStep",
    "BeforeTrainStepWrapper",
    "AfterTrainStep",
    "AfterTrainStepWrapper",
    "CollectMetrics",
    "CollectMetricsWrapper",
    "Log",
    "LogWrapper",
    "Evaluate",
    "EvaluateWrapper",
    "AfterEvaluate",
    "AfterEvaluateWrapper",
    "SaveCheckpoint",
    "SaveCheckpointWrapper",
    "OnStepEnd",
    "OnStepEndWrapper",
    "AfterTrainEpoch",
    "AfterTrainEpochWrapper",
    "AfterRun",
    "AfterRunWrapper",
]

_R_co = TypeVar("_R_co", covariant=True)

HOOK_POINTS: tuple[str, ...] = (
    "register_algorithms",
    "register_datasets",
    "register_nets",
    "register_modalities",
    "register_policies",
    "register_commands",
    "configure",
    "find_resume_point",
    "before_run",
    "load_checkpoint",
    "before_train_epoch",
    "before_train_step",
    "after_train_step",
    "collect_metrics",
    "log",
    "evaluate",
    "after_evaluate",
    "save_checkpoint",
    "on_step_end",
    "after_train_epoch",
    "after_run",
)
"""Every hook point, in the order of :mod:`semilearn.hookspecs`."""


# register_algorithms(register) -> None ------------------------------------------------------------

class _RegisterAlgorithms__register(Protocol[_R_co]):
    def __call__(self, *, register: Callable[..., None]) -> _R_co: ...

class _RegisterAlgorithms_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_RegisterAlgorithms: TypeAlias = (
    _RegisterAlgorithms__register[_R_co]
    | _RegisterAlgorithms_without_arguments[_R_co]
)
RegisterAlgorithms: TypeAlias = "_RegisterAlgorithms[None]"
"""An implementation of ``register_algorithms(register: Callable[..., None]) -> None``: Add algorithms to the algorithm registry."""
RegisterAlgorithmsWrapper: TypeAlias = "_RegisterAlgorithms[Generator[None, Any, Any]]"
"""A hook wrapper of ``register_algorithms`` (``@hookimpl(wrapper=True)``): it yields once."""


# register_datasets(register) -> None --------------------------------------------------------------

class _RegisterDatasets__register(Protocol[_R_co]):
    def __call__(self, *, register: Callable[..., None]) -> _R_co: ...

class _RegisterDatasets_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_RegisterDatasets: TypeAlias = (
    _RegisterDatasets__register[_R_co]
    | _RegisterDatasets_without_arguments[_R_co]
)
RegisterDatasets: TypeAlias = "_RegisterDatasets[None]"
"""An implementation of ``register_datasets(register: Callable[..., None]) -> None``: Add data sets to the data set registry."""
RegisterDatasetsWrapper: TypeAlias = "_RegisterDatasets[Generator[None, Any, Any]]"
"""A hook wrapper of ``register_datasets`` (``@hookimpl(wrapper=True)``): it yields once."""


# register_nets(register) -> None ------------------------------------------------------------------

class _RegisterNets__register(Protocol[_R_co]):
    def __call__(self, *, register: Callable[..., None]) -> _R_co: ...

class _RegisterNets_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_RegisterNets: TypeAlias = (
    _RegisterNets__register[_R_co]
    | _RegisterNets_without_arguments[_R_co]
)
RegisterNets: TypeAlias = "_RegisterNets[None]"
"""An implementation of ``register_nets(register: Callable[..., None]) -> None``: Add networks to the network registry."""
RegisterNetsWrapper: TypeAlias = "_RegisterNets[Generator[None, Any, Any]]"
"""A hook wrapper of ``register_nets`` (``@hookimpl(wrapper=True)``): it yields once."""


# register_modalities(register) -> None ------------------------------------------------------------

class _RegisterModalities__register(Protocol[_R_co]):
    def __call__(self, *, register: Callable[..., None]) -> _R_co: ...

class _RegisterModalities_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_RegisterModalities: TypeAlias = (
    _RegisterModalities__register[_R_co]
    | _RegisterModalities_without_arguments[_R_co]
)
RegisterModalities: TypeAlias = "_RegisterModalities[None]"
"""An implementation of ``register_modalities(register: Callable[..., None]) -> None``: Add modalities (what a sample is, how a step's views are made) to the modality registry."""
RegisterModalitiesWrapper: TypeAlias = "_RegisterModalities[Generator[None, Any, Any]]"
"""A hook wrapper of ``register_modalities`` (``@hookimpl(wrapper=True)``): it yields once."""


# register_policies(register) -> None --------------------------------------------------------------

class _RegisterPolicies__register(Protocol[_R_co]):
    def __call__(self, *, register: Callable[..., None]) -> _R_co: ...

class _RegisterPolicies_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_RegisterPolicies: TypeAlias = (
    _RegisterPolicies__register[_R_co]
    | _RegisterPolicies_without_arguments[_R_co]
)
RegisterPolicies: TypeAlias = "_RegisterPolicies[None]"
"""An implementation of ``register_policies(register: Callable[..., None]) -> None``: Add SSL policies (confidence masks, pseudo-labels, distribution alignment) to the policy registry."""
RegisterPoliciesWrapper: TypeAlias = "_RegisterPolicies[Generator[None, Any, Any]]"
"""A hook wrapper of ``register_policies`` (``@hookimpl(wrapper=True)``): it yields once."""


# register_commands(cli) -> None -------------------------------------------------------------------

class _RegisterCommands__cli(Protocol[_R_co]):
    def __call__(self, *, cli: click.Group) -> _R_co: ...

class _RegisterCommands_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_RegisterCommands: TypeAlias = (
    _RegisterCommands__cli[_R_co]
    | _RegisterCommands_without_arguments[_R_co]
)
RegisterCommands: TypeAlias = "_RegisterCommands[None]"
"""An implementation of ``register_commands(cli: click.Group) -> None``: Add commands to the ``semilearn`` command line."""
RegisterCommandsWrapper: TypeAlias = "_RegisterCommands[Generator[None, Any, Any]]"
"""A hook wrapper of ``register_commands`` (``@hookimpl(wrapper=True)``): it yields once."""


# configure(config) -> None ------------------------------------------------------------------------

class _Configure__config(Protocol[_R_co]):
    def __call__(self, *, config: Config) -> _R_co: ...

class _Configure_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_Configure: TypeAlias = (
    _Configure__config[_R_co]
    | _Configure_without_arguments[_R_co]
)
Configure: TypeAlias = "_Configure[None]"
"""An implementation of ``configure(config: Config) -> None``: See the resolved configuration before a run is built."""
ConfigureWrapper: TypeAlias = "_Configure[Generator[None, Any, Any]]"
"""A hook wrapper of ``configure`` (``@hookimpl(wrapper=True)``): it yields once."""


# find_resume_point(config, resume) -> ResumePoint | None (firstresult) ----------------------------

class _FindResumePoint__config__resume(Protocol[_R_co]):
    def __call__(self, *, config: Config, resume: str) -> _R_co: ...

class _FindResumePoint__config(Protocol[_R_co]):
    def __call__(self, *, config: Config) -> _R_co: ...

class _FindResumePoint__resume(Protocol[_R_co]):
    def __call__(self, *, resume: str) -> _R_co: ...

class _FindResumePoint_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_FindResumePoint: TypeAlias = (
    _FindResumePoint__config__resume[_R_co]
    | _FindResumePoint__config[_R_co]
    | _FindResumePoint__resume[_R_co]
    | _FindResumePoint_without_arguments[_R_co]
)
FindResumePoint: TypeAlias = "_FindResumePoint[ResumePoint | None]"
"""An implementation of ``find_resume_point(config: Config, resume: str) -> ResumePoint | None`` (firstresult): Locate and read the checkpoint a run continues from."""
FindResumePointWrapper: TypeAlias = "_FindResumePoint[Generator[None, Any, Any]]"
"""A hook wrapper of ``find_resume_point`` (``@hookimpl(wrapper=True)``): it yields once."""


# before_run(algorithm) -> None --------------------------------------------------------------------

class _BeforeRun__algorithm(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView) -> _R_co: ...

class _BeforeRun_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_BeforeRun: TypeAlias = (
    _BeforeRun__algorithm[_R_co]
    | _BeforeRun_without_arguments[_R_co]
)
BeforeRun: TypeAlias = "_BeforeRun[None]"
"""An implementation of ``before_run(algorithm: RunView) -> None``: The run is built and about to train."""
BeforeRunWrapper: TypeAlias = "_BeforeRun[Generator[None, Any, Any]]"
"""A hook wrapper of ``before_run`` (``@hookimpl(wrapper=True)``): it yields once."""


# load_checkpoint(algorithm, state) -> None --------------------------------------------------------

class _LoadCheckpoint__algorithm__state(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, state: Mapping[str, Any]) -> _R_co: ...

class _LoadCheckpoint__algorithm(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView) -> _R_co: ...

class _LoadCheckpoint__state(Protocol[_R_co]):
    def __call__(self, *, state: Mapping[str, Any]) -> _R_co: ...

class _LoadCheckpoint_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_LoadCheckpoint: TypeAlias = (
    _LoadCheckpoint__algorithm__state[_R_co]
    | _LoadCheckpoint__algorithm[_R_co]
    | _LoadCheckpoint__state[_R_co]
    | _LoadCheckpoint_without_arguments[_R_co]
)
LoadCheckpoint: TypeAlias = "_LoadCheckpoint[None]"
"""An implementation of ``load_checkpoint(algorithm: RunView, state: Mapping[str, Any]) -> None``: Restore plugin state from the checkpoint the run resumes from."""
LoadCheckpointWrapper: TypeAlias = "_LoadCheckpoint[Generator[None, Any, Any]]"
"""A hook wrapper of ``load_checkpoint`` (``@hookimpl(wrapper=True)``): it yields once."""


# before_train_epoch(algorithm, epoch) -> None -----------------------------------------------------

class _BeforeTrainEpoch__algorithm__epoch(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, epoch: int) -> _R_co: ...

class _BeforeTrainEpoch__algorithm(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView) -> _R_co: ...

class _BeforeTrainEpoch__epoch(Protocol[_R_co]):
    def __call__(self, *, epoch: int) -> _R_co: ...

class _BeforeTrainEpoch_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_BeforeTrainEpoch: TypeAlias = (
    _BeforeTrainEpoch__algorithm__epoch[_R_co]
    | _BeforeTrainEpoch__algorithm[_R_co]
    | _BeforeTrainEpoch__epoch[_R_co]
    | _BeforeTrainEpoch_without_arguments[_R_co]
)
BeforeTrainEpoch: TypeAlias = "_BeforeTrainEpoch[None]"
"""An implementation of ``before_train_epoch(algorithm: RunView, epoch: int) -> None``: An epoch begins (``num_train_iter`` is split into ``epoch`` epochs)."""
BeforeTrainEpochWrapper: TypeAlias = "_BeforeTrainEpoch[Generator[None, Any, Any]]"
"""A hook wrapper of ``before_train_epoch`` (``@hookimpl(wrapper=True)``): it yields once."""


# before_train_step(algorithm, step) -> None -------------------------------------------------------

class _BeforeTrainStep__algorithm__step(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, step: int) -> _R_co: ...

class _BeforeTrainStep__algorithm(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView) -> _R_co: ...

class _BeforeTrainStep__step(Protocol[_R_co]):
    def __call__(self, *, step: int) -> _R_co: ...

class _BeforeTrainStep_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_BeforeTrainStep: TypeAlias = (
    _BeforeTrainStep__algorithm__step[_R_co]
    | _BeforeTrainStep__algorithm[_R_co]
    | _BeforeTrainStep__step[_R_co]
    | _BeforeTrainStep_without_arguments[_R_co]
)
BeforeTrainStep: TypeAlias = "_BeforeTrainStep[None]"
"""An implementation of ``before_train_step(algorithm: RunView, step: int) -> None``: A training step is about to run."""
BeforeTrainStepWrapper: TypeAlias = "_BeforeTrainStep[Generator[None, Any, Any]]"
"""A hook wrapper of ``before_train_step`` (``@hookimpl(wrapper=True)``): it yields once."""


# after_train_step(algorithm, step, outputs) -> None -----------------------------------------------

class _AfterTrainStep__algorithm__step__outputs(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, step: int, outputs: Mapping[str, Any]) -> _R_co: ...

class _AfterTrainStep__algorithm__step(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, step: int) -> _R_co: ...

class _AfterTrainStep__algorithm__outputs(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, outputs: Mapping[str, Any]) -> _R_co: ...

class _AfterTrainStep__step__outputs(Protocol[_R_co]):
    def __call__(self, *, step: int, outputs: Mapping[str, Any]) -> _R_co: ...

class _AfterTrainStep__algorithm(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView) -> _R_co: ...

class _AfterTrainStep__step(Protocol[_R_co]):
    def __call__(self, *, step: int) -> _R_co: ...

class _AfterTrainStep__outputs(Protocol[_R_co]):
    def __call__(self, *, outputs: Mapping[str, Any]) -> _R_co: ...

class _AfterTrainStep_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_AfterTrainStep: TypeAlias = (
    _AfterTrainStep__algorithm__step__outputs[_R_co]
    | _AfterTrainStep__algorithm__step[_R_co]
    | _AfterTrainStep__algorithm__outputs[_R_co]
    | _AfterTrainStep__step__outputs[_R_co]
    | _AfterTrainStep__algorithm[_R_co]
    | _AfterTrainStep__step[_R_co]
    | _AfterTrainStep__outputs[_R_co]
    | _AfterTrainStep_without_arguments[_R_co]
)
AfterTrainStep: TypeAlias = "_AfterTrainStep[None]"
"""An implementation of ``after_train_step(algorithm: RunView, step: int, outputs: Mapping[str, Any]) -> None``: A training step (forward, backward, optimizer and scheduler step) has finished."""
AfterTrainStepWrapper: TypeAlias = "_AfterTrainStep[Generator[None, Any, Any]]"
"""A hook wrapper of ``after_train_step`` (``@hookimpl(wrapper=True)``): it yields once."""


# collect_metrics(algorithm, step, split) -> Mapping[str, float] | None ----------------------------

class _CollectMetrics__algorithm__step__split(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, step: int, split: str) -> _R_co: ...

class _CollectMetrics__algorithm__step(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, step: int) -> _R_co: ...

class _CollectMetrics__algorithm__split(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, split: str) -> _R_co: ...

class _CollectMetrics__step__split(Protocol[_R_co]):
    def __call__(self, *, step: int, split: str) -> _R_co: ...

class _CollectMetrics__algorithm(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView) -> _R_co: ...

class _CollectMetrics__step(Protocol[_R_co]):
    def __call__(self, *, step: int) -> _R_co: ...

class _CollectMetrics__split(Protocol[_R_co]):
    def __call__(self, *, split: str) -> _R_co: ...

class _CollectMetrics_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_CollectMetrics: TypeAlias = (
    _CollectMetrics__algorithm__step__split[_R_co]
    | _CollectMetrics__algorithm__step[_R_co]
    | _CollectMetrics__algorithm__split[_R_co]
    | _CollectMetrics__step__split[_R_co]
    | _CollectMetrics__algorithm[_R_co]
    | _CollectMetrics__step[_R_co]
    | _CollectMetrics__split[_R_co]
    | _CollectMetrics_without_arguments[_R_co]
)
CollectMetrics: TypeAlias = "_CollectMetrics[Mapping[str, float] | None]"
"""An implementation of ``collect_metrics(algorithm: RunView, step: int, split: str) -> Mapping[str, float] | None``: Contribute metrics to the next :func:`log` call."""
CollectMetricsWrapper: TypeAlias = "_CollectMetrics[Generator[None, Any, Any]]"
"""A hook wrapper of ``collect_metrics`` (``@hookimpl(wrapper=True)``): it yields once."""


# log(algorithm, step, split, metrics) -> None -----------------------------------------------------

class _Log__algorithm__step__split__metrics(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, step: int, split: str, metrics: Mapping[str, float]) -> _R_co: ...

class _Log__algorithm__step__split(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, step: int, split: str) -> _R_co: ...

class _Log__algorithm__step__metrics(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, step: int, metrics: Mapping[str, float]) -> _R_co: ...

class _Log__algorithm__split__metrics(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, split: str, metrics: Mapping[str, float]) -> _R_co: ...

class _Log__step__split__metrics(Protocol[_R_co]):
    def __call__(self, *, step: int, split: str, metrics: Mapping[str, float]) -> _R_co: ...

class _Log__algorithm__step(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, step: int) -> _R_co: ...

class _Log__algorithm__split(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, split: str) -> _R_co: ...

class _Log__algorithm__metrics(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, metrics: Mapping[str, float]) -> _R_co: ...

class _Log__step__split(Protocol[_R_co]):
    def __call__(self, *, step: int, split: str) -> _R_co: ...

class _Log__step__metrics(Protocol[_R_co]):
    def __call__(self, *, step: int, metrics: Mapping[str, float]) -> _R_co: ...

class _Log__split__metrics(Protocol[_R_co]):
    def __call__(self, *, split: str, metrics: Mapping[str, float]) -> _R_co: ...

class _Log__algorithm(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView) -> _R_co: ...

class _Log__step(Protocol[_R_co]):
    def __call__(self, *, step: int) -> _R_co: ...

class _Log__split(Protocol[_R_co]):
    def __call__(self, *, split: str) -> _R_co: ...

class _Log__metrics(Protocol[_R_co]):
    def __call__(self, *, metrics: Mapping[str, float]) -> _R_co: ...

class _Log_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_Log: TypeAlias = (
    _Log__algorithm__step__split__metrics[_R_co]
    | _Log__algorithm__step__split[_R_co]
    | _Log__algorithm__step__metrics[_R_co]
    | _Log__algorithm__split__metrics[_R_co]
    | _Log__step__split__metrics[_R_co]
    | _Log__algorithm__step[_R_co]
    | _Log__algorithm__split[_R_co]
    | _Log__algorithm__metrics[_R_co]
    | _Log__step__split[_R_co]
    | _Log__step__metrics[_R_co]
    | _Log__split__metrics[_R_co]
    | _Log__algorithm[_R_co]
    | _Log__step[_R_co]
    | _Log__split[_R_co]
    | _Log__metrics[_R_co]
    | _Log_without_arguments[_R_co]
)
Log: TypeAlias = "_Log[None]"
"""An implementation of ``log(algorithm: RunView, step: int, split: str, metrics: Mapping[str, float]) -> None``: Metrics are ready to record."""
LogWrapper: TypeAlias = "_Log[Generator[None, Any, Any]]"
"""A hook wrapper of ``log`` (``@hookimpl(wrapper=True)``): it yields once."""


# evaluate(algorithm, step) -> Mapping[str, float] | None (firstresult) ----------------------------

class _Evaluate__algorithm__step(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, step: int) -> _R_co: ...

class _Evaluate__algorithm(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView) -> _R_co: ...

class _Evaluate__step(Protocol[_R_co]):
    def __call__(self, *, step: int) -> _R_co: ...

class _Evaluate_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_Evaluate: TypeAlias = (
    _Evaluate__algorithm__step[_R_co]
    | _Evaluate__algorithm[_R_co]
    | _Evaluate__step[_R_co]
    | _Evaluate_without_arguments[_R_co]
)
Evaluate: TypeAlias = "_Evaluate[Mapping[str, float] | None]"
"""An implementation of ``evaluate(algorithm: RunView, step: int) -> Mapping[str, float] | None`` (firstresult): Evaluate the model and return the metrics."""
EvaluateWrapper: TypeAlias = "_Evaluate[Generator[None, Any, Any]]"
"""A hook wrapper of ``evaluate`` (``@hookimpl(wrapper=True)``): it yields once."""


# after_evaluate(algorithm, step, metrics) -> None -------------------------------------------------

class _AfterEvaluate__algorithm__step__metrics(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, step: int, metrics: Mapping[str, float]) -> _R_co: ...

class _AfterEvaluate__algorithm__step(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, step: int) -> _R_co: ...

class _AfterEvaluate__algorithm__metrics(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, metrics: Mapping[str, float]) -> _R_co: ...

class _AfterEvaluate__step__metrics(Protocol[_R_co]):
    def __call__(self, *, step: int, metrics: Mapping[str, float]) -> _R_co: ...

class _AfterEvaluate__algorithm(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView) -> _R_co: ...

class _AfterEvaluate__step(Protocol[_R_co]):
    def __call__(self, *, step: int) -> _R_co: ...

class _AfterEvaluate__metrics(Protocol[_R_co]):
    def __call__(self, *, metrics: Mapping[str, float]) -> _R_co: ...

class _AfterEvaluate_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_AfterEvaluate: TypeAlias = (
    _AfterEvaluate__algorithm__step__metrics[_R_co]
    | _AfterEvaluate__algorithm__step[_R_co]
    | _AfterEvaluate__algorithm__metrics[_R_co]
    | _AfterEvaluate__step__metrics[_R_co]
    | _AfterEvaluate__algorithm[_R_co]
    | _AfterEvaluate__step[_R_co]
    | _AfterEvaluate__metrics[_R_co]
    | _AfterEvaluate_without_arguments[_R_co]
)
AfterEvaluate: TypeAlias = "_AfterEvaluate[None]"
"""An implementation of ``after_evaluate(algorithm: RunView, step: int, metrics: Mapping[str, float]) -> None``: An evaluation has finished."""
AfterEvaluateWrapper: TypeAlias = "_AfterEvaluate[Generator[None, Any, Any]]"
"""A hook wrapper of ``after_evaluate`` (``@hookimpl(wrapper=True)``): it yields once."""


# save_checkpoint(algorithm, state) -> None --------------------------------------------------------

class _SaveCheckpoint__algorithm__state(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, state: MutableMapping[str, Any]) -> _R_co: ...

class _SaveCheckpoint__algorithm(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView) -> _R_co: ...

class _SaveCheckpoint__state(Protocol[_R_co]):
    def __call__(self, *, state: MutableMapping[str, Any]) -> _R_co: ...

class _SaveCheckpoint_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_SaveCheckpoint: TypeAlias = (
    _SaveCheckpoint__algorithm__state[_R_co]
    | _SaveCheckpoint__algorithm[_R_co]
    | _SaveCheckpoint__state[_R_co]
    | _SaveCheckpoint_without_arguments[_R_co]
)
SaveCheckpoint: TypeAlias = "_SaveCheckpoint[None]"
"""An implementation of ``save_checkpoint(algorithm: RunView, state: MutableMapping[str, Any]) -> None``: A checkpoint is being assembled: add this plugin's state."""
SaveCheckpointWrapper: TypeAlias = "_SaveCheckpoint[Generator[None, Any, Any]]"
"""A hook wrapper of ``save_checkpoint`` (``@hookimpl(wrapper=True)``): it yields once."""


# on_step_end(algorithm, step) -> None -------------------------------------------------------------

class _OnStepEnd__algorithm__step(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, step: int) -> _R_co: ...

class _OnStepEnd__algorithm(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView) -> _R_co: ...

class _OnStepEnd__step(Protocol[_R_co]):
    def __call__(self, *, step: int) -> _R_co: ...

class _OnStepEnd_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_OnStepEnd: TypeAlias = (
    _OnStepEnd__algorithm__step[_R_co]
    | _OnStepEnd__algorithm[_R_co]
    | _OnStepEnd__step[_R_co]
    | _OnStepEnd_without_arguments[_R_co]
)
OnStepEnd: TypeAlias = "_OnStepEnd[None]"
"""An implementation of ``on_step_end(algorithm: RunView, step: int) -> None``: Everything of a step is done: training, logging and evaluation."""
OnStepEndWrapper: TypeAlias = "_OnStepEnd[Generator[None, Any, Any]]"
"""A hook wrapper of ``on_step_end`` (``@hookimpl(wrapper=True)``): it yields once."""


# after_train_epoch(algorithm, epoch) -> None ------------------------------------------------------

class _AfterTrainEpoch__algorithm__epoch(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, epoch: int) -> _R_co: ...

class _AfterTrainEpoch__algorithm(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView) -> _R_co: ...

class _AfterTrainEpoch__epoch(Protocol[_R_co]):
    def __call__(self, *, epoch: int) -> _R_co: ...

class _AfterTrainEpoch_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_AfterTrainEpoch: TypeAlias = (
    _AfterTrainEpoch__algorithm__epoch[_R_co]
    | _AfterTrainEpoch__algorithm[_R_co]
    | _AfterTrainEpoch__epoch[_R_co]
    | _AfterTrainEpoch_without_arguments[_R_co]
)
AfterTrainEpoch: TypeAlias = "_AfterTrainEpoch[None]"
"""An implementation of ``after_train_epoch(algorithm: RunView, epoch: int) -> None``: An epoch has finished (after :func:`on_step_end` of its last step)."""
AfterTrainEpochWrapper: TypeAlias = "_AfterTrainEpoch[Generator[None, Any, Any]]"
"""A hook wrapper of ``after_train_epoch`` (``@hookimpl(wrapper=True)``): it yields once."""


# after_run(algorithm, status, error) -> None ------------------------------------------------------

class _AfterRun__algorithm__status__error(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, status: str, error: BaseException | None) -> _R_co: ...

class _AfterRun__algorithm__status(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, status: str) -> _R_co: ...

class _AfterRun__algorithm__error(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView, error: BaseException | None) -> _R_co: ...

class _AfterRun__status__error(Protocol[_R_co]):
    def __call__(self, *, status: str, error: BaseException | None) -> _R_co: ...

class _AfterRun__algorithm(Protocol[_R_co]):
    def __call__(self, *, algorithm: RunView) -> _R_co: ...

class _AfterRun__status(Protocol[_R_co]):
    def __call__(self, *, status: str) -> _R_co: ...

class _AfterRun__error(Protocol[_R_co]):
    def __call__(self, *, error: BaseException | None) -> _R_co: ...

class _AfterRun_without_arguments(Protocol[_R_co]):
    def __call__(self) -> _R_co: ...


_AfterRun: TypeAlias = (
    _AfterRun__algorithm__status__error[_R_co]
    | _AfterRun__algorithm__status[_R_co]
    | _AfterRun__algorithm__error[_R_co]
    | _AfterRun__status__error[_R_co]
    | _AfterRun__algorithm[_R_co]
    | _AfterRun__status[_R_co]
    | _AfterRun__error[_R_co]
    | _AfterRun_without_arguments[_R_co]
)
AfterRun: TypeAlias = "_AfterRun[None]"
"""An implementation of ``after_run(algorithm: RunView, status: str, error: BaseException | None) -> None``: The run has ended, however it ended."""
AfterRunWrapper: TypeAlias = "_AfterRun[Generator[None, Any, Any]]"
"""A hook wrapper of ``after_run`` (``@hookimpl(wrapper=True)``): it yields once."""
