"""Response bodies in each service's own shape: job documents and error documents.

Shapes follow the seeds (CCE 000/001/003, DWS 002, classic ELB 004) and the response models of Huawei
Cloud's official SDK (``testing/job_facts.py`` says which operation of which package); the conformance
suite (``tests/conformance``) checks that every field a body here carries exists in that model. Services
added as data only are rendered by :func:`render_from_profile`, which writes each field where the
service's profile reads it, in the service's documented time format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_provider_cloudjobs.profiles import BUILTIN_PROFILES, ServiceProfile
from airflow_provider_cloudjobs.testing import sim_common as c
from airflow_provider_cloudjobs.testing.job_facts import JOB_FACTS
from airflow_provider_cloudjobs.testing.sim_state import TERMINAL, SimJob, Snapshot

Body = dict[str, Any]


def _failure(job: SimJob, *, embed_code: bool = False) -> tuple[str, str]:
    """(error code, message) of a failed job: the caller's, else the service's default."""
    spec = c.SERVICES[job.service]
    code = job.error_code or spec.fail_code
    message = job.message or spec.fail_message
    if embed_code and job.error_code:
        message = f"{job.error_code}: {message}"
    return code, message


def _percent(fraction: float) -> int:
    return round(100 * fraction)


# -- CCE and CCE Autopilot (Kubernetes-style Job) -------------------------------------------------
def _cce_job(uid: str, created: float, updated: float, spec: Body, phase: str, reason: str | None) -> Body:
    status: Body = {"phase": phase}
    if reason is not None:
        status["reason"] = reason
    return {
        "kind": "Job",
        "apiVersion": "v3",
        "metadata": {
            "uid": uid,
            "creationTimestamp": c.go_time(created),
            "updateTimestamp": c.go_time(updated),
        },
        "spec": spec,
        "status": status,
    }


def render_cce(snap: Snapshot) -> Body:
    job = snap.job
    words = c.status_words(job.service)
    word = {"init": words[0], "running": words[1], "success": words[2], "fail": words[3]}
    cluster_uid = job.extra.get("cluster_uid") or job.resource_id
    _, message = _failure(job, embed_code=True)
    sub_types = job.extra.get("sub_job_types") or ["CreatePSMCert", "InstallMaster", "InstallAddons"]
    subs = []
    for i, sub_phase in enumerate(snap.subs):
        begin = job.sub_begin[i] or job.created
        sub_spec: Body = {
            "type": sub_types[i % len(sub_types)],
            "clusterUID": cluster_uid,
            "resourceID": job.sub_resource_ids[i],
            "extendParam": {"serverID": job.sub_resource_ids[i]},
        }
        subs.append(
            _cce_job(
                job.sub_ids[i],
                begin,
                job.sub_end[i] or begin,
                sub_spec,
                word[sub_phase],
                message if sub_phase == "fail" else None,
            )
        )
    spec: Body = {
        "type": job.job_type,
        "clusterUID": cluster_uid,
        "resourceID": job.resource_id,
        "resourceName": job.resource_name,
        "extendParam": dict(job.extra.get("extend_param") or {}),
        "subJobs": subs,
    }
    reason = ""
    if snap.phase == "fail":
        failed = next(
            (s["spec"]["type"] for s, p in zip(subs, snap.subs, strict=True) if p == "fail"), job.job_type
        )
        reason = f"Job failed: subjob {failed} failed: {message}"
    return _cce_job(job.job_id, job.created, job.updated, spec, snap.status, reason)


# -- DWS -----------------------------------------------------------------------------------------
def render_dws(snap: Snapshot) -> Body:
    job = snap.job
    failed = snap.phase == "fail"
    code, message = _failure(job)
    return {
        "job_id": job.job_id,
        "job_name": job.job_type,
        "status": snap.status,
        "progress": f"{_percent(snap.fraction)}%",
        "begin_time": c.naive(job.created),
        "end_time": c.naive(job.ended) if job.ended is not None and snap.phase in TERMINAL else None,
        "failed_code": code if failed else None,
        "failed_detail": message if failed else None,
    }


# -- classic ELB (v1.0 combined API) and the v1 job family (ECS, EVS, IMS, BMS) -------------------
def _v1_times(job: SimJob, snap_phase: str) -> tuple[str, str]:
    end = c.ms_z(job.ended) if job.ended is not None and snap_phase in TERMINAL else ""
    return c.ms_z(job.created), end


def render_elb(snap: Snapshot) -> Body:
    job = snap.job
    begin, end = _v1_times(job, snap.phase)
    code, message = _failure(job)
    failed = snap.phase == "fail"
    return {
        "status": snap.status,
        "entities": {"elb_id": job.resource_id},
        "job_id": job.job_id,
        "job_type": job.job_type,
        "begin_time": begin,
        "end_time": end,
        "error_code": code if failed else None,
        "fail_reason": message if failed else None,
    }


def render_v1(snap: Snapshot) -> Body:
    job = snap.job
    spec = c.SERVICES[job.service]
    words = c.V1_WORDS
    word = {"init": words[0], "running": words[1], "success": words[2], "fail": words[3]}
    code, message = _failure(job)
    begin, end = _v1_times(job, snap.phase)
    failed = snap.phase == "fail"
    entities: Body = {}
    if job.service == "ims":
        entities = {
            "image_id": job.resource_id,
            "image_name": job.resource_name,
            "process_percent": round(snap.fraction, 2),  # a fraction: 1 means done (IMS API reference)
            "current_task": "" if snap.phase in TERMINAL else "createImage",
        }
    elif snap.phase != "init" and snap.subs:
        sub_jobs = []
        for i, sub_phase in enumerate(snap.subs):
            sub_entities: Body = {spec.entity_key: job.sub_resource_ids[i]}
            if sub_phase == "fail" and job.service != "evs":  # EVS's sub-job entities have no such field
                sub_entities["errorcode_message"] = message
            sub_begin, sub_end = job.sub_begin[i], job.sub_end[i]
            sub_jobs.append(
                {
                    "status": word[sub_phase],
                    "entities": sub_entities,
                    "job_id": job.sub_ids[i],
                    "job_type": spec.sub_job_type,
                    "begin_time": c.ms_z(sub_begin) if sub_begin is not None else "",
                    "end_time": c.ms_z(sub_end) if sub_end is not None and sub_phase in TERMINAL else "",
                    "error_code": code if sub_phase == "fail" else None,
                    "fail_reason": message if sub_phase == "fail" else None,
                }
            )
        entities = {"sub_jobs": sub_jobs} if job.service == "evs" else {"sub_jobs_total": len(sub_jobs)}
        entities["sub_jobs"] = sub_jobs
    return {
        "status": snap.status,
        "entities": entities,
        "job_id": job.job_id,
        "job_type": job.job_type,
        "begin_time": begin,
        "end_time": end,
        "error_code": code if failed else None,
        "fail_reason": message if failed else None,
    }


# -- ELB v3 --------------------------------------------------------------------------------------
def render_elbv3(snap: Snapshot) -> Body:
    job = snap.job
    spec = c.SERVICES[job.service]
    words = c.status_words(job.service)
    word = {"init": words[0], "running": words[1], "success": words[2], "fail": words[3]}
    code, message = _failure(job)
    sub_jobs = []
    for i, sub_phase in enumerate(snap.subs):
        sub_begin, sub_end = job.sub_begin[i], job.sub_end[i]
        sub_jobs.append(
            {
                "status": word[sub_phase],
                "begin_time": c.seconds_z(sub_begin) if sub_begin is not None else None,
                "end_time": c.seconds_z(sub_end) if sub_end is not None and sub_phase in TERMINAL else None,
                "job_id": job.sub_ids[i],
                "job_type": spec.sub_job_type,
                "error_code": code if sub_phase == "fail" else "",
                "error_msg": message if sub_phase == "fail" else "",
                "project_id": job.project_id,
                "resource_id": job.sub_resource_ids[i],
                "entities": [{"resource_id": job.sub_resource_ids[i], "resource_type": spec.entity_key}],
            }
        )
    failed = snap.phase == "fail"
    return {
        "job": {
            "status": snap.status,
            "begin_time": c.seconds_z(job.created),
            "end_time": c.seconds_z(job.ended) if job.ended is not None and snap.phase in TERMINAL else None,
            "job_id": job.job_id,
            "job_type": job.job_type,
            "error_code": code if failed else "",
            "error_msg": message if failed else "",
            "project_id": job.project_id,
            "resource_id": job.resource_id,
            "sub_jobs": sub_jobs,
        },
        "request_id": "",  # filled with the response's X-Request-Id
    }


# -- DCS -----------------------------------------------------------------------------------------
def render_dcs(snap: Snapshot) -> Body:
    job = snap.job
    _, message = _failure(job, embed_code=True)
    return {
        "job_id": job.job_id,
        "job_type": job.job_type,
        "status": snap.status,
        "begin_time": c.epoch_ms(job.created),
        "end_time": c.epoch_ms(job.ended) if job.ended is not None and snap.phase in TERMINAL else "",
        "fail_reason": message if snap.phase == "fail" else None,
    }


# -- RDS -----------------------------------------------------------------------------------------
def render_rds(snap: Snapshot) -> Body:
    job = snap.job
    _, message = _failure(job, embed_code=True)
    instance_id = job.resource_id if job.resource_id.endswith("in01") else f"{job.resource_id}in01"
    terminal = snap.phase in TERMINAL
    return {
        "job": {
            "id": job.job_id,
            "name": job.job_type,
            "status": snap.status,
            "created": c.plus0000(job.created),
            "ended": c.plus0000(job.ended) if job.ended is not None and terminal else None,
            # The API reference: a progress like "60%" while running, "" otherwise.
            "process": "" if terminal else f"{_percent(snap.fraction)}%",
            "instance": {"id": instance_id, "name": job.resource_name},
            "entities": {
                "instance": {"type": "Single", "datastore": {"type": "MySQL", "version": "8.0"}},
                "resource_ids": [f"{instance_id}.vm", f"{instance_id}.volume"],
            },
            "fail_reason": message if snap.phase == "fail" else None,
        }
    }


# -- services added as data: the body written where the profile reads it ---------------------------
def _put(target: Body, path: str, value: Any) -> None:
    """Set ``value`` at a dotted path, making the dicts on the way (``"instance.id"``)."""
    *parents, last = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


def _wrap(root: str, job: Body) -> Body:
    """The job object placed under the profile's root (``"job"``, ``"data"``, or a list's ``"jobs.0"``)."""
    if not root:
        return job
    head, _, rest = root.partition(".")
    if rest == "0":  # the count beside the list: DMS's "task_count" (a string), GaussDB NoSQL's "total_count"
        return {head: [job], "task_count": "1"} if head == "tasks" else {head: [job], "total_count": 1}
    return {head: _wrap(rest, job)} if rest else {head: job}


def _profile_job(
    profile: ServiceProfile,
    snap_phase: str,
    status: str,
    fraction: float,
    job: SimJob,
    ids: tuple[str, str, str],
    times: tuple[float, float | None, float],
    *,
    is_sub_job: bool = False,
) -> Body:
    """One job object: status, id, type, resource, times, progress and (failed) error at the profile's paths.

    Each value goes to the first of its paths that indexes no list (``sub_jobs.0.…`` is read from the
    first sub-job, which carries it itself); fields only sub-jobs have are left off the job itself.
    """
    job_id, resource_id, job_type = ids
    begin, end, updated = times
    fmt = c.TIME_FORMATS[JOB_FACTS[profile.key].time_format]
    terminal = snap_phase in TERMINAL
    failed = snap_phase == "fail"
    code, message = _failure(job)
    body: Body = {}
    # A numeric status word is a number in the body (CPH: 1, 2, -1), as the SDK's model types it.
    _put(body, profile.status, int(status) if status.lstrip("-").isdigit() else status)
    values: list[tuple[str, Any]] = [
        ("job_id", job_id),
        ("job_type", job_type),
        ("resource_id", resource_id),
        ("resource_name", job.resource_name),
        ("created_at", fmt(begin)),
        ("started_at", fmt(begin)),
        ("updated_at", fmt(updated)),
        ("ended_at", fmt(end) if terminal and end is not None else ""),
        ("error_code", code if failed else None),
        ("message", message if failed else None),
    ]
    facts = JOB_FACTS[profile.key]
    if profile.progress:
        progress: Any = round(fraction, 2) if facts.progress_style == "fraction" else f"{_percent(fraction)}%"
        values.append(("progress", "" if terminal and facts.progress_style == "percent_text" else progress))
    for name, value in values:
        if name in facts.sub_job_only and not is_sub_job:
            continue
        paths = [p for p in getattr(profile, name) if not any(part.isdigit() for part in p.split("."))]
        if paths:
            _put(body, paths[0], value)
    return body


def render_from_profile(snap: Snapshot) -> Body:
    """A job body of a service added as data, in the shape of its SDK response model.

    Each field sits where the service's profile reads it (the first of its paths), so the conformance
    suite's check that every profile path exists in the SDK's model also covers these bodies.
    """
    job = snap.job
    profile = BUILTIN_PROFILES[job.service]
    words = c.status_words(job.service)
    word = {"init": words[0], "running": words[1], "success": words[2], "fail": words[3]}
    ended = job.ended if job.ended is not None else job.updated
    main = _profile_job(
        profile,
        snap.phase,
        snap.status,
        snap.fraction,
        job,
        (job.job_id, job.resource_id, job.job_type),
        (job.created, ended, job.updated),
    )
    if profile.sub_jobs:
        spec = c.SERVICES[job.service]
        subs = []
        for i, sub_phase in enumerate(snap.subs):
            begin = job.sub_begin[i] or job.created
            sub_end = job.sub_end[i]
            fraction = 1.0 if sub_phase == "success" else 0.0
            subs.append(
                _profile_job(
                    profile,
                    sub_phase,
                    word[sub_phase],
                    fraction,
                    job,
                    (job.sub_ids[i], job.sub_resource_ids[i], spec.sub_job_type),
                    (begin, sub_end, sub_end or begin),
                    is_sub_job=True,
                )
            )
        _put(main, profile.sub_jobs, subs)
    return _wrap(profile.root, main)


RENDERERS: dict[str, Callable[[Snapshot], Body]] = {
    "cce": render_cce,
    "cce-autopilot": render_cce,
    "dws": render_dws,
    "elb": render_elb,
    "ecs": render_v1,
    "evs": render_v1,
    "ims": render_v1,
    "bms": render_v1,
    "elbv3": render_elbv3,
    "dcs": render_dcs,
    "rds": render_rds,
}


def render_job(snap: Snapshot, request_id: str) -> Body:
    body = RENDERERS.get(snap.job.service, render_from_profile)(snap)
    if "request_id" in body:
        body["request_id"] = request_id
    return body


# -- error bodies --------------------------------------------------------------------------------
def apigw_error(code: str, message: str, request_id: str) -> Body:
    """API Gateway's own errors (auth, throttling, unknown API): ``APIGW.xxxx``."""
    return {"error_msg": message, "error_code": code, "request_id": request_id}


def keystone_error(status: int, title: str, message: str) -> Body:
    """IAM's Keystone-compatible ``/v3`` errors, e.g. a wrong password."""
    return {"error": {"code": status, "message": message, "title": title}}


_CCE_ERRORS = {
    400: ("CCE.01400001", "Invalid request.", "BadRequest"),
    403: ("CCE.01403001", "Forbidden.", "Forbidden"),
    404: ("CCE.01404001", "Resource not found.", "NotFound"),
}


def service_error(service: str, status: int, message: str, request_id: str) -> Body:
    """A service's own error document (404 for an unknown job, 400, 403) in that service's shape."""
    if service.startswith("cce"):
        code, text, reason = _CCE_ERRORS[status]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": status,
            "errorCode": code,
            "errorMessage": text,
        }
    if service in c.V1_FAMILY:
        prefix = {"ecs": "Ecs", "evs": "EVS", "ims": "IMG", "bms": "BMS"}[service]
        code = {400: f"{prefix}.0005", 403: f"{prefix}.0003", 404: f"{prefix}.0114"}[status]
        if service == "ims":
            code = {400: "IMG.0001", 403: "IMG.0003", 404: "IMG.0027"}[status]
        return {"error": {"message": message, "code": code}}
    codes = {
        "dws": {400: "DWS.0001", 403: "DWS.0003", 404: "DWS.0015"},
        "elb": {400: "ELB.1001", 403: "ELB.1003", 404: "ELB.1004"},
        "elbv3": {400: "ELB.8902", 403: "ELB.1101", 404: "ELB.8904"},
        "dcs": {400: "DCS.4800", 403: "DCS.4003", 404: "DCS.4801"},
        "rds": {400: "DBS.200001", 403: "DBS.200003", 404: "DBS.280238"},
    }.get(service, {400: "Common.0400", 403: "Common.0403", 404: "Common.0404"})
    body: Body = {"error_code": codes[status], "error_msg": message}
    if service == "elbv3":
        body["request_id"] = request_id
    return body


HTML_500 = (
    "<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n"
    "<center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
HTML_503 = (
    "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    "<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
