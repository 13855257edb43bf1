"""One function registered in two apps under two names: each app resolves it through its
own registry (0.1.8 stamped one ``task_name`` on the function, so the second app renamed
it for the first)."""

from __future__ import annotations

import pytest

from flowrra import Flowrra
from flowrra.exceptions import TaskNotFoundError
from flowrra.registry import TaskRegistry


async def shared(x: int) -> int:
    return x * 2


async def test_each_app_submits_the_function_under_its_own_name() -> None:
    first, second = Flowrra(), Flowrra()
    first.task(name="alpha")(shared)
    second.task(name="beta")(shared)
    async with first, second:
        one = await first.submit(shared, 2)
        two = await second.submit(shared, 3)
        done_one = await first.wait_for_result(one, timeout=5)
        done_two = await second.wait_for_result(two, timeout=5)
    assert (done_one.task_name, done_one.result) == ("alpha", 4)
    assert (done_two.task_name, done_two.result) == ("beta", 6)


def test_a_registry_knows_its_own_name_for_a_function() -> None:
    first, second = TaskRegistry(), TaskRegistry()
    first.task(name="alpha")(shared)
    second.task(name="beta")(shared)
    assert first.name_of(shared) == "alpha" and second.name_of(shared) == "beta"
    assert first.spec_for(shared).name == "alpha"
    assert first.spec_for("alpha").func is shared


def test_a_function_unknown_to_a_registry_is_not_found_there() -> None:
    first, second = TaskRegistry(), TaskRegistry()
    second.task(name="beta")(shared)
    with pytest.raises(TaskNotFoundError, match="Task 'beta' not registered"):
        first.spec_for(shared)


def test_unregister_falls_back_to_another_name_of_the_same_function() -> None:
    registry = TaskRegistry()
    registry.task(name="a")(shared)
    registry.task(name="b")(shared)
    assert registry.name_of(shared) == "b"
    assert registry.unregister("b")
    assert registry.name_of(shared) == "a"
    assert registry.spec_for(shared).name == "a"
