"""The Redis protocol framing of flowrra's script lines matches redis-py's own."""

from __future__ import annotations

import pytest

pytest.importorskip("redis")


def test_pack_frames_commands_as_redis_py_does() -> None:
    from redis.asyncio.connection import Connection

    from flowrra.redis_client import pack

    connection = Connection()
    commands = [
        ("EVALSHA", "ab" * 20, 0),
        ("EVALSHA", "f" * 40, 0, "prefix", b"\x00\xff\r\n", 1.5, 1796002920.278431, "é", 10**20),
        ("SCRIPT", "LOAD", "return 1"),
        ("X", b"", "", -3, 0.1),
    ]
    for parts in commands:
        assert pack(parts) == b"".join(connection.pack_command(*parts)), parts
    for bad in (True, None, object()):
        with pytest.raises(TypeError, match="cannot send"):
            pack(("SET", "k", bad))
