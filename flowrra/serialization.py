"""Bytes on the wire: how functions, arguments and results cross a process boundary.

The rule dask uses: plain ``pickle`` first; where that fails, or where the pickle names
``__main__`` (a function or class defined in a notebook cell or a script, which another
process cannot import), ``cloudpickle`` sends it by value. Functions always go through
cloudpickle, which itself sends importable ones by reference and the rest by value.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import secrets
from typing import Any

import cloudpickle

from flowrra.exceptions import SerializationError, SignatureError

__all__ = ["Signer", "digest_of", "dumps", "dumps_function", "loads", "signer_for"]

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
    return digest_of(data), data


def digest_of(data: bytes) -> str:
    """The name of a pickled function's bytes (its digest)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _offender(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


class Signer:
    """Signs bytes with HMAC-SHA256 and checks them before anything is unpickled.

    A signed blob is ``b"F2" + mac(32 bytes) + payload``. The MAC also covers a
    *context*: the place the payload belongs to (a task id, a function digest), so a
    signed payload copied to another place no longer verifies. :meth:`loads` raises
    :class:`~flowrra.exceptions.SignatureError` for a blob whose signature is missing or
    wrong, and unpickles nothing in that case. The key never appears in a repr.
    """

    MAGIC = b"F2"
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

    def _digest(self, payload: bytes, context: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(len(context).to_bytes(4, "big") + context)
        mac.update(payload)
        return mac.digest()

    def sign(self, payload: bytes, context: bytes = b"") -> bytes:
        """Return ``payload`` with its signature (bound to ``context``) in front."""
        return self.MAGIC + self._digest(payload, context) + payload

    def verify(self, blob: bytes, context: bytes = b"") -> bytes:
        """Return the payload of ``blob`` if its signature verifies for ``context``,
        else raise :class:`~flowrra.exceptions.SignatureError`."""
        if not isinstance(blob, bytes) or len(blob) < self._HEAD or blob[:2] != self.MAGIC:
            raise SignatureError("unsigned payload")
        mac, payload = blob[2 : self._HEAD], blob[self._HEAD :]
        if not hmac.compare_digest(mac, self._digest(payload, context)):
            raise SignatureError(
                "bad signature (signed with another secret key, or moved from another place)"
            )
        return payload

    def dumps(self, value: Any, what: str = "value", context: bytes = b"") -> bytes:
        """Pickle (see :func:`dumps`) and sign ``value`` for ``context``."""
        return self.sign(dumps(value, what), context)

    def loads(self, blob: bytes, context: bytes = b"") -> Any:
        """Verify ``blob`` for ``context``, then unpickle it."""
        return loads(self.verify(blob, context))


def signer_for(secret: str | None) -> tuple[Signer, bool]:
    """The signer for ``secret``, else for ``FLOWRRA_SECRET_KEY``, else for a secret made
    for this process alone; the flag says the secret was made here (good only for this
    process's own workers)."""
    secret = secret or os.environ.get("FLOWRRA_SECRET_KEY")
    if secret:
        return Signer(secret), False
    return Signer(secrets.token_hex(32)), True
