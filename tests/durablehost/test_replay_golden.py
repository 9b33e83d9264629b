"""Golden histories for the tricky task numbering, checked in under golden/.

Each scenario runs a sample orchestrator on the engine with a SteppingClock and one
activity worker, so which events share an episode is fixed; the resulting history is
compared with the checked-in golden JSON, both with extended sessions (live
orchestrators between episodes) and with a full replay on every episode. Then the
pure replay step (`execute_episode`) is run on the golden history itself, episode by
episode: it must ask for exactly the tasks (ids, names) the golden history records
next, cancel the timers it cancels, and end with the golden output.

Regenerate the files after a deliberate change with
`DURABLEHOST_REGENERATE_GOLDEN=1 .venv/bin/pytest tests/durablehost/test_replay_golden.py`
and review the diff: the numbering in them is the point.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from durablehost.engine.engine import DurableEngine
from durablehost.engine.executor import ACTIVITY, SUB_ORCHESTRATION, TIMER, execute_episode
from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import RuntimeStatus
from tests.durablehost.engine_fixtures import (
    GOLDEN_DIR,
    SteppingClock,
    at,
    drive_until_done,
    episode_input,
    episode_spans,
    event_shape,
    events_from_golden,
    probe,
    running_engine,
    samples_index,
)

INSTANCE_ID = "golden"
REGENERATE = os.environ.get("DURABLEHOST_REGENERATE_GOLDEN") == "1"

Driver = Callable[[DurableEngine, int], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    """One golden history: what runs, what the test does meanwhile, and why the
    numbering comes out as it does."""

    orchestrator: str
    input: Any
    why: str
    # Runs each time the hub settles (step 0 = after the first episode's work is done).
    between_steps: Driver | None = None


async def _approve_at_first_settle(engine: DurableEngine, step: int) -> None:
    if step == 0:
        await engine.raise_event(INSTANCE_ID, "approve", json.dumps("yes"))


async def _raise_go_in_generation_1(engine: DurableEngine, step: int) -> None:
    # Step 0: generation 0 waits on its timer; step 1: generation 1 waits on its timer.
    if step == 1:
        await engine.raise_event(INSTANCE_ID, "go", json.dumps("early"))


SCENARIOS: dict[str, Scenario] = {
    "retry_fan_out": Scenario(
        orchestrator="retry_fan_out",
        input={"prefix": "golden-fan", "fails": [1, 0, 1], "interval": 100},
        why=(
            "task_all over three call_activity_with_retry: attempts 0, 1, 2 take ids 0-2 in "
            "call order. Attempt 0 fails -> its retry timer takes the next id, 3; task 1 "
            "succeeds; task 2 fails -> retry timer 4. Both timers fire in one episode and "
            "the re-attempts take 5 (for task 0) and 6 (for task 2), in the order the "
            "timers fired: the SDK allocates retry ids while replaying each failure, one "
            "counter per execution shared by activities and timers."
        ),
    ),
    "retry_exhausted": Scenario(
        orchestrator="retry_one",
        input={"key": "golden-exhausted", "fail": 5, "interval": 100, "attempts": 2},
        why=(
            "max_number_of_attempts=2 and every attempt fails: attempt 0 fails -> retry "
            "timer 1 -> attempt 2 fails -> timer 3, and only when timer 3 fires does the "
            "error surface (DTFx's RetryInterceptor waits one more interval after the last "
            "failed attempt; the SDK mirrors it to stay in sync). The instance fails."
        ),
    ),
    "task_any_event_wins": Scenario(
        orchestrator="approval",
        input=200,
        between_steps=_approve_at_first_settle,
        why=(
            "The timer takes id 0; wait_for_external_event takes no id. The event arrives "
            "first: the orchestrator cancels timer 0 (its message is deleted in the same "
            "commit, so no TimerFired ever appears) and calls an activity, which takes the "
            "next id, 1: a cancelled timer keeps its number."
        ),
    ),
    "task_any_timer_wins": Scenario(
        orchestrator="approval",
        input=200,
        why=(
            "The timer takes id 0 and fires (TimerFired timerId 0) before any 'approve' "
            "event: task_any returns the timer and the orchestrator returns 'timeout'."
        ),
    ),
    "continue_as_new_early_event": Scenario(
        orchestrator="continue_then_wait",
        input={"generation": 0, "ms": 100},
        between_steps=_raise_go_in_generation_1,
        why=(
            "Generation 0 waits on timer 0, then continues as new: its history is replaced, "
            "so only generation 1's remains, and its counter starts again at 0 (its own "
            "timer 0). 'go' is raised while generation 1 waits on that timer, before it "
            "waits for 'go': the EventRaised is recorded (buffered) in that episode and "
            "satisfies the wait in the episode where timer 0 fires."
        ),
    ),
    "sub_orchestration_retry": Scenario(
        orchestrator="sub_retry",
        input={"key": "golden-sub", "fail": 1, "interval": 100},
        why=(
            "call_sub_orchestrator_with_retry: the first child (id 0, instance golden:0) "
            "fails -> retry timer 1 -> the second child takes id 2 (instance golden:2) and "
            "completes. Sub-orchestrations share the one counter with activities and timers."
        ),
    ),
}


def golden_event(event: HistoryEvent) -> dict[str, Any]:
    """event_shape plus the deterministic payloads the replay needs (no tracebacks,
    no timestamps)."""
    shape = event_shape(event)
    kind = event.event_type
    if kind in (EventType.EXECUTION_STARTED, EventType.TASK_SCHEDULED, EventType.EVENT_RAISED):
        shape["input"] = event.input
    if kind is EventType.SUB_ORCHESTRATION_INSTANCE_CREATED:
        shape["input"] = event.input
        shape["instanceId"] = event.instance_id
    if event.reason is not None:
        # A failure's text may end with a traceback naming files on this machine; the
        # failed orchestration's result repeats it.
        shape["reason"] = first_line(event.reason)
    elif event.result is not None:
        shape["result"] = event.result
    if event.orchestration_status is not None:
        shape["status"] = event.orchestration_status
    return shape


def first_line(text: str) -> str:
    """The message of a failure without the traceback that follows it."""
    return text.split("\n", 1)[0].strip()


def format_golden(document: dict[str, Any]) -> str:
    """JSON with one history event per line, so a diff shows which event moved."""
    head = {key: value for key, value in document.items() if key != "history"}
    lines = [f"  {json.dumps(event)}" for event in document["history"]]
    body = json.dumps(head, indent=2)[:-2]
    return body + ',\n  "history": [\n' + ",\n".join(f"  {line}" for line in lines) + "\n  ]\n}\n"


def load_golden(name: str) -> dict[str, Any]:
    path = GOLDEN_DIR / f"{name}.json"
    if not path.exists():
        pytest.fail(f"{path} is missing: run with DURABLEHOST_REGENERATE_GOLDEN=1")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


async def run_scenario(
    scenario: Scenario, hub: Path, *, extended_sessions: bool = True
) -> tuple[list[dict[str, Any]], Any, str]:
    """Run the scenario on a fresh engine; returns (golden history, output, status)."""
    calls = probe().calls
    for key in [key for key in calls if key.startswith("golden")]:
        del calls[key]
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
        # Nothing may be left behind: cancelled timers and consumed events are gone.
        assert engine.store.pending_messages() == []
        assert engine.store.pending_activities() == []
    output = json.loads(status.output) if status.output is not None else None
    if status.runtime_status is RuntimeStatus.FAILED:
        output = first_line(str(output))
    return [golden_event(e) for e in status.history], output, status.runtime_status.value


@pytest.mark.parametrize("sessions", [True, False], ids=["extended-sessions", "full-replay"])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_engine_reproduces_golden_history(name: str, sessions: bool, tmp_path: Path) -> None:
    scenario = SCENARIOS[name]
    history, output, status = await run_scenario(
        scenario, tmp_path / "hub.sqlite3", extended_sessions=sessions
    )
    if REGENERATE and sessions:
        document = {
            "why": scenario.why,
            "orchestrator": scenario.orchestrator,
            "instanceId": INSTANCE_ID,
            "input": scenario.input,
            "status": status,
            "output": output,
            "history": history,
        }
        GOLDEN_DIR.mkdir(exist_ok=True)
        (GOLDEN_DIR / f"{name}.json").write_text(format_golden(document), encoding="utf-8")
    golden = load_golden(name)
    assert history == golden["history"]
    assert (status, output) == (golden["status"], golden["output"])


_SCHEDULING = {
    EventType.TASK_SCHEDULED: ACTIVITY,
    EventType.TIMER_CREATED: TIMER,
    EventType.SUB_ORCHESTRATION_INSTANCE_CREATED: SUB_ORCHESTRATION,
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_replaying_golden_history_makes_the_same_decisions(name: str) -> None:
    golden = load_golden(name)
    events = events_from_golden(golden["history"])
    orchestrator = samples_index().orchestrators[golden["orchestrator"]].user_function
    input_json = next(e.input for e in events if e.event_type is EventType.EXECUTION_STARTED)
    spans = episode_spans(events)
    assert spans, "a golden history has at least one episode"
    for number, (start, end) in enumerate(spans):
        decided = [
            (e.event_id, _SCHEDULING[e.event_type], e.name)
            for e in events[start:end]
            if e.event_type in _SCHEDULING
        ]
        history = episode_input(events, start, end)
        outcome = execute_episode(
            orchestrator,
            instance_id=golden["instanceId"],
            input_json=input_json,
            parent_instance_id=None,
            history=history,
            scheduled_ids={e.event_id for e in history if e.event_type in _SCHEDULING},
            now=at(number + 1),
            orchestrator_name=golden["orchestrator"],
        )
        asked = [(task.task_id, task.kind, task.name) for task in outcome.new_tasks]
        assert asked == decided, f"episode {number} of {name}"
        is_last = number == len(spans) - 1
        assert outcome.is_done == is_last, f"episode {number} of {name}"
        if is_last:
            if golden["status"] == "Failed":
                assert outcome.failure is not None
                assert first_line(outcome.failure[0]) == golden["output"]
            else:
                assert outcome.failure is None
                assert json.loads(outcome.output or "null") == golden["output"]


def test_event_wins_cancels_the_timer_on_replay() -> None:
    """The episode where the event arrives reports timer 0 as cancelled (the engine
    deletes its message) and asks for the follow-up activity under the next id, 1."""
    golden = load_golden("task_any_event_wins")
    events = events_from_golden(golden["history"])
    [(start, end)] = [
        span
        for span in episode_spans(events)
        if any(e.event_type is EventType.EVENT_RAISED for e in events[span[0] : span[1]])
    ]
    orchestrator = samples_index().orchestrators["approval"].user_function
    history = episode_input(events, start, end)
    outcome = execute_episode(
        orchestrator,
        instance_id=INSTANCE_ID,
        input_json="200",
        parent_instance_id=None,
        history=history,
        scheduled_ids={0},
        now=at(10),
        orchestrator_name="approval",
    )
    assert not outcome.is_done
    assert outcome.canceled_timer_ids == [0]
    assert [(t.task_id, t.kind, t.name) for t in outcome.new_tasks] == [(1, ACTIVITY, "say_hello")]


def test_golden_files_explain_their_numbering() -> None:
    for name, scenario in SCENARIOS.items():
        golden = load_golden(name)
        assert golden["why"] == scenario.why, f"{name}.json is stale: regenerate it"
        assert golden["orchestrator"] == scenario.orchestrator
        assert golden["input"] == scenario.input


def test_retry_timer_due_times_follow_the_interval() -> None:
    """The retry timer the replay asks for is due one first-retry-interval after now."""
    golden = load_golden("retry_exhausted")
    events = events_from_golden(golden["history"])
    start, end = episode_spans(events)[1]
    orchestrator = samples_index().orchestrators["retry_one"].user_function
    history = episode_input(events, start, end)
    now = at(2)
    outcome = execute_episode(
        orchestrator,
        instance_id=INSTANCE_ID,
        input_json=json.dumps(golden["input"]),
        parent_instance_id=None,
        history=history,
        scheduled_ids={0},
        now=now,
        orchestrator_name="retry_one",
    )
    [timer] = outcome.new_tasks
    assert (timer.task_id, timer.kind, timer.is_retry_timer) == (1, TIMER, True)
    assert timer.fire_at == now + timedelta(milliseconds=100)
