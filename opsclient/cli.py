"""`python -m opsclient`: start operations, watch them, fetch their results.

Exit codes (the same whichever status dialect reported the outcome; table in
docs/client.md): 0 done; 1 the operation failed; 2 usage or a request the server refused
as invalid; 3 our wait timed out (an hour unless --timeout/--no-timeout); 4 the server
could not be reached or answered an error or nonsense; 5 the operation was canceled;
6 not found; 7 gone (expired); 8 authentication refused; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from opsclient.defaults import DEFAULT_WAIT_TIMEOUT
from opsclient.errors import (
    AuthenticationFailed,
    ConfigurationError,
    HTTPStatusError,
    OperationAlreadyFinished,
    OperationCanceled,
    OperationError,
    OperationFailed,
    OperationGone,
    OperationNotFound,
    OperationTimeout,
    OpsClientError,
)
from opsclient.model import Operation, OperationStatus
from opsclient.polling import PollingPolicy
from opsclient.sync_client import OperationsClient

__all__ = ["main"]

P = ParamSpec("P")
T = TypeVar("T")

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_TIMEOUT = 3
EXIT_REQUEST = 4
EXIT_CANCELED = 5
EXIT_NOT_FOUND = 6
EXIT_GONE = 7
EXIT_AUTH = 8
EXIT_INTERRUPTED = 130
# Statuses by which a server says "your request is wrong", as opposed to "I am broken".
_BAD_INPUT_STATUSES = frozenset({400, 405, 409, 413, 415, 422})
# Problem types (and operationStatus words) by which a monitor reports the operation's own
# outcome as an error status (our API: 422 Failed, 409 Canceled).
_OUTCOME_CODES = {"failed": EXIT_FAILED, "canceled": EXIT_CANCELED, "cancelled": EXIT_CANCELED}

_stderr = Console(stderr=True)


def _parse_input(_ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """`--input`: inline JSON, `@file` holding JSON, or `@-` for stdin."""
    if value is None:
        return None
    source = "the command line"
    text = value
    if value.startswith("@"):
        name = value[1:]
        source = "stdin" if name == "-" else name
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except OSError as exc:
            raise click.BadParameter(f"cannot read {name}: {exc.strerror}", param=param) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(
            f"not valid JSON ({exc}) in {source}; pass e.g. '{{\"rows\": 100}}' or @input.json",
            param=param,
        ) from None


def _connection_options(command: Callable[P, T]) -> Callable[P, T]:
    """Options every command shares, accepted after the command name."""
    decorators = [
        click.option(
            "--base-url",
            envvar="OPSCLIENT_BASE_URL",
            show_envvar=True,
            help="The Function App, e.g. http://127.0.0.1:7071.",
        ),
        click.option(
            "--function-key",
            envvar="OPSCLIENT_FUNCTION_KEY",
            show_envvar=True,
            help="Function key, sent as x-functions-key.",
        ),
        click.option(
            "--token",
            envvar="OPSCLIENT_TOKEN",
            show_envvar=True,
            help="Bearer token (e.g. from `az account get-access-token`).",
        ),
        click.option(
            "--max-poll-interval",
            type=click.FloatRange(min=0.1),
            default=30.0,
            show_default=True,
            help="Cap on the wait between polls, whatever Retry-After says.",
        ),
        click.option("-v", "--verbose", is_flag=True, help="Log every request to stderr."),
    ]
    for decorate in reversed(decorators):
        command = decorate(command)
    return command


def _client(options: dict[str, Any]) -> OperationsClient:
    if options.pop("verbose", False):
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    else:
        # stamina announces each scheduled retry at WARNING; the final error says enough.
        logging.getLogger("stamina").setLevel(logging.ERROR)
    token = options.pop("token", None)
    cap = options.pop("max_poll_interval", 30.0)
    return OperationsClient(
        options.pop("base_url", None),
        function_key=options.pop("function_key", None),
        token_provider=(lambda: token) if token else None,
        polling=PollingPolicy(
            max_interval=cap,
            min_interval=min(0.5, cap),
            default_max_interval=min(10.0, cap),
        ),
    )


def _reports_errors(command: Callable[P, None]) -> Callable[P, None]:
    """Turn opsclient errors into a message on stderr and an exit code, never a traceback."""

    @functools.wraps(command)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except OperationFailed as exc:
            _fail(str(exc), EXIT_FAILED, details=dict(exc.error))
        except OpsClientError as exc:
            message = str(exc)
            if isinstance(exc, ConfigurationError) and "base_url" in message:
                message += "; pass --base-url or set OPSCLIENT_BASE_URL"
            _fail(message, exit_code(exc))

    return guarded


def exit_code(error: OpsClientError) -> int:
    """The exit code for `error`: one per kind of outcome, whatever the dialect said."""
    if isinstance(error, OperationTimeout):
        return EXIT_TIMEOUT
    if isinstance(error, OperationCanceled):
        return EXIT_CANCELED
    if isinstance(error, OperationError):
        return EXIT_FAILED
    if isinstance(error, ConfigurationError | OperationAlreadyFinished):
        return EXIT_BAD_INPUT
    if isinstance(error, HTTPStatusError):
        outcome = str(error.problem.get("operationStatus", "")).lower()
        problem_type = str(error.problem.get("type", "")).lower()
        for word, code in _OUTCOME_CODES.items():
            if outcome == word or problem_type.endswith(f"operation-{word}"):
                return code
        if isinstance(error, AuthenticationFailed):
            return EXIT_AUTH
        if isinstance(error, OperationNotFound):
            # A start answered 404 names an unknown kind: a usage error, not a lost operation.
            return EXIT_BAD_INPUT if error.method == "POST" else EXIT_NOT_FOUND
        if isinstance(error, OperationGone):
            return EXIT_GONE
        if error.status_code in _BAD_INPUT_STATUSES:
            return EXIT_BAD_INPUT
    return EXIT_REQUEST


def _fail(message: str, code: int, details: dict[str, Any] | None = None) -> None:
    click.echo(f"error: {message}", err=True)
    if details:
        click.echo(json.dumps(details, indent=2, default=str), err=True)
    sys.exit(code)


def _emit(value: Any, out: Path | None = None) -> None:
    """Write a result or status: JSON pretty-printed, text as is, bytes raw."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode() if value.endswith("\n") else (value + "\n").encode()
    else:
        data = (json.dumps(value, indent=2, default=str) + "\n").encode()
    if out is not None:
        out.write_bytes(data)
        click.echo(f"wrote {len(data)} bytes to {out}", err=True)
        return
    stream = click.get_binary_stream("stdout")
    stream.write(data)
    stream.flush()


def _status_json(status: OperationStatus) -> dict[str, Any]:
    shown: dict[str, Any] = {"id": status.id, "state": status.state.value}
    if status.kind:
        shown["kind"] = status.kind
    if status.progress is not None:
        shown["progress"] = {
            "fraction": status.progress.fraction,
            "message": status.progress.message,
        }
    if status.custom_status is not None:
        shown["customStatus"] = status.custom_status
    if status.error:
        shown["error"] = dict(status.error)
    if status.result_url:
        shown["resultUrl"] = status.result_url
    if status.has_output:
        shown["output"] = status.output
    shown["statusUrl"] = status.url
    return shown


def _operation_json(operation: Operation) -> dict[str, Any]:
    return {
        "id": operation.id,
        "statusUrl": operation.status_url,
        "operationUrl": operation.operation_url,
        "resultUrl": operation.result_url,
    }


class ProgressDisplay:
    """A live rich progress bar on a terminal; plain progress lines when stderr is a pipe."""

    def __init__(self, label: str, *, live: bool | None = None) -> None:
        self.live = _stderr.is_terminal if live is None else live
        self.label = label
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Self:
        if self.live:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=_stderr,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=1.0)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            if exc_type is None and self._task is not None:
                self._bar.update(self._task, completed=1.0, description=f"{self.label} done")
            self._bar.stop()

    def update(self, status: OperationStatus) -> None:
        """Show the progress (or custom status) the server reported."""
        progress = status.progress
        fraction = progress.fraction if progress else None
        message = progress.message if progress and progress.message else None
        if message is None and progress is None and status.custom_status is not None:
            message = json.dumps(status.custom_status, default=str)
        if self._bar is not None and self._task is not None:
            self._bar.update(
                self._task,
                completed=fraction if fraction is not None else 0.0,
                description=f"{self.label} {message}" if message else self.label,
            )
            return
        percent = f"{fraction * 100:.0f}%" if fraction is not None else "?"
        click.echo(f"progress {percent}" + (f" {message}" if message else ""), err=True)


def _wait_with_display(
    client: OperationsClient,
    operation: Operation | str,
    *,
    label: str,
    timeout: float | None,
    cancel_on_interrupt: bool,
    progress: bool | None,
) -> OperationStatus:
    try:
        with ProgressDisplay(label, live=progress) as display:
            return client.wait(operation, timeout=timeout, on_progress=display.update)
    except KeyboardInterrupt:
        handle = operation.id if isinstance(operation, Operation) else operation
        if cancel_on_interrupt:
            client.cancel(operation, reason="interrupted at the command line")
            click.echo(f"interrupted: canceled operation {handle} on the server", err=True)
        else:
            click.echo(
                f"interrupted: operation {handle} keeps running "
                "(use --cancel-on-interrupt to cancel it)",
                err=True,
            )
        sys.exit(EXIT_INTERRUPTED)


_TIMEOUT = click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_WAIT_TIMEOUT,
    show_default=True,
    help="Give up waiting after S seconds in total (the operation keeps running).",
)
_NO_TIMEOUT = click.option(
    "--no-timeout", is_flag=True, help="Wait as long as it takes (overrides --timeout)."
)
_CANCEL_ON_INTERRUPT = click.option(
    "--cancel-on-interrupt", is_flag=True, help="On Ctrl-C, cancel the operation on the server."
)
_PROGRESS = click.option(
    "--progress/--no-progress",
    default=None,
    help="Live progress bar (default: only when stderr is a terminal).",
)
_INPUT = click.option(
    "--input",
    "input_",
    required=True,
    callback=_parse_input,
    metavar="JSON|@FILE",
    help="The operation's input: JSON text, @file.json, or @- for stdin.",
)
_OUT = click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the result to this file instead of stdout.",
)
_ACCEPT = click.option("--accept", help="Media type of the result, e.g. text/csv.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Run long-running operations and get their results."""


@main.command()
@click.argument("kind")
@_INPUT
@_OUT
@_TIMEOUT
@_NO_TIMEOUT
@_CANCEL_ON_INTERRUPT
@_ACCEPT
@_PROGRESS
@click.option("--idempotency-key", help="Reuse a key to make a retried start safe.")
@_connection_options
@_reports_errors
def run(
    kind: str,
    input_: Any,
    out: Path | None,
    timeout: float | None,
    no_timeout: bool,
    cancel_on_interrupt: bool,
    accept: str | None,
    progress: bool | None,
    idempotency_key: str | None,
    **options: Any,
) -> None:
    """Start a KIND operation, show its progress, print its result."""
    with _client(options) as client:
        operation = client.start(kind, input_, idempotency_key=idempotency_key)
        click.echo(f"started {kind} operation {operation.id or operation.status_url}", err=True)
        final = _wait_with_display(
            client,
            operation,
            label=kind,
            timeout=None if no_timeout else timeout,
            cancel_on_interrupt=cancel_on_interrupt,
            progress=progress,
        )
        if out is not None and accept is None:
            client.download(final if final.result_url or final.has_output else operation, out)
            click.echo(f"wrote the result to {out}", err=True)
        else:
            source = final if final.result_url or final.has_output else operation
            _emit(client.result(source, accept=accept), out)


@main.command()
@click.argument("kind")
@_INPUT
@click.option("--idempotency-key", help="Reuse a key to make a retried start safe.")
@_connection_options
@_reports_errors
def start(kind: str, input_: Any, idempotency_key: str | None, **options: Any) -> None:
    """Start a KIND operation and print its id and URLs."""
    with _client(options) as client:
        operation = client.start(kind, input_, idempotency_key=idempotency_key)
        _emit(_operation_json(operation))


@main.command()
@click.argument("operation")
@_connection_options
@_reports_errors
def status(operation: str, **options: Any) -> None:
    """Print the status of OPERATION (an id or a status URL)."""
    with _client(options) as client:
        _emit(_status_json(client.get(operation)))


@main.command()
@click.argument("operation")
@_TIMEOUT
@_NO_TIMEOUT
@_CANCEL_ON_INTERRUPT
@_PROGRESS
@_connection_options
@_reports_errors
def wait(
    operation: str,
    timeout: float | None,
    no_timeout: bool,
    cancel_on_interrupt: bool,
    progress: bool | None,
    **options: Any,
) -> None:
    """Wait for OPERATION (an id or a status URL) to finish; print its final status."""
    with _client(options) as client:
        final = _wait_with_display(
            client,
            operation,
            label="waiting",
            timeout=None if no_timeout else timeout,
            cancel_on_interrupt=cancel_on_interrupt,
            progress=progress,
        )
        _emit(_status_json(final))


@main.command()
@click.argument("operation")
@_OUT
@_ACCEPT
@_connection_options
@_reports_errors
def result(operation: str, out: Path | None, accept: str | None, **options: Any) -> None:
    """Print (or --out) the result of the finished OPERATION."""
    with _client(options) as client:
        if out is not None and accept is None:
            client.download(operation, out)
            click.echo(f"wrote the result to {out}", err=True)
        else:
            _emit(client.result(operation, accept=accept), out)


@main.command()
@click.argument("operation")
@click.option("--reason", default="canceled from the command line", show_default=True)
@_connection_options
@_reports_errors
def cancel(operation: str, reason: str, **options: Any) -> None:
    """Cancel OPERATION on the server."""
    with _client(options) as client:
        client.cancel(operation, reason=reason)
        click.echo(f"canceled {operation}", err=True)


@main.command(name="list")
@click.option("--status", "status_filter", help="Only operations in this status, e.g. Running.")
@click.option("--kind", help="Only operations of this kind.")
@click.option("--top", type=click.IntRange(min=1), help="Page size.")
@_connection_options
@_reports_errors
def list_operations(
    status_filter: str | None, kind: str | None, top: int | None, **options: Any
) -> None:
    """List operations, one JSON object per line."""
    with _client(options) as client:
        for item in client.list(status=status_filter, kind=kind, top=top):
            click.echo(json.dumps(_status_json(item), default=str))
