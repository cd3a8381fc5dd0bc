"""Live job data for the UI, asked from the cloud through :class:`CloudJobsHook` in the API server.

Bounded however many waits a page shows:

- one cache entry per (connection, service, project, job, path ids), fresh for :attr:`JobLookups.ttl` seconds
  (errors for longer, finished jobs, which no longer change, for ten minutes), shared by every page and
  user of the API server process;
- at most ``max_concurrent`` cloud calls at once (a small thread pool), one call per job in flight
  however many requests want it at the same moment;
- at most ``budget`` new calls started per page request; the other rows show what is cached (or "not
  loaded yet") and the page's next refresh picks them up.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Any

from airflow.models.connection import Connection

from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook

# (conn_id, service, project_id, job_id, the trigger's service profile as JSON or None, the path ids as
# JSON or None)
LookupKey = tuple[str, str, "str | None", str, "str | None", "str | None"]

# What the page gets of a normalised job: everything but the raw body and the entities (they can be
# large, and nothing on the page needs them).
JOB_FIELDS = (
    "service",
    "job_id",
    "status",
    "phase",
    "is_terminal",
    "progress",
    "job_type",
    "resource_id",
    "resource_name",
    "error_code",
    "message",
    "created_at",
    "started_at",
    "updated_at",
    "ended_at",
)
MAX_SUB_JOB_DEPTH = 4
MAX_SUB_JOBS = 200


def page_job(job: dict[str, Any] | None, depth: int = 0) -> dict[str, Any] | None:
    """The normalised job trimmed for a page: known fields and (bounded) sub-jobs, never ``raw``."""
    if not isinstance(job, dict):
        return None
    shown: dict[str, Any] = {k: job.get(k) for k in JOB_FIELDS}
    subs = job.get("sub_jobs") or []
    shown["sub_jobs"] = (
        [s for s in (page_job(s, depth + 1) for s in subs[:MAX_SUB_JOBS]) if s is not None]
        if depth < MAX_SUB_JOB_DEPTH and isinstance(subs, list)
        else []
    )
    return shown


@dataclass
class Lookup:
    """A cached answer: the job (trimmed) and its console URL, or the error the cloud gave."""

    fetched_at: float
    job: dict[str, Any] | None = None
    console_url: str | None = None
    error: str | None = None


HOOK_LIFETIME = 60.0  # seconds a connection's hook (its parsed connection, its HTTP pool) is reused
_hooks: dict[str, tuple[float, Any]] = {}
_hooks_lock = threading.Lock()


class ApiServerCloudJobsHook(CloudJobsHook):
    """CloudJobsHook finding connections the way the API server itself does (environment, secrets
    backends, metadata database). The Task SDK's lookup that tasks use asks a task supervisor on Airflow
    3.1, which the API server does not have: there a connection saved in the UI was never found."""

    @classmethod
    def get_connection(cls, conn_id: str) -> Any:
        return Connection.get_connection_from_secrets(conn_id)


def _hook(conn_id: str) -> Any:
    """The connection's hook, reused for a minute: one connection lookup and one pool of sockets for
    all its jobs; a changed connection is picked up within the minute."""
    now = time.monotonic()
    with _hooks_lock:
        made, hook = _hooks.get(conn_id, (0.0, None))
        if hook is None or now - made > HOOK_LIFETIME:
            hook = ApiServerCloudJobsHook(conn_id, max_retries=0)  # the page asks again on its next refresh
            _hooks[conn_id] = (now, hook)
        return hook


def _fetch_with_hook(key: LookupKey) -> Lookup:
    from airflow_provider_cloudjobs.links import console_url
    from airflow_provider_cloudjobs.profiles import ServiceProfile

    conn_id, service, project_id, job_id, profile_json, params_json = key
    hook = _hook(conn_id)
    # A service registered only where the DAG runs travels in the trigger's kwargs; use it here too.
    profile = ServiceProfile.from_dict(service, json.loads(profile_json)) if profile_json else None
    params = json.loads(params_json) if params_json else None
    job = hook.get_job(job_id, service, project_id, profile=profile, path_params=params)
    settings = hook.get_conn()
    try:
        url = console_url(settings, profile or hook.profile(service, settings), job, params) or None
    except Exception:
        url = None
    return Lookup(time.monotonic(), page_job(job), url)


class JobLookups:
    """The cache and the bound on cloud calls (one instance per API server process)."""

    def __init__(
        self,
        fetch: Callable[[LookupKey], Lookup] = _fetch_with_hook,
        *,
        ttl: float = 10.0,
        error_ttl: float = 30.0,
        terminal_ttl: float = 600.0,
        max_concurrent: int = 4,
        max_entries: int = 5000,
    ) -> None:
        self.fetch = fetch
        self.ttl = ttl
        self.error_ttl = error_ttl
        self.terminal_ttl = terminal_ttl
        self.max_entries = max_entries
        self._entries: dict[LookupKey, Lookup] = {}
        self._in_flight: dict[LookupKey, Future[Lookup]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="cloudjobs-ui")
        self.calls = 0  # cloud lookups started, for tests and the page's footer

    def _fresh(self, entry: Lookup | None, now: float) -> bool:
        if entry is None:
            return False
        if entry.error:
            ttl = self.error_ttl
        elif entry.job and entry.job.get("is_terminal"):
            ttl = self.terminal_ttl
        else:
            ttl = self.ttl
        return now - entry.fetched_at < ttl

    def _run(self, key: LookupKey) -> Lookup:
        try:
            result = self.fetch(key)
        except Exception as exc:  # the hook's errors name the call, never a credential
            result = Lookup(time.monotonic(), error=_describe(exc))
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = result
            self._in_flight.pop(key, None)
        return result

    def get_many(
        self, keys: Iterable[LookupKey], *, budget: int, timeout: float = 8.0
    ) -> dict[LookupKey, Lookup | None]:
        """Cached or fresh lookups; at most ``budget`` new cloud calls, waited for up to ``timeout`` s.

        A key without an answer yet maps to its last (stale) answer, or None.
        """
        now = time.monotonic()
        result: dict[LookupKey, Lookup | None] = {}
        waiting: dict[LookupKey, Future[Lookup]] = {}
        with self._lock:
            for key in dict.fromkeys(keys):
                entry = self._entries.get(key)
                result[key] = entry
                if self._fresh(entry, now):
                    continue
                future = self._in_flight.get(key)
                if future is None:
                    if budget <= 0:
                        continue
                    budget -= 1
                    self.calls += 1
                    future = self._pool.submit(self._run, key)
                    self._in_flight[key] = future
                waiting[key] = future
        if waiting:
            wait_futures(list(waiting.values()), timeout=timeout)
            for key, future in waiting.items():
                if future.done() and future.exception() is None:
                    result[key] = future.result()
        return result


def _describe(exc: BaseException) -> str:
    """The error for a page: Airflow's secrets masker applied (the hook registers the connection's
    secret with it), and shortened."""
    text = str(exc) or type(exc).__name__
    try:
        from airflow.sdk._shared.secrets_masker import redact

        text = str(redact(text))
    except Exception:  # pragma: no cover - masker layout differs: the hook's messages hold no secret
        pass
    return text if len(text) <= 500 else text[:497] + "..."
