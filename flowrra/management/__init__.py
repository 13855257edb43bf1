"""Managing a running app from code: statistics, registered tasks, task records,
schedules and health, as plain dicts and lists (the shapes of flowrra 0.1.8).

Usage::

    from flowrra.management import FlowrraManager

    manager = FlowrraManager(app)
    await manager.get_stats()
    await manager.list_schedules()
"""

from flowrra.management.manager import FlowrraManager

__all__ = ["FlowrraManager"]
