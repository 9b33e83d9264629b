"""Extended sessions change nothing: the live path and the full-replay path agree.

`SessionExecutor` keeps each instance's orchestrator alive between episodes and feeds it
only the new events; `execute_episode` replays the whole history every time (the SDK's
own model, and the fallback after a restart or an eviction). Two levels of proof:

- the replay step: over every episode of a set of tricky histories (retries, task_any
  with timers, events, continue_as_new, sub-orchestrations, custom status,
  new_guid/current_utc_datetime), the live session decides exactly what a full replay
  decides: the same new tasks under the same ids, the same cancelled timers, the same
  output, failure, custom status and continue-as-new input; also when the session is
  evicted half-way and the next episode falls back to a full replay;
- the engine: the same orchestration run by `DurableEngine(..., extended_sessions=True)`
  and `(..., extended_sessions=False)` on a clock the test moves ends with the same
  history (every field, timestamps included), output and status.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from durablehost.engine.engine import DurableEngine
from durablehost.engine.episodes import SCHEDULING_EVENTS
from durablehost.engine.executor import EpisodeOutcome, SessionExecutor, execute_episode
from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import InstanceStatus
from tests.durablehost.engine_fixtures import (
    GOLDEN_DIR,
    SteppingClock,
    at,
    drive_until_done,
    episode_input,
    episode_spans,
    events_from_golden,
    probe,
    running_engine,
    samples_index,
    wait_until,
)

INSTANCE_ID = "equivalence"

Driver = Callable[[DurableEngine, int], Awaitable[None]]


def _raise_at(step: int, name: str, value: Any) -> Driver:
    async def drive(engine: DurableEngine, current: int) -> None:
        if current == step:
            await engine.raise_event(INSTANCE_ID, name, json.dumps(value))

    return drive


def _raise_one_by_one(name: str, values: list[Any]) -> Driver:
    """Raises each value once the previous one has been consumed (one episode each)."""

    async def drive(engine: DurableEngine, current: int) -> None:
        if current != 0:
            return
        for value in values:
            await engine.raise_event(INSTANCE_ID, name, json.dumps(value))
            await wait_until(lambda: not engine.store.pending_messages(), what="the event")

    return drive


@dataclass(frozen=True)
class Scenario:
    """One orchestration run, and what the test does each time the hub settles."""

    orchestrator: str
    input: Any
    between_steps: Driver | None = None


SCENARIOS: dict[str, Scenario] = {
    "chain": Scenario("chain", ["Tokyo", "Seattle", "London", "Oslo"]),
    "retry_fan_out": Scenario(
        "retry_fan_out", {"prefix": "equivalence-fan", "fails": [1, 0, 2], "interval": 100}
    ),
    "retry_exhausted": Scenario(
        "retry_one", {"key": "equivalence-exhausted", "fail": 5, "interval": 100, "attempts": 3}
    ),
    "task_any_event_wins": Scenario("approval", 200, _raise_at(0, "approve", "yes")),
    "task_any_timer_wins": Scenario("approval", 200),
    "activity_beats_timer": Scenario("activity_beats_timer", None),
    "events_one_by_one": Scenario("collect_events", 3, _raise_one_by_one("item", [1, "two", 3])),
    "continue_as_new": Scenario("counter", {"n": 0, "until": 3}),
    "continue_as_new_early_event": Scenario(
        "continue_then_wait", {"generation": 0, "ms": 100}, _raise_at(1, "go", "early")
    ),
    "sub_orchestration_retry": Scenario(
        "sub_retry", {"key": "equivalence-sub", "fail": 1, "interval": 100}
    ),
    "sub_orchestrations": Scenario(
        "parent", {"child_id": "equivalence-child", "key": "equivalence-parent", "interval": 100}
    ),
    "sub_orchestration_fails": Scenario("parent_of_failure", None),
    "custom_status": Scenario("custom_status", None, _raise_at(0, "continue", {"v": 1})),
    "guid_and_time": Scenario("deterministic", None, _raise_at(0, "next", 1)),
    "orchestrator_raises": Scenario("raising", None),
}


def _reset_probe() -> None:
    calls = probe().calls
    for key in [key for key in calls if key.startswith("equivalence")]:
        del calls[key]


async def _run_engine(
    scenario: Scenario, hub: Path, *, extended_sessions: bool
) -> tuple[InstanceStatus, list[HistoryEvent]]:
    _reset_probe()
    clock = SteppingClock()
    async with running_engine(
        hub, clock=clock, max_concurrent_activities=1, extended_sessions=extended_sessions
    ) as engine:
        await engine.start_orchestration(
            scenario.orchestrator, json.dumps(scenario.input), INSTANCE_ID
        )
        hook = scenario.between_steps

        async def between_steps(step: int) -> None:
            if hook is not None:
                await hook(engine, step)

        await drive_until_done(engine, clock, INSTANCE_ID, between_steps=between_steps)
        status = await engine.get_status(INSTANCE_ID, show_history=True)
    assert status is not None and status.history is not None
    return status, list(status.history)


def _comparable(event: HistoryEvent) -> HistoryEvent:
    # A failure's details are a traceback: the frames of the two paths differ (a full
    # replay raises from execute(), a session from process_event()); the message not.
    if event.details:
        return HistoryEvent(
            event.event_type,
            event.timestamp,
            event_id=event.event_id,
            is_played=event.is_played,
            name=event.name,
            result=_first_line(event.result),
            reason=_first_line(event.reason),
            task_scheduled_id=event.task_scheduled_id,
            orchestration_status=event.orchestration_status,
        )
    return event


def _first_line(text: str | None) -> str | None:
    return None if text is None else text.split("\\n", 1)[0].split("\n", 1)[0]


def _outcome_shape(outcome: EpisodeOutcome) -> dict[str, Any]:
    return {
        "is_done": outcome.is_done,
        "new_tasks": outcome.new_tasks,
        "canceled_timer_ids": outcome.canceled_timer_ids,
        "output": outcome.output,
        "failure": None if outcome.failure is None else _first_line(outcome.failure[0]),
        "custom_status": outcome.custom_status,
        "continued_as_new": outcome.continued_as_new,
        "continue_as_new_input": outcome.continue_as_new_input,
        "buffered_event_names": outcome.buffered_event_names,
    }


def _decide_each_episode(
    executor: Callable[..., EpisodeOutcome],
    orchestrator_name: str,
    events: list[HistoryEvent],
    *,
    evict_after: int | None = None,
) -> list[dict[str, Any]]:
    orchestrator = samples_index().orchestrators[orchestrator_name].user_function
    input_json = next(e.input for e in events if e.event_type is EventType.EXECUTION_STARTED)
    decided = []
    histories = [episode_input(events, start, end) for start, end in episode_spans(events)]
    for number, history in enumerate(histories):
        outcome = executor(
            orchestrator,
            instance_id=INSTANCE_ID,
            input_json=input_json,
            parent_instance_id=None,
            history=history,
            scheduled_ids={e.event_id for e in history if e.event_type in SCHEDULING_EVENTS},
            now=at(100 + number),
            orchestrator_name=orchestrator_name,
        )
        decided.append(_outcome_shape(outcome))
        if evict_after == number and isinstance(executor, SessionExecutor):
            executor.forget(INSTANCE_ID)
    return decided


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_engine_histories_are_identical_with_and_without_sessions(
    name: str, tmp_path: Path
) -> None:
    scenario = SCENARIOS[name]
    live_status, live = await _run_engine(
        scenario, tmp_path / "live.sqlite3", extended_sessions=True
    )
    replay_status, replayed = await _run_engine(
        scenario, tmp_path / "replay.sqlite3", extended_sessions=False
    )
    assert [_comparable(e) for e in live] == [_comparable(e) for e in replayed]
    assert live_status.runtime_status == replay_status.runtime_status
    assert _first_line(live_status.output) == _first_line(replay_status.output)
    assert live_status.custom_status == replay_status.custom_status
    assert live_status.last_updated_time == replay_status.last_updated_time


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_every_episode_decides_the_same_live_and_replayed(name: str, tmp_path: Path) -> None:
    scenario = SCENARIOS[name]
    _, events = await _run_engine(scenario, tmp_path / "hub.sqlite3", extended_sessions=False)
    _reset_probe()
    replayed = _decide_each_episode(execute_episode, scenario.orchestrator, events)
    sessions = SessionExecutor()
    live = _decide_each_episode(sessions, scenario.orchestrator, events)
    assert live == replayed
    assert replayed[-1]["is_done"]
    assert len(sessions) == 0  # a finished orchestration leaves no session behind


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_an_evicted_session_falls_back_to_full_replay_with_the_same_decisions(
    name: str, tmp_path: Path
) -> None:
    scenario = SCENARIOS[name]
    _, events = await _run_engine(scenario, tmp_path / "hub.sqlite3", extended_sessions=False)
    replayed = _decide_each_episode(execute_episode, scenario.orchestrator, events)
    evicted = _decide_each_episode(SessionExecutor(), scenario.orchestrator, events, evict_after=0)
    assert evicted == replayed


@pytest.mark.parametrize("path", sorted(GOLDEN_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_golden_histories_decide_the_same_live_and_replayed(path: Path) -> None:
    golden = json.loads(path.read_text(encoding="utf-8"))
    events = events_from_golden(golden["history"])
    replayed = _decide_each_episode(execute_episode, golden["orchestrator"], events)
    live = _decide_each_episode(SessionExecutor(), golden["orchestrator"], events)
    assert live == replayed


def test_sessions_are_bounded_and_evict_the_oldest() -> None:
    sessions = SessionExecutor(capacity=2)
    orchestrator = samples_index().orchestrators["collect_events"].user_function
    started = [
        HistoryEvent(EventType.ORCHESTRATOR_STARTED, at(0)),
        HistoryEvent(EventType.EXECUTION_STARTED, at(0), name="collect_events", input="2"),
    ]
    for instance_id in ("a", "b", "c"):
        outcome = sessions(
            orchestrator,
            instance_id=instance_id,
            input_json="2",
            parent_instance_id=None,
            history=started,
            scheduled_ids=set(),
            now=at(0),
            orchestrator_name="collect_events",
        )
        assert not outcome.is_done
    assert len(sessions) == 2
