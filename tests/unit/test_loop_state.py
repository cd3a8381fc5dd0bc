"""LoopState: one session, one connection lookup and one scheduler per event loop; the last wait out closes."""

from __future__ import annotations

import asyncio
import contextlib

from airflow_provider_cloudjobs import loop_state as loop_state_module
from airflow_provider_cloudjobs.loop_state import LoopState, loop_state


async def test_the_last_wait_out_closes_the_session_and_forgets_the_loop():
    loop = asyncio.get_running_loop()
    first, second = LoopState.enter(), LoopState.enter()
    assert first is second
    assert first.users == 2
    session = first.session()
    assert first.session() is session  # one session for every wait of the loop
    parked = first.scheduler.turn(30)  # a timer armed for a wait that then went away
    first.scheduler.done(parked)
    await first.leave()
    assert not session.closed
    assert loop in loop_state_module._states
    await second.leave()
    assert session.closed
    assert loop not in loop_state_module._states
    assert first.scheduler._timer is None
    later = LoopState.enter()
    assert later is not first  # a later wait starts afresh
    await later.leave()


async def test_waits_that_start_together_share_one_connection_lookup():
    calls: list[int] = []
    release = asyncio.Event()

    async def look_up():
        calls.append(1)
        await release.wait()
        return object()

    state = loop_state()
    waiters = [asyncio.ensure_future(state.connection("c", look_up)) for _ in range(50)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiters)
    assert len(calls) == 1
    assert all(result is results[0] for result in results)
    # a later wait reuses it; one that found it stale (IAM refused it) looks it up once more, for everyone
    assert await state.connection("c", look_up) is results[0]
    fresh = await asyncio.gather(*(state.connection("c", look_up, stale=results[0]) for _ in range(10)))
    assert len(calls) == 2
    assert all(result is fresh[0] for result in fresh)
    assert fresh[0] is not results[0]
    await state.close()


async def test_a_failed_lookup_is_not_kept():
    attempts: list[int] = []

    async def look_up():
        attempts.append(1)
        if len(attempts) == 1:
            raise LookupError("not defined yet")
        return "settings"

    state = loop_state()
    with contextlib.suppress(LookupError):
        await state.connection("c", look_up)
    assert await state.connection("c", look_up) == "settings"
    assert len(attempts) == 2
    await state.close()
