"""Exceptions raised by flowrra.

Every error flowrra raises on purpose derives from :class:`FlowrraError`. Where a
built-in error has long been the documented one (``ValueError`` for bad configuration,
``TypeError`` for a function that cannot be a task, ``TimeoutError`` for a wait that ran
out), the flowrra class subclasses that built-in too, so either ``except`` works::

    FlowrraError
    ├── TaskNotFoundError            a task name the registry does not know
    ├── InvalidTaskError (TypeError) a function that cannot be this kind of task
    ├── DuplicateTaskError (ValueError)
    ├── ConfigError (ValueError)     a bad Config value or environment variable
    ├── TaskTimeoutError (TimeoutError)  waiting for a result ran out of time
    ├── ExecutorNotRunningError      submit before start() or after stop()
    ├── UnknownTaskIdError (KeyError)    an id this app has no record of
    ├── BackendError                 the result backend failed
    ├── BrokerError                  the broker (queue) failed
    ├── SerializationError           arguments or a result that cannot be pickled
    ├── SignatureError               a Redis payload whose HMAC signature does not verify
    ├── WorkerLostError              a process-pool worker died while running a task
    └── TaskFailedError              raised by handles for a task that ended FAILED
        ├── TaskCancelledError       ... or CANCELLED
        └── WorkflowFailedError      raised by a workflow's handle: a step failed
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BrokerError",
    "ConfigError",
    "DuplicateTaskError",
    "ExecutorNotRunningError",
    "FlowrraError",
    "InvalidTaskError",
    "SerializationError",
    "SignatureError",
    "TaskCancelledError",
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskTimeoutError",
    "UnknownTaskIdError",
    "WorkerLostError",
    "WorkflowFailedError",
]


class FlowrraError(Exception):
    """Base class of every error flowrra raises on purpose."""


class TaskNotFoundError(FlowrraError):
    """Raised when a task name is not in the registry."""

    def __init__(self, task_name: str) -> None:
        self.task_name = task_name
        super().__init__(f"Task '{task_name}' not registered")


class InvalidTaskError(FlowrraError, TypeError):
    """Raised when a function cannot be registered as the requested kind of task."""


class DuplicateTaskError(FlowrraError, ValueError):
    """Raised when a second task is registered under a name already taken."""


class ConfigError(FlowrraError, ValueError):
    """Raised for an invalid configuration value or environment variable."""


class TaskTimeoutError(FlowrraError, TimeoutError):
    """Raised when waiting for a task result times out.

    The task itself goes on running; only the wait ended.
    """

    def __init__(self, task_id: str, timeout: float | None) -> None:
        self.task_id = task_id
        self.timeout = timeout
        super().__init__(f"Task '{task_id}' did not complete within {timeout}s")


class ExecutorNotRunningError(FlowrraError):
    """Raised when submitting to an executor (or app) that is not running."""

    def __init__(self, message: str = "Executor is not running. Call start() first.") -> None:
        super().__init__(message)


class UnknownTaskIdError(FlowrraError, KeyError):
    """Raised when waiting on a task id the app has no record of."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(
            f"No record of task '{task_id}': it was never submitted to this app, or its "
            "result has expired from the result backend"
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class BackendError(FlowrraError):
    """Raised when a result backend operation fails."""


class BrokerError(FlowrraError):
    """Raised when a broker (queue) operation fails."""


class SerializationError(FlowrraError):
    """Raised when a task's arguments or result cannot be serialized.

    Not retried: the same arguments would fail the same way.
    """

    retryable = False


class SignatureError(FlowrraError):
    """A payload read from Redis whose signature is missing or wrong; never unpickled."""


class WorkerLostError(FlowrraError):
    """A process-pool worker died while it was running a task."""


class TaskFailedError(FlowrraError):
    """Raised by task handles when the task ended FAILED.

    Attributes ``task_id``, ``error_type`` and ``remote_traceback`` describe the failure.
    """

    def __init__(
        self,
        task_id: str,
        message: str,
        error_type: str | None = None,
        remote_traceback: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.error_type = error_type
        self.remote_traceback = remote_traceback
        kind = f"{error_type}: " if error_type else ""
        super().__init__(f"Task '{task_id}' failed: {kind}{message}")


class TaskCancelledError(TaskFailedError):
    """Raised by task handles when the task ended CANCELLED."""


class WorkflowFailedError(TaskFailedError):
    """Raised by ``await handle.result()`` when a workflow ended FAILED.

    ``task_id`` is the workflow's id, ``step`` the step that failed (``"1.3"``; see
    :mod:`flowrra.workflows`); ``error_type`` and ``remote_traceback`` are that step's.
    """

    def __init__(
        self,
        workflow_id: str,
        step: str | None,
        message: str,
        error_type: str | None = None,
        remote_traceback: str | None = None,
    ) -> None:
        super().__init__(workflow_id, message, error_type, remote_traceback)
        self.step = step
        self.args = (f"Workflow '{workflow_id}' failed: {message}",)
