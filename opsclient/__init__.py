"""opsclient: start long-running operations over HTTP and wait for their results.

Speaks our operations API, the Durable Functions built-in status URLs and the generic
async request-reply pattern. Depends on httpx and stamina, nothing from Azure Functions.

    from opsclient import OperationsClient

    with OperationsClient("http://127.0.0.1:7071") as client:
        report = client.run("report", {"rows": 1000, "partitions": 4}, timeout=300)

Any API's 202: `client.follow(response)`, or `httpx.Client(transport=OperationsTransport())`.

See docs/client.md.
"""

from opsclient.async_client import AsyncOperationsClient, AsyncProgressCallback, AsyncTokenProvider
from opsclient.clock import Clock, SystemClock
from opsclient.defaults import DEFAULT_RESULT_GRACE, DEFAULT_WAIT_TIMEOUT
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
from opsclient.final_state import FinalState, FinalStateVia
from opsclient.model import Dialect, Operation, OperationStatus, Progress, RunState
from opsclient.poller import AsyncOperationPoller, OperationPoller
from opsclient.polling import PollingPolicy
from opsclient.protocol import OperationRef
from opsclient.retries import RetryPolicy
from opsclient.sync_client import OperationsClient, ProgressCallback, TokenProvider
from opsclient.transport import FOLLOW_EXTENSION, AsyncOperationsTransport, OperationsTransport

__all__ = [
    "DEFAULT_RESULT_GRACE",
    "DEFAULT_WAIT_TIMEOUT",
    "FOLLOW_EXTENSION",
    "AsyncOperationPoller",
    "AsyncOperationsClient",
    "AsyncOperationsTransport",
    "AsyncProgressCallback",
    "AsyncTokenProvider",
    "AuthenticationFailed",
    "Clock",
    "ConfigurationError",
    "ConnectionFailed",
    "Dialect",
    "FinalState",
    "FinalStateVia",
    "HTTPStatusError",
    "Operation",
    "OperationAlreadyFinished",
    "OperationCanceled",
    "OperationError",
    "OperationFailed",
    "OperationGone",
    "OperationNotFound",
    "OperationPoller",
    "OperationRef",
    "OperationStatus",
    "OperationTimeout",
    "OperationsClient",
    "OperationsTransport",
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
