"""Redis faults on a server of our own (a free port, stopped by its pid): an ACL user, a
unix socket and TLS (``rediss://``) in the URL, and a restart in the middle of a run that
loses no task."""

from __future__ import annotations

import asyncio

import pytest

from flowrra import BrokerError, TaskStatus

from . import redis_app
from .redis_server import RedisServer

SECRET = "fault-secret-0123456789abcdef"


async def test_acl_user_and_unix_socket_urls(server: RedisServer) -> None:
    for url in (
        f"redis://alice:wonderland-pw@127.0.0.1:{server.port}/0",
        f"unix://{server.socket}?db=0",
    ):
        app = redis_app.make_app("acl", url, SECRET)
        async with app:
            record = await app.wait_for_result(await app.submit("nap", 3, 0.0), timeout=10)
        assert record.result == 3, url


async def test_tls_url_with_a_trusted_ca_and_a_clear_error_without(server: RedisServer) -> None:
    url = f"rediss://alice:wonderland-pw@127.0.0.1:{server.tls_port}/0"
    app = redis_app.make_app("tls", f"{url}?ssl_ca_certs={server.ca_file}", SECRET)
    async with app:
        record = await app.wait_for_result(await app.submit("nap", 5, 0.0), timeout=10)
        listed = await app.list_results(status="success")
    assert record.result == 5 and [r.task_id for r in listed] == [record.task_id]
    # the server's certificate is not trusted without its CA: the error names the URL
    # with the password hidden
    untrusted = redis_app.make_app("tls", url, SECRET)
    with pytest.raises(BrokerError) as info:
        await untrusted.start()
    message = str(info.value)
    assert f"rediss://alice:***@127.0.0.1:{server.tls_port}/0" in message
    assert "wonderland-pw" not in message
    assert "add ?ssl_ca_certs=" in message  # says what to do


async def test_a_restart_mid_run_loses_no_task(server: RedisServer) -> None:
    url = f"redis://alice:wonderland-pw@127.0.0.1:{server.port}/0"
    app = redis_app.make_app("restart", url, SECRET)
    app.io_executor.broker.lease = 1.0  # type: ignore[union-attr]
    await app.start()
    ids = await app.starmap("nap", [(i, 0.02) for i in range(200)])
    while len(await app.list_results(status="success")) < 40:  # mid-run
        await asyncio.sleep(0.02)
    server.stop()
    await asyncio.sleep(0.5)  # the app meets a dead server for a while
    server.start()
    records = [await app.wait_for_result(i, timeout=120) for i in ids]
    await app.stop()
    assert [r.result for r in records] == list(range(200))
    assert {r.status for r in records} == {TaskStatus.SUCCESS}
