"""Unique jobs on a Redis broker: one submit whose key claim, record and queue entry are
one write (see :mod:`flowrra.backends.redis_unique` for the keys)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from flowrra.backends.redis_unique import holder_in, unique_item
from flowrra.exceptions import BackendError, BrokerError, ConfigError
from flowrra.registry import TaskSpec

if TYPE_CHECKING:
    from flowrra.executors.base import SubmitOptions
    from flowrra.executors.remote_submit import RemoteSubmit

__all__ = ["submit_unique"]

_NOT_LINKED = (
    "unique_key on a Redis broker needs the result backend on the broker's Redis server "
    "(BackendConfig(url='redis://...') with the broker's host and port; the database may "
    "differ): the key is claimed in the same write that records and queues the task"
)


async def submit_unique(
    remote: RemoteSubmit,
    spec: TaskSpec,
    args: tuple,
    kwargs: dict,
    priority: int,
    options: SubmitOptions,
) -> str:
    """Submit one task holding ``options.unique``, or return the id of the unfinished
    task that holds that key (then nothing is recorded or queued).

    Raises:
        ConfigError: the result backend is not on the broker's Redis server.
        BrokerError: the write failed (nothing was claimed, recorded or queued).
    """
    backend, unique = remote.linked, options.unique
    assert unique is not None
    if backend is None:
        raise ConfigError(_NOT_LINKED)
    digest = await remote.digest(spec)
    delay = options.delay()
    due = time.time() + delay if delay > 0 else 0.0
    items, (task_id,), taken = await remote.new_items(
        spec, [(args, kwargs)], priority, options, (digest, due), 0, True, False
    )
    try:
        answer = await backend.send([*items, unique_item(unique, task_id)])
    except BackendError as exc:  # the one write that claims, records and queues
        raise BrokerError(f"Submit failed: {exc}") from exc
    holder = holder_in(answer, task_id)
    if holder is not None:
        return holder
    remote.executor.submitted += 1
    remote.announce_new(taken)
    return task_id
