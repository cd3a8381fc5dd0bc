"""The baseline's endpoint: a job URL that answers 404 until the job is done, then 200.

This is what a user without the provider would point ``HttpSensorTrigger`` at. It lives here, in its own
process, only because the cloud simulator has no such endpoint (see benchmarks/README.md). Loopback only.

    python benchmarks/baseline_server.py [--port 0]     # prints one JSON line {"url": ..., "pid": ...}

``GET /jobs/{job_id}`` with header ``X-Auth-Token: <TOKEN>``: 404 for the first K-1 GETs, 200 from the
K-th on (401 without the token, 404 for an unknown id). Control API (used by the benchmark only):
``POST /_ctl/jobs {"count": N, "polls_to_finish": K}`` -> ``{"job_ids": [...]}``, ``GET /_ctl/stats``,
``POST /_ctl/reset``. Per request the work is O(1) and nothing is logged.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import sys
from collections import Counter

from aiohttp import web

TOKEN = "bench-static-token-0123456789abcdef"  # the static X-Auth-Token the baseline sends
_NOT_FOUND = json.dumps({"error_code": "APIGW.0101", "error_msg": "The job does not exist yet"})
_DONE = json.dumps({"status": "SUCCESS"})


class State:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.needed: dict[str, int] = {}
        self.polls: Counter[str] = Counter()
        self.requests = 0
        self.unauthorised = 0
        self.by_status: Counter[int] = Counter()
        self.max_open = 0
        self.open_connections = getattr(self, "open_connections", lambda: 0)
        self._ids = itertools.count(1)

    def create(self, count: int, polls_to_finish: int) -> list[str]:
        if count < 1 or polls_to_finish < 1:
            raise ValueError("count and polls_to_finish must be >= 1")
        ids = [f"bl-{next(self._ids):07d}" for _ in range(count)]
        for job_id in ids:
            self.needed[job_id] = polls_to_finish
        return ids


def build_app(state: State) -> web.Application:
    async def job(request: web.Request) -> web.Response:
        state.requests += 1
        state.max_open = max(state.max_open, state.open_connections())
        if request.headers.get("X-Auth-Token") != TOKEN:
            state.unauthorised += 1
            state.by_status[401] += 1
            return web.Response(status=401, text='{"error_msg": "no token"}', content_type="application/json")
        job_id = request.match_info["job_id"]
        needed = state.needed.get(job_id)
        if needed is None:
            state.by_status[404] += 1
            return web.Response(status=404, text=_NOT_FOUND, content_type="application/json")
        state.polls[job_id] += 1
        status = 200 if state.polls[job_id] >= needed else 404
        state.by_status[status] += 1
        return web.Response(
            status=status, text=_DONE if status == 200 else _NOT_FOUND, content_type="application/json"
        )

    async def ctl_jobs(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            ids = state.create(int(body.get("count", 1)), int(body.get("polls_to_finish", 3)))
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"job_ids": ids}, status=201)

    async def ctl_stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "job_requests": sum(state.polls.values()),
                "requests": state.requests,
                "unauthorised": state.unauthorised,
                "job_polls": dict(state.polls),
                "responses_by_status": {str(k): v for k, v in state.by_status.items()},
                "max_open_connections": state.max_open,
                "jobs": len(state.needed),
            }
        )

    async def ctl_reset(request: web.Request) -> web.Response:
        state.reset()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/jobs/{job_id}", job)
    app.router.add_post("/_ctl/jobs", ctl_jobs)
    app.router.add_get("/_ctl/stats", ctl_stats)
    app.router.add_post("/_ctl/reset", ctl_reset)
    return app


async def _serve(port: int) -> None:
    state = State()
    app = build_app(state)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    connections = getattr(runner.server, "_connections", None)
    if connections is not None:  # aiohttp's private dict of open connections: an O(1) gauge
        state.open_connections = lambda: len(connections)
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=8192, reuse_address=True)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    print(json.dumps({"url": f"http://127.0.0.1:{bound}", "pid": os.getpid()}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    asyncio.run(_serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
