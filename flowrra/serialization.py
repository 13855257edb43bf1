"""Bytes on the wire: how functions, arguments and results cross a process boundary.

The rule dask uses: plain ``pickle`` first; where that fails, or where the pickle names
``__main__`` (a function or class defined in a notebook cell or a script, which another
process cannot import), ``cloudpickle`` sends it by value. Functions always go through
cloudpickle, which itself sends importable ones by reference and the rest by value.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

import cloudpickle

from flowrra.exceptions import SerializationError

__all__ = ["dumps", "dumps_function", "loads"]

_MAIN = b"__main__"


def dumps(value: Any, what: str = "value") -> bytes:
    """Pickle ``value`` so another process can load it.

    Raises:
        SerializationError: naming the type that could not be pickled.
    """
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        data = None
    if data is not None and _MAIN not in data:
        return data
    try:
        return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise SerializationError(
            f"The task's {what} cannot be pickled: {_offender(exc)}. Pass plain data "
            "(numbers, strings, lists, dicts, arrays, DataFrames) or objects whose class "
            "can be imported."
        ) from exc


def loads(data: bytes) -> Any:
    """Load bytes made by :func:`dumps` (cloudpickle output is plain pickle)."""
    return pickle.loads(data)


def dumps_function(func: Any) -> tuple[str, bytes]:
    """Pickle a task function; return ``(digest, bytes)``.

    The digest names the function's bytes, so a worker that has loaded it once is sent
    only the digest afterwards.
    """
    try:
        data = cloudpickle.dumps(func, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise SerializationError(f"The task function cannot be pickled: {_offender(exc)}") from exc
    return hashlib.blake2b(data, digest_size=16).hexdigest(), data


def _offender(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__
