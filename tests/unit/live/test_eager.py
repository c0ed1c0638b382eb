"""Begun: an awaitable run in the caller up to its first wait, and finished by a task."""

from __future__ import annotations

import asyncio

import pytest

from service.live.eager import Begun


async def steps(log: list[str], gate: asyncio.Future[str] | None = None) -> None:
    log.append("before")
    if gate is not None:
        log.append(await gate)
    log.append("after")


async def test_what_never_waits_is_done_in_the_caller() -> None:
    log: list[str] = []
    begun = Begun(steps(log))
    assert begun.finished and log == ["before", "after"]
    await begun
    assert log == ["before", "after"], "awaiting a finished one does nothing more"


async def test_what_waits_is_finished_by_the_task_that_awaits_it() -> None:
    log: list[str] = []
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    begun = Begun(steps(log, gate))
    assert not begun.finished and log == ["before"]
    finishing = asyncio.create_task(asyncio.wait_for(begun, 5))
    await asyncio.sleep(0.01)
    assert log == ["before"], "the task waits on the same future"
    gate.set_result("opened")
    await finishing
    assert begun.finished and log == ["before", "opened", "after"]


async def test_a_bare_yield_is_passed_through() -> None:
    log: list[str] = []

    async def yields() -> None:
        log.append("before")
        await asyncio.sleep(0)
        log.append("after")

    begun = Begun(yields())
    assert log == ["before"]
    await begun
    assert log == ["before", "after"]


async def test_an_error_before_the_first_wait_is_raised_where_it_is_awaited() -> None:
    async def fails() -> None:
        raise RuntimeError("broken pipe")

    begun = Begun(fails())
    assert not begun.finished
    with pytest.raises(RuntimeError, match="broken pipe"):
        await begun


async def test_an_error_after_the_wait_reaches_the_awaiting_task() -> None:
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    begun = Begun(steps([], gate))
    gate.set_exception(ConnectionResetError("peer went away"))
    with pytest.raises(ConnectionResetError):
        await begun


async def test_cancelling_the_task_cancels_the_awaitable_inside_it() -> None:
    log: list[str] = []
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def cleans_up() -> None:
        try:
            await gate
        except asyncio.CancelledError:
            log.append("cancelled inside")
            raise

    finishing = asyncio.create_task(_await(Begun(cleans_up())))
    await asyncio.sleep(0.01)
    finishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finishing
    assert log == ["cancelled inside"]
    assert gate.cancelled(), "the task's cancellation reached the future it waited on"


async def test_close_runs_the_awaitables_cleanup_now() -> None:
    log: list[str] = []
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def cleans_up() -> None:
        try:
            await gate
        finally:
            log.append("cleaned up")

    begun = Begun(cleans_up())
    begun.close()
    assert log == ["cleaned up"]


async def _await(begun: Begun) -> None:
    await begun
