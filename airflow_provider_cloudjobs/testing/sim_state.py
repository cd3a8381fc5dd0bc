"""The simulator's state: accounts, tokens, jobs and how they progress, queued faults, counters.

Everything here is plain Python guarded by one lock, because two threads touch it: the server's
event loop (requests) and the test or control code (``create_job``, ``stats`` ...). Every operation
is O(1) in the number of jobs so thousands of concurrent waits stay cheap.
"""

from __future__ import annotations

import math
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_cloudjobs.testing import sim_common as c

FAULT_KINDS = (
    "429",
    "500",
    "502",
    "503",
    "reset",
    "slow",
    "malformed_json",
    "json_not_object",
    "404",
    "token_expired",
    "iam_500",
    # hostile answers (see sim_app._serve_fault): what a broken proxy or a malicious endpoint sends
    "redirect",
    "drip",
    "huge",
    "gzip_bomb",
    "deep_json",
    "garbage_html",
)
OUTCOMES = ("success", "fail")
TERMINAL = ("success", "fail")


@dataclass
class Fault:
    """One injected misbehaviour, served ``remaining`` more times to matching requests."""

    kind: str
    remaining: int
    job_id: str | None = None
    path_contains: str | None = None
    retry_after: float | None = None
    delay: float | None = None
    retry_after_text: str | None = None  # a raw Retry-After header ("0", "-5", an HTTP date ...)
    location: str | None = None  # "redirect": where to send the client
    size: int | None = None  # "huge", "gzip_bomb", "deep_json", "garbage_html", "drip": how many bytes

    def matches(self, route: str, path_qs: str, job_id: str | None) -> bool:
        is_iam = route.startswith("iam")
        if self.kind == "iam_500":
            if not is_iam:
                return False
        elif self.path_contains is None and (is_iam or not route):
            # Unfiltered service faults never hit IAM: a test that breaks job GETs must not break login.
            return False
        if self.path_contains is not None and self.path_contains not in path_qs:
            return False
        return self.job_id is None or self.job_id == job_id


@dataclass
class TokenRecord:
    user_name: str
    user_id: str
    project_id: str
    project_name: str
    issued_at: float
    expires_at: float
    domain_id: str = ""  # set (and project_id empty) for an account-scoped token


@dataclass
class Account:
    """One tenant (Huawei "domain") with its IAM users, access keys and projects."""

    domain_name: str
    domain_id: str
    users: dict[str, tuple[str, str]]  # name -> (password, user id)
    access_keys: dict[str, str]  # AK -> SK
    projects: dict[str, str]  # project id -> project name (= region)


def default_account() -> Account:
    return Account(
        domain_name=c.DOMAIN_NAME,
        domain_id=c.DOMAIN_ID,
        users={c.USER_NAME: (c.PASSWORD, c.USER_ID)},
        access_keys={c.ACCESS_KEY: c.SECRET_KEY},
        projects={c.PROJECT_ID: c.REGION, c.OTHER_PROJECT_ID: c.OTHER_REGION},
    )


@dataclass
class Snapshot:
    """What one GET of a job shows: its phase, raw status, progress and per-sub-job phases."""

    phase: str  # init | running | success | fail | unknown
    status: str
    fraction: float
    subs: list[str]
    job: SimJob


@dataclass(eq=False)
class SimJob:
    """A cloud job and its scripted life (see :meth:`SimState.create_job` for the knobs)."""

    job_id: str
    service: str
    project_id: str
    outcome: str
    polls_to_finish: int
    seconds_to_finish: float | None
    sub_jobs: int
    visible_after_polls: int
    vanish_after_polls: int | None
    raw_statuses: list[str] | None
    error_code: str | None
    message: str | None
    resource_name: str
    resource_id: str
    job_type: str
    created: float
    extra: dict[str, Any] = field(default_factory=dict)
    sub_ids: list[str] = field(default_factory=list)
    sub_resource_ids: list[str] = field(default_factory=list)
    gets: int = 0
    not_found: int = 0
    visible: int = 0
    updated: float = 0.0
    ended: float | None = None
    sub_begin: list[float | None] = field(default_factory=list)
    sub_end: list[float | None] = field(default_factory=list)
    last_key: tuple[Any, ...] = ()
    last_status: str | None = None
    last_phase: str | None = None

    # -- progression ---------------------------------------------------------------------------
    def _step(self, t: float) -> int:
        """1-based step: the visible GET number, or (wall-time mode) how many step lengths elapsed."""
        if self.seconds_to_finish is None:
            return max(1, self.visible)
        n = self.polls_to_finish
        if self.raw_statuses:
            n = max(n, len(self.raw_statuses))
        if n <= 1 or self.seconds_to_finish <= 0:
            return n
        step_length = self.seconds_to_finish / (n - 1)
        return 1 + int(max(0.0, t - self.created) // step_length)

    def _classify(self, step: int) -> tuple[str, str, float]:
        init, running, success, fail = c.status_words(self.service)
        if self.raw_statuses:
            raw = self.raw_statuses[min(step, len(self.raw_statuses)) - 1]
            lookup = {
                init.upper(): "init",
                running.upper(): "running",
                success.upper(): "success",
                fail.upper(): "fail",
            }
            if self.service.startswith("cce"):
                lookup["INITIALIZING"] = "init"
            phase = lookup.get(raw.upper(), "unknown")
            span = max(1, len(self.raw_statuses) - 1)
            fraction = 1.0 if phase == "success" else min(1.0, (step - 1) / span)
            return phase, raw, fraction
        n = self.polls_to_finish
        if step >= n:
            phase = "success" if self.outcome == "success" else "fail"
        elif step == 1:
            phase = "init"
        else:
            phase = "running"
        if phase == "success":
            fraction = 1.0
        elif phase == "fail":
            fraction = max(0.0, (n - 2) / (n - 1)) if n > 2 else 0.0
        else:
            fraction = (step - 1) / (n - 1)
        status = {"init": init, "running": running, "success": success, "fail": fail}[phase]
        return phase, status, fraction

    def _subs(self, phase: str, fraction: float) -> list[str]:
        count = self.sub_jobs
        if count <= 0:
            return []
        if phase == "init":
            return ["init"] * count
        if phase == "success":
            return ["success"] * count
        if phase == "fail":
            return ["success"] * (count - 1) + ["fail"]
        done = min(count - 1, math.floor(count * fraction))
        return ["success"] * done + ["running"] + ["init"] * (count - done - 1)

    def visible_now(self, advance: bool) -> bool:
        """False while the job is in its not-yet-visible window or after it vanished."""
        hidden_gets = self.gets if advance else self.gets + 1
        if hidden_gets <= self.visible_after_polls:
            return False
        return self.vanish_after_polls is None or self.visible < self.vanish_after_polls

    def snapshot(self, t: float, advance: bool) -> Snapshot | None:
        """The job as a GET at time ``t`` sees it; ``advance`` counts the GET (faults peek without it)."""
        if advance:
            self.gets += 1
        if not self.visible_now(advance):
            if advance:
                self.not_found += 1
            return None
        if advance:
            self.visible += 1
        phase, status, fraction = self._classify(self._step(t))
        subs = self._subs(phase, fraction)
        key = (status, tuple(subs))
        if key != self.last_key:
            self.last_key = key
            self.updated = max(t, self.created)
        if phase in TERMINAL and self.ended is None:
            self.ended = max(t, self.created)
        for i, sub in enumerate(subs):
            if sub != "init" and self.sub_begin[i] is None:
                self.sub_begin[i] = t
            if sub in TERMINAL and self.sub_end[i] is None:
                self.sub_end[i] = t
        if advance:
            self.last_status, self.last_phase = status, phase
        return Snapshot(phase=phase, status=status, fraction=fraction, subs=subs, job=self)

    def describe(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "service": self.service,
            "project_id": self.project_id,
            "outcome": self.outcome,
            "polls_to_finish": self.polls_to_finish,
            "seconds_to_finish": self.seconds_to_finish,
            "sub_jobs": self.sub_jobs,
            "job_type": self.job_type,
            "resource_id": self.resource_id,
            "resource_name": self.resource_name,
            "gets": self.gets,
            "visible_polls": self.visible,
            "not_found_polls": self.not_found,
            "status": self.last_status,
            "phase": self.last_phase,
            "is_terminal": self.last_phase in TERMINAL,
            "vanished": self.vanish_after_polls is not None and self.visible >= self.vanish_after_polls,
            "created_at": c.iam_time(self.created),
        }


class SimState:
    """All mutable simulator state behind one lock."""

    def __init__(
        self, *, token_ttl: float = c.DEFAULT_TOKEN_TTL, seconds_per_step: float | None = None
    ) -> None:
        self.lock = threading.Lock()
        # Set by the server once listening: how many client connections are open right now.
        self.open_connections: Callable[[], int] = lambda: 0
        self._initial_config = {
            "token_ttl": float(token_ttl),
            "seconds_per_step": None if seconds_per_step is None else float(seconds_per_step),
            "default_polls_to_finish": c.DEFAULT_POLLS_TO_FINISH,
        }
        self.reset()

    # -- lifecycle ------------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.config: dict[str, Any] = dict(self._initial_config)
            self.account = default_account()
            self.jobs: dict[str, SimJob] = {}
            self.faults: list[Fault] = []
            self.tokens: dict[str, TokenRecord] = {}
            self.inflight = 0
            self.max_inflight = 0
            self.max_connections = 0
            self.counters: Counter[str] = Counter()
            self.by_status: Counter[str] = Counter()
            self.iam_by_user: Counter[str] = Counter()
            self.polls: Counter[str] = Counter()

    def configure(self, **values: Any) -> dict[str, Any]:
        unknown = set(values) - set(self._initial_config)
        if unknown:
            raise ValueError(
                f"unknown config key(s) {sorted(unknown)}; known: {sorted(self._initial_config)}"
            )
        with self.lock:
            for key, value in values.items():
                if key == "default_polls_to_finish":
                    if int(value) < 1:
                        raise ValueError("default_polls_to_finish must be >= 1")
                    self.config[key] = int(value)
                elif key == "seconds_per_step":
                    self.config[key] = None if value is None else float(value)
                else:
                    self.config[key] = float(value)
            return dict(self.config)

    # -- jobs -----------------------------------------------------------------------------------
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
        resource_id: str | None = None,
        job_type: str | None = None,
        extra: dict[str, Any] | None = None,
        path_params: dict[str, str] | None = None,
    ) -> str:
        spec = c.SERVICES.get(service)
        if spec is None:
            raise ValueError(f"unknown service {service!r}; known: {', '.join(sorted(c.SERVICES))}")
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        if polls_to_finish is None:
            polls_to_finish = int(self.config["default_polls_to_finish"])
        if int(polls_to_finish) < 1 or int(sub_jobs) < 0 or int(visible_after_polls) < 0:
            raise ValueError("polls_to_finish must be >= 1, sub_jobs and visible_after_polls >= 0")
        if vanish_after_polls is not None and int(vanish_after_polls) < 0:
            raise ValueError("vanish_after_polls must be >= 0")
        if raw_statuses is not None and (
            not raw_statuses or not all(isinstance(s, str) for s in raw_statuses)
        ):
            raise ValueError("raw_statuses must be a non-empty list of strings")
        if job_id is not None and (not job_id or "/" in job_id or "?" in job_id):
            raise ValueError("job_id must be non-empty and contain no '/' or '?'")
        if path_params is not None and not (
            isinstance(path_params, dict) and all(isinstance(v, str) and v for v in path_params.values())
        ):
            raise ValueError("path_params must map names to non-empty ids")
        if service in c.NO_SUB_JOBS:
            sub_jobs = 0  # these services report no sub-jobs
        if seconds_to_finish is None and self.config["seconds_per_step"] is not None:
            seconds_to_finish = float(self.config["seconds_per_step"]) * max(0, int(polls_to_finish) - 1)
        created = c.now()
        count = int(sub_jobs)
        resource_style = (
            "uuid" if service in ("ecs", "evs", "bms", "cce", "cce-autopilot", "elbv3", "ims") else "hex32"
        )
        job = SimJob(
            job_id=job_id or c.new_id(spec.id_style),
            service=service,
            # A global service's job belongs to the account (its domain id), not a project.
            project_id=project_id or (c.DOMAIN_ID if service in c.DOMAIN_SCOPED else c.PROJECT_ID),
            outcome=outcome,
            polls_to_finish=int(polls_to_finish),
            seconds_to_finish=None if seconds_to_finish is None else float(seconds_to_finish),
            sub_jobs=count,
            visible_after_polls=int(visible_after_polls),
            vanish_after_polls=None if vanish_after_polls is None else int(vanish_after_polls),
            raw_statuses=list(raw_statuses) if raw_statuses else None,
            error_code=error_code,
            message=message,
            resource_name=resource_name or f"{service}-{secrets.token_hex(3)}",
            resource_id=resource_id or c.new_id(resource_style),
            job_type=job_type or spec.job_type,
            created=created,
            extra={**(extra or {}), "path_params": dict(path_params or {})},
            sub_ids=[c.new_id(spec.id_style) for _ in range(count)],
            sub_resource_ids=[c.new_id(resource_style) for _ in range(count)],
            updated=created,
            sub_begin=[None] * count,
            sub_end=[None] * count,
        )
        with self.lock:
            self.jobs[job.job_id] = job
        return job.job_id

    def create_jobs(self, service: str, count: int, **kwargs: Any) -> list[str]:
        """``count`` jobs with the same script (for benchmarks); ids are generated."""
        if int(count) < 1 or kwargs.get("job_id") is not None:
            raise ValueError("create_jobs needs count >= 1 and no job_id")
        return [self.create_job(service, **kwargs) for _ in range(int(count))]

    def job_snapshot(
        self,
        job_id: str,
        services: tuple[str, ...],
        project_id: str,
        advance: bool = True,
        path_params: dict[str, str] | None = None,
    ) -> Snapshot | None:
        """The job behind a job GET, or None for a 404 (unknown, wrong path, project or path ids, hidden)."""
        with self.lock:
            if advance:
                self.polls[job_id] += 1
            job = self.jobs.get(job_id)
            if job is None or job.service not in services or job.project_id != project_id:
                return None
            if job.extra.get("path_params", {}) != (path_params or {}):
                return None  # another instance's (graph's, engine's) task of the same id: not this one
            return job.snapshot(c.now(), advance)

    def job_state(self, job_id: str) -> dict[str, Any]:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise KeyError(job_id)
            return job.describe()

    # -- faults ---------------------------------------------------------------------------------
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
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if int(count) < 1:
            raise ValueError("count must be >= 1")
        if kind == "slow" and (delay is None or float(delay) < 0):
            raise ValueError("a 'slow' fault needs delay >= 0 (seconds)")
        if kind == "redirect" and not location:
            raise ValueError("a 'redirect' fault needs a location (URL)")
        if kind == "drip" and (delay is None or float(delay) < 0):
            raise ValueError("a 'drip' fault needs delay >= 0 (seconds between bytes)")
        fault = Fault(
            kind,
            int(count),
            job_id,
            path_contains,
            None if retry_after is None else float(retry_after),
            None if delay is None else float(delay),
            retry_after_text,
            location,
            None if size is None else int(size),
        )
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, route: str, path_qs: str, job_id: str | None) -> Fault | None:
        """The first queued fault that matches this request, consumed once."""
        if not self.faults:  # lock-free fast path: the common case under load
            return None
        with self.lock:
            for index, fault in enumerate(self.faults):
                if fault.matches(route, path_qs, job_id):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self.faults[index]
                    self.counters["faults_served"] += 1
                    return fault
        return None

    # -- IAM ------------------------------------------------------------------------------------
    def check_password(self, domain: str, user: str, password: str) -> str | None:
        """The user id when the credentials are right."""
        account = self.account
        entry = account.users.get(user)
        if domain != account.domain_name or entry is None or not secrets.compare_digest(entry[0], password):
            return None
        return entry[1]

    def find_project(self, project_id: str | None, name: str | None) -> tuple[str, str] | None:
        for pid, pname in self.account.projects.items():
            if (project_id and pid == project_id) or (not project_id and name and pname == name):
                return pid, pname
        return None

    def issue_token(
        self, user_name: str, user_id: str, project_id: str, project_name: str, domain_id: str = ""
    ) -> tuple[str, TokenRecord]:
        """A project-scoped token, or (``domain_id`` set, project empty) an account-scoped one."""
        issued = c.now()
        record = TokenRecord(
            user_name,
            user_id,
            project_id,
            project_name,
            issued,
            issued + float(self.config["token_ttl"]),
            domain_id,
        )
        # Long, opaque, and shaped like IAM's PKI tokens ("MII..." base64url).
        value = "MII" + secrets.token_urlsafe(480)
        with self.lock:
            self.tokens[value] = record
        return value, record

    def expire_tokens(self) -> None:
        with self.lock:
            past = c.now() - 1.0
            for record in self.tokens.values():
                record.expires_at = min(record.expires_at, past)

    def secret_key_for(self, access_key: str) -> str | None:
        return self.account.access_keys.get(access_key)

    def add_user(self, name: str, password: str) -> None:
        with self.lock:
            self.account.users[name] = (password, secrets.token_hex(16))

    def add_access_key(self, access_key: str, secret_key: str) -> None:
        with self.lock:
            self.account.access_keys[access_key] = secret_key

    # -- counters -------------------------------------------------------------------------------
    def begin_request(self) -> None:
        open_connections = self.open_connections()
        with self.lock:
            self.counters["requests"] += 1
            self.inflight += 1
            if self.inflight > self.max_inflight:
                self.max_inflight = self.inflight
            if open_connections > self.max_connections:
                self.max_connections = open_connections

    def end_request(self, status: int | None) -> None:
        with self.lock:
            self.inflight -= 1
            if status is not None:
                self.by_status[str(status)] += 1

    def count(self, name: str, amount: int = 1) -> None:
        with self.lock:
            self.counters[name] += amount

    def count_iam_call(self, user: str | None) -> None:
        with self.lock:
            self.counters["iam_token_calls"] += 1
            if user:
                self.iam_by_user[user] += 1

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "iam_token_calls": self.counters["iam_token_calls"],
                "iam_calls_by_user": dict(self.iam_by_user),
                "iam_project_calls": self.counters["iam_project_calls"],
                # Of iam_token_calls, those that asked for an account-scoped token (global services).
                "iam_domain_token_calls": self.counters["iam_domain_token_calls"],
                "requests": self.counters["requests"],
                "job_requests": self.counters["job_requests"],
                "create_requests": self.counters["create_requests"],
                "job_polls": dict(self.polls),
                "responses_by_status": dict(self.by_status),
                "faults_served": self.counters["faults_served"],
                "faults_pending": sum(f.remaining for f in self.faults),
                "auth_failures": self.counters["auth_failures"],
                # Requests inside a handler at once (handlers only yield in the "slow" fault) ...
                "max_concurrent_requests": self.max_inflight,
                # ... and client connections open at once: how many waits were really concurrent.
                "max_open_connections": self.max_connections,
                "jobs": len(self.jobs),
                "tokens_issued": len(self.tokens),
            }
