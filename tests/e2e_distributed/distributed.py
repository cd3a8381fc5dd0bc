"""A distributed Airflow 3 deployment on this machine: the single-node harness's processes and helpers
(``tests/e2e/harness.py``), with PostgreSQL as the metadata database, the CeleryExecutor on Redis with two
workers, and two triggerers.

Each worker and triggerer reports its own host name to Airflow (``[core] hostname_callable`` reads
``CLOUDJOBS_E2E_HOSTNAME``), so the REST API tells them apart although they share one machine: a task
instance's ``hostname`` names the worker that ran it, a triggerer job's ``hostname`` the triggerer. Every
cloud call goes through a :class:`~servers.ProcessTap`, which counts IAM logins and job GETs per process.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from e2e.harness import ADMIN_USER, Deployment, wait_for

from .servers import Backends, ProcessTap

DAG_ID = "e2e_mapped_waits"
DAGS = Path(__file__).resolve().parent / "dags"
WORKERS = ("worker-1", "worker-2")
TRIGGERERS = ("triggerer-a", "triggerer-b")
WORKER_CONCURRENCY = 2
HOSTNAME_MODULE = '''"""[core] hostname_callable of the distributed e2e deployment: one name per process on one host."""
import os
import socket


def hostname() -> str:
    return os.environ.get("CLOUDJOBS_E2E_HOSTNAME") or socket.getfqdn()
'''


@dataclass
class DistributedDeployment(Deployment):
    """Simulator (behind a tap) + PostgreSQL + Redis + api-server + scheduler (CeleryExecutor) +
    dag-processor + two Celery workers + two triggerers."""

    health_check_threshold: int = 10
    select_per_loop: int = 2
    backends: Backends | None = field(default=None, init=False)
    tap: ProcessTap | None = field(default=None, init=False)

    def connection(self, *, password: str | None = None) -> dict[str, Any]:
        conn = super().connection() if password is None else super().connection(password=password)
        if self.tap is not None:  # every cloud call through the tap, which counts them per process
            conn["extra"]["iam_endpoint"] = self.tap.url
            conn["extra"]["endpoints"] = {"*": self.tap.url}
        return conn

    def _make_env(self) -> dict[str, str]:
        env = super()._make_env()
        assert self.backends is not None
        pylib = self.home / "pylib"
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(p for p in (str(pylib), env.get("PYTHONPATH", "")) if p),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "cloudjobs_e2e_hostname.hostname",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__PARALLELISM": "32",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.backends.sql_alchemy_conn,
                "AIRFLOW__CELERY__BROKER_URL": self.backends.broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": self.backends.result_backend,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
                "AIRFLOW__CELERY__OPERATION_TIMEOUT": "10",
                # HA balance: a triggerer claims at most this many triggers per loop (Airflow's default
                # is 50), so waits deferred together spread over both triggerers.
                "AIRFLOW__TRIGGERER__MAX_TRIGGER_TO_SELECT_PER_LOOP": str(self.select_per_loop),
                # A killed triggerer's triggers go to the other once its heartbeat is this stale.
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(self.health_check_threshold),
                "CLOUDJOBS_E2E_POKE_INTERVAL": "1",
                "CLOUDJOBS_E2E_LONG_TIMEOUT": "300",
            }
        )
        return env

    def start(self) -> DistributedDeployment:
        started = time.monotonic()
        for path in (self.home, self.logs):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
        self.dags.mkdir()
        (self.home / "pylib").mkdir()
        (self.home / "pylib" / "cloudjobs_e2e_hostname.py").write_text(HOSTNAME_MODULE)
        for dag_file in sorted(DAGS.glob("*.py")):
            shutil.copy2(dag_file, self.dags / dag_file.name)
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: self.password}))

        self.backends = Backends(self.logs)
        self.backends.start()
        self.timings["backends"] = time.monotonic() - started
        self.sim, self.sim_proc = self._start_simulator()
        sim_port = int(urlsplit(self.sim.url).port or 0)
        self.tap = ProcessTap(sim_port, self.service_of)
        self.env = self._make_env()
        self._airflow("db", "migrate", timeout=300)
        conn = self.connection()
        self._airflow(
            "connections", "add", "cloudjobs_default",
            "--conn-type", conn["conn_type"],
            "--conn-login", conn["login"],
            "--conn-password", conn["password"],
            "--conn-extra", json.dumps(conn["extra"]),
        )  # fmt: skip
        self.add_service("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.api_port)])
        self.add_service("scheduler", ["scheduler", "--skip-serve-logs"])
        self.add_service("dag-processor", ["dag-processor"])
        for name in WORKERS:
            self.add_service(
                name,
                ["celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency",
                 str(WORKER_CONCURRENCY), "--skip-serve-logs"],
                env={"CLOUDJOBS_E2E_HOSTNAME": name},
            )  # fmt: skip
        for name in TRIGGERERS:
            self.add_service(name, ["triggerer", "--skip-serve-logs"], env={"CLOUDJOBS_E2E_HOSTNAME": name})
        for name in self.services:
            self.start_service(name)
        wait_for("the API server to answer", self._api_up, timeout=180, check=self.check_alive)
        self.api.login()
        wait_for("every component to report healthy", self._all_healthy, timeout=180, check=self.check_alive)
        wait_for(
            "both triggerers to heartbeat",
            lambda: set(self.triggerer_jobs()) == set(TRIGGERERS),
            timeout=120,
            check=self.check_alive,
        )
        wait_for(
            "both Celery workers to answer a ping", self._workers_up, timeout=120, check=self.check_alive
        )
        self.timings["start"] = time.monotonic() - started
        return self

    def service_of(self, pid: int) -> str:
        """Which of our services a process belongs to: the service whose main process is it or an ancestor
        (Airflow's task and trigger-runner processes may start sessions or groups of their own)."""
        leaders = {s.popen.pid: s.name for s in self.services.values() if s.popen is not None}
        for _ in range(32):
            if pid in leaders:
                return leaders[pid]
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                return "gone"
            ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
            if ppid <= 1:
                break
            pid = ppid
        return "other"

    def triggerer_jobs(self, *, alive: bool = True) -> dict[str, int]:
        """``{triggerer name: job id}`` for every (live) triggerer job, from ``GET /api/v2/jobs``."""
        params: dict[str, Any] = {"job_type": "TriggererJob", "limit": 100}
        if alive:
            params["is_alive"] = "true"
        jobs = self.api.get("/api/v2/jobs", params=params)["jobs"]
        return {
            j["hostname"]: int(j["id"]) for j in jobs if j["hostname"] in TRIGGERERS and not j["end_date"]
        }

    def _workers_up(self) -> bool:
        from celery import Celery

        app = Celery(broker=self.env["AIRFLOW__CELERY__BROKER_URL"])
        try:
            answers = app.control.ping(timeout=2)
        finally:
            app.close()
        names = {name.split("@")[0] for answer in answers for name in answer}
        return names >= set(WORKERS)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.tap is not None:
                self.tap.close()
            if self.backends is not None:
                self.backends.stop()
                self.timings["stop"] = self.timings.get("stop", 0.0)
            self._write_observations()
