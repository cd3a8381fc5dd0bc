"""IAM tokens: the request that asks for one, and the process-wide cache that shares it.

A triggerer holds thousands of waits on one connection; each must not log in on its own (IAM rate
limits, and lock-out after failed attempts). The cache keeps one token per credential set per process,
refreshes it shortly before ``expires_at``, and makes concurrent callers share a single fetch:
threads through a lock, coroutines of one event loop through an ``asyncio.Lock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pendulum

from airflow_provider_cloudjobs.connection import CloudJobsSettings

DEFAULT_LIFETIME = 3600.0
MAX_REFRESH_LEAD = 600.0


@dataclass(frozen=True)
class IssuedToken:
    """A token and when to stop using it. ``value`` is a secret: it is kept out of ``repr``."""

    value: str = field(repr=False)
    expires_at: float
    refresh_at: float
    project_id: str = ""

    @property
    def fresh(self) -> bool:
        return time.time() < self.refresh_at


def password_auth_body(settings: CloudJobsSettings) -> dict[str, Any]:
    """Keystone v3 password method, scoped to the project by id, or by name (= region) when no id is known."""
    scope = {"id": settings.project_id} if settings.project_id else {"name": settings.region}
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": settings.login,
                        "password": settings.secret,
                        "domain": {"name": settings.domain_name},
                    }
                },
            },
            "scope": {"project": scope},
        }
    }


def issued_token(value: str | None, body: Any) -> IssuedToken | None:
    """Read IAM's answer: the token from ``X-Subject-Token``, expiry and project from the body."""
    if not value:
        return None
    token = body.get("token", {}) if isinstance(body, Mapping) else {}
    now = time.time()
    expires_at = now + DEFAULT_LIFETIME
    if isinstance(token, Mapping) and token.get("expires_at"):
        # An unreadable expiry keeps the default lifetime: a 401 refreshes the token anyway.
        with contextlib.suppress(
            ValueError, TypeError, AttributeError, pendulum.parsing.exceptions.ParserError
        ):
            expires_at = pendulum.parse(str(token["expires_at"])).timestamp()  # type: ignore[union-attr]
    lifetime = max(0.0, expires_at - now)
    project = token.get("project") if isinstance(token, Mapping) else None
    project_id = str(project.get("id") or "") if isinstance(project, Mapping) else ""
    return IssuedToken(
        value=value,
        expires_at=expires_at,
        refresh_at=expires_at - min(MAX_REFRESH_LEAD, lifetime * 0.1),
        project_id=project_id,
    )


def static_token(settings: CloudJobsSettings) -> IssuedToken:
    """A pre-issued token (``auth_type: token``): used as is until the cloud says it expired."""
    return IssuedToken(
        value=settings.secret,
        expires_at=float("inf"),
        refresh_at=float("inf"),
        project_id=settings.project_id,
    )


class TokenCache:
    """One token per credential set per process, shared by threads and coroutines."""

    def __init__(self) -> None:
        self._tokens: dict[str, IssuedToken] = {}
        self._guard = threading.Lock()
        self._thread_locks: dict[str, threading.Lock] = {}
        self._loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )

    def peek(self, key: str) -> IssuedToken | None:
        token = self._tokens.get(key)
        return token if token is not None and token.fresh else None

    def get(self, key: str, fetch: Callable[[], IssuedToken]) -> IssuedToken:
        token = self.peek(key)
        if token is not None:
            return token
        with self._guard:
            lock = self._thread_locks.setdefault(key, threading.Lock())
        with lock:
            token = self.peek(key)  # another thread may have fetched while we waited
            if token is None:
                token = fetch()
                self._tokens[key] = token
            return token

    async def aget(self, key: str, fetch: Callable[[], Awaitable[IssuedToken]]) -> IssuedToken:
        token = self.peek(key)
        if token is not None:
            return token
        loop = asyncio.get_running_loop()
        with self._guard:
            lock = self._loop_locks.setdefault(loop, {}).setdefault(key, asyncio.Lock())
        async with lock:
            token = self.peek(key)
            if token is None:
                token = await fetch()
                self._tokens[key] = token
            return token

    def invalidate(self, key: str, rejected: IssuedToken | None = None) -> None:
        """Drop the token the cloud rejected, unless another caller already replaced it."""
        with self._guard:
            current = self._tokens.get(key)
            if current is not None and (rejected is None or current.value == rejected.value):
                del self._tokens[key]

    def clear(self) -> None:
        with self._guard:
            self._tokens.clear()


TOKEN_CACHE = TokenCache()
