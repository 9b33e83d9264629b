"""How trigger functions are called: the arguments worked out from bindings and signature."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import azure.functions as func
import pytest

from durablehost.app.invocation import (
    FunctionInvoker,
    InvocationContext,
    declares_context,
    plan_invocation,
)
from durablehost.app.loader import FunctionIndex, FunctionInfo, load_app

APPS = Path(__file__).parent / "apps"


def _function(index: FunctionIndex, name: str) -> Any:
    return next(info for info in [*index.http, *index.timers] if info.function_name == name)


def test_plans_for_client_context_and_outputs() -> None:
    durable = load_app(APPS / "durable_basic")
    plan = plan_invocation(_function(durable, "http_start_and_wait"))
    assert (plan.client_param, plan.wants_context, plan.http_output) == ("starter", True, "$return")
    assert plan.is_async
    timer_plan = plan_invocation(_function(durable, "tick_starter"))
    assert (timer_plan.client_param, timer_plan.wants_context) == ("client", False)

    basic = load_app(APPS / "http_basic")
    named = plan_invocation(_function(basic, "named_output"))
    assert (named.output_params, named.http_output) == (("res",), "res")
    blob = plan_invocation(_function(basic, "with_blob_input"))
    assert blob.unsupported_inputs == ("blob",)
    assert not plan_invocation(_function(basic, "hello")).wants_context


async def test_client_binding_json_goes_in_by_keyword_with_the_origin() -> None:
    durable = load_app(APPS / "durable_basic")
    seen: list[tuple[str, Any]] = []

    def binding(origin: str, client_binding: Any) -> str:
        seen.append((origin, client_binding.name))
        raise RuntimeError("stop before the SDK calls out")

    invoker = FunctionInvoker(ThreadPoolExecutor(1), function_directory="", client_binding=binding)
    plan = plan_invocation(_function(durable, "http_status"))
    with pytest.raises(RuntimeError, match="stop before"):
        await invoker.invoke(plan, object(), origin="https://public.example")
    assert seen == [("https://public.example", "client")]


async def test_durable_client_without_an_engine_is_a_clear_error() -> None:
    durable = load_app(APPS / "durable_basic")
    invoker = FunctionInvoker(ThreadPoolExecutor(1), function_directory="")
    with pytest.raises(RuntimeError, match="no durable engine"):
        await invoker.invoke(
            plan_invocation(_function(durable, "http_status")), object(), origin="http://x"
        )


async def test_sync_functions_run_in_the_pool_with_context_vars() -> None:
    basic = load_app(APPS / "http_basic")
    invoker = FunctionInvoker(
        ThreadPoolExecutor(1, thread_name_prefix="pool"), function_directory=str(APPS)
    )
    result = await invoker.invoke(
        plan_invocation(_function(basic, "which_thread")), object(), origin="http://x"
    )
    assert result.return_value.startswith("pool")
    assert result.return_value != threading.current_thread().name
    assert result.invocation_id


def test_context_implements_the_abc() -> None:
    context = InvocationContext("f", "/app", trace_parent="00-a-b-01", trace_state="s=1")
    assert isinstance(context, func.Context)
    assert (context.function_name, context.function_directory) == ("f", "/app")
    assert context.trace_context.trace_parent == "00-a-b-01"
    assert context.trace_context.trace_state == "s=1"
    assert context.retry_context.retry_count == 0
    assert context.thread_local_storage.invocation_id == context.invocation_id
    assert context.invocation_id != InvocationContext("f", "/app").invocation_id


def test_a_trigger_parameter_named_context_is_not_given_a_context() -> None:
    def handler(context: func.HttpRequest) -> str:
        return context.method

    def with_both(req: func.HttpRequest, context: func.Context) -> str:
        return context.function_name

    def info(fn: Any, trigger_param: str) -> FunctionInfo:
        trigger = SimpleNamespace(name=trigger_param, type="httpTrigger")
        return FunctionInfo(fn.__name__, fn.__name__, "httpTrigger", trigger, (), fn)

    # The parameter named `context` is the trigger's: it gets the request, not a Context.
    assert not declares_context(info(handler, "context"))
    assert not plan_invocation(info(handler, "context")).wants_context
    assert declares_context(info(with_both, "req"))
    assert plan_invocation(info(with_both, "req")).wants_context
