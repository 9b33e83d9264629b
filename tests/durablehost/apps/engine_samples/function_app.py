"""Sample app for the engine component and golden replay tests.

Written like the official Durable Functions samples (a DFApp with decorators), plus a
few orchestrators that exist only to pin down one engine behaviour each. The activities
report to `PROBE` (a module global the tests reach through the loaded index), so tests
can count invocations and measure how many ran at once without timing anything.
"""

from __future__ import annotations

import asyncio
import datetime
import threading
from collections import Counter
from collections.abc import Generator
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

# What an orchestrator function is to a type checker: a generator the SDK drives.
Orchestration = Generator[Any, Any, Any]

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


class Probe:
    """What the activities saw: invocation counts per key, concurrency, gates."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.calls: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.gate = threading.Event()
        self.gated_waiting = 0
        self.observations: list[dict[str, Any]] = []

    def count(self, key: str) -> int:
        """Count one invocation for `key`; returns the attempt number (1-based)."""
        with self.lock:
            self.calls[key] += 1
            return self.calls[key]


PROBE = Probe()


# -- activities -------------------------------------------------------------------------


@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    PROBE.count(f"hello:{city}")
    return f"Hello {city}!"


@app.activity_trigger(input_name="n")
def square(n: int) -> int:
    return n * n


@app.activity_trigger(input_name="job")
def fail_times(job: dict[str, Any]) -> str:
    """Fails the first `fail` invocations for `key`, then succeeds."""
    attempt = PROBE.count(job["key"])
    if attempt <= job["fail"]:
        raise RuntimeError(f"transient failure {attempt} of {job['key']}")
    return f"{job['key']} ok after {attempt}"


@app.activity_trigger(input_name="message")
def boom(message: str) -> None:
    raise ValueError(message)


@app.activity_trigger(input_name="value")
def returns_object(value: Any) -> Any:
    """Returns something that is not JSON: the activity must fail, not the host."""
    return object()


@app.activity_trigger(input_name="limit")
def measure(limit: int) -> int:
    """Holds until `limit` activities have run at once (or a second passes), so the
    observed maximum reaches the real bound; returns the in-flight count it saw."""
    with PROBE.lock:
        PROBE.in_flight += 1
        PROBE.max_in_flight = max(PROBE.max_in_flight, PROBE.in_flight)
        seen = PROBE.in_flight
        PROBE.lock.notify_all()
        PROBE.lock.wait_for(lambda: PROBE.max_in_flight >= limit, timeout=1.0)
        PROBE.in_flight -= 1
    return seen


@app.activity_trigger(input_name="limit")
async def measure_async(limit: int) -> int:
    """The async flavour of `measure`: counts without blocking the loop."""
    with PROBE.lock:
        PROBE.in_flight += 1
        PROBE.max_in_flight = max(PROBE.max_in_flight, PROBE.in_flight)
        seen = PROBE.in_flight
    # Yield to the loop a few times so other activities can start meanwhile.
    for _ in range(20):
        await asyncio.sleep(0)
    with PROBE.lock:
        PROBE.in_flight -= 1
    return seen


@app.activity_trigger(input_name="call")
def record_call(call: dict[str, str]) -> str:
    """Appends its key to a file: invocations are counted across engine restarts."""
    with PROBE.lock, Path(call["log"]).open("a", encoding="utf-8") as log:
        log.write(call["key"] + "\n")
    return call["key"].upper()


@app.activity_trigger(input_name="call")
def gated_call(call: dict[str, str]) -> str:
    """Like record_call, but waits for PROBE.gate first (to hold work in flight)."""
    with PROBE.lock:
        PROBE.gated_waiting += 1
    PROBE.gate.wait(timeout=30)
    return record_call(call)


# -- orchestrators ----------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext) -> Orchestration:
    cities = context.get_input() or ["Tokyo", "Seattle", "London"]
    results = []
    for city in cities:
        results.append((yield context.call_activity("say_hello", city)))
    return results


@app.orchestration_trigger(context_name="context")
def call_named(context: df.DurableOrchestrationContext) -> Orchestration:
    """Calls the activity named in the input: {"activity", "input"}."""
    spec = context.get_input()
    return (yield context.call_activity(spec["activity"], spec["input"]))


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext) -> Orchestration:
    count = context.get_input()
    results = yield context.task_all([context.call_activity("square", i) for i in range(count)])
    return sum(results)


@app.orchestration_trigger(context_name="context")
def retry_fan_out(context: df.DurableOrchestrationContext) -> Orchestration:
    """task_all over retried activities; input: {"prefix", "fails": [n, ...], "interval"}."""
    spec = context.get_input()
    options = df.RetryOptions(spec["interval"], 3)
    tasks = [
        context.call_activity_with_retry(
            "fail_times", options, {"key": f"{spec['prefix']}-{i}", "fail": fails}
        )
        for i, fails in enumerate(spec["fails"])
    ]
    return (yield context.task_all(tasks))


@app.orchestration_trigger(context_name="context")
def retry_one(context: df.DurableOrchestrationContext) -> Orchestration:
    """One retried activity; input: {"key", "fail", "interval", "attempts"}."""
    spec = context.get_input()
    options = df.RetryOptions(
        first_retry_interval_in_milliseconds=spec["interval"],
        max_number_of_attempts=spec["attempts"],
    )
    job = {"key": spec["key"], "fail": spec["fail"]}
    return (yield context.call_activity_with_retry("fail_times", options, job))


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext) -> Orchestration:
    """Human interaction: an 'approve' event raced against a timer of input ms."""
    deadline = context.current_utc_datetime + datetime.timedelta(milliseconds=context.get_input())
    timer = context.create_timer(deadline)
    approved = context.wait_for_external_event("approve")
    winner = yield context.task_any([approved, timer])
    if winner == approved:
        timer.cancel()
        processed = yield context.call_activity("say_hello", approved.result)
        return {"approved": processed}
    return "timeout"


@app.orchestration_trigger(context_name="context")
def activity_beats_timer(context: df.DurableOrchestrationContext) -> Orchestration:
    """task_any of an activity and a one-hour timer: the activity wins, the timer is cancelled."""
    timer = context.create_timer(context.current_utc_datetime + datetime.timedelta(hours=1))
    work = context.call_activity("say_hello", "race")
    winner = yield context.task_any([work, timer])
    if winner == work:
        timer.cancel()
    return winner.result


@app.orchestration_trigger(context_name="context")
def collect_events(context: df.DurableOrchestrationContext) -> Orchestration:
    """Waits for `input` events named 'item', one after the other."""
    items = []
    for _ in range(context.get_input()):
        items.append((yield context.wait_for_external_event("item")))
    return items


@app.orchestration_trigger(context_name="context")
def wait_forever(context: df.DurableOrchestrationContext) -> Orchestration:
    context.set_custom_status("waiting")
    value = yield context.wait_for_external_event("never")
    return value


@app.orchestration_trigger(context_name="context")
def parent_of_waiter(context: df.DurableOrchestrationContext) -> Orchestration:
    """A parent whose child (instance id = input) waits for 'never'."""
    return (yield context.call_sub_orchestrator("wait_forever", None, context.get_input()))


@app.orchestration_trigger(context_name="context")
def suspendable(context: df.DurableOrchestrationContext) -> Orchestration:
    first = yield context.call_activity("say_hello", "before")
    event = yield context.wait_for_external_event("go")
    second = yield context.call_activity("say_hello", "after")
    return [first, event, second]


@app.orchestration_trigger(context_name="context")
def durable_timer(context: df.DurableOrchestrationContext) -> Orchestration:
    started = context.current_utc_datetime
    yield context.create_timer(started + datetime.timedelta(milliseconds=context.get_input()))
    elapsed = context.current_utc_datetime - started
    return elapsed.total_seconds() * 1000


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext) -> Orchestration:
    """continue_as_new over generations: input {"n", "until"}."""
    state = context.get_input()
    if state["n"] >= state["until"]:
        return state["n"]
    yield context.create_timer(context.current_utc_datetime + datetime.timedelta(milliseconds=5))
    context.continue_as_new({"n": state["n"] + 1, "until": state["until"]})
    return None


@app.orchestration_trigger(context_name="context")
def continue_then_wait(context: df.DurableOrchestrationContext) -> Orchestration:
    """Each generation first waits on a timer of input["ms"]; generation 0 then continues
    as new, generation 1 waits for 'go' (which may have been raised earlier)."""
    state = context.get_input()
    when = context.current_utc_datetime + datetime.timedelta(milliseconds=state["ms"])
    yield context.create_timer(when)
    if state["generation"] == 0:
        context.continue_as_new({"generation": 1, "ms": state["ms"]})
        return None
    go = yield context.wait_for_external_event("go")
    return [state["generation"], go]


@app.orchestration_trigger(context_name="context")
def continue_at_once(context: df.DurableOrchestrationContext) -> Orchestration:
    """Generation 0 continues as new right away; generation 1 calls an activity, then
    waits for 'go' (raised before generation 1 even started, in the golden test)."""
    generation = context.get_input()
    if generation == 0:
        context.continue_as_new(1)
        return None
    hello = yield context.call_activity("say_hello", f"generation {generation}")
    go = yield context.wait_for_external_event("go")
    return [hello, go]


@app.orchestration_trigger(context_name="context")
def child_fails_once(context: df.DurableOrchestrationContext) -> Orchestration:
    """A child that fails when its activity fails (no retry inside)."""
    return (yield context.call_activity("fail_times", context.get_input()))


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext) -> Orchestration:
    """Sub-orchestrations: a generated child id, an explicit one, and a retried child."""
    spec = context.get_input()
    first = yield context.call_sub_orchestrator("chain", ["Oslo"])
    second = yield context.call_sub_orchestrator("fan_out", 3, spec["child_id"])
    options = df.RetryOptions(spec["interval"], 3)
    job = {"key": spec["key"], "fail": 1}
    third = yield context.call_sub_orchestrator_with_retry("child_fails_once", options, job)
    return [first, second, third]


@app.orchestration_trigger(context_name="context")
def sub_retry(context: df.DurableOrchestrationContext) -> Orchestration:
    """Only the retried sub-orchestration of `parent` (for the golden history)."""
    spec = context.get_input()
    options = df.RetryOptions(spec["interval"], 3)
    job = {"key": spec["key"], "fail": spec["fail"]}
    return (yield context.call_sub_orchestrator_with_retry("child_fails_once", options, job))


@app.orchestration_trigger(context_name="context")
def sub_retry_named(context: df.DurableOrchestrationContext) -> Orchestration:
    """A retried sub-orchestration with an explicit instance id (the same for every
    attempt): input {"key", "fail", "child_id"}."""
    spec = context.get_input()
    options = df.RetryOptions(10, 3)
    job = {"key": spec["key"], "fail": spec["fail"]}
    return (
        yield context.call_sub_orchestrator_with_retry(
            "child_fails_once", options, job, spec["child_id"]
        )
    )


@app.orchestration_trigger(context_name="context")
def parent_of_failure(context: df.DurableOrchestrationContext) -> Orchestration:
    try:
        yield context.call_sub_orchestrator("failing", "child exploded")
    except Exception as error:
        return f"caught: {error}"
    return "not reached"


@app.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext) -> Orchestration:
    yield context.call_activity("boom", context.get_input())


@app.orchestration_trigger(context_name="context")
def raising(context: df.DurableOrchestrationContext) -> Orchestration:
    yield context.call_activity("say_hello", "first")
    raise KeyError("orchestrator code failed")


@app.orchestration_trigger(context_name="context")
def rewind_parent(context: df.DurableOrchestrationContext) -> Orchestration:
    job = context.get_input()
    before = yield context.call_activity("say_hello", f"{job['key']}-before")
    child = yield context.call_sub_orchestrator("child_fails_once", job)
    return [before, child]


@app.orchestration_trigger(context_name="context")
def calls_unknown_activity(context: df.DurableOrchestrationContext) -> Orchestration:
    yield context.call_activity("no_such_activity", 1)


@app.orchestration_trigger(context_name="context")
def calls_unknown_orchestrator(context: df.DurableOrchestrationContext) -> Orchestration:
    yield context.call_sub_orchestrator("no_such_orchestrator", 1)


@app.orchestration_trigger(context_name="context")
def bad_output(context: df.DurableOrchestrationContext) -> Orchestration:
    yield context.call_activity("say_hello", "x")
    return object()


@app.orchestration_trigger(context_name="context")
def custom_status(context: df.DurableOrchestrationContext) -> Orchestration:
    context.set_custom_status({"stage": "waiting"})
    value = yield context.wait_for_external_event("continue")
    context.set_custom_status({"stage": "done", "value": value})
    return value


@app.orchestration_trigger(context_name="context")
def deterministic(context: df.DurableOrchestrationContext) -> Orchestration:
    """Records what each step saw, on every (re)play; returns the values of the last pass.
    Between step 1 and 2 it waits for 'next', so a test can restart the engine there."""
    seen = []
    for step in range(3):
        observation = {
            "instance": context.instance_id,
            "step": step,
            "now": context.current_utc_datetime.isoformat(),
            "uuids": [str(context.new_uuid()), str(context.new_uuid())],
            "replaying": context.is_replaying,
        }
        with PROBE.lock:
            PROBE.observations.append(observation)
        seen.append([observation["now"], observation["uuids"]])
        if step == 0:
            yield context.call_activity("say_hello", "step 0")
        elif step == 1:
            yield context.wait_for_external_event("next")
    return seen


@app.orchestration_trigger(context_name="context")
def concurrency(context: df.DurableOrchestrationContext) -> Orchestration:
    spec = context.get_input()
    tasks = [context.call_activity(spec["activity"], spec["limit"]) for _ in range(spec["count"])]
    return max((yield context.task_all(tasks)))


@app.orchestration_trigger(context_name="context")
def record_fan_out(context: df.DurableOrchestrationContext) -> Orchestration:
    """Fan-out of record_call: input {"prefix", "log", "count"}; returns the results."""
    spec = context.get_input()
    calls = [
        context.call_activity("record_call", {"key": f"{spec['prefix']}-{n}", "log": spec["log"]})
        for n in range(spec["count"])
    ]
    return (yield context.task_all(calls))


@app.orchestration_trigger(context_name="context")
def recoverable(context: df.DurableOrchestrationContext) -> Orchestration:
    """A committed activity, then either a gated activity or a timer, then one more."""
    spec = context.get_input()
    key, log = spec["key"], spec["log"]
    first = yield context.call_activity("record_call", {"key": f"{key}-a", "log": log})
    if spec["gated"]:
        middle = yield context.call_activity("gated_call", {"key": f"{key}-b", "log": log})
    else:
        when = context.current_utc_datetime + datetime.timedelta(milliseconds=spec["ms"])
        yield context.create_timer(when)
        middle = "TIMER"
    last = yield context.call_activity("record_call", {"key": f"{key}-c", "log": log})
    return [first, middle, last]
