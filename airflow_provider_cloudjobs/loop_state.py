"""Everything one event loop shares among its waits, owned in one place.

A triggerer runs every trigger in one event loop: the waits of that loop share one HTTP session (one
pool of sockets), one connection lookup per connection, one login lock per credential set and one poll
scheduler. They live here, in one object per loop, found through a weak map so that a loop that ends
(``dag.test()`` runs each trigger in a loop of its own) takes its state with it. Waits announce
themselves with :meth:`LoopState.enter` / :meth:`LoopState.leave`; the last one out closes the session.
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp

from airflow_provider_cloudjobs.poll_scheduler import PollScheduler

if TYPE_CHECKING:
    from airflow_provider_cloudjobs.connection import CloudJobsSettings

#: A connection looked up is reused this long by every wait of the loop; an auth failure re-reads it at once.
CONNECTION_TTL = 300.0

_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopState] = weakref.WeakKeyDictionary()


class LoopState:
    """The HTTP session, connection lookups, login locks and poll scheduler of one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.scheduler = PollScheduler(loop)
        self.users = 0
        self._session: aiohttp.ClientSession | None = None
        self._connections: dict[str, tuple[asyncio.Future[CloudJobsSettings], float]] = {}
        self._token_locks: dict[str, asyncio.Lock] = {}

    # ------------------------------------------------------------------ who uses it
    @classmethod
    def enter(cls) -> LoopState:
        """The running loop's state, counting one more wait that uses it."""
        state = loop_state()
        state.users += 1
        return state

    async def leave(self) -> None:
        """One wait less; the last one out closes the session and forgets this loop's state."""
        self.users -= 1
        if self.users > 0:
            return
        await self.close()

    async def close(self) -> None:
        if _states.get(self.loop) is self:
            del _states[self.loop]
        self.scheduler.close()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # ------------------------------------------------------------------ what it shares
    def session(self) -> aiohttp.ClientSession:
        """The loop's one client session (a triggerer has one loop for all triggers)."""
        if self._session is None or self._session.closed:
            # trust_env=False: no ~/.netrc (an entry for the host would replace the AK/SK Authorization
            # header) and no per-request thread hops; proxies from the environment are resolved by the
            # hook. auto_decompress=False: the transport's BodyReader inflates within the size cap.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=200, ttl_dns_cache=300, enable_cleanup_closed=True),
                trust_env=False,
                auto_decompress=False,
            )
        return self._session

    def token_lock(self, key: str) -> asyncio.Lock:
        lock = self._token_locks.get(key)
        if lock is None:
            lock = self._token_locks[key] = asyncio.Lock()
        return lock

    async def connection(
        self,
        conn_id: str,
        look_up: Callable[[], Awaitable[CloudJobsSettings]],
        stale: CloudJobsSettings | None = None,
    ) -> CloudJobsSettings:
        """The connection, looked up once for every wait of the loop (and again after :data:`CONNECTION_TTL`).

        ``stale``: settings a wait found wrong (IAM refused them): looked up anew unless another wait
        already did, so a hundred waits that fail together re-read the connection once.
        """
        entry = self._connections.get(conn_id)
        if entry is not None:
            lookup, since = entry
            outdated = time.monotonic() - since > CONNECTION_TTL
            known_stale = stale is not None and lookup.done() and _result_is(lookup, stale)
            if outdated or known_stale or (lookup.done() and lookup.exception() is not None):
                entry = None
        if entry is None:
            lookup = asyncio.ensure_future(look_up())
            lookup.add_done_callback(functools.partial(_forget_failed, self._connections, conn_id))
            self._connections[conn_id] = (lookup, time.monotonic())
        else:
            lookup = entry[0]
        # shield: a cancelled wait must not cancel the lookup the other waits are sharing
        return await asyncio.shield(lookup)


def _result_is(lookup: asyncio.Future[Any], settings: Any) -> bool:
    return not lookup.cancelled() and lookup.exception() is None and lookup.result() is settings


def _forget_failed(
    table: dict[str, tuple[asyncio.Future[Any], float]], conn_id: str, lookup: asyncio.Future[Any]
) -> None:
    """A failed lookup is not kept: the next wait tries again (a connection added a moment later)."""
    if lookup.cancelled() or lookup.exception() is not None:
        entry = table.get(conn_id)
        if entry is not None and entry[0] is lookup:
            del table[conn_id]


def loop_state() -> LoopState:
    """The running loop's state (made on first use)."""
    loop = asyncio.get_running_loop()
    state = _states.get(loop)
    if state is None:
        state = _states[loop] = LoopState(loop)
    return state


async def close_loop_state() -> None:
    """Close the running loop's session and forget its state (tests and the benchmark call it at the end)."""
    state = _states.get(asyncio.get_running_loop())
    if state is not None:
        await state.close()
