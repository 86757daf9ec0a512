"""The Hook base class: conditional helpers at their boundaries, rank gating, plugin state."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import train_in_process
from semilearn import Hook, Option, hookimpl, on_all_ranks
from semilearn.hook import runs_on_rank
from semilearn.plugins import PluginManager


@dataclass
class Progress:
    global_step: int
    epoch: int = 0
    num_train_iter: int = 10
    iters_per_epoch: int = 4


def test_every_n_steps_at_boundaries() -> None:
    hits = [step for step in range(0, 11) if Hook.every_n_steps(Progress(step), 3)]
    assert hits == [3, 6, 9]
    assert not Hook.every_n_steps(Progress(0), 1)
    assert not any(Hook.every_n_steps(Progress(step), 0) for step in range(12))
    assert [s for s in range(1, 11) if Hook.every_n_steps(Progress(s), 1)] == list(range(1, 11))


def test_every_n_epochs_counts_epochs_from_one() -> None:
    assert [epoch for epoch in range(6) if Hook.every_n_epochs(Progress(0, epoch), 2)] == [1, 3, 5]
    assert not Hook.every_n_epochs(Progress(0, 0), 0)


def test_is_last_step_and_end_of_epoch_with_a_short_last_epoch() -> None:
    # 10 steps, 4 per epoch: epochs end after steps 4, 8 and 10.
    assert [s for s in range(11) if Hook.end_of_epoch(Progress(s))] == [4, 8, 10]
    assert [s for s in range(11) if Hook.is_last_step(Progress(s))] == [10]


class Probe(Hook):
    """Records what the helpers say at every hook point of a real run."""

    name = "probe"
    config_options = (Option("n", int, 5, "interval"),)

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, int]] = []

    @hookimpl
    def before_train_epoch(self, algorithm, epoch: int) -> None:
        self.events.append(("epoch_start", epoch))

    @hookimpl
    def on_step_end(self, algorithm, step: int) -> None:
        assert step == algorithm.global_step
        if self.every_n_steps(algorithm, self.config.n):
            self.events.append(("every_n", step))
        if self.end_of_epoch(algorithm):
            self.events.append(("end_of_epoch", step))
        if self.is_last_step(algorithm):
            self.events.append(("last", step))

    @hookimpl
    def after_train_epoch(self, algorithm, epoch: int) -> None:
        self.events.append(("epoch_end", epoch))
        if self.every_n_epochs(algorithm, 2):
            self.events.append(("every_2_epochs", epoch))


def test_helpers_agree_with_the_real_loop(tmp_path: Path) -> None:
    probe = Probe()
    result = train_in_process(tmp_path, "num_train_iter=10", "epoch=3", "probe.n=3", plugins=[probe])
    assert result.status == "completed"
    assert result.algorithm.iters_per_epoch == 4
    assert probe.config.n == 3
    assert probe.events == [
        ("epoch_start", 0), ("every_n", 3), ("end_of_epoch", 4), ("epoch_end", 0),
        ("epoch_start", 1), ("every_n", 6), ("end_of_epoch", 8), ("epoch_end", 1), ("every_2_epochs", 1),
        ("epoch_start", 2), ("every_n", 9), ("end_of_epoch", 10), ("last", 10), ("epoch_end", 2),
    ]


class Tracker(Hook):
    rank_zero_only = True

    @hookimpl
    def log(self, algorithm, step, split, metrics) -> None:
        pass

    @on_all_ranks
    @hookimpl
    def load_checkpoint(self, algorithm, state) -> None:
        pass


class Everywhere(Hook):
    @hookimpl
    def log(self, algorithm, step, split, metrics) -> None:
        pass


def test_rank_gating_decisions() -> None:
    tracker, everywhere = Tracker(), Everywhere()
    assert runs_on_rank(tracker, "log", 0)
    assert not runs_on_rank(tracker, "log", 1)
    assert runs_on_rank(tracker, "load_checkpoint", 1)
    assert runs_on_rank(everywhere, "log", 3)


def test_manager_on_another_rank_registers_only_what_runs_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    manager = PluginManager()
    manager.register(Tracker(), name="tracker")
    manager.register(Everywhere(), name="everywhere")
    assert [impl.plugin_name for impl in manager.hook.log.get_hookimpls()] == ["everywhere"]
    assert [impl.plugin_name for impl in manager.hook.load_checkpoint.get_hookimpls()] == ["tracker"]
    monkeypatch.setenv("RANK", "0")
    zero = PluginManager()
    zero.register(Tracker(), name="tracker")
    assert [impl.plugin_name for impl in zero.hook.log.get_hookimpls()] == ["tracker"]


def test_plugin_state_creates_on_save_and_reads_on_load() -> None:
    probe = Probe()
    state: dict = {}
    probe.plugin_state(state)["count"] = 3
    assert state == {"plugins": {"probe": {"count": 3}}}
    assert probe.plugin_state(state) == {"count": 3}
    assert Probe().plugin_state({"plugins": {}}) == {}


def test_a_misnamed_argument_is_one_line_with_a_did_you_mean() -> None:
    from semilearn.errors import PluginError
    from semilearn.plugins import PluginManager

    class Misnamed(Hook):
        @hookimpl
        def after_evaluate(self, algorithm, stepp, metrics) -> None: ...

    with pytest.raises(PluginError) as caught:
        PluginManager().load().add(Misnamed())
    message = str(caught.value)
    assert "\n" not in message
    assert message == ("plugin 'misnamed' (distribution (registered in code) -) implements after_evaluate with "
                       "argument(s) 'stepp', which the hook point does not have (did you mean 'step'?); it has: "
                       "algorithm, step, metrics; disable it with '-p no:misnamed' or SEMILEARN_DISABLE_PLUGINS=misnamed")
