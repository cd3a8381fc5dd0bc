"""When the waits of one triggerer poll: a shared timer wheel and a bounded number of polls at once.

A triggerer runs every trigger in one event loop. If each of thousands of waits slept on its own timer
and polled the moment it woke, a triggerer (re)starting them, or many deferred in the same minute, would
send thousands of requests in one burst: the cloud throttles it (429) and the loop stalls while it
builds them and again while the answers come back together. And every sleeping wait would hold its own
timer, sleep coroutine and context, which each full cyclic-GC pass walks while the loop stands still.

So a wait asks its loop's :class:`PollScheduler` for a *turn* instead: a future that resolves once the
delay has passed *and* fewer than :attr:`PollScheduler.max_in_flight` polls are running. Sleeping waits
are parked in lists keyed by due tick behind one timer for the whole loop; waits whose time has come are
let go in small batches, one batch per loop iteration, so the loop keeps turning in between.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections import deque

TICK = 0.02
"""Resolution of the wheel, seconds: a turn comes at most this much after its delay."""


class PollScheduler:
    """One per event loop: parks the waits that sleep, grants turns to poll, a few at a time.

    Use::

        scheduler = loop_state().scheduler       # the loop's one scheduler (see loop_state)
        while ...:
            turn = scheduler.turn(delay)
            try:
                await turn                       # delay over and a poll slot free
                ...poll...
            finally:
                scheduler.done(turn)             # frees the slot (or drops a turn not yet granted)

    :param max_in_flight: turns granted and not yet done (the polls running at once). The loop's shared
        HTTP session pools 200 connections; a poll beyond this would wait for one anyway, holding a
        half-built request.
    :param batch: turns granted per loop iteration.
    """

    max_in_flight = 100
    batch = 20

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._buckets: dict[int, list[asyncio.Future[None]]] = {}
        self._ticks: list[int] = []  # heap of the buckets' ticks
        self._timer: asyncio.TimerHandle | None = None
        self._timer_tick = 0
        self._ready: deque[asyncio.Future[None]] = deque()
        self._grant_pending = False
        self.in_flight = 0

    def close(self) -> None:
        """Stop the timer (the loop's last wait has left)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ------------------------------------------------------------------ turns
    def turn(self, delay: float) -> asyncio.Future[None]:
        """A future that resolves when ``delay`` seconds have passed and a poll slot is free.

        Whoever gets a turn must hand it back to :meth:`done` (in a ``finally``), granted or not.
        """
        turn: asyncio.Future[None] = self._loop.create_future()
        if delay <= 0:
            self._ready.append(turn)
            self._grant_soon()
            return turn
        tick = math.ceil((self._loop.time() + delay) / TICK)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = []
            heapq.heappush(self._ticks, tick)
            if self._timer is None or tick < self._timer_tick:
                self._arm(tick)
        bucket.append(turn)
        return turn

    def done(self, turn: asyncio.Future[None]) -> None:
        """Hand a turn back: frees its slot if it was granted, else drops it from the queue."""
        if turn.done() and not turn.cancelled():
            self.in_flight -= 1
            if self._ready:
                self._grant_soon()
        else:
            turn.cancel()  # parked or ready: skipped when its tick or its place in the queue comes

    # ------------------------------------------------------------------ internals
    def _arm(self, tick: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_tick = tick
        self._timer = self._loop.call_at(tick * TICK, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        # the loop may run a timer up to its clock resolution early: the armed tick is due regardless
        due = max(self._timer_tick, math.floor(self._loop.time() / TICK))
        while self._ticks and self._ticks[0] <= due:
            self._ready.extend(self._buckets.pop(heapq.heappop(self._ticks)))
        if self._ticks:
            self._arm(self._ticks[0])
        self._grant()

    def _grant_soon(self) -> None:
        if not self._grant_pending:
            self._grant_pending = True
            self._loop.call_soon(self._grant)

    def _grant(self) -> None:
        """Resolve up to :attr:`batch` ready turns while slots are free; the rest next iteration."""
        self._grant_pending = False
        granted = 0
        while self._ready and self.in_flight < self.max_in_flight and granted < self.batch:
            turn = self._ready.popleft()
            if turn.done():  # handed back (cancelled) while it waited
                continue
            turn.set_result(None)
            self.in_flight += 1
            granted += 1
        if self._ready and self.in_flight < self.max_in_flight:
            self._grant_soon()
