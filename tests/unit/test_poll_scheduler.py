"""PollScheduler on a real event loop: turns come after their delay, a bounded few at a time, and none leaks.

Ordering and bounds are asserted after counted loop iterations (``asyncio.sleep(0)``), not after
wall-clock sleeps, so nothing here races the clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from airflow_provider_cloudjobs.poll_scheduler import PollScheduler


async def iterations(count: int = 3) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


@pytest.fixture
async def scheduler() -> AsyncIterator[PollScheduler]:
    """A scheduler on the test's loop; its timer stopped afterwards."""
    scheduler = PollScheduler(asyncio.get_running_loop())
    yield scheduler
    scheduler.close()


def granted(turns: list[asyncio.Future[None]]) -> int:
    return sum(1 for turn in turns if turn.done() and not turn.cancelled())


async def test_no_more_turns_at_once_than_max_in_flight(scheduler, monkeypatch):
    monkeypatch.setattr(PollScheduler, "max_in_flight", 3)
    turns = [scheduler.turn(0) for _ in range(10)]
    await iterations()
    assert granted(turns) == 3
    scheduler.done(turns[0])  # one poll ends: exactly one more may start
    await iterations()
    assert granted(turns) == 4
    assert scheduler.in_flight == 3
    for turn in turns[1:]:
        await asyncio.wait_for(turn, 5)  # each comes once an earlier one is handed back
        scheduler.done(turn)
    assert scheduler.in_flight == 0


async def test_a_herd_is_let_go_a_batch_per_loop_iteration(scheduler, monkeypatch):
    monkeypatch.setattr(PollScheduler, "batch", 4)
    turns = [scheduler.turn(0) for _ in range(10)]
    await asyncio.sleep(0)  # the grant callback runs once
    assert granted(turns) == 4
    await asyncio.sleep(0)
    assert granted(turns) == 8
    await iterations()
    assert granted(turns) == 10
    for turn in turns:
        scheduler.done(turn)


async def test_a_turn_comes_after_its_delay_and_in_order(scheduler):
    loop = asyncio.get_running_loop()
    started = loop.time()
    order: list[str] = []

    async def wait(name: str, delay: float) -> float:
        turn = scheduler.turn(delay)
        try:
            await turn
            order.append(name)
            return loop.time() - started
        finally:
            scheduler.done(turn)

    late, soon = await asyncio.gather(wait("late", 0.12), wait("soon", 0.04))
    assert order == ["soon", "late"]
    assert soon >= 0.04
    assert late >= 0.12
    assert scheduler.in_flight == 0


async def test_a_turn_handed_back_before_it_came_is_skipped_and_frees_nothing(scheduler, monkeypatch):
    monkeypatch.setattr(PollScheduler, "max_in_flight", 1)
    first, dropped, last = scheduler.turn(0), scheduler.turn(0), scheduler.turn(0)
    await iterations()
    assert first.done()
    assert not dropped.done()
    scheduler.done(dropped)  # its wait was cancelled while it queued
    assert dropped.cancelled()
    assert scheduler.in_flight == 1
    scheduler.done(first)
    await iterations()
    assert last.done()
    assert not last.cancelled()
    scheduler.done(last)
    assert scheduler.in_flight == 0


async def test_a_cancelled_wait_gives_its_slot_back(scheduler, monkeypatch):
    monkeypatch.setattr(PollScheduler, "max_in_flight", 1)
    polling = asyncio.Event()

    async def wait() -> None:
        turn = scheduler.turn(0)
        try:
            await turn
            polling.set()
            await asyncio.Event().wait()  # a poll that never ends
        finally:
            scheduler.done(turn)

    holder = asyncio.create_task(wait())
    await polling.wait()
    parked = asyncio.create_task(wait())  # queued behind the slot holder
    await iterations()
    assert scheduler.in_flight == 1
    holder.cancel()
    parked.cancel()
    await asyncio.gather(holder, parked, return_exceptions=True)
    assert scheduler.in_flight == 0
    after = scheduler.turn(0)
    await asyncio.wait_for(after, 5)  # the slot is free again
    scheduler.done(after)


async def test_a_timer_parked_turn_cancelled_is_never_granted(scheduler):
    turn = scheduler.turn(0.03)
    scheduler.done(turn)
    follow = scheduler.turn(0.06)
    await asyncio.wait_for(follow, 5)
    assert turn.cancelled()
    assert scheduler.in_flight == 1  # only the one granted
    scheduler.done(follow)
