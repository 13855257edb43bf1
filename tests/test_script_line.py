"""The Redis protocol framing of flowrra's script lines matches redis-py's own."""

from __future__ import annotations

import pytest

pytest.importorskip("redis")


def test_pack_frames_commands_as_redis_py_does() -> None:
    from redis.asyncio.connection import Connection

    from flowrra.redis_wire import pack

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


def test_script_json_matches_the_json_module_and_takes_wide_ints() -> None:
    """The rows scripts decode (cjson) read the same from orjson as from json; an int
    orjson refuses goes through the json module instead of failing the write."""
    import json

    from flowrra.redis_client import dump_json

    rows = {
        "r": [["ab12", "pending", 1796002920.278431, "noop", 0, [160], 1]],
        "q": [["p:queue:io", [["ab12", -3, 0.0, [162], 30.0, "1|2|0|név"]]]],
        "a": [],
    }
    for value in (rows, [], {"x": 'é\u2028"\\'}, [2**70, 1.5e-7]):
        out = dump_json(value)
        assert json.loads(out) == value, value
