"""A real Airflow 3 deployment on this machine, driven the way an operator would drive it.

:class:`Deployment` starts the cloud simulator and Airflow's four services (api-server, scheduler with the
LocalExecutor, dag-processor, triggerer) as separate process groups on free loopback ports, with a
throwaway ``AIRFLOW_HOME`` on SQLite (Airflow 3 workers reach the database only through the API
server's execution API, so LocalExecutor on SQLite is supported, as ``airflow standalone`` does).
:class:`AirflowAPI` talks to the public REST API (v2) with a JWT from the simple auth manager.

Nothing here sleeps a fixed time: every wait polls with a bounded deadline and fails with what it
last saw, and every process is stopped (its whole process group) by :meth:`Deployment.stop`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import airflow
import requests
from packaging.version import Version

from airflow_provider_cloudjobs.testing import simulator

ROOT = Path(__file__).resolve().parents[2]
E2E_DAGS = Path(__file__).resolve().parent / "dags"
ADMIN_USER = "admin"
CONSOLE_URL = "https://console.e2e.example.test"
SHORT_TIMEOUT = 40  # seconds: the sensor timeout of e2e_wait_short (its deadline passes in an outage)
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
# Credentials that must never appear in a task log (IAM tokens are matched by shape in the tests).
SECRETS = (simulator.PASSWORD, simulator.SECRET_KEY)
# The deployment runs the Airflow this suite runs in. Where 3.1 behaves differently (no conn-fields form,
# Test without the stored password, no task state store) the tests assert what a 3.1 user gets.
AIRFLOW_3_2_PLUS = Version(airflow.__version__).release >= (3, 2)
AIRFLOW_3_3_PLUS = Version(airflow.__version__).release >= (3, 3)

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM if the test process dies without running its finalizers."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def wait_for(
    what: str,
    probe: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.5,
    check: Callable[[], None] | None = None,
) -> T:
    """Call ``probe`` until it returns something truthy; return that. Bounded by ``timeout`` seconds.

    ``check`` runs on every round (e.g. "are the services still alive?") and may raise to stop early.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    error: BaseException | None = None
    while True:
        if check is not None:
            check()
        try:
            last = probe()
            error = None
        except (requests.RequestException, KeyError, ValueError) as exc:
            error, last = exc, None
        if last:
            return last
        if time.monotonic() >= deadline:
            detail = f"last error: {error!r}" if error else f"last value: {last!r}"
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; {detail}")
        time.sleep(interval)


@dataclass
class Service:
    name: str
    command: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    stopped: bool = False
    env: dict[str, str] = field(default_factory=dict)  # on top of the deployment's environment
    _log: Any = None

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class AirflowAPI:
    """The public REST API (``/api/v2``) and the UI's ``/ui`` routes, as the admin user."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.session = requests.Session()
        self.token: str | None = None

    def login(self) -> str:
        response = self.session.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=30,
        )
        assert response.status_code == 201, f"POST /auth/token: {response.status_code} {response.text}"
        self.token = str(response.json()["access_token"])
        self.session.headers["Authorization"] = f"Bearer {self.token}"
        return self.token

    def request(self, method: str, path: str, *, expect: Iterable[int] = (200,), **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", 60)
        response = self.session.request(method, self.base_url + path, **kwargs)
        if response.status_code not in tuple(expect):
            raise AssertionError(f"{method} {path}: HTTP {response.status_code}: {response.text[:2000]}")
        if not response.content:
            return None
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return response.text

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self.request("POST", path, json=body, **kwargs)

    # -- runs and task instances -------------------------------------------------------------------
    @staticmethod
    def ti_path(dag_id: str, run_id: str, task_id: str | None = None) -> str:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
        return path + (f"/taskInstances/{task_id}" if task_id else "")

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        body = {"logical_date": None, "conf": conf or {}}
        run = self.post(f"/api/v2/dags/{dag_id}/dagRuns", body)
        return str(run["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(self.ti_path(dag_id, run_id)))

    def ti(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.get(self.ti_path(dag_id, run_id, task_id)))

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        return list(self.get(self.ti_path(dag_id, run_id, task_id) + "/tries")["task_instances"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        entry = self.get(self.ti_path(dag_id, run_id, task_id) + f"/xcomEntries/{key}")
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value

    def links(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.get(self.ti_path(dag_id, run_id, task_id) + "/links"))

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task log of one try as text, one line per structured entry (the UI's source)."""
        path = self.ti_path(dag_id, run_id, task_id) + f"/logs/{try_number}"
        lines: list[str] = []
        token: str | None = None
        for _ in range(50):
            params: dict[str, Any] = {"full_content": "true"}
            if token:
                params["token"] = token
            body = self.get(path, params=params, headers={"Accept": "application/json"})
            for entry in body.get("content") or []:
                if isinstance(entry, dict):
                    extra = {k: v for k, v in entry.items() if k not in ("event", "timestamp", "level")}
                    level = entry.get("level", "")
                    text = f"[{level}] {entry.get('event', '')}"
                    if extra:
                        text += " " + json.dumps(extra, default=str)
                    lines.append(text)
                else:
                    lines.append(str(entry))
            token = body.get("continuation_token")
            if not token or not body.get("content"):
                break
        return "\n".join(lines)


@dataclass
class Deployment:
    """Simulator + api-server + scheduler (LocalExecutor) + dag-processor + triggerer, on loopback."""

    out_dir: Path
    parallelism: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home = self.out_dir / "airflow-home"
        self.dags = self.home / "dags"
        self.logs = self.out_dir / "process-logs"
        self.api_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self.password = secrets.token_urlsafe(12)
        self.services: dict[str, Service] = {}
        self.sim: simulator.SimulatorClient | None = None
        self.sim_proc: subprocess.Popen[str] | None = None
        self.api = AirflowAPI(self.base_url, ADMIN_USER, self.password)
        self.env: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self.artifacts: dict[str, Any] = {}  # what one test leaves for a later one (e.g. a finished run)

    # -- set-up ------------------------------------------------------------------------------------
    def connection(self, *, password: str = simulator.PASSWORD) -> dict[str, Any]:
        assert self.sim is not None
        extra = self.sim.connection_extra("password")
        extra["console_url"] = CONSOLE_URL
        return {"conn_type": "cloudjobs", "login": simulator.USER_NAME, "password": password, "extra": extra}

    def _make_env(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "CLOUDJOBS_"))
            and k != "AIRFLOW_HOME"
        }
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.base_url + "/",
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(24),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                # The log servers bind every interface: skipped (--skip-serve-logs), logs are local files.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "600",
                "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "600",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "5",
                # A killed triggerer's triggers go to the next one once its heartbeat is this stale.
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
                # Read by the example DAGs and the suite's DAGs at parse time.
                "CLOUDJOBS_EXAMPLE_POLL_INTERVAL": "1",
                "CLOUDJOBS_EXAMPLE_TIMEOUT": "240",
                "CLOUDJOBS_E2E_POKE_INTERVAL": "1",
                "CLOUDJOBS_E2E_SHORT_TIMEOUT": str(SHORT_TIMEOUT),
                "CLOUDJOBS_E2E_LONG_TIMEOUT": "240",
                # The wait defined only by an environment variable, as a secrets-free deployment would.
                "AIRFLOW_CONN_CLOUDJOBS_ENV": json.dumps(self.connection()),
            }
        )
        env.update(self.extra_env)
        return env

    def _airflow(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        self.timings[f"airflow {args[0]} {args[1] if len(args) > 1 else ''}".strip()] = (
            time.monotonic() - started
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done

    def start(self) -> Deployment:
        started = time.monotonic()
        for path in (self.home, self.logs):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
        self.dags.mkdir()
        for dag_file in [*sorted((ROOT / "example_dags").glob("*.py")), *sorted(E2E_DAGS.glob("*.py"))]:
            shutil.copy2(dag_file, self.dags / dag_file.name)
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: self.password}))

        self.sim, self.sim_proc = self._start_simulator()
        self.env = self._make_env()
        self._airflow("db", "migrate")
        conn = self.connection()
        self._airflow(
            "connections",
            "add",
            "cloudjobs_default",
            "--conn-type",
            conn["conn_type"],
            "--conn-login",
            conn["login"],
            "--conn-password",
            conn["password"],
            "--conn-extra",
            json.dumps(conn["extra"]),
        )
        flags = ["--skip-serve-logs"]
        self.add_service("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.api_port)])
        self.add_service("scheduler", ["scheduler", *flags])
        self.add_service("dag-processor", ["dag-processor"])
        self.add_service("triggerer", ["triggerer", *flags])
        for name in SERVICES:
            self.start_service(name)
        wait_for("the API server to answer", self._api_up, timeout=120, check=self.check_alive)
        self.api.login()
        wait_for("every component to report healthy", self._all_healthy, timeout=120, check=self.check_alive)
        self.timings["start"] = time.monotonic() - started
        return self

    def _start_simulator(self) -> tuple[simulator.SimulatorClient, subprocess.Popen[str]]:
        """The simulator's CLI (as ``simulator.start_in_subprocess`` runs it), in its own process group
        and with the same parent-death guard as the Airflow services."""
        with open(self.logs / "simulator.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "airflow_provider_cloudjobs.testing.simulator", "--port", "0"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            line = proc.stdout.readline() if selector.select(30) else ""
        if not line:
            simulator.stop_subprocess(proc)
            raise RuntimeError("the cloud simulator did not report its URL within 30 s")
        client = simulator.SimulatorClient(json.loads(line)["url"])
        return client, proc

    def _api_up(self) -> bool:
        return requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).status_code == 200

    def health(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=10).json())

    def _all_healthy(self) -> bool:
        health = self.health()
        return all(
            (health.get(part) or {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    # -- processes ---------------------------------------------------------------------------------
    def add_service(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        self.services[name] = Service(
            name, [sys.executable, "-m", "airflow", *args], self.logs / f"{name}.log", env=dict(env or {})
        )

    def start_service(self, name: str) -> Service:
        service = self.services[name]
        assert not service.running, f"{name} is already running"
        service.starts += 1
        service.stopped = False
        if service._log is not None:
            service._log.close()
        service._log = open(service.log_path, "ab")  # noqa: SIM115 - closed in stop()
        service._log.write(f"\n===== start #{service.starts} =====\n".encode())
        service._log.flush()
        service.popen = subprocess.Popen(
            service.command,
            env={**self.env, **service.env},
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            stdout=service._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with every child it forks
            preexec_fn=_die_with_parent,
        )
        return service

    def kill_service(self, name: str, sig: int = signal.SIGKILL, timeout: float = 30) -> None:
        """Signal the service's whole process group (SIGKILL: as a crashed host would lose it)."""
        service = self.services[name]
        if service.popen is None:
            return
        service.stopped = True  # on purpose: check_alive() does not report it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(service.popen.pid, sig)
        try:
            service.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.popen.pid, signal.SIGKILL)
            service.popen.wait(timeout)
        # Children that outlived the leader (same group) are swept too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(service.popen.pid, signal.SIGKILL)

    def check_alive(self) -> None:
        for service in self.services.values():
            if service.popen is not None and not service.running and service.starts and not service.stopped:
                code = service.popen.returncode
                raise RuntimeError(
                    f"airflow {service.name} exited with {code}; its log ends:\n{service.tail()}"
                )

    def stop(self) -> None:
        """Stop everything this deployment started; safe to call more than once and after failures."""
        stopping = time.monotonic()
        # SIGTERM every service's process group at once (each shuts its children down), then wait;
        # whatever is left after the grace period is killed.
        for service in self.services.values():
            service.stopped = True
            if service.popen is not None and service.running:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(service.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for service in self.services.values():
            if service.popen is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.popen.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.popen.wait(10)
            if service._log is not None:
                service._log.close()
                service._log = None
        if self.sim_proc is not None:
            simulator.stop_subprocess(self.sim_proc)
            self.sim_proc = None
        if self.sim is not None:
            self.sim.close()
        self.timings["stop"] = time.monotonic() - stopping
        self._write_observations()

    def observe(self, section: str, **values: Any) -> None:
        """Record what a test saw; written to ``observations.json`` in the output folder."""
        self.artifacts.setdefault("observations", {})[section] = values
        self._write_observations()

    def _write_observations(self) -> None:
        body = {"timings": self.timings, **self.artifacts.get("observations", {})}
        (self.out_dir / "observations.json").write_text(json.dumps(body, indent=2, default=str))

    def diagnostics(self, lines: int = 60) -> str:
        parts = [f"deployment output: {self.out_dir}"]
        for service in self.services.values():
            parts.append(f"----- {service.name} (last {lines} lines of {service.log_path}) -----")
            parts.append(service.tail(lines))
        return "\n".join(parts)

    # -- waiting on Airflow through the REST API ----------------------------------------------------
    def wait_ti_state(
        self, dag_id: str, run_id: str, task_id: str, states: Iterable[str], *, timeout: float = 120
    ) -> dict[str, Any]:
        wanted = set(states)

        def probe() -> dict[str, Any] | None:
            # 404 until the run's task instances exist and are committed (Airflow 3.1's API commits after
            # answering the trigger).
            ti = self.api.get(self.api.ti_path(dag_id, run_id, task_id), expect=(200, 404))
            return ti if ti.get("state") in wanted else None

        return wait_for(
            f"{dag_id}/{run_id}/{task_id} to be {sorted(wanted)}",
            probe,
            timeout=timeout,
            check=self.check_alive,
        )

    def wait_run_done(self, dag_id: str, run_id: str, *, timeout: float = 180) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            # 404 until the trigger's transaction is committed: Airflow 3.1's API commits after answering.
            run = self.api.get(self.api.ti_path(dag_id, run_id), expect=(200, 404))
            return run if run.get("state") in ("success", "failed") else None

        return wait_for(f"run {dag_id}/{run_id} to finish", probe, timeout=timeout, check=self.check_alive)
