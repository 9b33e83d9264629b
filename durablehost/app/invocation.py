"""Calling a trigger function the way the Python worker does.

Arguments go by parameter name: the trigger value under the trigger's name, the durable
client binding JSON under the client binding's name (the SDK wraps the user function and
turns that JSON into a `DurableOrchestrationClient`), an `Out` object for each named output
binding, and `context` only when the signature declares it. Async functions run on the
host's event loop; sync functions run in the host's thread pool so they never block it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

import azure.functions as func

from durablehost.app.loader import DURABLE_CLIENT, FunctionInfo
from durablehost.errors import DurableHostError

__all__ = [
    "BindingError",
    "BindingSupplier",
    "ClientBindingFactory",
    "FunctionInvoker",
    "InvocationContext",
    "InvocationPlan",
    "InvocationResult",
    "OutputValue",
    "declares_context",
    "is_output_binding",
]

log = logging.getLogger(__name__)

# (public origin like "https://example.com", the client binding) -> binding JSON text.
ClientBindingFactory = Callable[[str, Any], str]


class BindingError(DurableHostError):
    """An input or output binding could not be served: a type durablehost does not run,
    a binding expression with no value, storage refusing the read or write."""


class BindingSupplier(Protocol):
    """Serves a function's other input and output bindings (storage blobs and queues: see
    durablehost.triggers.storage_bindings). `binding_data` holds the trigger's values for
    `{name}` expressions. Either call raises BindingError for a binding it cannot serve."""

    async def read_inputs(
        self, plan: InvocationPlan, binding_data: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The values of `plan.unsupported_inputs`, by parameter name."""
        ...

    async def write_outputs(
        self, plan: InvocationPlan, result: InvocationResult, binding_data: Mapping[str, Any]
    ) -> None:
        """Write what the function set in its output bindings (and its `$return`)."""
        ...


class _TraceContext(func._abc.TraceContext):
    def __init__(self, trace_parent: str, trace_state: str) -> None:
        self._trace_parent = trace_parent
        self._trace_state = trace_state

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(func._abc.RetryContext):
    """No retry policies run here: every invocation is the first attempt."""

    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class InvocationContext(func.Context):
    """The `context` argument: an `azure.functions.Context` for one invocation."""

    def __init__(
        self,
        function_name: str,
        function_directory: str,
        *,
        trace_parent: str = "",
        trace_state: str = "",
    ) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace_context = _TraceContext(trace_parent, trace_state)
        self._thread_local = threading.local()
        self._thread_local.invocation_id = self._invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> func._abc.TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> func._abc.RetryContext:
        return _RetryContext()

    @property
    def thread_local_storage(self) -> Any:
        # The ABC says Type[threading.local]; the worker hands out an instance.
        return self._thread_local


class OutputValue(func.Out[Any]):
    """A named output binding (`func.Out`): the function sets it, the host reads it."""

    def __init__(self) -> None:
        self._value: Any = None
        self.was_set = False

    def set(self, val: Any) -> None:
        self._value = val
        self.was_set = True

    def get(self) -> Any:
        return self._value


@dataclass(frozen=True, slots=True)
class InvocationPlan:
    """How to call one function, worked out once at start."""

    info: FunctionInfo
    is_async: bool
    wants_context: bool
    client_param: str | None
    client_binding: Any
    output_params: tuple[str, ...]
    unsupported_inputs: tuple[str, ...]
    http_output: str | None  # "$return", a named Out param, or None


@dataclass(slots=True)
class InvocationResult:
    """The return value and every named output the function set."""

    return_value: Any
    outputs: dict[str, OutputValue] = field(default_factory=dict)
    invocation_id: str = ""


@functools.cache
def _declares_context(user_function: Callable[..., Any], trigger_param: str) -> bool:
    try:
        parameters = inspect.signature(user_function).parameters
    except (TypeError, ValueError):
        return False
    return "context" in parameters and trigger_param != "context"


def declares_context(info: FunctionInfo) -> bool:
    """True when the user's signature has a `context` parameter (other than the trigger's
    own): the worker passes an `azure.functions.Context` only then. Cached per function."""
    return _declares_context(info.user_function, info.trigger_param)


def is_output_binding(binding: Any) -> bool:
    """An `out`/`inout` binding: the decorators' `direction` (BindingDirection's number,
    1 out and 2 inout), a BindingDirection, or function.json's direction text."""
    direction = getattr(binding, "direction", None)
    if isinstance(direction, int) and not isinstance(direction, bool):
        return direction in (1, 2)
    text = str(getattr(direction, "name", direction) or "")
    return text.upper() in ("OUT", "INOUT")


def plan_invocation(info: FunctionInfo) -> InvocationPlan:
    """Work out the arguments `info.user_function` takes (once, at start)."""
    client_param: str | None = None
    client_binding: Any = None
    outputs: list[str] = []
    unsupported: list[str] = []
    http_output: str | None = None
    for binding in info.bindings:
        name = str(getattr(binding, "name", ""))
        binding_type = str(getattr(binding, "type", ""))
        if name == info.trigger_param:
            continue
        if binding_type == DURABLE_CLIENT:
            client_param, client_binding = name, binding
        elif binding_type == "http":
            http_output = name
            if name != "$return":
                outputs.append(name)
        elif is_output_binding(binding) and name != "$return":
            outputs.append(name)
        elif name != "$return":
            unsupported.append(name)
    if unsupported:
        # The host's BindingSupplier serves them (and warns at start about the kinds it
        # cannot); an invoker without one passes None.
        log.debug("function %s has input bindings %s", info.function_name, unsupported)
    return InvocationPlan(
        info=info,
        is_async=info.is_async,
        wants_context=declares_context(info),
        client_param=client_param,
        client_binding=client_binding,
        output_params=tuple(outputs),
        unsupported_inputs=tuple(unsupported),
        http_output=http_output,
    )


class FunctionInvoker:
    """Runs trigger functions: async on the loop, sync in `executor`."""

    def __init__(
        self,
        executor: Executor,
        *,
        function_directory: str,
        client_binding: ClientBindingFactory | None = None,
        bindings: BindingSupplier | None = None,
    ) -> None:
        self._executor = executor
        self._function_directory = function_directory
        self._client_binding = client_binding
        # Without a supplier, other input bindings get None and outputs stay unwritten.
        self._bindings = bindings

    async def invoke(
        self,
        plan: InvocationPlan,
        trigger_value: Any,
        *,
        origin: str,
        trace_parent: str = "",
        trace_state: str = "",
        binding_data: Mapping[str, Any] | None = None,
    ) -> InvocationResult:
        """Call the function once; its exceptions (and BindingError) propagate to the caller.
        `binding_data` resolves `{name}` in its other bindings' paths."""
        info = plan.info
        context = InvocationContext(
            info.function_name,
            self._function_directory,
            trace_parent=trace_parent,
            trace_state=trace_state,
        )
        kwargs: dict[str, Any] = {info.trigger_param: trigger_value}
        if plan.client_param is not None:
            if self._client_binding is None:
                raise RuntimeError("this host has no durable engine for a durable client")
            kwargs[plan.client_param] = self._client_binding(origin, plan.client_binding)
        outputs = {name: OutputValue() for name in plan.output_params}
        kwargs.update(outputs)
        data = binding_data or {}
        if self._bindings is not None and plan.unsupported_inputs:
            kwargs.update(await self._bindings.read_inputs(plan, data))
        else:
            for name in plan.unsupported_inputs:
                kwargs[name] = None
        if plan.wants_context:
            kwargs["context"] = context
        if plan.is_async:
            value = await info.user_function(**kwargs)
        else:
            loop = asyncio.get_running_loop()
            # copy_context: contextvars set by the caller stay visible in the thread.
            call = functools.partial(contextvars.copy_context().run, info.user_function, **kwargs)
            value = await loop.run_in_executor(self._executor, call)
            if inspect.isawaitable(value):
                # A sync-looking callable (a wrapper, a partial) that returned a coroutine.
                value = await value
        result = InvocationResult(
            return_value=value, outputs=outputs, invocation_id=context.invocation_id
        )
        if self._bindings is not None:
            await self._bindings.write_outputs(plan, result, data)
        return result
