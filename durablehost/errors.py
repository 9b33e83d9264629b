"""Errors raised by durablehost.

    DurableHostError                 root: everything durablehost raises on purpose
    ├── AppLoadError                 the app could not be imported or indexed
    ├── ConfigError                  host.json / local.settings.json is unusable
    ├── UnknownFunctionError         no orchestrator/activity/function of that name
    ├── InvalidInputError            a caller sent something we cannot accept (HTTP 400)
    ├── HubUnavailableError          the task hub cannot take writes now (HTTP 503 +
    │                                Retry-After): its writer died, the disk is full, the
    │                                host is stopping
    └── InstanceError                about one orchestration instance
        ├── InstanceNotFoundError    no such instance (HTTP 404)
        ├── InstanceAlreadyExistsError  start with an id that is still active (HTTP 409)
        ├── InstanceFinishedError    the operation needs a non-terminal instance (HTTP 410)
        └── InvalidInstanceStateError   wrong state for the operation, e.g. rewind of a
                                        non-Failed instance (HTTP 400 / 409)

Control-flow signals used inside the engine are not in this tree and derive from
BaseException, so a user's `except Exception` cannot swallow them.
"""

from __future__ import annotations

__all__ = [
    "AppLoadError",
    "ConfigError",
    "DurableHostError",
    "HubUnavailableError",
    "InstanceAlreadyExistsError",
    "InstanceError",
    "InstanceFinishedError",
    "InstanceNotFoundError",
    "InvalidInputError",
    "InvalidInstanceStateError",
    "UnknownFunctionError",
]


class DurableHostError(Exception):
    """Root of every error durablehost raises on purpose."""


class AppLoadError(DurableHostError):
    """The Function App could not be imported or indexed."""


class ConfigError(DurableHostError):
    """host.json or local.settings.json holds something we cannot use."""


class UnknownFunctionError(DurableHostError):
    """No function of that name and kind is registered in the app."""


class InvalidInputError(DurableHostError):
    """A caller sent a request we cannot accept (bad JSON, bad parameter)."""


class HubUnavailableError(DurableHostError):
    """The task hub cannot take writes now; nothing was stored, try again later."""

    # Seconds a client should wait before trying again (the Retry-After it is sent). A
    # class attribute, not an argument: these errors cross the hub writer's pipe
    # pickled, and unpickling calls the class with the message only.
    retry_after = 5


class InstanceError(DurableHostError):
    """An operation on one orchestration instance could not be carried out."""

    def __init__(self, instance_id: str, message: str) -> None:
        super().__init__(message)
        self.instance_id = instance_id


class InstanceNotFoundError(InstanceError):
    """No instance with that id exists in the task hub."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(instance_id, f"No instance with ID '{instance_id}' was found.")


class InstanceAlreadyExistsError(InstanceError):
    """A start named an instance id that is still Pending, Running or Suspended."""


class InstanceFinishedError(InstanceError):
    """The operation needs a running instance, but this one has finished."""


class InvalidInstanceStateError(InstanceError):
    """The instance is in a state that does not allow the operation."""
