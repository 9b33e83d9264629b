"""Timer triggers for the timer tests: each call is recorded in CALLS."""

import azure.functions as func

app = func.FunctionApp()

CALLS: list[dict] = []


def _record(name: str, timer: func.TimerRequest) -> None:
    CALLS.append(
        {"name": name, "past_due": timer.past_due, "schedule_status": dict(timer.schedule_status)}
    )


@app.timer_trigger(schedule="*/1 * * * * *", arg_name="timer")
def every_second(timer: func.TimerRequest) -> None:
    _record("every_second", timer)


@app.timer_trigger(schedule="0 0 * * * *", arg_name="timer", run_on_startup=True)
async def on_startup(timer: func.TimerRequest) -> None:
    _record("on_startup", timer)


@app.timer_trigger(schedule="0 0 * * * *", arg_name="timer")
def hourly_monitored(timer: func.TimerRequest) -> None:
    _record("hourly_monitored", timer)


@app.timer_trigger(schedule="*/1 * * * * *", arg_name="timer")
def failing(timer: func.TimerRequest) -> None:
    _record("failing", timer)
    raise RuntimeError("timer failure")
