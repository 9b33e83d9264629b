"""opsclient: start long-running operations over HTTP and wait for their results.

Speaks our operations API, the Durable Functions built-in status URLs and the generic
async request-reply pattern. Depends on httpx and stamina, nothing from Azure Functions.

    from opsclient import OperationsClient

    with OperationsClient("http://127.0.0.1:7071") as client:
        report = client.run("report", {"rows": 1000, "partitions": 4}, timeout=300)

See docs/client.md.
"""

from opsclient.async_client import AsyncOperationsClient, AsyncProgressCallback, AsyncTokenProvider
from opsclient.clock import Clock, SystemClock
from opsclient.errors import (
    AuthenticationFailed,
    ConfigurationError,
    ConnectionFailed,
    HTTPStatusError,
    OperationAlreadyFinished,
    OperationCanceled,
    OperationError,
    OperationFailed,
    OperationGone,
    OperationNotFound,
    OperationTimeout,
    OpsClientError,
    ProtocolError,
    RequestError,
    TransientStatusError,
    WaitCanceled,
)
from opsclient.model import Dialect, Operation, OperationStatus, Progress, RunState
from opsclient.polling import PollingPolicy
from opsclient.protocol import OperationRef
from opsclient.retries import RetryPolicy
from opsclient.sync_client import OperationsClient, ProgressCallback, TokenProvider

__all__ = [
    "AsyncOperationsClient",
    "AsyncProgressCallback",
    "AsyncTokenProvider",
    "AuthenticationFailed",
    "Clock",
    "ConfigurationError",
    "ConnectionFailed",
    "Dialect",
    "HTTPStatusError",
    "Operation",
    "OperationAlreadyFinished",
    "OperationCanceled",
    "OperationError",
    "OperationFailed",
    "OperationGone",
    "OperationNotFound",
    "OperationRef",
    "OperationStatus",
    "OperationTimeout",
    "OperationsClient",
    "OpsClientError",
    "PollingPolicy",
    "Progress",
    "ProgressCallback",
    "ProtocolError",
    "RequestError",
    "RetryPolicy",
    "RunState",
    "SystemClock",
    "TokenProvider",
    "TransientStatusError",
    "WaitCanceled",
]
