"""Workflows: chains, groups and chords of registered tasks.

Usage::

    import flowrra

    handle = await app.run(
        flowrra.chain(
            flowrra.group(flowrra.call(fetch, url) for url in urls),   # in parallel
            flowrra.call(merge, sep="\\n"),                           # merge(list, sep=...)
        )
    )
    print(await handle.result())

See :mod:`flowrra.workflows.signatures` for how steps are written and passed results,
:mod:`flowrra.workflows.engine` for how a workflow runs (and survives a worker's death
on Redis), and :class:`WorkflowHandle` for what ``app.run`` returns.
"""

from flowrra.workflows.handle import WorkflowHandle
from flowrra.workflows.signatures import Call, Chain, Chord, Group, Step, call, chain, chord, group

__all__ = [
    "Call",
    "Chain",
    "Chord",
    "Group",
    "Step",
    "WorkflowHandle",
    "call",
    "chain",
    "chord",
    "group",
]
