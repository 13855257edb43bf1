"""Where the task table's front-end files (an ES module and a stylesheet) are.

The notebook widget and the web dashboard share them; :mod:`flowrra.assets` knows where
they live (the wheel's ``flowrra/notebook/widgets/`` or the checkout's ``widgets/``).
This module keeps the notebook face's names.
"""

from __future__ import annotations

from flowrra.assets import WIDGET_FILES, widget_file, widget_file_candidates

__all__ = ["WIDGET_FILES", "widget_file", "widget_file_candidates"]
