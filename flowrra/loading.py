"""Loading the app a command names (``--app module:attribute``): ``flowrra worker`` and
``flowrra dashboard`` share these rules and messages."""

from __future__ import annotations

import importlib
import os
import sys

from flowrra.app import Flowrra
from flowrra.exceptions import ConfigError, FlowrraError

__all__ = ["load_app"]


def _import_module(module_name: str, error: type[ConfigError]) -> object:
    """Import the ``--app`` module; its failures that a user can fix become ``error``
    (a ConfigError); a bug in the module still shows its traceback."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise error(
                f"cannot import {module_name!r}: there is no module of that name; check "
                "the module part of --app and run from the folder that holds it (or add "
                "that folder to PYTHONPATH)"
            ) from exc
        raise error(
            f"importing {module_name!r} failed: {exc}; install what it imports or fix the import"
        ) from exc
    except FlowrraError as exc:
        raise error(f"importing {module_name!r} failed: {exc}") from exc


def _advice(module_name: str, module: object) -> str:
    """What to pass instead: ``--app module:name`` for each Flowrra app in ``module``."""
    names = sorted(k for k, v in vars(module).items() if isinstance(v, Flowrra))
    if not names:
        return (
            f"{module_name} defines no Flowrra app: create one there, e.g. "
            "app = Flowrra(Config.from_env())"
        )
    return "use " + " or ".join(f"--app {module_name}:{name}" for name in names)


def load_app(spec: str, error: type[ConfigError] = ConfigError) -> Flowrra:
    """Import ``module:attribute`` and return the Flowrra app it names.

    Raises:
        ConfigError: (``error``) ``spec`` is not ``module:attribute``, the module
            cannot be imported, or the attribute is missing or not a Flowrra app.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise error(
            f"--app must look like module:attribute, got {spec!r}; e.g. --app myproject.tasks:app"
        )
    module = _import_module(module_name, error)
    if not hasattr(module, attribute):
        raise error(
            f"module {module_name!r} has no attribute {attribute!r}; {_advice(module_name, module)}"
        )
    app = getattr(module, attribute)
    if not isinstance(app, Flowrra):
        name = type(app).__name__
        kind = "None" if app is None else f"an {name}" if name[0] in "aeiouAEIOU" else f"a {name}"
        raise error(f"{spec} is {kind}, not a Flowrra app; {_advice(module_name, module)}")
    return app
