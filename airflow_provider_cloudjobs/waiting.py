"""The rules of a wait, in one place for the trigger, the sensor's poke and the operator's sync loop.

Each poll has one typed outcome: :class:`Finished` with the final event, or :class:`PollAgain` after a
delay (the normal interval, or a backoff that a ``Retry-After`` may lengthen). The trigger, the operator
and the sensor in poke or reschedule mode all act on it the same way, and log what they then do.

A wait ends in one of four events (plain dicts, as a ``TriggerEvent`` payload must be):
``success``, ``failed`` (the job failed), ``timeout`` (the absolute deadline passed) or ``error``
(the wait cannot go on: the job vanished or never appeared, credentials refused, bad input). Each
carries ``job`` (the last normalised job seen, or None) and a ``message`` for humans.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from airflow_provider_cloudjobs.exceptions import (
    CloudJobNotFoundError,
    CloudJobsAPIError,
    CloudJobsAuthError,
    CloudJobsError,
    CloudJobsInputError,
)
from airflow_provider_cloudjobs.job import describe_failure, describe_progress
from airflow_provider_cloudjobs.transport import backoff_delay


class Log(Protocol):
    """What a wait logs through: a stdlib logger (sensor, operator) or Airflow's structlog (trigger)."""

    def info(self, msg: Any, /, *args: Any) -> Any: ...
    def warning(self, msg: Any, /, *args: Any) -> Any: ...


SUCCESS, FAILED, TIMEOUT, ERROR = "success", "failed", "timeout", "error"
POLL_JITTER = 0.1
#: A job whose progress line has not changed is said to be "still" so, at most this often (seconds).
STILL_EVERY = 600.0


@dataclass(frozen=True, slots=True)
class Finished:
    """The wait is over: ``event`` is what the task gets."""

    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PollAgain:
    """Poll again after ``delay`` seconds (None: the normal poll interval); ``reason`` says why, for the log."""

    delay: float | None = None
    reason: str = ""


PollOutcome = Finished | PollAgain
AGAIN = PollAgain()


def short_id(job_id: str) -> str:
    return job_id if len(job_id) <= 12 else job_id[:8] + "…"


def utc_text(epoch: float, with_date: bool = True) -> str:
    if not math.isfinite(epoch):
        return "no deadline"
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if with_date else "%H:%M UTC")


@dataclass(slots=True)
class JobWait:
    """Where one wait stands. Everything a restarted triggerer needs is in its kwargs, not here.

    Thousands of these live in one triggerer, and every object they hold is walked by each full cyclic-GC
    pass, which stops the event loop: so no ``__dict__`` (slots), and the last job seen is kept as JSON
    text (a string is not GC-tracked) rather than as its tree of dicts (raw body, sub-jobs).
    """

    job_id: str
    service: str
    end_time: float
    not_found_until: float
    seen: bool = False
    retry_attempt: int = 0
    _last_job_json: str | None = None
    _last_progress: str | None = None
    _reported_invisible: bool = False
    _changed_at: float = 0.0
    _said_at: float = 0.0

    @property
    def last_job(self) -> dict[str, Any] | None:
        """The last normalised job seen, for the timeout and "vanished" events."""
        return None if self._last_job_json is None else json.loads(self._last_job_json)

    @property
    def label(self) -> str:
        return f"{self.service.upper()} job {short_id(self.job_id)}"

    def finished(
        self, status: str, message: str, job: dict[str, Any] | None = None, *, fatal: bool = False
    ) -> Finished:
        """The end of the wait, with its event (the last job seen unless ``job`` is given)."""
        return Finished(
            {
                "status": status,
                "job_id": self.job_id,
                "service": self.service,
                "job": job if job is not None else self.last_job,
                "message": message,
                "fatal": fatal,
            }
        )

    def deadline_event(self, now: float | None = None) -> Finished | None:
        now = time.time() if now is None else now
        if now < self.end_time:
            return None
        last_job = self.last_job
        if last_job:
            where = f" (last seen: {describe_progress(last_job)})"
        else:  # a resumed trigger knows the job was seen before deferring, not how it looked
            where = " (seen before deferring)" if self.seen else " (never seen)"
        message = (
            f"Timed out waiting for {self.service.upper()} job {self.job_id}{where}: the deadline "
            f"{utc_text(self.end_time)} passed. The job itself goes on in the cloud; look at it in the "
            "console, then wait on the same job id again with a longer timeout, or delete what it created"
        )
        return self.finished(TIMEOUT, message, last_job)

    def announce(self, job: dict[str, Any], log: Log, poll_interval: float, console: str) -> None:
        """The first line about a job: all an operator needs to find it and to know when the wait ends."""
        what = ", ".join(
            str(part)
            for part in (job.get("job_type"), job.get("resource_id"), job.get("resource_name"))
            if part
        )
        log.info(
            "Waiting for %s job %s%s: polling every %gs until %s; console: %s",
            self.service.upper(),
            self.job_id,
            f" ({what})" if what else "",
            poll_interval,
            utc_text(self.end_time),
            console or "none for this service",
        )

    def on_job(self, job: dict[str, Any], log: Log, now: float | None = None) -> PollOutcome:
        """Record a successful poll: finished once the job is terminal, else poll again at the interval."""
        now = time.time() if now is None else now
        self.seen = True
        self.retry_attempt = 0
        progress = describe_progress(job)
        if progress != self._last_progress:
            log.info("%s %s", self.label, progress)
            self._last_progress = progress
            self._changed_at = self._said_at = now
        elif now - self._said_at >= STILL_EVERY:
            log.info("%s still %s (last change %s)", self.label, progress, utc_text(self._changed_at, False))
            self._said_at = now
        if not job["is_terminal"]:
            self._last_job_json = json.dumps(job, separators=(",", ":"))
            return AGAIN
        if job["phase"] == "SUCCEEDED":
            return self.finished(SUCCESS, f"{self.service.upper()} job {self.job_id} succeeded", job)
        return self.finished(FAILED, describe_failure(job), job)

    def on_error(self, exc: CloudJobsError, log: Log, now: float | None = None) -> PollOutcome:
        """An error from a poll: finished (it cannot go on), or poll again after a backoff."""
        now = time.time() if now is None else now
        if isinstance(exc, CloudJobNotFoundError):
            if self.seen:
                return self.finished(
                    ERROR,
                    f"{self.service.upper()} job {self.job_id} vanished: it was seen, "
                    f"then the cloud answered 404 ({exc})",
                    fatal=True,
                )
            if now < self.not_found_until:
                if not self._reported_invisible:
                    log.info(
                        "%s is not visible yet (404); waiting up to %.0fs more for it to appear",
                        self.label,
                        self.not_found_until - now,
                    )
                    self._reported_invisible = True
                return AGAIN
            return self.finished(
                ERROR,
                f"{self.service.upper()} job {self.job_id} not found: the cloud answered "
                f"404 for the whole grace period ({exc})",
                fatal=True,
            )
        if isinstance(exc, CloudJobsAPIError) and exc.retryable and not isinstance(exc, CloudJobsAuthError):
            self.retry_attempt += 1
            return PollAgain(backoff_delay(self.retry_attempt, exc.retry_after), str(exc))
        fatal = isinstance(exc, (CloudJobsAuthError, CloudJobsInputError))
        return self.finished(
            ERROR, f"Waiting for {self.service.upper()} job {self.job_id} failed: {exc}", fatal=fatal
        )

    def sleep_for(self, poll_interval: float, again: PollAgain, log: Log, now: float | None = None) -> float:
        """How long to sleep before the next poll: the interval with jitter, or the backoff the outcome
        asks for; never past the deadline. A backoff is logged here, as the delay that will be kept."""
        now = time.time() if now is None else now
        requested = again.delay
        if requested is None:
            requested = poll_interval * random.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
        delay = max(0.0, min(requested, self.end_time - now))
        if again.reason:
            log.warning("%s: %s; retrying in %.1fs", self.label, again.reason, delay)
        return delay
