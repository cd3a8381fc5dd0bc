"""IAM tokens: the body that asks for one, reading IAM's answer, and the process-wide cache that shares it.

A triggerer holds thousands of waits on one connection; each must not log in on its own (IAM rate
limits, and locks an account after failed attempts). The cache keeps one token per credential set per
process, refreshes it shortly before it expires, and makes concurrent callers share a single login:
threads through a lock, coroutines of one event loop through that loop's ``asyncio.Lock``. A failed
login is remembered too, so a wrong password costs one attempt, not one per wait, and an IAM outage
makes every wait back off together.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pendulum

from airflow_provider_cloudjobs.connection import CloudJobsSettings
from airflow_provider_cloudjobs.exceptions import CloudJobsAPIError, CloudJobsAuthError
from airflow_provider_cloudjobs.loop_state import loop_state
from airflow_provider_cloudjobs.transport import backoff_delay

DEFAULT_LIFETIME = 3600.0
MAX_REFRESH_LEAD = 600.0
#: How long a refused login (wrong password, locked user, bad domain) is answered from memory. A
#: corrected password is another credential set, so it is tried at once.
REFUSED_LOGIN_MEMORY = 60.0
#: A token is sent as a header value: visible ASCII only (a newline would split the request).
_HEADER_VALUE = re.compile(r"[\x21-\x7e]{1,65536}")


@dataclass(frozen=True)
class IssuedToken:
    """A token and when to stop using it (local clock). ``value`` is a secret: kept out of ``repr``."""

    value: str = field(repr=False)
    expires_at: float
    refresh_at: float
    project_id: str = ""

    @property
    def fresh(self) -> bool:
        return time.time() < self.refresh_at


def password_auth_body(settings: CloudJobsSettings, scope: str = "project") -> dict[str, Any]:
    """Keystone v3 password method, scoped to the project by id, or by name (= region) when no id is known;
    ``scope="domain"``: to the account by its id, for a global service (Global EIP)."""
    if scope == "domain":
        scoped: dict[str, Any] = {"domain": {"id": settings.domain_id}}
    else:
        scoped = {
            "project": {"id": settings.project_id} if settings.project_id else {"name": settings.region}
        }
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
            "scope": scoped,
        }
    }


def token_key(settings: CloudJobsSettings, scope: str = "project") -> str:
    """The cache entry of a credential set's token for one scope: a domain-scoped token is a second login
    with its own entry (and its own refused-login memory), never the project token reused."""
    return settings.cache_key if scope == "project" else f"{settings.cache_key}:{scope}"


def _epoch(value: Any) -> float | None:
    if not value:
        return None
    with contextlib.suppress(ValueError, TypeError, AttributeError, pendulum.parsing.exceptions.ParserError):
        return float(pendulum.parse(str(value)[:64]).timestamp())  # type: ignore[union-attr]
    return None


def issued_token(value: str | None, body: Any) -> IssuedToken | None:
    """Read IAM's answer: the token from ``X-Subject-Token``, its lifetime and project from the body.

    The lifetime is ``expires_at - issued_at``, both IAM's clock, counted from now on ours: a worker whose
    clock runs ahead of IAM's would otherwise see every token expired on arrival and log in on every call.
    """
    if not value:
        return None
    if not _HEADER_VALUE.fullmatch(value):
        raise CloudJobsAPIError("IAM answered an X-Subject-Token that cannot be sent as a header value")
    token = body.get("token", {}) if isinstance(body, Mapping) else {}
    token = token if isinstance(token, Mapping) else {}
    now = time.time()
    expires, issued = _epoch(token.get("expires_at")), _epoch(token.get("issued_at"))
    if expires is not None and issued is not None and expires > issued:
        lifetime = expires - issued
    elif expires is not None and expires > now:
        lifetime = expires - now
    else:  # unreadable, or behind our clock: the default lifetime (a 401 refreshes it in any case)
        lifetime = DEFAULT_LIFETIME
    project = token.get("project")
    project_id = str(project.get("id") or "") if isinstance(project, Mapping) else ""
    return IssuedToken(
        value=value,
        expires_at=now + lifetime,
        refresh_at=now + lifetime - min(MAX_REFRESH_LEAD, lifetime * 0.1),
        project_id=project_id[:64],
    )


def static_token(settings: CloudJobsSettings) -> IssuedToken:
    """A pre-issued token (``auth_type: token``): used as is until the cloud says it expired."""
    return IssuedToken(
        value=settings.secret,
        expires_at=float("inf"),
        refresh_at=float("inf"),
        project_id=settings.project_id,
    )


@dataclass(frozen=True)
class _RefusedLogin:
    """A login that failed, answered from memory until ``until`` (local clock)."""

    error: CloudJobsAPIError
    until: float
    failures: int

    def raise_again(self) -> None:
        """A fresh exception (one shared instance would pile up every waiter's traceback)."""
        error = self.error
        left = max(0.0, self.until - time.time())
        again = type(error)(
            str(error),
            status=error.status,
            error_code=error.error_code,
            error_msg=error.error_msg,
            request_id=error.request_id,
            retryable=error.retryable,
            retry_after=left if error.retryable else error.retry_after,
        )
        raise again


class TokenCache:
    """One token (or one remembered failed login) per credential set per process."""

    def __init__(self) -> None:
        self._entries: dict[str, IssuedToken | _RefusedLogin] = {}
        self._guard = threading.Lock()
        self._thread_locks: dict[str, threading.Lock] = {}

    def peek(self, key: str) -> IssuedToken | None:
        entry = self._entries.get(key)
        return entry if isinstance(entry, IssuedToken) and entry.fresh else None

    def _cached(
        self, settings: CloudJobsSettings, rejected: IssuedToken | None, key: str
    ) -> IssuedToken | None:
        """The token to use without logging in, if any; raises a remembered failed login."""
        if settings.auth_type == "token":
            return static_token(settings)
        if rejected is not None:
            self.invalidate(key, rejected)
        entry = self._entries.get(key)
        if isinstance(entry, _RefusedLogin):
            if time.time() < entry.until:
                entry.raise_again()
            return None
        return entry if entry is not None and entry.fresh else None

    def _login(self, key: str, outcome: IssuedToken | BaseException) -> IssuedToken:
        """Keep what a login brought: the token, or the failure to answer from memory for a while."""
        if isinstance(outcome, IssuedToken):
            self._entries[key] = outcome
            return outcome
        if isinstance(outcome, CloudJobsAPIError):
            previous = self._entries.get(key)
            failures = previous.failures + 1 if isinstance(previous, _RefusedLogin) else 1
            if outcome.retryable and not isinstance(outcome, CloudJobsAuthError):
                hold = backoff_delay(failures, outcome.retry_after)  # IAM is down or throttling
                outcome.retry_after = hold  # the caller that tried backs off as long as the others
            else:
                hold = REFUSED_LOGIN_MEMORY
            self._entries[key] = _RefusedLogin(outcome, time.time() + hold, failures)
        raise outcome

    def get(
        self,
        settings: CloudJobsSettings,
        rejected: IssuedToken | None,
        login: Callable[[], IssuedToken],
        scope: str = "project",
    ) -> IssuedToken:
        """The cached token, or one ``login()`` shared by every thread that asks meanwhile."""
        key = token_key(settings, scope)
        token = self._cached(settings, rejected, key)
        if token is not None:
            return token
        with self._guard:
            lock = self._thread_locks.setdefault(key, threading.Lock())
        with lock:
            token = self._cached(settings, None, key)  # another thread may have logged in while we waited
            if token is not None:
                return token
            try:
                outcome: IssuedToken | BaseException = login()
            except CloudJobsAPIError as exc:
                outcome = exc
            return self._login(key, outcome)

    async def aget(
        self,
        settings: CloudJobsSettings,
        rejected: IssuedToken | None,
        login: Callable[[], Awaitable[IssuedToken]],
        scope: str = "project",
    ) -> IssuedToken:
        """:meth:`get` for coroutines: one login per credential set and scope at a time in this event loop."""
        key = token_key(settings, scope)
        token = self._cached(settings, rejected, key)
        if token is not None:
            return token
        async with loop_state().token_lock(key):
            token = self._cached(settings, None, key)
            if token is not None:
                return token
            try:
                outcome: IssuedToken | BaseException = await login()
            except CloudJobsAPIError as exc:
                outcome = exc
            return self._login(key, outcome)

    def invalidate(self, key: str, rejected: IssuedToken | None = None) -> None:
        """Drop the token the cloud rejected, unless another caller already replaced it."""
        with self._guard:
            current = self._entries.get(key)
            if isinstance(current, IssuedToken) and (rejected is None or current.value == rejected.value):
                del self._entries[key]

    def clear(self) -> None:
        with self._guard:
            self._entries.clear()


TOKEN_CACHE = TokenCache()
