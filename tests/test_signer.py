"""The signer's MACs: the standard HMAC-SHA256, so blobs already in Redis still verify."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from flowrra.exceptions import SignatureError
from flowrra.serialization import Signer


@pytest.mark.parametrize("secret", ["a" * 16, "b" * 64, "c" * 65, "d" * 200, "é" * 20])
@pytest.mark.parametrize("context", [b"", b"task-1", b"x" * 300])
@pytest.mark.parametrize("payload", [b"", b"p", b"q" * 100_000])
def test_a_signature_is_hmac_sha256_of_the_context_then_the_payload(
    secret: str, context: bytes, payload: bytes
) -> None:
    # what every earlier release wrote: blobs signed before an upgrade still verify
    message = len(context).to_bytes(4, "big") + context + payload
    mac = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    blob = Signer(secret).sign(payload, context)
    assert blob == Signer.MAGIC + mac + payload
    assert Signer(secret).verify(blob, context) == payload


def test_a_blob_verifies_only_with_its_key_and_in_its_place() -> None:
    signer = Signer("the-right-secret-key")
    blob = signer.dumps({"x": 1}, context=b"task-1")
    assert signer.loads(blob, b"task-1") == {"x": 1}
    with pytest.raises(SignatureError, match="another secret key, or moved"):
        signer.loads(blob, b"task-2")
    with pytest.raises(SignatureError, match="another secret key, or moved"):
        Signer("another-secret-key-00").loads(blob, b"task-1")
    with pytest.raises(SignatureError, match="unsigned payload"):
        signer.loads(blob[2:], b"task-1")
