"""Plain ASGI pieces of the plugin, importable without FastAPI: the lazily built app, and the fix that
lets the connection list's **Test** button work for ``cloudjobs`` connections.

The Test fix: Airflow 3.2+'s UI posts a stored connection's hidden, unused ``host`` and ``port`` as ``""``
and ``0`` (``Number(null)``); the API compares them with the stored NULLs and refuses with 400 "The host
or port to test differs from the stored connection", so Test fails for every ``cloudjobs`` connection. A
``cloudjobs`` connection never uses host, port or schema (endpoints come from its extra), so for that
connection type alone the blank values are dropped from the request before Airflow reads it: the test
then runs against the stored connection as it would for any type that sends what it stored. A
non-blank host or port is passed through untouched, so Airflow's own check still applies to it.
"""

from __future__ import annotations

import importlib
import json
import threading
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


def strip_blank_endpoint(body: bytes) -> bytes | None:
    """The body without the blank hidden fields of a ``cloudjobs`` test request; None: leave it as is."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("conn_type") != CONN_TYPE:
        return None
    drop = [key for key, blanks in _BLANK.items() if key in data and data[key] in blanks]
    if not drop:
        return None
    for key in drop:
        del data[key]
    return json.dumps(data).encode()


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
        rewritten = strip_blank_endpoint(body) if size <= _MAX_BODY else None
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
