"""Headless Chromium screenshots of the Airflow UI, logged in with the API's JWT.

Chromium is driven over the DevTools protocol (its debugging port on 127.0.0.1, a throwaway profile),
so the suite can set the ``_token`` cookie the UI authenticates with, wait until the page really shows
what the test is about, and only then capture it.
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
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json(timeout=60)
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result") or {})


async def _capture(
    ws_url: str, url: str, cookie: tuple[str, str], wait_text: list[str], timeout: float
) -> tuple[str, bytes]:
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:
        cdp = _CDP(ws)
        await cdp.call("Network.enable")
        await cdp.call("Network.setCookie", name=cookie[0], value=cookie[1], url=url, path="/")
        await cdp.call(
            "Emulation.setDeviceMetricsOverride", width=1600, height=1000, deviceScaleFactor=1, mobile=False
        )
        await cdp.call("Page.enable")
        await cdp.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            result = await cdp.call(
                "Runtime.evaluate",
                expression="document.body ? document.body.innerText : ''",
                returnByValue=True,
            )
            text = str(result.get("result", {}).get("value") or "")
            if all(word.lower() in text.lower() for word in wait_text):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)  # let the last render (icons, colours) settle
        shot = await cdp.call("Page.captureScreenshot", format="png")
        return text, base64.b64decode(shot["data"])


def screenshot(
    chromium: str, url: str, cookie: tuple[str, str], out: Path, *, wait_text: list[str], timeout: float = 60
) -> str:
    """Open ``url`` with ``cookie`` set, wait until its text shows every ``wait_text``, save a PNG.

    Returns the page's visible text at capture time (so the caller can assert on what it showed).
    """
    profile = tempfile.mkdtemp(prefix="e2e-chromium-")
    proc = subprocess.Popen(
        [chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    try:
        assert proc.stderr is not None
        ws_url = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ws_url:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {proc.returncode} before its DevTools port opened")
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match:
                ws_url = match.group(1)
        if not ws_url:
            raise RuntimeError("chromium did not report its DevTools endpoint within 60 s")
        port = int(re.search(r":(\d+)/", ws_url).group(1))  # type: ignore[union-attr]
        page_ws = asyncio.run(_page_target(port))
        text, png = asyncio.run(_capture(page_ws, url, cookie, wait_text, timeout))
        out.write_bytes(png)
        return text
    finally:
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
        shutil.rmtree(profile, ignore_errors=True)


async def _page_target(port: int) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json(content_type=None)
        for target in targets:
            if target.get("type") == "page":
                return str(target["webSocketDebuggerUrl"])
        async with session.put(f"http://127.0.0.1:{port}/json/new?about:blank") as response:
            return str((await response.json(content_type=None))["webSocketDebuggerUrl"])
