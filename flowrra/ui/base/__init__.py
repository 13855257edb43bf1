"""The parts every ``flowrra.ui`` adapter is made of (0.1.8's ``flowrra.ui.base``).

- :class:`BaseUIAdapter`: the dashboard of one app, its pages and JSON routes described
  once for every web framework.
- :class:`UIService`: the data of 0.1.8's dashboard, tasks and schedules pages.
- :class:`ScheduleService`: schedule operations in 0.1.8's answer shapes.
- :class:`Formatter`: dates, durations and status colours as display strings.

Nothing here imports a web framework.
"""

from flowrra.ui.base.adapter import BaseUIAdapter
from flowrra.ui.base.formatter import Formatter
from flowrra.ui.base.schedule_service import ScheduleService
from flowrra.ui.base.ui_service import UIService

__all__ = ["BaseUIAdapter", "Formatter", "ScheduleService", "UIService"]
