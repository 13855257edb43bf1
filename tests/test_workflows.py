"""Workflows (chains, groups, chords) and ``app.as_completed``: every behaviour in
memory and on Redis (one contract, subclassed per backend), then what only Redis does
across processes: a workflow outlives its submitter and a worker killed mid-step."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import flowrra
from flowrra import Config, ExecutorConfig, Flowrra, TaskNotFoundError, TaskStatus
from flowrra.exceptions import (
    TaskCancelledError,
    TaskTimeoutError,
    UnknownTaskIdError,
    WorkflowFailedError,
)
from flowrra.task import Task, TaskResult
from flowrra.workflows import WorkflowHandle, call, chain, chord, group

from . import cpu_tasks, workflow_app
from .services import REDIS_URL

SECRET = "test-secret-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[1]


#: Events of the gated tasks, by name (module-level: the tasks are importable, so on
#: Redis they travel by reference and share this process's events).
GATES: dict[str, asyncio.Event] = {}
STARTED: dict[str, asyncio.Event] = {}
ATTEMPTS: list[int] = []


async def add(x: int, y: int = 1) -> int:
    return x + y


async def total(xs: list[int]) -> int:
    return sum(xs)


async def fail(x: Any) -> None:
    raise ValueError(f"cannot take {x!r}")


async def flaky(x: int) -> int:
    ATTEMPTS.append(x)
    if len(ATTEMPTS) == 1:
        raise RuntimeError("first attempt fails")
    return x * 2


async def gated(x: Any, name: str) -> Any:
    """Returns ``x`` once the test opens gate ``name``."""
    STARTED.setdefault(name, asyncio.Event()).set()
    await GATES.setdefault(name, asyncio.Event()).wait()
    return x


class Tasks:
    """The tasks of one test app: plain ones, and gated ones the test lets finish."""

    def __init__(self, app: Flowrra) -> None:
        GATES.clear()
        STARTED.clear()
        ATTEMPTS.clear()
        for task in (add, total, fail, gated):
            app.task(max_retries=0)(task)
        app.task(max_retries=2, retry_delay=0.01)(flaky)
        self.add, self.total, self.fail, self.flaky, self.gated = add, total, fail, flaky, gated

    def gate(self, name: str) -> asyncio.Event:
        return GATES.setdefault(name, asyncio.Event())

    def started_event(self, name: str) -> asyncio.Event:
        return STARTED.setdefault(name, asyncio.Event())


async def statuses(handle: WorkflowHandle) -> list[str]:
    return [r.status.value for r in await handle.step_records()]


class WorkflowContract:
    """Every workflow behaviour; a subclass gives the ``app`` (started, with workers)."""

    @pytest.fixture
    def tasks(self, app: Flowrra) -> Tasks:
        return Tasks(app)

    async def test_a_chain_passes_each_result_to_the_next_step(
        self, app: Flowrra, tasks: Tasks
    ) -> None:
        handle = await app.run(chain(call(tasks.add, 1), call(tasks.add, 10), tasks.add))
        assert await handle.result(timeout=20) == 13
        assert await handle.status() is TaskStatus.SUCCESS
        records = await handle.step_records()
        assert [r.args for r in records] == [(1,), (2, 10), (12,)]
        assert [r.workflow_step for r in records] == ["0", "1", "2"]
        assert {r.workflow_id for r in records} == {handle.id}
        assert [r.task_id for r in records] == handle.step_ids == list(handle.steps.values())
        own = await app.get_result(handle.id)
        assert own is not None and own.task_name == "workflow" and own.result == 13
        assert own.args == ("chain(add, add, add)",) and own.workflow_id == handle.id
        assert await handle == 13  # a handle can be awaited as well

    async def test_groups_chords_and_nesting(self, app: Flowrra, tasks: Tasks) -> None:
        add, total = tasks.add, tasks.total
        members = await app.run(group(call(add, i) for i in range(20)))
        assert await members.result(timeout=20) == [i + 1 for i in range(20)]
        assert await (await app.run(group())).result(timeout=20) == []
        summed = await app.run(chord((call(add, i) for i in range(10)), total))
        assert await summed.result(timeout=20) == 55
        assert list(summed.steps)[-1] == "1" and (await summed.record()).args == (  # type: ignore[union-attr]
            "chord(group(add x10), total)",
        )
        nested = await app.run(
            chain(
                call(add, 0),
                group(call(add, y=1), chain(add, call(add, y=10)), group(add, add), group()),
                chord([call(total), call(total)], total),
            )
        )
        # add(0) = 1; the group gets 1 each: [2, 12, [2, 2], []]; the chord's members
        # cannot sum nested lists, so the last step fails, naming itself
        with pytest.raises(WorkflowFailedError) as failure:
            await nested.result(timeout=20)
        assert failure.value.step == "2.0.0" and failure.value.error_type == "TypeError"
        fine = await app.run(
            chain(call(add, 0), group(call(add, y=1), chain(add, call(add, y=10)), group(add, add)))
        )
        assert await fine.result(timeout=20) == [2, 12, [2, 2]]
        assert list(fine.steps) == ["0", "1.0", "1.1.0", "1.1.1", "1.2.0", "1.2.1"]

    async def test_every_step_has_a_record_from_the_start(self, app: Flowrra, tasks: Tasks) -> None:
        handle = await app.run(chain(call(tasks.gated, 1, "a"), tasks.add, tasks.add))
        await tasks.started_event("a").wait()
        found = [await app.get_result(task_id) for task_id in handle.step_ids]
        # the first step runs (on Redis its RUNNING record is written in the background)
        assert found[0] is not None and not found[0].is_complete
        assert [r.status for r in found[1:]] == [TaskStatus.PENDING] * 2  # type: ignore[union-attr]
        assert await handle.status() is TaskStatus.RUNNING
        waiting = app.as_completed(handle.step_ids, timeout=20)
        tasks.gate("a").set()
        order = [record.workflow_step async for record in waiting]
        assert order == ["0", "1", "2"] and await handle.result(timeout=20) == 3

    async def test_retries_apply_per_step(self, app: Flowrra, tasks: Tasks) -> None:
        handle = await app.run(chain(call(tasks.add, 1), tasks.flaky, tasks.add))
        assert await handle.result(timeout=20) == 5
        assert [r.retries for r in await handle.step_records()] == [0, 1, 0]

    async def test_a_failed_step_ends_the_workflow_failed_naming_it(
        self, app: Flowrra, tasks: Tasks
    ) -> None:
        handle = await app.run(chain(call(tasks.add, 1), call(tasks.fail), tasks.add, tasks.add))
        with pytest.raises(WorkflowFailedError) as failure:
            await handle.result(timeout=20)
        assert failure.value.step == "1" and failure.value.task_id == handle.id
        assert failure.value.error_type == "ValueError"
        assert "Step 1 (fail) failed: ValueError: cannot take 2" in str(failure.value)
        assert await statuses(handle) == ["success", "failed", "cancelled", "cancelled"]
        own = await handle.record()
        assert own is not None and own.status is TaskStatus.FAILED and own.workflow_step == "1"
        assert "Traceback" in (own.traceback or "")

    async def test_a_failed_member_cancels_its_siblings(self, app: Flowrra, tasks: Tasks) -> None:
        members = [call(tasks.gated, 1, "a"), call(tasks.gated, 2, "b"), call(tasks.fail, 3)]
        handle = await app.run(chord(members, tasks.total))
        with pytest.raises(WorkflowFailedError, match=r"Step 0\.2"):
            await handle.result(timeout=20)
        ended = [r async for r in app.as_completed(handle.step_ids, timeout=20)]
        assert {r.workflow_step: r.status.value for r in ended} == {
            "0.0": "cancelled", "0.1": "cancelled", "0.2": "failed", "1": "cancelled"
        }  # fmt: skip

    async def test_cancel_cancels_the_steps_not_finished(self, app: Flowrra, tasks: Tasks) -> None:
        handle = await app.run(chain(call(tasks.add, 0), call(tasks.gated, "b"), tasks.add))
        await tasks.started_event("b").wait()
        assert await handle.cancel() is True
        assert await handle.status() is TaskStatus.CANCELLED
        assert await statuses(handle) == ["success", "cancelled", "cancelled"]
        with pytest.raises(TaskCancelledError):
            await handle.result(timeout=20)
        assert await handle.cancel() is False and await app.cancel(handle.id) is False
        spread = await app.run(group(call(tasks.gated, i, f"g{i}") for i in range(3)))
        assert await app.cancel(spread.id) is True  # the app's cancel knows workflows
        assert set(await statuses(spread)) == {"cancelled"}

    async def test_cancelling_one_step_cancels_the_workflow(
        self, app: Flowrra, tasks: Tasks
    ) -> None:
        handle = await app.run(group(call(tasks.gated, i, f"c{i}") for i in range(3)))
        await tasks.started_event("c1").wait()
        assert await app.cancel(handle.steps["1"]) is True
        with pytest.raises(TaskCancelledError, match="Step 1 \\(gated\\) was cancelled"):
            await handle.result(timeout=20)
        assert (await handle.record()).workflow_step == "1"  # type: ignore[union-attr]
        ended = [r.status async for r in app.as_completed(handle.step_ids, timeout=20)]
        assert set(ended) == {TaskStatus.CANCELLED}  # the others, in the background

    async def test_a_step_that_cannot_be_submitted_fails_the_workflow(
        self, app: Flowrra, tasks: Tasks
    ) -> None:
        handle = await app.run(chain(call(tasks.gated, 1, "u"), tasks.add), priority=3)
        await tasks.started_event("u").wait()
        app.registry.unregister("add")  # gone before step 1 is submitted
        tasks.gate("u").set()
        with pytest.raises(WorkflowFailedError) as failure:
            await handle.result(timeout=20)
        assert failure.value.step == "1" and failure.value.error_type == "TaskNotFoundError"
        assert "Could not submit step 1 (add)" in str(failure.value)
        assert [r.priority for r in await handle.step_records()] == [3, 3]
        assert await statuses(handle) == ["success", "cancelled"]

    async def test_cpu_bound_steps_mix_with_io_steps(self, app: Flowrra, tasks: Tasks) -> None:
        app.task(name="square", cpu_bound=True)(cpu_tasks.square)
        workflow = chain(group(call("square", i) for i in range(4)), tasks.total, "square")
        handle = await app.run(workflow)
        assert await handle.result(timeout=60) == (0 + 1 + 4 + 9) ** 2

    async def test_as_completed_yields_records_in_finish_order(
        self, app: Flowrra, tasks: Tasks
    ) -> None:
        ids = [await app.submit(tasks.gated, i, f"o{i}") for i in range(3)]
        records = app.as_completed(ids, timeout=20).__aiter__()
        for i in (2, 0, 1):
            tasks.gate(f"o{i}").set()
            assert (await records.__anext__()).task_id == ids[i]
        with pytest.raises(StopAsyncIteration):
            await records.__anext__()
        failed = await app.submit(tasks.fail, 1)
        assert [r.status async for r in app.as_completed([failed])] == [TaskStatus.FAILED]

    async def test_as_completed_timeout_and_unknown_ids(self, app: Flowrra, tasks: Tasks) -> None:
        waiting = await app.submit(tasks.gated, 1, "never")
        with pytest.raises(TaskTimeoutError, match="1 of 1 task"):
            [r async for r in app.as_completed([waiting], timeout=0.05)]
        with pytest.raises(UnknownTaskIdError):
            [r async for r in app.as_completed(["f" * 32])]
        tasks.gate("never").set()

    async def test_as_completed_sync_form(self, app: Flowrra, tasks: Tasks) -> None:
        ids = await app.map(tasks.add, range(10))
        found = await asyncio.to_thread(lambda: list(app.as_completed(ids, timeout=20)))
        assert sorted(r.task_id for r in found) == sorted(ids)
        with pytest.raises(RuntimeError, match="async for"):
            iter(app.as_completed(ids))  # on the app's own loop: it would block it

    async def test_steps_are_checked_before_anything_is_submitted(
        self, app: Flowrra, tasks: Tasks
    ) -> None:
        with pytest.raises(TypeError, match="step 1 of the workflow"):
            await app.run(chain(call(tasks.add, 1), call(tasks.add, 1, 2)))
        with pytest.raises(TaskNotFoundError):
            await app.run(chain(call(tasks.add, 1), "nope"))
        with pytest.raises(TypeError, match="takes a workflow"):
            await app.run(tasks.add)  # type: ignore[arg-type]
        assert await app.list_results() == []

    async def test_frames_show_workflow_and_step(self, app: Flowrra, tasks: Tasks) -> None:
        handle = await app.run(chain(call(tasks.add, 1), tasks.add))
        await handle.result(timeout=20)
        frame = await app.results_frame()
        rows = frame.set_index("task_id")
        assert rows.loc[handle.step_ids, "workflow_step"].tolist() == ["0", "1"]
        assert set(rows["workflow_id"]) == {handle.id}
        steps = await handle.results_frame()
        assert steps["workflow_step"].tolist() == ["0", "1"] and steps["result"].tolist() == [2, 3]


class TestInMemory(WorkflowContract):
    @pytest.fixture
    async def app(self) -> AsyncIterator[Flowrra]:
        application = Flowrra(Config(executor=ExecutorConfig(io_workers=8, retry_delay=0.01)))
        await application.start()
        yield application
        await application.stop(wait=False)

    async def test_stop_cancels_a_running_workflow(self, app: Flowrra, tasks: Tasks) -> None:
        handle = await app.run(chain(call(tasks.gated, 1, "s"), tasks.add))
        await tasks.started_event("s").wait()
        await app.stop(wait=False)
        assert await handle.status() is TaskStatus.CANCELLED
        assert await statuses(handle) == ["cancelled", "cancelled"]
        assert len(app._workflows.store) == 0  # type: ignore[arg-type]  # forgotten


class TestRedis(WorkflowContract):
    @pytest.fixture
    async def app(self, prefix: str) -> AsyncIterator[Flowrra]:
        application = workflow_app.make_app(prefix, REDIS_URL, SECRET, tasks=False)
        await application.start()
        yield application
        await application.stop(wait=False)

    async def test_a_step_cancelled_while_queued_in_redis_ends_the_workflow(
        self, prefix: str
    ) -> None:
        submitter = workflow_app.make_app(prefix, REDIS_URL, SECRET, tasks=False)
        Tasks(submitter)
        await submitter.start(workers=False)  # nobody takes the steps
        try:
            handle = await submitter.run(chain(call(add, 1), add))
            assert await submitter.cancel(handle.steps["0"]) is True
            with pytest.raises(TaskCancelledError, match="Step 0"):
                await handle.result(timeout=20)
            assert await statuses(handle) == ["cancelled", "cancelled"]
        finally:
            await submitter.stop()

    async def test_the_workflow_lives_under_the_prefix_and_expires_once_ended(
        self, app: Flowrra, tasks: Tasks, prefix: str
    ) -> None:
        handle = await app.run(chain(call(tasks.add, 1), tasks.add))
        await handle.result(timeout=20)
        client = app.results_backend.client
        key = f"{prefix}:workflow:{handle.id}"
        assert 0 < await client.ttl(key) <= 86_400
        assert (await client.hget(key, "end")) == b"success"
        attached = await WorkflowHandle.attach(app, handle.id)
        assert attached.steps == handle.steps and await attached.result(timeout=5) == 3


def test_records_and_tasks_of_steps_pickle_with_their_workflow() -> None:
    record = TaskResult("t", TaskStatus.SUCCESS, "add", workflow_id="w", workflow_step="1.2")
    again = pickle.loads(pickle.dumps(record))
    assert (again.workflow_id, again.workflow_step) == ("w", "1.2") and again == record
    assert TaskResult.from_dict(record.to_dict) == record
    plain = pickle.loads(pickle.dumps(TaskResult("t", TaskStatus.PENDING)))
    assert plain.workflow_id is None and plain.workflow_step is None
    task = Task("t", "add", (1,), {}, workflow_id="w", workflow_step="0")
    assert pickle.loads(pickle.dumps(task)).workflow_step == "0"


def test_the_package_exports_the_workflow_api() -> None:
    assert flowrra.chain is chain and flowrra.call is call
    assert flowrra.group is group and flowrra.chord is chord
    assert flowrra.WorkflowHandle is WorkflowHandle
    assert flowrra.WorkflowFailedError is WorkflowFailedError


# ------------------------------------------------------------ across processes
class Worker:
    """A ``flowrra worker`` process on the workflow app; its log goes to a file (a pipe
    nobody reads until the end would fill up and block the worker)."""

    def __init__(self, prefix: str, log: Path, *extra: str) -> None:
        env = dict(os.environ, FLOWRRA_TEST_PREFIX=prefix, FLOWRRA_SECRET_KEY=SECRET)
        env["FLOWRRA_TEST_REDIS_URL"] = REDIS_URL
        self.log = log
        with open(log, "w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flowrra", "worker", "--app", "tests.workflow_app:app",
                 *extra],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    async def ready(self, timeout: float = 60.0) -> None:
        """Wait until the worker says it is ready (it has subscribed and takes tasks)."""
        deadline = time.monotonic() + timeout
        while " ready: " not in self.log.read_text():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the worker did not start in time"
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        return self.log.read_text()


async def test_two_workers_finishing_a_group_start_its_callback_once(
    prefix: str, tmp_path: Path
) -> None:
    submitter = workflow_app.make_app(prefix, REDIS_URL, SECRET)
    await submitter.start(workers=False)
    workers = [Worker(prefix, tmp_path / f"worker-{i}.log") for i in range(2)]
    logs = [str(tmp_path / f"tally-{i}") for i in range(3)]
    try:
        for worker in workers:  # both take part (one started late could find no work)
            await worker.ready()
        handles = [
            await submitter.run(chord((call("add", j) for j in range(200)), call("tally", log)))
            for log in logs
        ]
        results = [await h.result(timeout=120) for h in handles]
        spread = {r.workflow_step for r in await handles[0].step_records()}
    finally:
        out = [w.stop() for w in workers]
        await submitter.stop()
    assert results == [sum(range(1, 201))] * 3
    assert [Path(log).read_text().count("run") for log in logs] == [1, 1, 1]
    assert len(spread) == 201 and all("Received add" in o for o in out), out


async def test_a_workflow_outlives_its_submitter(prefix: str, tmp_path: Path) -> None:
    env = dict(os.environ, FLOWRRA_TEST_PREFIX=prefix, FLOWRRA_SECRET_KEY=SECRET)
    env["FLOWRRA_TEST_REDIS_URL"] = REDIS_URL
    out = tmp_path / "ids"
    submitted = subprocess.run(
        [sys.executable, "-m", "tests.workflow_app", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    first, second = out.read_text().split()
    waiter = workflow_app.make_app(prefix, REDIS_URL, SECRET)  # another app, no workers
    await waiter.start(workers=False)
    worker = Worker(prefix, tmp_path / "worker.log")  # starts after the submitter is gone
    try:
        chord_result = await waiter.wait_for_result(first, timeout=120)
        chain_result = await waiter.wait_for_result(second, timeout=120)
    finally:
        log = worker.stop()
        await waiter.stop()
    assert chord_result.status is TaskStatus.SUCCESS, log
    assert (chord_result.result, chain_result.result) == (sum(range(1, 21)), 103)


async def test_workers_run_steps_defined_only_where_the_workflow_was_submitted(
    prefix: str, tmp_path: Path
) -> None:
    # as in a notebook: the tasks exist in the submitting process only (closures here,
    # cells there) and travel by value; a worker that ends a step submits the next one
    submitter = workflow_app.make_app(prefix, REDIS_URL, SECRET, tasks=False)
    offset = 1000

    async def shift(x: int) -> int:
        return x + offset

    def scale(x: int) -> int:
        return x * 3

    submitter.task(max_retries=0)(shift)
    submitter.task(name="scale", cpu_bound=True, max_retries=0)(scale)
    await submitter.start(workers=False)
    worker = Worker(prefix, tmp_path / "worker.log")  # knows add, total, ... only
    try:
        handle = await submitter.run(chain(call(shift, 1), "scale", shift, "scale"))
        result = await handle.result(timeout=120)
    finally:
        log = worker.stop()
        await submitter.stop()
    assert result == ((1 + 1000) * 3 + 1000) * 3, log
    assert log.count("Received shift") == 2 and log.count("Received scale") == 2


async def test_a_worker_killed_mid_step_does_not_lose_the_workflow(
    prefix: str, tmp_path: Path
) -> None:
    marker = str(tmp_path / "stall")
    submitter = workflow_app.make_app(prefix, REDIS_URL, SECRET)
    running = asyncio.Event()

    def on_event(event: dict[str, Any]) -> None:
        task = event["task"]
        if event["type"] == "task.started" and task.get("workflow_step") == "1":
            running.set()

    submitter.events.subscribe(on_event)
    await submitter.start(workers=False)
    first = Worker(prefix, tmp_path / "first.log", "--lease", "1")
    second: Worker | None = None
    try:
        handle = await submitter.run(
            chain(call("add", 1), call("stall_once", marker), call("add", y=5))
        )
        await running.wait()  # step 1 runs in the first worker (its record says so)
        first.kill()
        second = Worker(prefix, tmp_path / "second.log", "--lease", "1")
        result = await handle.result(timeout=120)
        steps = await handle.step_records()
    finally:
        first.stop()
        log = second.stop() if second is not None else ""
        await submitter.stop()
    assert result == 25, log
    assert Path(marker).read_text().count("run") == 2  # at least once: it ran again
    assert [r.status for r in steps] == [TaskStatus.SUCCESS] * 3


async def test_of_two_stores_marking_a_group_at_once_one_sees_it_complete(prefix: str) -> None:
    from flowrra.backends.redis import RedisBackend
    from flowrra.clock import utcnow
    from flowrra.serialization import Signer
    from flowrra.workflows.graph import compile
    from flowrra.workflows.redis_store import RedisWorkflowStore
    from flowrra.workflows.store import AGAIN, FIRST

    app = Flowrra()
    app.task()(add)
    graph = compile(group(call(add, i) for i in range(100)), app._io_executor._spec_for, utcnow())
    backends = [RedisBackend(f"{REDIS_URL}?key_prefix={prefix}") for _ in range(2)]
    for backend in backends:
        backend.signer = Signer(SECRET)
    one, two = (RedisWorkflowStore(b) for b in backends)  # two clients, as two processes
    try:
        await one.create(graph)
        members = graph.children[0]
        marks = await asyncio.gather(
            *((one if i % 2 else two).mark(graph.id, node, i, 0) for i, node in enumerate(members))
        )
        again = await two.mark(graph.id, members[0], "ignored", 0)
        values = await one.values(graph.id, members)
    finally:
        for backend in backends:
            await backend.close()
    complete = [state for state, count in marks if count == len(members)]
    assert complete == [FIRST]  # exactly one of the marks completed the group
    assert sorted(count for _, count in marks) == list(range(1, 101))
    assert again == (AGAIN, 100) and values == list(range(100))  # the first value stays


async def test_a_workflow_hash_spoiled_by_someone_else_stops_only_that_workflow(
    prefix: str,
) -> None:
    from flowrra.backends.redis import RedisBackend
    from flowrra.clock import utcnow
    from flowrra.serialization import Signer
    from flowrra.workflows.graph import compile
    from flowrra.workflows.redis_store import RedisWorkflowStore
    from flowrra.workflows.store import ENDED, FIRST

    app = Flowrra()
    app.task()(add)
    spec_for = app._io_executor._spec_for
    graphs = [compile(group(call(add, i) for i in range(10)), spec_for, utcnow()) for _ in "abc"]
    backend = RedisBackend(f"{REDIS_URL}?key_prefix={prefix}")
    backend.signer = Signer(SECRET)
    store = RedisWorkflowStore(backend)
    try:
        for graph in graphs:
            await store.create(graph)
        counted, retyped, _healthy = graphs
        await backend.client.hset(store.key(counted.id), "c:0", "garbage")  # a count
        await backend.client.delete(store.key(retyped.id))
        await backend.client.set(store.key(retyped.id), "not a hash")  # the whole hash
        marks = await asyncio.gather(  # one script call marks all three
            *(store.mark(g.id, node, i, 0) for g in graphs for i, node in enumerate(g.children[0]))
        )
    finally:
        await backend.close()
    assert marks[:20] == [(ENDED, -1)] * 20  # the spoiled two end there
    assert marks[20:] == [(FIRST, i) for i in range(1, 11)]  # the other one goes on


async def test_a_step_whose_payload_vanished_ends_its_workflow_failed(prefix: str) -> None:
    """A step failed without running (its payload removed from Redis) is a step's end
    too: the workflow ends FAILED naming it, instead of staying RUNNING for ever."""
    import redis.asyncio as aioredis

    submitter = workflow_app.make_app(prefix, REDIS_URL, SECRET)
    await submitter.start(workers=False)
    worker = workflow_app.make_app(prefix, REDIS_URL, SECRET)
    try:
        handle = await submitter.run(chain(call(workflow_app.add, 1), workflow_app.add))
        first = handle.steps["0"]
        raw = aioredis.from_url(REDIS_URL)
        queue = submitter.io_executor.broker.keys["payloads"]  # type: ignore[union-attr]
        assert await raw.hdel(queue, first) == 1  # removed by something other than flowrra
        await raw.aclose()
        await worker.start()
        record = await submitter.wait_for_result(handle.id, timeout=30)
    finally:
        await worker.stop()
        await submitter.stop()
    assert record.status is TaskStatus.FAILED
    assert "0" in (record.error or "") and "missing" in (record.error or "")
