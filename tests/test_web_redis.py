"""The dashboard over a whole Redis deployment: tasks run by a `flowrra worker` in another
process, its presence on the workers page, and a killed worker shown as lost."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("starlette", reason="pip install -e '.[dashboard]' to test the dashboard")

from starlette.testclient import TestClient

from flowrra.web import create_app

from .test_redis import app_for, start_worker, stop_worker

LOCAL = "http://127.0.0.1"


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_dashboard_sees_a_remote_worker_its_tasks_and_its_loss(prefix: str) -> None:
    worker = start_worker(prefix, "--io-workers", "4")
    try:
        app = app_for(prefix)
        nap = app.registry.spec("nap").func
        with TestClient(create_app(app, manage_app=True), base_url=LOCAL) as client:
            # the worker's IO and CPU executors beat on their own queues, each from its
            # own start: wait until both have (the CPU pool starts later)
            workers = wait_for(
                lambda: [
                    w
                    for w in client.get("/api/workers").json()
                    if not w["lost"] and len(w["queues"]) == 2
                ],
                "the first beats of both of the worker's executors",
            )
            assert [w["pid"] for w in workers] == [worker.pid]
            assert workers[0]["queues"] == ["cpu", "io"] and workers[0]["concurrency"] >= 4
            with client.websocket_connect("ws://127.0.0.1/ws/table") as socket:
                state: dict[str, Any] = {}
                state.update(socket.receive_json()["state"])
                ids = client.portal.call(lambda: app.starmap(nap, [(i, 0.01) for i in range(40)]))
                # the remote worker's records reach this process as events: the table
                # moves without a refresh of its own
                while state["counts"]["success"] < 40:
                    state.update(socket.receive_json()["state"])
                assert {r["task_id"] for r in state["rows"]} == set(ids)
            page = client.get("/api/records", params={"name": "nap", "limit": 5}).json()
            assert page["matching"] == 40 and len(page["rows"]) == 5
            overview = client.get("/api/overview").json()
            assert overview["counts"]["success"] == 40
            assert {q["queue"] for q in overview["queues"]} == {"io", "cpu"}
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            lost = wait_for(
                lambda: [w for w in client.get("/api/workers").json() if w["lost"]],
                "the killed worker to show as lost",
            )
            assert lost[0]["pid"] == worker.pid and lost[0]["seconds_since_beat"] >= 5
    finally:
        stop_worker(worker)


def test_a_clean_stop_takes_the_worker_off_the_list(prefix: str) -> None:
    worker = start_worker(prefix)
    app = app_for(prefix)
    with TestClient(create_app(app, manage_app=True), base_url=LOCAL) as client:
        wait_for(lambda: client.get("/api/workers").json(), "the worker's first beat")
        stop_worker(worker)
        assert client.get("/api/workers").json() == []


async def test_a_malformed_presence_entry_is_skipped(prefix: str) -> None:
    import redis.asyncio as aioredis

    from .services import REDIS_URL

    app = app_for(prefix)
    broker = app.io_executor.broker
    raw = aioredis.from_url(REDIS_URL)
    await raw.hset(broker.keys["workers"], mapping={"junk": b"\xff not json", "list": "[1]"})
    await raw.aclose()
    assert await broker.workers() == []
    await asyncio.sleep(0)
