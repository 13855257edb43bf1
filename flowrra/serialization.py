"""Bytes on the wire: how functions, arguments and results cross a process boundary.

The rule dask uses: plain ``pickle`` first; where that fails, or where the pickle names
``__main__`` (a function or class defined in a notebook cell or a script, which another
process cannot import), ``cloudpickle`` sends it by value. Functions always go through
cloudpickle, which itself sends importable ones by reference and the rest by value.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from typing import Any

import cloudpickle

from flowrra.exceptions import SerializationError, SignatureError

__all__ = ["Signer", "dumps", "dumps_function", "loads"]

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


class Signer:
    """Signs bytes with HMAC-SHA256 and checks them before anything is unpickled.

    A signed blob is ``b"F1" + mac(32 bytes) + payload``. :meth:`loads` raises
    :class:`~flowrra.exceptions.SignatureError` for a blob whose signature is missing or
    wrong, and unpickles nothing in that case. The key never appears in a repr.
    """

    MAGIC = b"F1"
    _HEAD = len(MAGIC) + 32

    def __init__(self, secret: str | bytes) -> None:
        """Create a signer with ``secret`` (at least 16 characters)."""
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(key) < 16:
            raise ValueError("The secret key must be at least 16 characters long")
        # keyed once; each MAC starts from a copy (saves the key set-up per message)
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def __repr__(self) -> str:
        return "Signer(secret=<hidden>)"

    def _digest(self, payload: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(payload)
        return mac.digest()

    def sign(self, payload: bytes) -> bytes:
        """Return ``payload`` with its signature in front."""
        return self.MAGIC + self._digest(payload) + payload

    def verify(self, blob: bytes) -> bytes:
        """Return the payload of ``blob`` if its signature verifies, else raise."""
        if len(blob) < self._HEAD or not blob.startswith(self.MAGIC):
            raise SignatureError("unsigned payload")
        mac, payload = blob[2 : self._HEAD], blob[self._HEAD :]
        if not hmac.compare_digest(mac, self._digest(payload)):
            raise SignatureError("bad signature")
        return payload

    def dumps(self, value: Any, what: str = "value") -> bytes:
        """Pickle (see :func:`dumps`) and sign ``value``."""
        return self.sign(dumps(value, what))

    def loads(self, blob: bytes) -> Any:
        """Verify ``blob``, then unpickle it."""
        return loads(self.verify(blob))
