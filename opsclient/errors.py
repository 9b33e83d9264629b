"""Every error opsclient raises, under one root.

::

    OpsClientError
    ├── OperationError               the operation itself ended badly (carries its last status)
    │   ├── OperationFailed          the server reports Failed; `.error` holds its details
    │   ├── OperationCanceled        canceled or terminated on the server
    │   └── OperationTimeout         still not finished when our `timeout` ran out
    ├── WaitCanceled                 the caller's cancel event stopped a sync `wait`
    ├── RequestError                 no usable answer to one HTTP exchange
    │   ├── ConnectionFailed         connect/read errors, after the retries allowed
    │   ├── HTTPStatusError          an error status; `.problem` holds the problem details
    │   │   ├── AuthenticationFailed 401/403, also after refreshing the token once
    │   │   ├── OperationNotFound    404: unknown operation (or result not there)
    │   │   ├── OperationGone        410: the operation expired and was purged
    │   │   ├── OperationAlreadyFinished  409/410 on cancel: too late to cancel
    │   │   └── TransientStatusError 429/502/503/504, after the retries allowed
    │   └── ProtocolError            the answer is not what the protocol says (bad JSON, ...)
    └── ConfigurationError           the client was asked for something it cannot do

httpx exceptions never leave the package: they are translated where requests are sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opsclient.server_errors import failure_message

if TYPE_CHECKING:
    from opsclient.model import OperationStatus

__all__ = [
    "AuthenticationFailed",
    "ConfigurationError",
    "ConnectionFailed",
    "HTTPStatusError",
    "OperationAlreadyFinished",
    "OperationCanceled",
    "OperationError",
    "OperationFailed",
    "OperationGone",
    "OperationNotFound",
    "OperationTimeout",
    "OpsClientError",
    "ProtocolError",
    "RequestError",
    "TransientStatusError",
    "WaitCanceled",
]


class OpsClientError(Exception):
    """Root of every error raised by opsclient."""


class ConfigurationError(OpsClientError):
    """The client cannot do what it was asked with what it was given (e.g. no cancel URL)."""


class OperationError(OpsClientError):
    """The operation ended (or our wait for it ended) without a result."""

    def __init__(self, message: str, status: OperationStatus | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def operation_id(self) -> str | None:
        """The operation's id when the server told us."""
        return self.status.id if self.status is not None else None


class OperationFailed(OperationError):
    """The server reports the operation Failed.

    `error` is what the server said about the failure, in its own shape (problem details,
    ARM/Google `{"code", "message"}`, ...) with `message` and `detail` always filled in;
    `server_message` is that text on one line. A failure told by a 4xx answer of a status
    URL (e.g. our monitor's 422) is reported the same way.
    """

    def __init__(
        self,
        message: str,
        status: OperationStatus | None = None,
        error: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status)
        self.error: Mapping[str, Any] = error or {}

    @property
    def server_message(self) -> str | None:
        """The server's own words about the failure, or None when it gave none."""
        return failure_message(self.error)


class OperationCanceled(OperationError):
    """The server reports the operation Canceled (or, Durable Functions, Terminated)."""


class OperationTimeout(OperationError, TimeoutError):
    """The operation was still running when the wait's total timeout ran out.

    The operation itself keeps running on the server unless the wait asked to cancel it.
    """


class WaitCanceled(OpsClientError):
    """A sync `wait` stopped because its cancel event was set."""

    def __init__(self, message: str, status: OperationStatus | None = None) -> None:
        super().__init__(message)
        self.status = status


class RequestError(OpsClientError):
    """One HTTP exchange gave no usable answer."""

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class ConnectionFailed(RequestError):
    """The server could not be reached or the connection broke (after allowed retries)."""


class ProtocolError(RequestError):
    """The server answered something the protocol does not allow, e.g. malformed JSON."""


class HTTPStatusError(RequestError):
    """The server answered an error status.

    `problem` is the RFC 9457 problem-details body when the server sent one (else a dict
    holding at least `status` and `title`), `body` the raw text (truncated).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        problem: Mapping[str, Any] | None = None,
        body: str = "",
        method: str = "",
        url: str = "",
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.status_code = status_code
        self.problem: Mapping[str, Any] = problem or {}
        self.body = body


class AuthenticationFailed(HTTPStatusError):
    """401 or 403: the key or token was refused (a token is refreshed once before this)."""


class OperationNotFound(HTTPStatusError):
    """404: the server does not know the operation, or its result is not there."""


class OperationGone(HTTPStatusError):
    """410: the operation expired; its status and result were purged."""


class OperationAlreadyFinished(HTTPStatusError):
    """Cancel came too late: the operation had already finished (409, or 410 from Durable)."""


class TransientStatusError(HTTPStatusError):
    """429/502/503/504 answered to every attempt the retry policy allowed.

    `retry_after` is the server's `Retry-After` in seconds, when it sent one.
    """

    retry_after: float | None = None
