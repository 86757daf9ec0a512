"""mypy: every hook implementation of the shipped plugins and of the example is correct.

Not a test module: mypy reads it (``mypy tests/typing``; ``tests/typing/test_protocols.py``
runs it and checks that every hook implementation of these plugins has its line here).
Each line assigns an implementation to the type of its hook point from
:mod:`semilearn.protocols`; a wrong argument name or type, or a wrong return type, is an
error. First, :class:`semilearn.AlgorithmBase` is checked to provide every member of
:class:`semilearn.RunView`, the type the hook points give ``algorithm``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from semilearn_early_stopping import EarlyStopping

    from semilearn import AlgorithmBase, RunView, protocols
    from semilearn.builtin.catalog import Catalog
    from semilearn.builtin.ema import EMAHook
    from semilearn.builtin.evaluation import EvaluationHook
    from semilearn.builtin.policies import PolicyHook
    from semilearn.builtin.scaffold import ScaffoldHook
    from semilearn.builtin.timing import TimingHook
    from semilearn_checkpoint import CheckpointHook
    from semilearn_logging import LoggingHook

    # what the engine passes as ``algorithm`` is a RunView: AlgorithmBase has every member
    def _the_engine_passes_a_run_view(algorithm: AlgorithmBase) -> RunView:
        return algorithm

    # a plugin's algorithm extends a built-in one's options (the documented way)
    from semilearn import Option
    from semilearn.algorithms.flexmatch import FlexMatch

    class ExtendedFlexMatch(FlexMatch):
        config_options = FlexMatch.config_options + (Option("extra_weight", float, 1.0, "An extra term."),)

    # built-in plugins of the core
    catalog = Catalog()
    catalog_register_algorithms: protocols.RegisterAlgorithms = catalog.register_algorithms
    catalog_register_datasets: protocols.RegisterDatasets = catalog.register_datasets
    catalog_register_nets: protocols.RegisterNets = catalog.register_nets
    catalog_register_modalities: protocols.RegisterModalities = catalog.register_modalities
    catalog_register_commands: protocols.RegisterCommands = catalog.register_commands

    ema = EMAHook()
    ema_before_run: protocols.BeforeRun = ema.before_run
    ema_after_train_step: protocols.AfterTrainStep = ema.after_train_step
    ema_save_checkpoint: protocols.SaveCheckpoint = ema.save_checkpoint
    ema_load_checkpoint: protocols.LoadCheckpoint = ema.load_checkpoint

    evaluation = EvaluationHook()
    evaluation_evaluate: protocols.Evaluate = evaluation.evaluate

    timing = TimingHook()
    timing_before_run: protocols.BeforeRun = timing.before_run
    timing_load_checkpoint: protocols.LoadCheckpoint = timing.load_checkpoint
    timing_evaluate: protocols.EvaluateWrapper = timing.evaluate
    timing_collect_metrics: protocols.CollectMetrics = timing.collect_metrics

    policies = PolicyHook()
    policies_register_policies: protocols.RegisterPolicies = policies.register_policies

    scaffold = ScaffoldHook()
    scaffold_register_commands: protocols.RegisterCommands = scaffold.register_commands

    # semilearn-logging
    logging = LoggingHook()
    logging_register_commands: protocols.RegisterCommands = logging.register_commands
    logging_before_run: protocols.BeforeRun = logging.before_run
    logging_load_checkpoint: protocols.LoadCheckpoint = logging.load_checkpoint
    logging_after_train_step: protocols.AfterTrainStep = logging.after_train_step
    logging_log: protocols.Log = logging.log
    logging_save_checkpoint: protocols.SaveCheckpoint = logging.save_checkpoint
    logging_after_run: protocols.AfterRun = logging.after_run
    logging_on_step_end: protocols.OnStepEnd = logging.on_step_end

    # semilearn-checkpoint
    checkpoint = CheckpointHook()
    checkpoint_register_commands: protocols.RegisterCommands = checkpoint.register_commands
    checkpoint_find_resume_point: protocols.FindResumePoint = checkpoint.find_resume_point
    checkpoint_before_run: protocols.BeforeRun = checkpoint.before_run
    checkpoint_load_checkpoint: protocols.LoadCheckpoint = checkpoint.load_checkpoint
    checkpoint_after_evaluate: protocols.AfterEvaluate = checkpoint.after_evaluate
    checkpoint_save_checkpoint: protocols.SaveCheckpoint = checkpoint.save_checkpoint
    checkpoint_on_step_end: protocols.OnStepEnd = checkpoint.on_step_end
    checkpoint_after_run: protocols.AfterRun = checkpoint.after_run

    # the example distribution (examples/early-stopping)
    early_stopping = EarlyStopping()
    early_stopping_after_evaluate: protocols.AfterEvaluate = early_stopping.after_evaluate
    early_stopping_save_checkpoint: protocols.SaveCheckpoint = early_stopping.save_checkpoint
    early_stopping_load_checkpoint: protocols.LoadCheckpoint = early_stopping.load_checkpoint
