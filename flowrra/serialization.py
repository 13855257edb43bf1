"""Bytes on the wire: how functions, arguments and results cross a process boundary.

The rule dask uses: plain ``pickle`` first; where that fails, or where the pickle names
``__main__`` (a function or class defined in a notebook cell or a script, which another
process cannot import), ``cloudpickle`` sends it by value. Functions always go through
cloudpickle, which itself sends importable ones by reference and the rest by value.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import pickle
import secrets
import types
from collections import ChainMap
from collections.abc import Mapping
from typing import Any, ClassVar

import cloudpickle

from flowrra.exceptions import SerializationError, SignatureError

__all__ = ["Signer", "digest_of", "dumps", "dumps_function", "loads", "signer_for"]

# How a pickle (protocol 4 and up) names the module ``__main__`` when it refers to a
# global there (a class or function defined in a notebook cell or a script): the string
# as a SHORT_BINUNICODE opcode. Bare ``b"__main__"`` also matched every string that
# contains it, such as a task name ``"__main__.f"``: each payload and record of a task
# defined in a notebook then went through cloudpickle, several times slower. (A string
# that is exactly ``"__main__"`` still matches: it goes by value, which is only slower.)
_MAIN = b"\x8c\x08__main__"


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
        data = _dumps_keeping_files(func)
    except Exception as exc:
        raise SerializationError(f"The task function cannot be pickled: {_offender(exc)}") from exc
    return digest_of(data), data


_reduce_code = getattr(getattr(cloudpickle, "cloudpickle", None), "_code_reduce", None)
_DYNAMIC = "<dynamic-code>"


def _code_keeping_file(code: types.CodeType) -> Any:
    """cloudpickle's reduction of a code object, with the code's file name kept.

    cloudpickle writes ``<dynamic-code>`` instead, so the traceback of a function sent by
    value would not say where it failed (nor show the line, which a worker on the same
    machine reads from the file).
    """
    assert _reduce_code is not None
    rebuild, args = _reduce_code(code)
    return rebuild, tuple(code.co_filename if arg == _DYNAMIC else arg for arg in args)


class _FunctionPickler(cloudpickle.Pickler):
    """cloudpickle's pickler, keeping the file names of the code it sends by value (with
    a cloudpickle that has no ``_code_reduce``, cloudpickle's own way)."""

    dispatch_table: ClassVar[Mapping[Any, Any]] = (
        ChainMap({types.CodeType: _code_keeping_file}, cloudpickle.Pickler.dispatch_table)
        if _reduce_code is not None
        else cloudpickle.Pickler.dispatch_table
    )


def _dumps_keeping_files(func: Any) -> bytes:
    with io.BytesIO() as file:
        _FunctionPickler(file, protocol=pickle.HIGHEST_PROTOCOL).dump(func)
        return file.getvalue()


def digest_of(data: bytes) -> str:
    """The name of a pickled function's bytes (its digest)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _offender(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


_BLOCK = hashlib.sha256().block_size  # HMAC's key block (64 bytes)
_PAD_IN = bytes(b ^ 0x36 for b in range(256))  # HMAC's inner and outer key pads, as
_PAD_OUT = bytes(b ^ 0x5C for b in range(256))  # tables for bytes.translate


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
        # HMAC-SHA256 (RFC 2104) from its two keyed SHA-256 states, made once; each MAC
        # starts from copies of them. The same digest as ``hmac.new(key, msg, sha256)``
        # in half the time: ``hmac.HMAC.copy`` is Python, a hash object's copy is C, and
        # every payload and record is signed once and verified at least once.
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_PAD_IN))
        self._outer = hashlib.sha256(key.translate(_PAD_OUT))

    def __repr__(self) -> str:
        return "Signer(secret=<hidden>)"

    def _digest(self, payload: bytes, context: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(len(context).to_bytes(4, "big") + context)
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

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
