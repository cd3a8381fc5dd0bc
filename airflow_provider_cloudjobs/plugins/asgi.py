"""Plain ASGI pieces of the plugin, importable without FastAPI: the lazily built app, and the fix that
lets the connection list's **Test** button work for ``cloudjobs`` connections.

The Test fix: Airflow 3.2+'s UI posts a stored connection's hidden, unused ``host`` and ``port`` as ``""``
and ``0`` (``Number(null)``); the API compares them with the stored NULLs and refuses with 400 "The host
or port to test differs from the stored connection", so Test fails for every ``cloudjobs`` connection. A
``cloudjobs`` connection never uses host, port or schema (endpoints come from its extra), so for that
connection type alone the blank values are dropped from the request before Airflow reads it: the test
then runs against the stored connection as it would for any type that sends what it stored. A
non-blank host or port is passed through untouched, so Airflow's own check still applies to it.

The same middleware closes the hole that check leaves for this connection type. Test merges the stored
password into the request when the form sends it masked, and Airflow refuses that only if host or port
changed; a ``cloudjobs`` connection's destinations are in its extra (``iam_endpoint``, ``endpoints``,
``endpoint_domain``, ``region``, ``verify``). So a test that relies on the stored password and points those
anywhere else than the stored connection does is refused with 400 ("type the password again"), as Airflow
refuses a changed host; the stored password never leaves for an endpoint the stored connection does not name.
"""

from __future__ import annotations

import importlib
import json
import threading
from types import SimpleNamespace
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]

CONN_TYPE = "cloudjobs"
TEST_PATH_SUFFIX = "/api/v2/connections/test"
_BLANK: dict[str, tuple[Any, ...]] = {"host": ("", None), "port": (0, "", None), "schema": ("", None)}
_MAX_BODY = 1024 * 1024  # a connection test body is a few KB; anything larger is left to Airflow


class LazyApp:
    """An ASGI app that imports and builds the real one (``"module:factory"``) on its first request."""

    def __init__(self, factory: str) -> None:
        self.factory = factory
        self._app: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._app is None:
                module, _, name = self.factory.partition(":")
                self._app = getattr(importlib.import_module(module), name)()
        return self._app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        app = self._app or self._load()
        await app(scope, receive, send)


MASKED = "***"  # what the UI sends for a secret it did not change
DESTINATION_CHANGED = (
    "The endpoints to test (extra iam_endpoint, endpoints, endpoint_domain, region or verify) differ from "
    "the stored connection: the stored password is only used with its own endpoints. Type the password "
    "again to test these."
)


def destination(login: Any, extra: Any) -> tuple[Any, ...] | None:
    """Where a ``cloudjobs`` connection sends its credentials, or None if it does not parse (then the hook
    refuses it before any request)."""
    from airflow_provider_cloudjobs.connection import settings_from_connection
    from airflow_provider_cloudjobs.exceptions import CloudJobsError

    if isinstance(extra, str):
        try:
            extra = json.loads(extra or "{}")
        except ValueError:
            return None
    conn = SimpleNamespace(conn_id="test", login=login or "", password="x", extra_dejson=extra or {})
    try:
        settings = settings_from_connection(conn)
        iam = settings.iam_url
    except CloudJobsError:
        return None
    endpoints = tuple(sorted(settings.endpoints.items()))
    return (settings.auth_type, iam, endpoints, settings.endpoint_domain, settings.region, settings.verify)


def _request_token(scope: Scope) -> str | None:
    """The caller's Airflow token: ``Authorization: Bearer`` first, else the UI's ``_token`` cookie."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "_token" and value:
            return value
    return None


async def _stored_connection(scope: Scope, conn_id: str) -> Any | None:
    """The stored connection, if the caller may read it: only then does Airflow merge its password."""
    token = _request_token(scope)
    if not token:
        return None
    try:
        import anyio
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails
        from airflow.api_fastapi.core_api.security import resolve_user_from_token
        from airflow.models.connection import Connection

        user = await resolve_user_from_token(token)
        if not get_auth_manager().is_authorized_connection(
            method="GET", details=ConnectionDetails(conn_id=conn_id), user=user
        ):
            return None
        return await anyio.to_thread.run_sync(Connection.get_connection_from_secrets, conn_id)
    except Exception:  # not authenticated, not found, an older Airflow: Airflow's own checks decide
        return None


def cloudjobs_test_body(body: bytes) -> dict[str, Any] | None:
    """The parsed body of a ``cloudjobs`` connection test; None for anything else (left to Airflow)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("conn_type") != CONN_TYPE:
        return None
    return data


async def destination_problem(scope: Scope, data: dict[str, Any]) -> str | None:
    """Why this ``cloudjobs`` test must be refused, or None."""
    password = data.get("password")
    if password and password != MASKED:  # the caller brings their own credentials
        return None
    stored = await _stored_connection(scope, str(data.get("connection_id") or ""))
    if stored is None:
        return None
    requested = destination(data.get("login"), data.get("extra"))
    if requested is None or requested == destination(stored.login, stored.extra_dejson):
        return None
    return DESTINATION_CHANGED


def strip_blank_endpoint(data: dict[str, Any] | None) -> bytes | None:
    """The test body without its blank hidden fields; None: leave the request as it is."""
    if data is None:
        return None
    drop = [key for key, blanks in _BLANK.items() if key in data and data[key] in blanks]
    if not drop:
        return None
    return json.dumps({key: value for key, value in data.items() if key not in drop}).encode()


class TestConnectionBlankEndpoint:
    """Root middleware: rewrites only ``POST …/api/v2/connections/test`` bodies of ``cloudjobs`` tests."""

    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or not str(scope.get("path", "")).endswith(TEST_PATH_SUFFIX)
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to test
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        data = cloudjobs_test_body(body) if size <= _MAX_BODY else None
        problem = await destination_problem(scope, data) if data is not None else None
        if problem is not None:
            answer = json.dumps({"detail": problem}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(answer)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": answer})
            return
        rewritten = strip_blank_endpoint(data)
        replay = rewritten if rewritten is not None else body
        headers = scope.get("headers") or []
        if rewritten is not None:
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(replay)).encode()))
        sent = False

        async def replay_receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": replay, "more_body": False}
            return await receive()

        await self.app({**scope, "headers": headers}, replay_receive, send)
