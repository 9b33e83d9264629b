"""`python -m durablehost start`: run a Durable Functions Python app locally.

Exit codes: 0 after a clean stop (SIGINT/SIGTERM), 1 when the app, its settings, its task
hub (missing, read-only) or the address cannot be used (one line saying what to fix, no
traceback), 70 when its hub writer process died (start again: the hub is recovered), 130
when a second signal forces an immediate exit.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import click

from durablehost.errors import AppLoadError, DurableHostError
from durablehost.front.connections import ConnectionLimits
from durablehost.host import DurableHost, HostOptions
from durablehost.tuning import tune_host_process

__all__ = ["main"]

log = logging.getLogger("durablehost")

# How long a stop may take before the process exits anyway (user code stuck in a thread).
_STOP_TIMEOUT_SECONDS = 30.0
_THREAD_JOIN_SECONDS = 2.0
_DEFAULT_LIMITS = ConnectionLimits()


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        # aiohttp logs every client disconnect at INFO/DEBUG; keep the log about the app.
        logging.getLogger("aiohttp").setLevel(logging.WARNING)


def _describe_failure(error: DurableHostError) -> str:
    """The error message, plus where in the user's code an import failed."""
    message = str(error)
    cause = error.__cause__
    if isinstance(error, AppLoadError) and cause is not None and cause.__traceback__ is not None:
        frames = traceback.extract_tb(cause.__traceback__)
        user_frames = [frame for frame in frames if "importlib" not in frame.filename]
        if user_frames:
            frame = user_frames[-1]
            message += f"\n  at {frame.filename}:{frame.lineno}"
            if frame.line:
                message += f"\n    {frame.line}"
    return message


async def _run(options: HostOptions) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            # A second Ctrl+C: the user does not want to wait for a clean stop.
            click.echo("durablehost: forced exit", err=True)
            os._exit(130)
        log.info("received %s, stopping", signal.Signals(signum).name)
        stopping.set()

    # Installed before the start, so a signal during recovery also stops cleanly (and
    # Ctrl+C never surfaces as a KeyboardInterrupt traceback).
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    host = DurableHost(options)
    try:
        await host.start()
    except DurableHostError as error:
        click.echo(f"durablehost: {_describe_failure(error)}", err=True)
        return 1
    # What is alive now (the app, the SDK, the host) lives as long as the process: keep
    # it out of every later collection.
    gc.freeze()
    if not stopping.is_set():
        click.echo(host.banner())
        click.echo(f"\nHost started: {host.url} (Ctrl+C to stop)")
        sys.stdout.flush()
        stop_requested = asyncio.create_task(stopping.wait())
        host_failed = asyncio.create_task(host.failed.wait())
        await asyncio.wait({stop_requested, host_failed}, return_when=asyncio.FIRST_COMPLETED)
        stop_requested.cancel()
        host_failed.cancel()
    try:
        await asyncio.wait_for(host.stop(), _STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        log.error("stopping took longer than %.0fs; exiting anyway", _STOP_TIMEOUT_SECONDS)
    if host.failure is not None:
        click.echo(
            f"durablehost: stopped because {host.failure}; start it again: nothing "
            "acknowledged is lost, the hub is recovered as after a crash",
            err=True,
        )
        return 70
    log.info("stopped")
    return 0


def _exit(code: int) -> None:
    """Exit without hanging on threads still running user code."""
    deadline = time.monotonic() + _THREAD_JOIN_SECONDS
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ):
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


@click.group()
def main() -> None:
    """durablehost: run Durable Functions Python apps without the Functions host."""


@main.command()
@click.option(
    "--app",
    "app_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder holding function_app.py, host.json and local.settings.json.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to listen on [default: Host.LocalHttpPort of local.settings.json, else 7071].",
)
@click.option(
    "--hub",
    default=None,
    help="Task hub file [default: APP/.durablehost/<hubName>.sqlite3].",
)
@click.option(
    "--enforce-keys",
    is_flag=True,
    help="Require keys for function/admin-level HTTP functions (APP/.durablehost/keys.json).",
)
@click.option(
    "--inline-writes",
    is_flag=True,
    help="Commit episodes on the host's own thread instead of in a writer process "
    "(slower under load; one process).",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 10),
    default=None,
    help="Worker processes running the activities; 0 runs everything in the host process "
    "(for debugging) [default: FUNCTIONS_WORKER_PROCESS_COUNT, else half the cores, 1-4].",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(0.1, 3600),
    default=_DEFAULT_LIMITS.header_timeout,
    show_default=True,
    help="Seconds a connection may take to send a complete request head (from its start "
    "or the previous response); also how long an idle keep-alive connection stays open.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(0.1, 3600),
    default=_DEFAULT_LIMITS.body_timeout,
    show_default=True,
    help="Seconds a request body may take to arrive once its head has (408 after).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, 1_000_000),
    default=_DEFAULT_LIMITS.max_connections,
    show_default=True,
    help="Open connections served at once; one more is answered 503 and closed.",
)
@click.option(
    "--no-dashboard", is_flag=True, help="Do not serve the browser dashboard (/runtime/dashboard/)."
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and an access log.")
def start(
    app_dir: Path,
    host: str,
    port: int | None,
    hub: str | None,
    enforce_keys: bool,
    inline_writes: bool,
    workers: int | None,
    header_timeout: float,
    body_timeout: float,
    max_connections: int,
    no_dashboard: bool,
    verbose: bool,
) -> None:
    """Start the app in APP and serve it until SIGINT/SIGTERM."""
    _configure_logging(verbose)
    app_dir = app_dir.resolve()
    hub_location: str | None = hub
    if hub is not None and "://" not in hub:
        hub_location = str(Path(hub).resolve())
    if app_dir.is_dir():
        # The worker runs functions with the app folder as working directory; apps open
        # relative paths (and the SDK reads ./host.json) expecting that.
        os.chdir(app_dir)
    options = HostOptions(
        app_dir=app_dir,
        host=host,
        port=port,
        hub=hub_location,
        enforce_keys=enforce_keys,
        access_log=verbose,
        writer_process=not inline_writes,
        workers=workers,
        dashboard=not no_dashboard,
        limits=ConnectionLimits(
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            max_connections=max_connections,
        ),
    )
    tune_host_process()
    _exit(asyncio.run(_run(options)))
