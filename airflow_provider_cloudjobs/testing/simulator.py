"""A local stand-in for Huawei Cloud (and compatible clouds): IAM plus the job APIs of many services.

Tests, the demo, the end-to-end suite and the benchmark talk to it instead of the cloud. It answers
with the real field names, status words, time formats, error bodies and an ``X-Request-Id`` on every
response, and it can script a job's life (how many polls until done, success or failure, a 404
window, vanishing) and inject faults (throttling, 5xx, dropped connections, bad JSON, expiry).

In-process::

    sim = CloudSimulator().start()
    job_id = sim.create_job("cce", polls_to_finish=3)
    ...
    sim.stop()

In another process (``python -m airflow_provider_cloudjobs.testing.simulator --port 0`` prints one
JSON line ``{"url": ..., "pid": ...}``), driven through :class:`SimulatorClient` or
:func:`start_in_subprocess`. Both speak the same method names.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
from typing import Any

import requests
from aiohttp import web

from airflow_provider_cloudjobs.testing import sim_common
from airflow_provider_cloudjobs.testing.sim_app import build_app
from airflow_provider_cloudjobs.testing.sim_common import (
    ACCESS_KEY,
    DOMAIN_ID,
    DOMAIN_NAME,
    OTHER_PROJECT_ID,
    OTHER_REGION,
    PASSWORD,
    PROJECT_ID,
    REGION,
    SECRET_KEY,
    USER_NAME,
)
from airflow_provider_cloudjobs.testing.sim_state import FAULT_KINDS, SimState

__all__ = [
    "ACCESS_KEY",
    "DOMAIN_ID",
    "DOMAIN_NAME",
    "FAULT_KINDS",
    "OTHER_PROJECT_ID",
    "OTHER_REGION",
    "PASSWORD",
    "PROJECT_ID",
    "REGION",
    "SECRET_KEY",
    "SERVICES",
    "USER_NAME",
    "CloudSimulator",
    "SimulatorClient",
    "main",
    "start_in_subprocess",
    "stop_subprocess",
]

SERVICES = tuple(sim_common.SERVICES)
"""Service keys the simulator has jobs for."""


def connection_extra_for(url: str, auth_type: str = "password") -> dict[str, Any]:
    """Extra of a ``cloudjobs`` Airflow connection that points every service and IAM at ``url``."""
    if auth_type not in ("password", "aksk", "token"):
        raise ValueError("auth_type must be 'password', 'aksk' or 'token'")
    extra: dict[str, Any] = {
        "auth_type": auth_type,
        "region": REGION,
        "project_id": PROJECT_ID,
        "domain_id": DOMAIN_ID,  # the account's id, for global services (Global EIP)
        "iam_endpoint": url,
        "endpoints": {"*": url},
        "verify": False,
        "timeout": 10,
    }
    if auth_type == "password":
        extra["domain_name"] = DOMAIN_NAME
    return extra


def _check_loopback(host: str) -> None:
    """The simulator never listens beyond this machine's loopback interface."""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"the simulator only binds loopback addresses (127.0.0.0/8, ::1), not {host!r}")


def _raise_fd_limit() -> None:
    """Thousands of concurrent waits need thousands of sockets: lift the soft limit to the hard one."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else 65536
        if soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, 1 << 20), hard))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not POSIX, or not permitted
        pass


async def _serve(state: SimState, host: str, port: int) -> tuple[web.AppRunner, int]:
    # A short shutdown grace: stopping must not wait out a "slow" fault's sleep.
    runner = web.AppRunner(build_app(state), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    # aiohttp keeps the open connections in a private dict; its length is an O(1) gauge.
    connections = getattr(runner.server, "_connections", None)
    if connections is not None:
        state.open_connections = lambda: len(connections)
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    return runner, int(sockets[0].getsockname()[1]) if sockets else port


class CloudSimulator:
    """The simulator in this process: an aiohttp server on its own event loop in a daemon thread."""

    DOMAIN_NAME = DOMAIN_NAME
    USER_NAME = USER_NAME
    PASSWORD = PASSWORD
    ACCESS_KEY = ACCESS_KEY
    SECRET_KEY = SECRET_KEY
    PROJECT_ID = PROJECT_ID
    REGION = REGION
    OTHER_PROJECT_ID = OTHER_PROJECT_ID
    OTHER_REGION = OTHER_REGION

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl: float = sim_common.DEFAULT_TOKEN_TTL,
        seconds_per_step: float | None = None,
    ) -> None:
        _check_loopback(host)
        self.host = host
        self.port = port
        self.state = SimState(token_ttl=token_ttl, seconds_per_step=seconds_per_step)
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> CloudSimulator:
        """Start serving; returns once the port is listening."""
        if self._thread is not None:
            return self
        _raise_fd_limit()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                self._runner, self.port = loop.run_until_complete(_serve(self.state, self.host, self.port))
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._runner.cleanup())
                loop.close()

        self._thread = threading.Thread(target=run, name="cloud-simulator", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("the cloud simulator did not start within 30 s")
        if failure:
            self._thread = None
            raise failure[0]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{self.port}"
        return self

    def stop(self) -> None:
        """Stop serving and join the server thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._loop = self._thread = None

    def __enter__(self) -> CloudSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the test-facing API --------------------------------------------------------------------
    def connection_extra(self, auth_type: str = "password") -> dict[str, Any]:
        return connection_extra_for(self.url, auth_type)

    def create_job(
        self,
        service: str,
        *,
        job_id: str | None = None,
        project_id: str | None = None,
        outcome: str = "success",
        polls_to_finish: int | None = None,
        seconds_to_finish: float | None = None,
        sub_jobs: int = 2,
        visible_after_polls: int = 0,
        vanish_after_polls: int | None = None,
        raw_statuses: list[str] | None = None,
        error_code: str | None = None,
        message: str | None = None,
        resource_name: str | None = None,
        **more: Any,
    ) -> str:
        """Script a job and return its id.

        ``polls_to_finish`` (default 3, or ``default_polls_to_finish``): the N-th visible GET shows the
        terminal status (``outcome`` "success" or "fail"); GET 1 shows the initial status, the ones between
        RUNNING with sub-jobs finishing one by one. ``seconds_to_finish`` (or the simulator's
        ``seconds_per_step``) moves it by wall time instead. ``visible_after_polls``: the first k GETs
        answer 404. ``vanish_after_polls``: after k visible GETs it 404s forever. ``raw_statuses``: the raw
        status per visible GET, the last repeating. ``error_code``/``message``: what a failure reports.
        """
        return self.state.create_job(
            service,
            job_id=job_id,
            project_id=project_id,
            outcome=outcome,
            polls_to_finish=polls_to_finish,
            seconds_to_finish=seconds_to_finish,
            sub_jobs=sub_jobs,
            visible_after_polls=visible_after_polls,
            vanish_after_polls=vanish_after_polls,
            raw_statuses=raw_statuses,
            error_code=error_code,
            message=message,
            resource_name=resource_name,
            **more,
        )

    def create_jobs(self, service: str, count: int, **kwargs: Any) -> list[str]:
        """``count`` jobs scripted alike (``create_job``'s keywords, no ``job_id``); their ids."""
        return self.state.create_jobs(service, count, **kwargs)

    def inject_fault(
        self,
        kind: str,
        *,
        count: int = 1,
        job_id: str | None = None,
        path_contains: str | None = None,
        retry_after: float | None = None,
        delay: float | None = None,
        retry_after_text: str | None = None,
        location: str | None = None,
        size: int | None = None,
    ) -> None:
        """Queue ``count`` answers of ``kind`` (one of :data:`FAULT_KINDS`) for matching requests.

        Without ``path_contains`` a fault matches service calls only (``iam_500``: IAM calls only);
        ``job_id`` narrows it to GETs of that job. Faults never advance a job. The hostile kinds:
        ``redirect`` (307 to ``location``), ``drip`` (the real answer, one byte every ``delay`` s),
        ``huge`` (a 200 of ``size`` bytes), ``gzip_bomb`` (gzip that inflates to ``size`` bytes),
        ``deep_json`` (arrays nested ``size`` deep), ``garbage_html`` (a 503 of ``size`` bytes of broken tags).
        """
        self.state.inject_fault(
            kind,
            count=count,
            job_id=job_id,
            path_contains=path_contains,
            retry_after=retry_after,
            delay=delay,
            retry_after_text=retry_after_text,
            location=location,
            size=size,
        )

    def expire_tokens(self) -> None:
        self.state.expire_tokens()

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def reset(self) -> None:
        self.state.reset()

    def job_state(self, job_id: str) -> dict[str, Any]:
        return self.state.job_state(job_id)

    def configure(self, **values: Any) -> dict[str, Any]:
        """Change ``token_ttl``, ``seconds_per_step`` or ``default_polls_to_finish`` (until reset)."""
        return self.state.configure(**values)

    def add_user(self, name: str, password: str) -> None:
        self.state.add_user(name, password)

    def add_access_key(self, access_key: str, secret_key: str) -> None:
        self.state.add_access_key(access_key, secret_key)

    def issue_token(self, project_id: str = PROJECT_ID) -> str:
        """A valid token for the default user, without an IAM call (for ``auth_type: token`` tests)."""
        name = self.state.find_project(project_id, None)
        if name is None:
            raise ValueError(f"no project {project_id}")
        value, _ = self.state.issue_token(USER_NAME, sim_common.USER_ID, *name)
        return value


class SimulatorClient:
    """The same API for a simulator in another process, over its ``/_sim`` control endpoints."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.pid: int | None = None  # set by start_in_subprocess
        self._session = requests.Session()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._session.request(method, self.url + path, json=body, timeout=self.timeout)
        data = response.json() if response.content else {}
        if response.status_code >= 400:
            message = data.get("error") if isinstance(data, dict) else response.text
            if response.status_code == 404:
                raise KeyError(message)
            raise ValueError(f"simulator refused {method} {path}: {message}")
        return data

    def connection_extra(self, auth_type: str = "password") -> dict[str, Any]:
        return connection_extra_for(self.url, auth_type)

    def create_job(self, service: str, **kwargs: Any) -> str:
        return str(self._call("POST", "/_sim/jobs", {"service": service, **kwargs})["job_id"])

    def create_jobs(self, service: str, count: int, **kwargs: Any) -> list[str]:
        reply = self._call("POST", "/_sim/jobs", {"service": service, "count": count, **kwargs})
        return [str(job_id) for job_id in reply["job_ids"]]

    def inject_fault(self, kind: str, **kwargs: Any) -> None:
        self._call("POST", "/_sim/faults", {"kind": kind, **kwargs})

    def expire_tokens(self) -> None:
        self._call("POST", "/_sim/tokens/expire")

    def stats(self) -> dict[str, Any]:
        return dict(self._call("GET", "/_sim/stats"))

    def reset(self) -> None:
        self._call("POST", "/_sim/reset")

    def job_state(self, job_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/_sim/jobs/{job_id}"))

    def configure(self, **values: Any) -> dict[str, Any]:
        return dict(self._call("POST", "/_sim/config", values))

    def close(self) -> None:
        self._session.close()


def start_in_subprocess(
    *, timeout: float = 30.0, **cli_args: Any
) -> tuple[SimulatorClient, subprocess.Popen[str]]:
    """Launch the CLI (``host``, ``port``, ``token_ttl``, ``seconds_per_step`` become flags) and
    return a client for it and the process. Stop it with :func:`stop_subprocess`."""
    command = [sys.executable, "-m", "airflow_provider_cloudjobs.testing.simulator"]
    for key, value in cli_args.items():
        if value is not None:
            command += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = ""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if selector.select(timeout):
            line = proc.stdout.readline()
    if not line:
        stop_subprocess(proc)
        raise RuntimeError(f"the simulator subprocess did not report its URL within {timeout} s")
    info = json.loads(line)
    client = SimulatorClient(info["url"])
    client.pid = int(info["pid"])
    return client, proc


def stop_subprocess(proc: subprocess.Popen[str], timeout: float = 15.0) -> int:
    """SIGTERM, wait, and (only if it hangs) kill; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    if proc.stdout is not None:
        proc.stdout.close()
    return int(proc.returncode)


async def _run_cli(args: argparse.Namespace) -> None:
    state = SimState(token_ttl=args.token_ttl, seconds_per_step=args.seconds_per_step)
    runner, port = await _serve(state, args.host, args.port)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(json.dumps({"url": f"http://{host}:{port}", "pid": os.getpid()}), flush=True)
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
        prog="python -m airflow_provider_cloudjobs.testing.simulator",
        description="Local Huawei Cloud job-API simulator (loopback only).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    parser.add_argument(
        "--token-ttl",
        type=float,
        default=sim_common.DEFAULT_TOKEN_TTL,
        help="lifetime of issued IAM tokens in seconds (default 86400)",
    )
    parser.add_argument(
        "--seconds-per-step",
        type=float,
        default=None,
        help="advance jobs by wall time, one step per this many seconds, instead of per poll",
    )
    args = parser.parse_args(argv)
    try:
        _check_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    _raise_fd_limit()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run_cli(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
