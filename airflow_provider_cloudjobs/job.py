"""The normalised job: one JSON-serialisable shape for every service (the XCom value).

Keys: ``service``, ``job_id``, ``status`` (raw), ``phase``, ``is_terminal``, ``progress`` (0-100 or
None), ``job_type``, ``resource_id``, ``resource_name``, ``error_code``, ``message``, ``created_at``,
``started_at``, ``updated_at``, ``ended_at`` (ISO-8601 UTC or None), ``sub_jobs`` (normalised,
recursively), ``entities`` (dict) and ``raw`` (the body as received).

``raw`` is kept once, on the top-level job: a sub-job's ``raw`` is None, its fields being in its
parent's. Sub-jobs are read to :data:`MAX_SUB_JOB_DEPTH` levels and :data:`MAX_SUB_JOBS` in all, so the
normalised job stays linear in the size of the body, whatever the body.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pendulum

from airflow_provider_cloudjobs.profiles import JobPhase, ServiceProfile, dig, first_value

log = logging.getLogger(__name__)

MAX_SUB_JOB_DEPTH = 8
MAX_SUB_JOBS = 1000
#: Statuses warned about once each; past this many distinct ones (a misbehaving service), no more warnings.
MAX_WARNED_STATUSES = 256
_warned_statuses: set[tuple[str, str]] = set()

# Go's time.Time.String(): "2018-08-02 08:12:40.672772389 +0000 UTC" (nanoseconds, numeric offset, zone name).
_GO_TIME = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[ T](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?"
    r"\s*(?P<offset>[+-]\d{2}:?\d{2}|Z)?(?:\s+[A-Z]{2,5})?(?:\s+m=[+-][\d.]+)?$"
)


def parse_timestamp(value: Any) -> str | None:
    """Any timestamp the services send, as ISO-8601 UTC (``2018-08-02T08:12:40.672772Z``), or None.

    Handles Go's ``... +0000 UTC`` with nanoseconds (CCE), naive ``2022-11-09T20:25:00`` (DWS; the
    cloud means UTC), ``...Z`` (ELB), ``+0000`` without a colon (RDS), epoch seconds or milliseconds,
    and empty strings or null (a job not ended yet). An unreadable value gives None rather than
    failing the wait: a timestamp is never worth losing a job over.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return _iso(pendulum.from_timestamp(seconds, tz="UTC"))
        except (OverflowError, ValueError, OSError):
            return None
    text = str(value).strip()
    if not text:
        return None
    if text.isdigit() and len(text) in (10, 13):  # epoch seconds or milliseconds as text (DCS)
        return parse_timestamp(int(text))
    match = _GO_TIME.match(text)
    if match:
        frac = (match.group("frac") or "")[:6].ljust(6, "0")
        offset = match.group("offset") or "+00:00"
        if offset != "Z" and ":" not in offset:
            offset = f"{offset[:3]}:{offset[3:]}"
        text = f"{match.group('date')}T{match.group('time')}.{frac}{offset}"
        try:  # the normalised text is plain ISO-8601: the stdlib parses it ~100x faster than pendulum
            return _iso(datetime.fromisoformat(text[:-1] + "+00:00" if offset == "Z" else text))
        except ValueError:
            pass  # e.g. an impossible date: let pendulum have the last word, as before
    try:
        parsed = pendulum.parse(text, tz="UTC")
    except (ValueError, TypeError, pendulum.parsing.exceptions.ParserError):
        log.debug("Unreadable timestamp %r left as null", value)
        return None
    if not isinstance(parsed, datetime):
        return None
    return _iso(parsed)


def _iso(moment: datetime) -> str:
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_progress(value: Any, scale: float = 1.0) -> float | None:
    """``"9%"``, ``"60"``, ``42`` or ``0.42`` (with ``scale=100``) as a percent in [0, 100], else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value) * scale
        except OverflowError:
            return None
    else:
        text = str(value)[:32].strip()
        percent = text.endswith("%")
        try:
            number = float(text.rstrip("%").strip())
        except ValueError:
            return None
        if not percent:
            number *= scale
    if not math.isfinite(number):  # "nan" or "inf" says nothing about progress
        return None
    return max(0.0, min(100.0, round(number, 2)))


def normalize_job(
    body: Mapping[str, Any], profile: ServiceProfile, *, job_id: str | None = None
) -> dict[str, Any]:
    """Turn a job body as the service returned it into the normalised job."""
    raw_job = dig(body, profile.root) if profile.root else body
    if not isinstance(raw_job, Mapping):
        raw_job = {}
    job = _normalize(raw_job, profile, fallback_id=job_id, depth=0, budget=[MAX_SUB_JOBS])
    job["raw"] = dict(body)
    return job


def _normalize(
    raw_job: Mapping[str, Any],
    profile: ServiceProfile,
    fallback_id: str | None,
    depth: int,
    budget: list[int],
) -> dict[str, Any]:
    """One job and, within ``depth`` and the shared ``budget`` of sub-jobs, its sub-jobs."""
    raw_status = dig(raw_job, profile.status)
    phase = profile.phase_of(raw_status)
    if phase is JobPhase.UNKNOWN:
        _warn_unknown_status(profile, raw_status)

    raw_subs = dig(raw_job, profile.sub_jobs) if profile.sub_jobs and depth < MAX_SUB_JOB_DEPTH else None
    sub_jobs = []
    for sub in raw_subs if isinstance(raw_subs, list) else []:
        if isinstance(sub, Mapping) and budget[0] > 0:
            budget[0] -= 1
            sub_jobs.append(_normalize(sub, profile, None, depth + 1, budget))
    failed_subs = [sub for sub in sub_jobs if sub["phase"] == JobPhase.FAILED.value]

    error_code = first_value(raw_job, profile.error_code)
    message = first_value(raw_job, profile.message)
    if phase is JobPhase.FAILED and failed_subs:
        error_code = error_code or failed_subs[0]["error_code"]
        message = message or failed_subs[0]["message"]

    updated_at = parse_timestamp(first_value(raw_job, profile.updated_at))
    ended_at = parse_timestamp(first_value(raw_job, profile.ended_at))
    if ended_at is None and phase.is_terminal:
        ended_at = updated_at  # CCE has no end time: its last update is when it ended

    entities = dig(raw_job, profile.entities) if profile.entities else None
    found_id = first_value(raw_job, profile.job_id)
    return {
        "service": profile.key,
        "job_id": str(found_id) if found_id not in (None, "") else fallback_id,
        "status": raw_status,
        "phase": phase.value,
        "is_terminal": phase.is_terminal,
        "progress": _progress(raw_job, profile, phase, sub_jobs),
        "job_type": _text(first_value(raw_job, profile.job_type)),
        "resource_id": _text(first_value(raw_job, profile.resource_id)),
        "resource_name": _text(first_value(raw_job, profile.resource_name)),
        "error_code": _text(error_code),
        "message": _text(message),
        "created_at": parse_timestamp(first_value(raw_job, profile.created_at)),
        "started_at": parse_timestamp(first_value(raw_job, profile.started_at)),
        "updated_at": updated_at,
        "ended_at": ended_at,
        "sub_jobs": sub_jobs,
        "entities": dict(entities) if isinstance(entities, Mapping) else {},
        "raw": None,
    }


def _progress(
    raw_job: Mapping[str, Any], profile: ServiceProfile, phase: JobPhase, sub_jobs: list[dict[str, Any]]
) -> float | None:
    """The service's own progress; else the share of sub-jobs done; else 100 once succeeded."""
    for path in profile.progress:
        value = parse_progress(dig(raw_job, path), profile.progress_scale)
        if value is not None:
            return 100.0 if phase is JobPhase.SUCCEEDED else value
    if sub_jobs:
        done = sum(1 for sub in sub_jobs if sub["phase"] == JobPhase.SUCCEEDED.value)
        return 100.0 if phase is JobPhase.SUCCEEDED else round(100.0 * done / len(sub_jobs), 2)
    if phase is JobPhase.SUCCEEDED:
        return 100.0
    return None


def _text(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))  # a structure where text was expected, kept readable
    return value if isinstance(value, str) else str(value)


def _warn_unknown_status(profile: ServiceProfile, raw_status: Any) -> None:
    shown = repr(raw_status)
    shown = shown if len(shown) <= 80 else shown[:79] + "…"
    key = (profile.key, shown)
    if key in _warned_statuses or len(_warned_statuses) >= MAX_WARNED_STATUSES:
        return
    _warned_statuses.add(key)
    log.warning(
        "%s job status %s is not one this provider knows (%s): treating it as UNKNOWN and waiting on. "
        "Map it with a service profile if it is terminal.",
        profile.label,
        shown,
        ", ".join(sorted(profile.phases)),
    )


def describe_progress(job: Mapping[str, Any]) -> str:
    """A short human line such as ``Running 2/5 sub-jobs, 40%`` for logs."""
    parts = [str(job.get("status"))]
    subs = job.get("sub_jobs") or []
    if subs:
        done = sum(1 for sub in subs if sub.get("phase") == JobPhase.SUCCEEDED.value)
        parts.append(f"{done}/{len(subs)} sub-jobs")
    progress = job.get("progress")
    text = " ".join(parts)
    if progress is not None:
        text += f", {progress:g}%"
    return text


def _short(value: Any, limit: int = 300) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_failure(job: Mapping[str, Any]) -> str:
    """The failure message users see: service, job id, error code, message and the failed sub-jobs."""
    service = str(job.get("service", "")).upper()
    head = f"{service} job {job.get('job_id')} failed (status {job.get('status')!r})"
    if job.get("error_code"):
        head += f": error code {_short(job['error_code'])}"
    if job.get("message"):
        head += f"{',' if job.get('error_code') else ':'} {_short(job['message'])}"
    failed = [sub for sub in job.get("sub_jobs") or [] if sub.get("phase") == JobPhase.FAILED.value]
    if failed:
        details = "; ".join(
            f"{_short(sub.get('job_type') or 'sub-job')} {_short(sub.get('job_id'))}"
            + (f" [{_short(sub['error_code'])}]" if sub.get("error_code") else "")
            + (f" {_short(sub['message'])}" if sub.get("message") else "")
            for sub in failed[:10]
        )
        if len(failed) > 10:
            details += f"; and {len(failed) - 10} more"
        head += f". Failed sub-jobs: {details}"
    return head
