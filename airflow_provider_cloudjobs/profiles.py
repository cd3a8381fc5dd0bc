"""Service profiles: where each cloud service keeps its job, as plain data.

Every service answers "what is my job doing" with its own URL, field names and status words. A
profile records those differences as data (dotted paths into the response body and a status
table), so one normaliser serves every service, a new built-in service is one entry in
``BUILTIN_PROFILES``, and users add their own from Python (:func:`register_service`) or from the
connection extra (``"services": {...}``) without a release. Profiles are plain data on purpose:
a trigger carries a custom profile in its kwargs, which must survive Airflow's serde.
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import quote

from airflow_provider_cloudjobs.exceptions import CloudJobsInputError
from airflow_provider_cloudjobs.validation import PARAM_NAME, RESERVED_PARAMS, validate_path_params


class JobPhase(str, Enum):
    """The provider's own job phase, the same for every service."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        return self in (JobPhase.SUCCEEDED, JobPhase.FAILED)


Paths = tuple[str, ...]
"""Dotted paths into a job object (``"spec.subJobs"``, ``"entities.sub_jobs.0.job_id"``); first non-empty wins."""

#: What a job API is scoped by (``ServiceProfile.scope``).
SCOPES = ("project", "domain")
_SERVICE_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def _placeholders(path: str) -> list[str]:
    """The placeholder names of a path template, in order (``string.Formatter`` syntax)."""
    return [name for _, name, _, _ in string.Formatter().parse(path) if name is not None]


def _placeholder_problem(path: str) -> str | None:
    """What is wrong with a path template's placeholders: {project_id}, {job_id} and plain names of
    further ids (``{instance_id}``), each filled from ``path_params``; nothing Python's format would
    interpret (``{0}``, ``{x.y}``, ``{x!r}``, ``{x:>9}``)."""
    try:
        parsed = [
            (name, spec, conv) for _, name, spec, conv in string.Formatter().parse(path) if name is not None
        ]
    except ValueError:
        return "has an unbalanced '{' or '}'"
    bad = sorted({name for name, spec, conv in parsed if spec or conv or not PARAM_NAME.fullmatch(name)})
    if bad:
        return (
            f"has placeholders {bad} that are not plain names (lower-case letters, digits and '_', "
            "like {project_id}, {job_id}, {instance_id})"
        )
    return None


# The status words of the "v1 job" family (ECS, EVS, IMS, BMS, SDRS, EIP; classic ELB; DCS). The SDK models
# document INIT, RUNNING, SUCCESS and FAIL. PENDING_PAYMENT is ECS's word for a yearly/monthly order that
# waits for someone to pay it (CONTRACT): deliberately PENDING, so the wait goes on (until its timeout)
# instead of failing a job that a person can still complete.
_V1_PHASES: Mapping[str, str] = {
    "INIT": "PENDING",
    "PENDING_PAYMENT": "PENDING",
    "RUNNING": "RUNNING",
    "SUCCESS": "SUCCEEDED",
    "FAIL": "FAILED",
}
_CCE_PHASES: Mapping[str, str] = {
    "INITIALIZING": "PENDING",
    "RUNNING": "RUNNING",
    "SUCCESS": "SUCCEEDED",
    "FAILED": "FAILED",
}
# The database services' task words (RDS, DDS, GaussDB, GaussDB NoSQL / openGauss, DDM): Running, Completed,
# Failed; TaurusDB adds Pending ("a delayed task, not run yet").
_DB_PHASES: Mapping[str, str] = {
    "PENDING": "PENDING",
    "RUNNING": "RUNNING",
    "COMPLETED": "SUCCEEDED",
    "FAILED": "FAILED",
}


@dataclass(frozen=True)
class ServiceProfile:
    """How one service exposes its jobs.

    :param key: the ``service=`` value users pass (``"cce"``).
    :param host: endpoint host prefix: the default base URL is ``https://{host}.{region}.{endpoint_domain}``.
    :param path: path template with ``{project_id}`` and ``{job_id}``; may carry a query (``?id={job_id}``).
        Any further placeholder (``{instance_id}``) names an id the caller passes in ``path_params``.
    :param status: where the raw status is; ``phases`` maps its upper-cased value to a :class:`JobPhase` name.
    :param root: where the job object sits in the body (``"job"`` when the body is ``{"job": {...}}``).
    :param progress_scale: multiply a numeric progress by this to get percent (100 for a 0-1 fraction).
    :param sub_jobs: path of the list of sub-jobs; each is normalised with this same profile.
    :param answer_job_id: where the answer to the call that starts a job (create a cluster, servers ...)
        keeps the job id, for ``CloudRequestOperator``: CCE ``status.jobID``, most services ``job_id``.
    :param console_path: console URL path for the job's resource; ``{name}`` placeholders are filled from
        the normalised job (``resource_id``, ``job_id`` ...), ``region``, ``project_id``, or a dotted path
        into the raw job.
    :param scope: what the job API is scoped by: ``"project"`` (most services: a project-scoped token, the
        path's ``{project_id}``) or ``"domain"`` (a global service such as Global EIP: the account's
        ``{domain_id}`` from the connection extra ``domain_id``, a domain-scoped token, or AK/SK signed with
        ``X-Domain-Id`` as the SDK's ``GlobalCredentials`` does).
    :param regional: False for a service with one endpoint for every region (``https://{host}.{endpoint_domain}``);
        ``endpoints`` then overrides it by the service's key only (its host prefix may be another key).
    """

    key: str
    host: str
    path: str
    status: str = "status"
    phases: Mapping[str, str] = field(default_factory=lambda: dict(_V1_PHASES))
    root: str = ""
    job_id: Paths = ("job_id",)
    job_type: Paths = ("job_type",)
    resource_id: Paths = ()
    resource_name: Paths = ()
    error_code: Paths = ("error_code",)
    message: Paths = ("fail_reason",)
    progress: Paths = ()
    progress_scale: float = 1.0
    created_at: Paths = ()
    started_at: Paths = ("begin_time",)
    updated_at: Paths = ()
    ended_at: Paths = ("end_time",)
    sub_jobs: str = ""
    entities: str = "entities"
    console_path: str = ""
    display_name: str = ""
    answer_job_id: Paths = ("job_id",)
    scope: str = "project"
    regional: bool = True

    def __post_init__(self) -> None:
        problems = []
        if not _SERVICE_KEY.match(self.key or ""):
            problems.append(f"key {self.key!r} must be lower-case letters, digits, '-' or '_'")
        if "{job_id}" not in self.path or not self.path.startswith("/"):
            problems.append(f"path {self.path!r} must start with '/' and contain '{{job_id}}'")
        unknown = _placeholder_problem(self.path)
        if unknown:
            problems.append(f"path {self.path!r} {unknown}")
        if not self.host:
            problems.append("host must name the endpoint host prefix (e.g. 'ecs')")
        if self.scope not in SCOPES:
            problems.append(f"scope {self.scope!r} must be one of {', '.join(SCOPES)}")
        elif self.scope == "domain" and "{project_id}" in self.path:
            problems.append(f"path {self.path!r} of a domain-scoped service cannot hold '{{project_id}}'")
        if not isinstance(self.regional, bool):
            problems.append(f"regional must be true or false, got {self.regional!r}")
        bad = {raw: phase for raw, phase in self.phases.items() if phase not in JobPhase.__members__}
        if bad:
            problems.append(
                f"phases {bad} map to unknown phases; use one of {', '.join(JobPhase.__members__)}"
            )
        if problems:
            raise CloudJobsInputError(f"Invalid service profile {self.key!r}: " + "; ".join(problems))
        # Normalise the status table once so lookups are a plain dict hit.
        object.__setattr__(self, "phases", {str(k).upper(): v for k, v in self.phases.items()})
        for name in _LIST_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,) if value else ())
            else:
                object.__setattr__(self, name, tuple(value))

    @property
    def label(self) -> str:
        return self.display_name or self.key.upper()

    @property
    def path_params(self) -> tuple[str, ...]:
        """The ids its job path needs besides the project and the job (``("instance_id",)``); a
        domain-scoped service's ``{domain_id}`` comes from the connection, not from ``path_params``."""
        reserved = (RESERVED_PARAMS | {"domain_id"}) if self.scope == "domain" else RESERVED_PARAMS
        return tuple(dict.fromkeys(n for n in _placeholders(self.path) if n not in reserved))

    def checked_path_params(self, path_params: Any) -> dict[str, str]:
        """``path_params`` checked for this service: every id its path needs, no other, each a plain id."""
        params = validate_path_params(path_params)
        missing = [name for name in self.path_params if name not in params]
        unknown = sorted(set(params) - set(self.path_params))
        if missing:
            raise CloudJobsInputError(
                f"{self.label} jobs live at {self.path}: pass path_params with {missing} "
                f"(e.g. path_params={{{missing[0]!r}: '<id>'}})"
            )
        if unknown:
            needed = f"only {list(self.path_params)}" if self.path_params else "none"
            raise CloudJobsInputError(
                f"path_params {unknown} are not in {self.label}'s job path {self.path} (it takes {needed})"
            )
        return params

    def job_path(self, project_id: str, job_id: str, path_params: Any = None, *, domain_id: str = "") -> str:
        """The job's URL path, every value percent-encoded (ids are checked before, by the callers)."""
        values = {**self.checked_path_params(path_params), "project_id": project_id, "job_id": job_id}
        if self.scope == "domain":
            values["domain_id"] = domain_id
        return self.path.format(**{name: quote(value, safe="") for name, value in values.items()})

    def phase_of(self, raw_status: Any) -> JobPhase:
        if raw_status is None:
            return JobPhase.UNKNOWN
        return JobPhase(self.phases.get(str(raw_status).strip().upper(), "UNKNOWN"))

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for trigger kwargs and connection extra."""
        data = dataclasses.asdict(self)
        data["phases"] = dict(self.phases)
        for name in _LIST_FIELDS:
            data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, key: str, data: Mapping[str, Any]) -> ServiceProfile:
        """Build a profile from plain data; ``"extends": "<built-in key>"`` starts from that profile."""
        data = dict(data)
        base_key = data.pop("extends", None)
        data.pop("key", None)
        unknown = set(data) - _FIELD_NAMES
        if unknown:
            raise CloudJobsInputError(
                f"Service profile {key!r} has unknown field(s) {sorted(unknown)}; known: {sorted(_FIELD_NAMES)}"
            )
        if base_key is not None:
            base = BUILTIN_PROFILES.get(str(base_key))
            if base is None:
                raise CloudJobsInputError(
                    f"Service profile {key!r} extends unknown built-in service {base_key!r}; "
                    f"built-in: {', '.join(sorted(BUILTIN_PROFILES))}"
                )
            return dataclasses.replace(base, key=key, **data)
        missing = {"host", "path"} - set(data)
        if missing:
            raise CloudJobsInputError(f"Service profile {key!r} needs {sorted(missing)} (or 'extends')")
        return cls(key=key, **data)

    def console_url(
        self, base: str, job: Mapping[str, Any], raw_job: Mapping[str, Any], /, **values: str
    ) -> str:
        """The console URL of the job's resource, or ``""`` when a placeholder has no value."""
        if not self.console_path:
            return ""
        missing = False

        def fill(match: re.Match[str]) -> str:
            nonlocal missing
            name = match.group(1)
            value = values.get(name) or job.get(name) or dig(raw_job, name)
            if value in (None, "") or isinstance(value, (dict, list)):
                missing = True
                return ""
            return str(value)

        path = _PLACEHOLDER.sub(fill, self.console_path)
        return "" if missing else base.rstrip("/") + path


_PATH_FIELDS = (
    "job_id",
    "job_type",
    "resource_id",
    "resource_name",
    "error_code",
    "message",
    "progress",
    "created_at",
    "started_at",
    "updated_at",
    "ended_at",
)
# Paths fields that are not paths into a job object: ``answer_job_id`` reads the answer to the creating call.
_LIST_FIELDS = (*_PATH_FIELDS, "answer_job_id")
_FIELD_NAMES = {f.name for f in dataclasses.fields(ServiceProfile)} - {"key"}


def dig(data: Any, path: str) -> Any:
    """Follow a dotted path through dicts and lists (numeric segments index lists); None when absent."""
    if not path:
        return data
    current = data
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
        if current is None:
            return None
    return current


def first_value(data: Any, paths: Paths) -> Any:
    """The first value along ``paths`` that is not None or an empty string."""
    for path in paths:
        value = dig(data, path)
        if value not in (None, ""):
            return value
    return None


def _v1(key: str, host: str, **overrides: Any) -> ServiceProfile:
    """A profile of the ``/v1/{project_id}/jobs/{job_id}`` family (ECS, EVS, IMS, BMS)."""
    fields: dict[str, Any] = {
        "message": ("fail_reason", "entities.errorcode_message"),
        "sub_jobs": "entities.sub_jobs",
        **overrides,
    }
    return ServiceProfile(key=key, host=host, path="/v1/{project_id}/jobs/{job_id}", **fields)


def _db(key: str, host: str, display_name: str, **overrides: Any) -> ServiceProfile:
    """A database service's task: ``GET /v3/{project_id}/jobs?id={job_id}``, the task under ``job``."""
    fields: dict[str, Any] = {
        "path": "/v3/{project_id}/jobs?id={job_id}",
        "root": "job",
        "phases": _DB_PHASES,
        "job_id": ("id",),
        "job_type": ("name",),
        "resource_id": ("instance.id",),
        "resource_name": ("instance.name",),
        "error_code": (),
        "message": ("fail_reason",),
        "progress": ("process",),
        "created_at": ("created",),
        "started_at": ("created",),
        "ended_at": ("ended",),
        "entities": "",
        "console_path": f"/{host}/?region={{region}}",
        **overrides,
    }
    return ServiceProfile(key=key, host=host, display_name=display_name, **fields)


def _cce(key: str, path: str, console_path: str, display_name: str) -> ServiceProfile:
    return ServiceProfile(
        key=key,
        host="cce",
        path=path,
        status="status.phase",
        phases=_CCE_PHASES,
        job_id=("metadata.uid",),
        job_type=("spec.type",),
        resource_id=("spec.resourceID",),
        resource_name=("spec.resourceName",),
        error_code=(),  # JobStatus has phase and reason only (the code, if any, is inside the reason)
        message=("status.reason",),
        created_at=("metadata.creationTimestamp",),
        started_at=(),
        updated_at=("metadata.updateTimestamp",),
        ended_at=(),
        sub_jobs="spec.subJobs",
        entities="spec.extendParam",
        console_path=console_path,
        display_name=display_name,
        answer_job_id=("status.jobID",),
    )


# DMS (Kafka, RabbitMQ, RocketMQ) background tasks: ShowBackgroundTask documents CREATED, EXECUTING, SUCCESS,
# FAILED, DELETED and CANCELLED. A deleted or cancelled task will not finish: FAILED, so the task says so.
_DMS_PHASES: Mapping[str, str] = {
    "CREATED": "PENDING",
    "EXECUTING": "RUNNING",
    "SUCCESS": "SUCCEEDED",
    "FAILED": "FAILED",
    "DELETED": "FAILED",
    "CANCELLED": "FAILED",
}


def _dms(key: str, display_name: str) -> ServiceProfile:
    """A DMS instance's background task: the answer is a list holding the one task; the instance is in the
    path only (``path_params={"instance_id": ...}``). The body's ``updated_at`` is the task's end time."""
    return ServiceProfile(
        key=key,
        host="dms",
        path="/v2/{project_id}/instances/{instance_id}/tasks/{job_id}",
        root="tasks.0",
        phases=_DMS_PHASES,
        job_id=("id",),
        job_type=("name",),
        error_code=(),
        message=(),
        created_at=("created_at",),
        started_at=("created_at",),
        ended_at=("updated_at",),
        entities="",
        console_path="/dms/?region={region}",
        display_name=display_name,
    )


# Every profile is checked against Huawei Cloud's official Python SDK by tests/conformance: the request
# path of its job API, that every field read here exists in the SDK's response model, and that every
# status value the SDK documents maps to a phase on purpose. Where the SDK documents no status values, a
# comment says where the vocabulary comes from.
BUILTIN_PROFILES: dict[str, ServiceProfile] = {
    profile.key: profile
    for profile in (
        _cce(
            "cce",
            "/api/v3/projects/{project_id}/jobs/{job_id}",
            "/cce2.0/?region={region}#/cce/cluster/{spec.clusterUID}/info",
            "CCE",
        ),
        _cce(
            "cce-autopilot",
            "/autopilot/v3/projects/{project_id}/jobs/{job_id}",
            "/cce2.0/?region={region}#/autopilot/cluster/{spec.clusterUID}/info",
            "CCE Autopilot",
        ),
        ServiceProfile(
            key="dws",
            host="dws",
            path="/v1.0/{project_id}/job/{job_id}",
            # ListJobDetails documents INIT, WAITING, RUNNING, DELAY_SCHEDULED, FAIL, SUCCESS, STOP. A stopped
            # job will not finish on its own: FAILED, so the task says so instead of waiting to its timeout.
            phases={
                "INIT": "PENDING",
                "WAITING": "PENDING",
                "DELAY_SCHEDULED": "PENDING",
                "RUNNING": "RUNNING",
                "SUCCESS": "SUCCEEDED",
                "FAIL": "FAILED",
                "STOP": "FAILED",
            },
            job_type=("job_name",),
            error_code=("failed_code",),
            message=("failed_detail",),
            progress=("progress",),
            entities="",
            console_path="/dws/?region={region}#/dws/management/list",
            display_name="DWS",
        ),
        # Classic ELB's v1.0 "combined API" is not in the official SDK (retired API). Vocabulary and fields
        # from its API reference page "Asynchronous Job Query (Discarded)": SUCCESS, FAIL, RUNNING, INIT.
        ServiceProfile(
            key="elb",
            host="elb",
            path="/v1.0/{project_id}/jobs/{job_id}",
            resource_id=("entities.elb_id",),
            console_path="/vpc/?region={region}#/elb/detail/basicInfo?ulbId={resource_id}",
            display_name="ELB",
        ),
        _v1(
            "ecs",
            "ecs",
            resource_id=("entities.server_id", "entities.sub_jobs.0.entities.server_id"),
            console_path="/ecm/?region={region}#/ecs/manager/ecsDetail?instanceId={resource_id}",
            display_name="ECS",
        ),
        _v1(
            "evs",
            "evs",
            message=("fail_reason",),  # EVS's entities have no errorcode_message
            resource_id=("entities.volume_id", "entities.sub_jobs.0.entities.volume_id"),
            resource_name=("entities.name", "entities.sub_jobs.0.entities.name"),
            console_path="/ecm/?region={region}#/evs/manager/volumeDetail?volumeId={resource_id}",
            display_name="EVS",
        ),
        _v1(
            "ims",
            "ims",
            # IMS keeps its sub-jobs in entities.sub_jobs_result and its own error in entities.error_code/error.
            sub_jobs="entities.sub_jobs_result",
            error_code=("error_code", "entities.error_code"),
            message=("fail_reason", "entities.error"),
            resource_id=("entities.image_id",),
            resource_name=("entities.image_name",),
            progress=("entities.process_percent",),
            progress_scale=100.0,
            console_path="/ims/?region={region}#/ims/manager/imageDetail?imageId={resource_id}",
            display_name="IMS",
        ),
        _v1(
            "bms",
            "bms",
            resource_id=("entities.server_id", "entities.sub_jobs.0.entities.server_id"),
            console_path="/bms/?region={region}#/bms/manager/bmsDetail?instanceId={resource_id}",
            display_name="BMS",
        ),
        _v1(
            "sdrs",
            "sdrs",
            message=("fail_reason",),
            resource_id=(
                "entities.server_group_id",
                "entities.protected_instance_id",
                "entities.replication_pair_id",
                "entities.sub_jobs.0.entities.server_group_id",
                "entities.sub_jobs.0.entities.protected_instance_id",
            ),
            console_path="/sdrs/?region={region}",
            display_name="SDRS",
        ),
        # EIP (VPC endpoint): the SDK documents no status values for ShowResourcesJobDetail; the vocabulary
        # (SUCCESS, RUNNING, FAIL, INIT) is the one of the EIP API reference page "Querying the Job Status",
        # the ECS-family job service's. Sub-jobs are "the same shape as the job".
        _v1(
            "eip",
            "vpc",
            message=("fail_reason",),
            console_path="/vpc/?region={region}#/eip/eipList",
            display_name="EIP",
        ),
        ServiceProfile(
            key="elbv3",
            host="elb",
            path="/v3/{project_id}/elb/jobs/{job_id}",
            root="job",
            # ShowJob's status field lists no values; ListJobs' status filter (same job records) does.
            phases={
                "INIT": "PENDING",
                "RUNNING": "RUNNING",
                "ROLLBACKING": "RUNNING",
                "COMPLETE": "SUCCEEDED",
                "SUCCESS": "SUCCEEDED",
                "FAIL": "FAILED",
                "ROLLBACK_FAIL": "FAILED",
                "CANCEL": "FAILED",
            },
            resource_id=("resource_id",),
            message=("error_msg",),
            created_at=(),
            started_at=("begin_time",),
            updated_at=(),
            sub_jobs="sub_jobs",
            entities="",
            console_path="/vpc/?region={region}#/elb/detail/basicInfo?ulbId={resource_id}",
            display_name="ELB v3",
        ),
        # DCS: the SDK's ShowJobInfo model lists no status values; the vocabulary (INIT, RUNNING, SUCCESS,
        # FAIL) is its API reference page's, "Querying the Job Execution Result of a Tenant" (ShowJobInfo).
        # The body has no error code and no resource id.
        ServiceProfile(
            key="dcs",
            host="dcs",
            path="/v2/{project_id}/jobs/{job_id}",
            error_code=(),
            entities="",
            console_path="/dcs/?region={region}#/dcs/manager/dcsList",
            display_name="DCS",
        ),
        _db(
            "rds",
            "rds",
            "RDS",
            console_path="/rds/?region={region}#/rds/management/instanceDetail?instanceId={resource_id}",
        ),
        _db("dds", "dds", "DDS", progress=("progress",)),
        _db("gaussdb", "gaussdb", "GaussDB (for MySQL) / TaurusDB"),
        # GaussDB (openGauss): the SDK documents no status values for ShowJobDetail; the vocabulary (Running,
        # Completed, Failed) is its API reference page's "Querying Task Details".
        _db("gaussdb-opengauss", "gaussdb-opengauss", "GaussDB", progress=("progress",)),
        # GaussDB NoSQL answers a list: the task is the first (only) entry of "jobs".
        _db(
            "gaussdb-nosql",
            "gaussdb-nosql",
            "GaussDB NoSQL",
            root="jobs.0",
            progress=("progress",),
            created_at=("start_time",),
            started_at=("start_time",),
            ended_at=("end_time",),
        ),
        _db(
            "ddm",
            "ddm",
            "DDM",
            path="/v3/{project_id}/jobs/{job_id}",
            message=(),
            created_at=("created_time",),
            started_at=("created_time",),
            ended_at=("end_time",),
        ),
        ServiceProfile(
            key="sfs-turbo",
            host="sfs-turbo",
            path="/v1/{project_id}/sfs-turbo/jobs/{job_id}",
            phases={"WAITING": "PENDING", "RUNNING": "RUNNING", "SUCCESS": "SUCCEEDED", "FAILED": "FAILED"},
            sub_jobs="sub_jobs",
            entities="",
            console_path="/sfs/?region={region}#/sfs/turbo/list",
            display_name="SFS Turbo",
            # The AD domain calls answer job_id, the LDAP configuration calls jobId. (CreateShare and
            # ExpandShare answer the file system's id, not a job.)
            answer_job_id=("job_id", "jobId"),
        ),
        ServiceProfile(
            key="cfw",
            host="cfw",
            path="/v3/{project_id}/jobs/{job_id}",
            root="data",
            phases={"RUNNING": "RUNNING", "SUCCESS": "SUCCEEDED", "FAILED": "FAILED"},
            job_id=("id",),
            job_type=(),
            error_code=(),
            message=(),
            entities="",
            console_path="/cfw/?region={region}",
            display_name="CFW",
        ),
        # CPH answers its status as a number: 1 running, 2 success, -1 failed.
        ServiceProfile(
            key="cph",
            host="cph",
            path="/v1/{project_id}/cloud-phone/jobs/{job_id}",
            phases={"1": "RUNNING", "2": "SUCCEEDED", "-1": "FAILED"},
            job_type=(),
            resource_id=("phone_id", "server_id"),
            message=("error_msg", "execute_msg"),
            entities="",
            console_path="/cph/?region={region}",
            display_name="CPH",
        ),
        # Workspace Application Streaming (app servers): errors and resources are on the sub-jobs only; the
        # job's own error comes from its failed sub-job. Sub-jobs also report ABNORMAL and ABORTING
        # (cancelled), which end them: FAILED; ROLLBACK (rolling back) is still running.
        ServiceProfile(
            key="workspace-app",
            host="appstream",
            path="/v2/{project_id}/job/{job_id}",
            phases={
                "WAITING": "PENDING",
                "RUNNING": "RUNNING",
                "SUCCESS": "SUCCEEDED",
                "FAILED": "FAILED",
                "ABNORMAL": "FAILED",
                "ABORTING": "FAILED",
                "ROLLBACK": "RUNNING",
            },
            job_id=("id",),
            resource_id=("sub_jobs.0.job_resource_info.resource_id", "job_resource_info.resource_id"),
            resource_name=("sub_jobs.0.job_resource_info.resource_name", "job_resource_info.resource_name"),
            message=("error_message",),
            sub_jobs="sub_jobs",
            entities="",
            console_path="/appstream/?region={region}",
            display_name="Workspace Application Streaming",
        ),
        ServiceProfile(
            key="swr",
            host="swr-api",
            path="/v2/{project_id}/jobs/{job_id}",
            # ShowInstanceJob's status lists no values; ListInstanceJobs' status filter does.
            phases={
                "CREATING": "PENDING",
                "INITIALIZING": "PENDING",
                "RUNNING": "RUNNING",
                "SUCCESS": "SUCCEEDED",
                "FAILED": "FAILED",
            },
            job_id=("id",),
            job_type=("type",),
            resource_id=("resource_id", "instance_id"),
            resource_name=("resource_name",),
            error_code=(),
            message=("reason",),
            created_at=("created_at",),
            started_at=(),
            updated_at=("updated_at",),
            ended_at=(),
            entities="",
            console_path="/swr/?region={region}",
            display_name="SWR",
        ),
        _dms("kafka", "DMS for Kafka"),
        _dms("rabbitmq", "DMS for RabbitMQ"),
        _dms("rocketmq", "DMS for RocketMQ"),
        # APIG's asynchronous API import/export tasks, under their gateway instance. The body has no times,
        # no error fields (task_result is a JSON text of the imported or failed APIs).
        ServiceProfile(
            key="apig",
            host="apig",
            path="/v2/{project_id}/apigw/instances/{instance_id}/async-tasks/{job_id}",
            status="task_status",
            phases={
                "WAITING": "PENDING",
                "PROCESSING": "RUNNING",
                "SUCCEED": "SUCCEEDED",
                "FAILED": "FAILED",
            },
            job_id=("task_id",),
            job_type=("task_type",),
            error_code=(),
            message=(),
            started_at=(),
            ended_at=(),
            entities="",
            console_path="/apig/?region={region}",
            display_name="APIG",
            # ImportApiDefinitionsAsync / ExportApiDefinitionsAsync answer task_id. (The job_id that
            # CreateInstanceV2 answers is an instance's job, not an async task: not readable here.)
            answer_job_id=("task_id",),
        ),
        # GES graph jobs: ShowJob2 documents pending, running, success, failed.
        ServiceProfile(
            key="ges",
            host="ges",
            path="/v2/{project_id}/graphs/{graph_id}/jobs/{job_id}/status",
            phases={"PENDING": "PENDING", "RUNNING": "RUNNING", "SUCCESS": "SUCCEEDED", "FAILED": "FAILED"},
            job_type=("job_type",),
            resource_name=("related_graph",),
            error_code=(),
            message=("fail_reason",),
            entities="",
            console_path="/ges/?region={region}",
            display_name="GES",
        ),
        # CSE engine jobs: the SDK documents no status values for ShowEngineJob; the vocabulary (Init,
        # Executing, Error, Timeout, Finished) is its API reference page's, "Querying Details About a
        # Microservice Engine Job" (cse_06_0033). Times are epoch milliseconds; the job id is a number.
        ServiceProfile(
            key="cse",
            host="cse",
            path="/v2/{project_id}/enginemgr/engines/{engine_id}/jobs/{job_id}",
            phases={
                "INIT": "PENDING",
                "EXECUTING": "RUNNING",
                "FINISHED": "SUCCEEDED",
                "ERROR": "FAILED",
                "TIMEOUT": "FAILED",
            },
            job_id=("id",),
            job_type=("type",),
            resource_id=("engineId",),
            error_code=(),
            message=(),
            started_at=("startTime",),
            ended_at=("endTime",),
            entities="",
            console_path="/cse/?region={region}",
            display_name="CSE",
            answer_job_id=(
                "jobId",
                "job_id",
            ),  # CreateEngine and DeleteEngine answer jobId, ResizeEngine job_id
        ),
        # CBR tasks (operation logs): the SDK documents no status values for ShowOpLog; the vocabulary
        # (success, skipped, failed, running, timeout, waiting) is its API reference page's, "Querying a
        # Single Task" (ShowOpLog). A skipped or timed-out task did not do what was asked: FAILED.
        ServiceProfile(
            key="cbr",
            host="cbr",
            path="/v3/{project_id}/operation-logs/{job_id}",
            root="operation_log",
            phases={
                "WAITING": "PENDING",
                "RUNNING": "RUNNING",
                "SUCCESS": "SUCCEEDED",
                "FAILED": "FAILED",
                "SKIPPED": "FAILED",
                "TIMEOUT": "FAILED",
            },
            job_id=("id",),
            job_type=("operation_type",),
            resource_id=("extra_info.resource.id",),
            resource_name=("extra_info.resource.name",),
            error_code=("error_info.code",),
            message=("error_info.message",),
            created_at=("created_at",),
            started_at=("started_at",),
            updated_at=("updated_at",),
            ended_at=("ended_at",),
            entities="",
            console_path="/cbr/?region={region}",
            display_name="CBR",
            answer_job_id=("operation_log_id",),  # UpdateExpirationTime; other calls answer no task id
        ),
        # Global EIP (SDK huaweicloudsdkgeip.v3 ShowJobs): a global service. Its client is built with
        # GlobalCredentials (X-Domain-Id, the account's id in the path) and its one endpoint has no region
        # (GeipRegion: https://eip.myhuaweicloud.com). The SDK documents no status values (ShowJob.status is
        # "状态"); the API reference page "查询Job详情 - ShowJobs" (support.huaweicloud.com/api-eip/ShowJobs.html)
        # lists none either, its response example answers FINISH_SUCC. FINISH_ROLLBACK_SUCC (the job failed
        # and was rolled back) is in no document: terraform-provider-huaweicloud's Global EIP resources fail
        # on it. Every other word is UNKNOWN: warned about once, and the wait goes on to its timeout.
        ServiceProfile(
            key="geip",
            host="eip",
            path="/v3/{domain_id}/geip/jobs/{job_id}",
            scope="domain",
            regional=False,
            root="job",
            phases={"FINISH_SUCC": "SUCCEEDED", "FINISH_ROLLBACK_SUCC": "FAILED"},
            job_id=("id",),
            job_type=("action",),
            error_code=("error_code",),
            message=("error_message", "error_task"),
            started_at=("start_time",),
            ended_at=("end_time",),
            entities="",
            display_name="Global EIP",
            # CreateGlobalEip, AssociateInstance, DisassociateInstance ... answer job_id.
        ),
    )
}

_user_profiles: dict[str, ServiceProfile] = {}


def register_service(profile: ServiceProfile) -> ServiceProfile:
    """Add (or replace) a service for this process, e.g. from a DAG file or a plugin.

    The trigger carries non-built-in profiles in its kwargs, so the triggerer needs no registration.
    """
    _user_profiles[profile.key] = profile
    return profile


def get_profile(service: str, extra_services: Mapping[str, ServiceProfile] | None = None) -> ServiceProfile:
    """Look a service up: connection-defined first, then registered from Python, then built in."""
    if not isinstance(service, str) or not service.strip():
        raise CloudJobsInputError("service must be a non-empty string such as 'cce'")
    key = service.strip().lower()
    for table in (extra_services or {}, _user_profiles, BUILTIN_PROFILES):
        if key in table:
            return table[key]
    known = sorted({*BUILTIN_PROFILES, *_user_profiles, *(extra_services or {})})
    raise CloudJobsInputError(f"Unknown service {service!r}; known services: {', '.join(known)}")


def is_builtin(profile: ServiceProfile) -> bool:
    return BUILTIN_PROFILES.get(profile.key) == profile
