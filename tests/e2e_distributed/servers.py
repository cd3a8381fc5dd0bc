"""What the distributed deployment needs besides Airflow: PostgreSQL, Redis, and a tap on the cloud traffic.

PostgreSQL and Redis are Debian's packages (``apt-get install postgresql redis-server``), started on free
loopback ports with throwaway data in a temporary directory, each in its own process group, and stopped
(whole group, SIGKILL after a grace period) by :meth:`stop`, whatever happened before.

:class:`ProcessTap` sits between Airflow and the cloud simulator: a TCP relay on 127.0.0.1 that, for every
client connection, finds the process on this machine that opened it (``/proc/net/tcp`` and
``/proc/<pid>/fd``) and counts that process's HTTP requests by kind (IAM logins, job GETs). It records
request lines only (method and path), never headers or bodies, so it holds no token or password.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.harness import _die_with_parent, free_port, wait_for

IAM_PATH = "/v3/auth/tokens"
JOB_PATH = re.compile(r"/jobs?/|/jobs\?")


def find_postgres_bin() -> Path | None:
    """Debian's PostgreSQL server binaries (``/usr/lib/postgresql/<major>/bin``), the newest major."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3].split(".")[0])
    )
    return Path(found[-1]).parent if found else None


def missing_packages() -> list[str]:
    missing = []
    if find_postgres_bin() is None:
        missing.append("postgresql (initdb under /usr/lib/postgresql/*/bin)")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    return missing


@dataclass
class Daemon:
    name: str
    popen: subprocess.Popen[bytes]
    log: Any

    def stop(self, grace: float = 15) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        self.log.close()


def _spawn(name: str, cmd: list[str], log_path: Path, *, user: str | None = None) -> Daemon:
    preexec: Callable[[], None] = _die_with_parent
    if user is not None:
        entry = pwd.getpwnam(user)

        def preexec() -> None:  # pragma: no cover - runs in the child
            os.setgid(entry.pw_gid)
            os.setgroups([])
            os.setuid(entry.pw_uid)
            _die_with_parent()  # after setuid: changing credentials clears the parent-death signal

    log = open(log_path, "ab")  # noqa: SIM115 - closed by Daemon.stop()
    popen = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=preexec,
        cwd="/",
    )
    return Daemon(name, popen, log)


class Backends:
    """PostgreSQL (Airflow's metadata DB and Celery's result backend) and Redis (Celery's broker)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.tmp = Path(tempfile.mkdtemp(prefix="cloudjobs-e2e-backends-"))
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.daemons: list[Daemon] = []
        self.timings: dict[str, float] = {}

    @property
    def sql_alchemy_conn(self) -> str:
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.pg_port}/airflow"

    @property
    def result_backend(self) -> str:
        return f"db+postgresql+psycopg2://airflow@127.0.0.1:{self.pg_port}/airflow"

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start(self) -> Backends:
        self._start_postgres()
        self._start_redis()
        return self

    def _start_postgres(self) -> None:
        bindir = find_postgres_bin()
        assert bindir is not None
        data = self.tmp / "pgdata"
        sockets = self.tmp / "pgsock"
        data.mkdir()
        sockets.mkdir()
        # initdb and the server refuse to run as root: as root they run as Debian's `postgres` user.
        user = "postgres" if os.geteuid() == 0 else None
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in (self.tmp, data, sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        init = _spawn(
            "initdb",
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "airflow",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            self.log_dir / "postgres-initdb.log",
            user=user,
        )
        code = init.popen.wait(120)
        init.log.close()
        if code != 0:
            raise RuntimeError(f"initdb exited {code}: see {self.log_dir / 'postgres-initdb.log'}")
        # Loopback only, no Unix socket in a shared place, durability off (a throwaway database).
        self.daemons.append(
            _spawn(
                "postgres",
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.pg_port),
                    "-k",
                    str(sockets),
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                self.log_dir / "postgres.log",
                user=user,
            )
        )
        import psycopg2

        def ready() -> bool:
            self._check_alive()
            with psycopg2.connect(
                host="127.0.0.1", port=self.pg_port, user="airflow", dbname="postgres", connect_timeout=3
            ) as conn:
                conn.autocommit = True
                return True

        wait_for("PostgreSQL to accept connections", lambda: _quiet(ready), timeout=60)
        conn = psycopg2.connect(host="127.0.0.1", port=self.pg_port, user="airflow", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE airflow")
        conn.close()

    def _start_redis(self) -> None:
        redis_dir = self.tmp / "redis"
        redis_dir.mkdir()
        self.daemons.append(
            _spawn(
                "redis",
                [
                    "redis-server",
                    "--port",
                    str(self.redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(redis_dir),
                    "--protected-mode",
                    "yes",
                ],
                self.log_dir / "redis.log",
            )
        )
        import redis

        def ready() -> bool:
            self._check_alive()
            return bool(redis.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=3).ping())

        wait_for("Redis to answer PING", lambda: _quiet(ready), timeout=30)

    def _check_alive(self) -> None:
        for daemon in self.daemons:
            if daemon.popen.poll() is not None:
                raise RuntimeError(f"{daemon.name} exited with {daemon.popen.returncode}")

    def stop(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()
        self.daemons.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _quiet(probe: Callable[[], bool]) -> bool:
    try:
        return probe()
    except RuntimeError:
        raise
    except Exception:
        return False


# -- the tap -------------------------------------------------------------------------------------------
@dataclass
class ProcessTraffic:
    pid: int
    cmdline: str
    service: str
    requests: Counter[str] = field(default_factory=Counter)


def _socket_inode(local_port: int, remote_port: int) -> str | None:
    """The inode of the IPv4 loopback socket 127.0.0.1:local_port -> 127.0.0.1:remote_port."""
    want_local = f"0100007F:{local_port:04X}"
    want_remote = f"0100007F:{remote_port:04X}"
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            parts = line.split()
            if parts[1] == want_local and parts[2] == want_remote:
                return parts[9]
    return None


def _owner_pids(inode: str) -> list[int]:
    target = f"socket:[{inode}]"
    owners = []
    for fd_dir in glob.glob("/proc/[0-9]*/fd"):
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") == target:
                    owners.append(int(fd_dir.split("/")[2]))
                    break
            except OSError:
                continue
    return owners


class ProcessTap:
    """A loopback TCP relay to ``upstream_port`` that counts HTTP requests per client process."""

    def __init__(self, upstream_port: int, classify: Callable[[int], str]) -> None:
        self.upstream_port = upstream_port
        self.classify = classify
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port = int(self.listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.by_pid: dict[int, ProcessTraffic] = {}
        self.unattributed: Counter[str] = Counter()
        self.closed = False
        self.thread = threading.Thread(target=self._accept, name="process-tap", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, (_, peer_port) = self.listener.accept()
            except OSError:
                return
            pid = self._identify(peer_port)
            threading.Thread(target=self._relay, args=(client, pid), daemon=True).start()

    def _identify(self, peer_port: int) -> int | None:
        try:
            inode = _socket_inode(peer_port, self.port)
            owners = _owner_pids(inode) if inode else []
        except OSError:
            return None
        owners = [p for p in owners if p != os.getpid()]
        if not owners:
            return None
        pid = min(owners)  # a socket shared by fork: the oldest holder
        with self.lock:
            if pid not in self.by_pid:
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                except OSError:
                    cmdline = "?"
                self.by_pid[pid] = ProcessTraffic(pid, cmdline[:200], self.classify(pid))
        return pid

    def _relay(self, client: socket.socket, pid: int | None) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        back.start()
        buffer = b""
        body_left = 0
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                upstream.sendall(data)
                buffer += data
                # Parse the request stream: request line + headers, then Content-Length bytes of body.
                while True:
                    if body_left:
                        take = min(body_left, len(buffer))
                        buffer, body_left = buffer[take:], body_left - take
                        if body_left:
                            break
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head, buffer = buffer[:end].decode("latin-1"), buffer[end + 4 :]
                    line, _, headers = head.partition("\r\n")
                    match = re.search(r"(?im)^content-length:\s*(\d+)", headers)
                    body_left = int(match.group(1)) if match else 0
                    self._count(pid, line)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def _count(self, pid: int | None, request_line: str) -> None:
        method, _, rest = request_line.partition(" ")
        path = rest.rsplit(" ", 1)[0]
        if method == "POST" and path.startswith(IAM_PATH):
            kind = "iam_login"
        elif method == "GET" and JOB_PATH.search(path):
            kind = "job_get"
        else:
            kind = "other"
        with self.lock:
            if pid is None:
                self.unattributed[kind] += 1
            else:
                self.by_pid[pid].requests[kind] += 1

    def report(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {"pid": t.pid, "service": t.service, "requests": dict(t.requests), "cmdline": t.cmdline}
                for t in sorted(self.by_pid.values(), key=lambda t: (t.service, t.pid))
            ]

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.listener.close()
