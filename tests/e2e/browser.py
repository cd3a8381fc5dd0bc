"""Headless Chromium driving the Airflow UI, logged in with the API's JWT.

Chromium is driven over the DevTools protocol (its debugging port on 127.0.0.1, a throwaway profile),
so the suite can set the ``_token`` cookie the UI authenticates with, click, read what the page (and
the plugin iframes in it) shows, see the requests the page itself sends, wait until the page really
shows what the test is about, and only then capture it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

from .harness import _die_with_parent

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class _CDP:
    """One DevTools websocket; events that arrive while waiting for a reply are kept in ``events``."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json(timeout=60)
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result") or {})
            if "method" in message:
                self.events.append(message)


# The page's visible text, and that of every same-origin iframe in it (plugin pages are iframes).
TEXT_JS = """(() => {
  const parts = [document.body ? document.body.innerText : ''];
  for (const frame of document.querySelectorAll('iframe')) {
    try { parts.push(frame.contentDocument.body.innerText); } catch (e) {}
  }
  return parts.join('\\n');
})()"""


class Browser:
    """Headless Chromium with one page, driven synchronously (each call runs the DevTools exchange).

    ``with Browser(chromium) as browser:`` starts it with a throwaway profile; leaving stops it.
    """

    def __init__(self, chromium: str, *, width: int = 1600, height: int = 1000) -> None:
        self.chromium = chromium
        self.size = (width, height)
        self.loop = asyncio.new_event_loop()
        self.proc: subprocess.Popen[str] | None = None
        self.profile = ""
        self._session: aiohttp.ClientSession | None = None
        self.cdp: _CDP | None = None

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def __enter__(self) -> Browser:
        self.profile = tempfile.mkdtemp(prefix="e2e-chromium-")
        self.proc = subprocess.Popen(
            [self.chromium, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        try:
            port = _devtools_port(self.proc)
            self._run(self._connect(port))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    async def _connect(self, port: int) -> None:
        page_ws = await _page_target(port)
        self._session = aiohttp.ClientSession()
        ws = await self._session.ws_connect(page_ws, max_msg_size=0)
        self.cdp = _CDP(ws)
        await self.cdp.call("Network.enable")
        await self.cdp.call("Page.enable")
        await self.cdp.call(
            "Emulation.setDeviceMetricsOverride",
            width=self.size[0],
            height=self.size[1],
            deviceScaleFactor=1,
            mobile=False,
        )

    def __exit__(self, *exc: Any) -> None:
        if self._session is not None:
            self._run(self._session.close())
        self.loop.close()
        if self.proc is not None:
            _stop(self.proc)
        shutil.rmtree(self.profile, ignore_errors=True)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        assert self.cdp is not None
        return dict(self._run(self.cdp.call(method, **params)))

    def set_cookie(self, name: str, value: str, url: str) -> None:
        self.call("Network.setCookie", name=name, value=value, url=url, path="/")

    def color_scheme(self, scheme: str) -> None:
        """Emulate the system's light or dark setting (the Airflow UI follows it by default)."""
        self.call("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": scheme}])

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def text(self) -> str:
        return str(self.eval(TEXT_JS) or "")

    def wait_text(self, words: list[str], timeout: float = 60) -> str:
        """Poll the visible text (iframes included) until it shows every word; return it."""
        return str(self.wait_until(f"text showing {words}", lambda: _has_all(self.text(), words), timeout))

    def wait_until(self, what: str, probe: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = probe()
            if last:
                return last
            self._run(asyncio.sleep(0.5))
        raise TimeoutError(
            f"timed out after {timeout:.0f}s waiting for {what}; page text: {self.text()[:1500]}"
        )

    def screenshot(self, out: Path) -> None:
        self._run(asyncio.sleep(1.0))  # let the last render (icons, colours, transitions) settle
        shot = self.call("Page.captureScreenshot", format="png")
        out.write_bytes(base64.b64decode(shot["data"]))

    def exchanges(self, url_part: str) -> list[dict[str, Any]]:
        """The page's requests whose URL contains ``url_part``: method, URL, body sent, status, answer."""
        assert self.cdp is not None
        self.eval("0")  # events are read while a call waits for its answer: make one
        found: dict[str, dict[str, Any]] = {}
        for event in list(self.cdp.events):
            params = event.get("params") or {}
            request_id = params.get("requestId")
            if event["method"] == "Network.requestWillBeSent" and url_part in params["request"]["url"]:
                request = params["request"]
                found[request_id] = {"method": request["method"], "url": request["url"]}
                found[request_id]["sent"] = request.get("postData")
            elif event["method"] == "Network.responseReceived" and request_id in found:
                found[request_id]["status"] = params["response"]["status"]
            elif event["method"] == "Network.loadingFinished" and request_id in found:
                with contextlib.suppress(RuntimeError):
                    found[request_id]["answer"] = self.call("Network.getResponseBody", requestId=request_id)[
                        "body"
                    ]
        return list(found.values())


def _has_all(text: str, words: list[str]) -> str:
    return text if all(word.lower() in text.lower() for word in words) else ""


def _devtools_port(proc: subprocess.Popen[str]) -> int:
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode} before its DevTools port opened")
        match = re.search(r"DevTools listening on ws://[^/]+:(\d+)/", line)
        if match:
            # Keep reading what it says, so a chatty browser never blocks on a full pipe.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return int(match.group(1))
    raise RuntimeError("chromium did not report its DevTools endpoint within 60 s")


def _stop(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(15)
    if proc.stderr is not None:
        proc.stderr.close()


def screenshot(
    chromium: str, url: str, cookie: tuple[str, str], out: Path, *, wait_text: list[str], timeout: float = 60
) -> str:
    """Open ``url`` with ``cookie`` set, wait until its text shows every ``wait_text``, save a PNG.

    Returns the page's visible text at capture time (so the caller can assert on what it showed).
    """
    with Browser(chromium) as browser:
        browser.set_cookie(*cookie, url=url)
        browser.goto(url)
        with contextlib.suppress(TimeoutError):
            browser.wait_text(wait_text, timeout)
        browser.screenshot(out)
        return browser.text()


async def _page_target(port: int) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json(content_type=None)
        for target in targets:
            if target.get("type") == "page":
                return str(target["webSocketDebuggerUrl"])
        async with session.put(f"http://127.0.0.1:{port}/json/new?about:blank") as response:
            return str((await response.json(content_type=None))["webSocketDebuggerUrl"])
