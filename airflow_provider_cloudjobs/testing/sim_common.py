"""Constants, identifiers and time formats shared by the cloud simulator's modules.

Each cloud service writes its timestamps and ids in its own way; the simulator copies them so the
provider's parsers meet the same strings they meet in production (seeds 000-004 and the services'
API references).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

DOMAIN_NAME = "demo-domain"
DOMAIN_ID = "d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f"
USER_NAME = "demo-user"
USER_ID = "e1f2a3b4c5d6e7f8091a2b3c4d5e6f70"
PASSWORD = "demo-password"
ACCESS_KEY = "DEMOACCESSKEY0000001"
SECRET_KEY = "demo-secret-key"
PROJECT_ID = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
REGION = "cn-north-4"
# A second project of the same account, so tests can show a token scoped elsewhere gets 403.
OTHER_PROJECT_ID = "1b2c3d4e5f6a40829304b5c6d7e8f9a0"
OTHER_REGION = "cn-east-3"

DEFAULT_TOKEN_TTL = 86400.0
DEFAULT_POLLS_TO_FINISH = 3

V1_FAMILY = ("ecs", "evs", "ims", "bms")
"""Services whose jobs the ECS-style renderer writes (``GET /v1/{project_id}/jobs/{job_id}``)."""
V1_PATH_SERVICES = (*V1_FAMILY, "sdrs", "eip")
"""Every service answering on ``GET /v1/{project_id}/jobs/{job_id}`` (one job service behind them)."""
NO_SUB_JOBS = (
    *("ims", "dcs", "rds", "dws", "elb", "cfw", "swr", "cph"),
    *("dds", "gaussdb", "gaussdb-opengauss", "gaussdb-nosql", "ddm"),
    *("kafka", "rabbitmq", "rocketmq", "apig", "ges", "cse", "cbr", "geip"),
)
"""Services whose job documents have no sub-jobs."""


@dataclass(frozen=True)
class ServiceSpec:
    """What a default job of one service looks like: its type words and the failure it reports."""

    key: str
    job_type: str
    sub_job_type: str
    entity_key: str
    fail_code: str
    fail_message: str
    id_style: str  # "hex32" (ECS family, ELB, DWS) or "uuid"


SERVICES: dict[str, ServiceSpec] = {
    spec.key: spec
    for spec in (
        ServiceSpec(
            "cce",
            "CreateCluster",
            "InstallMaster",
            "serverID",
            "CCE.01400008",
            "Insufficient server quota",
            "uuid",
        ),
        ServiceSpec(
            "cce-autopilot",
            "CreateCluster",
            "InstallMaster",
            "serverID",
            "CCE.01400008",
            "Insufficient server quota",
            "uuid",
        ),
        ServiceSpec(
            "dws",
            "ecfClusterElbCreateJob",
            "",
            "",
            "CreateELBTask-fail:DWS.0114",
            "DWS.0114:ELB private IP is not configured.",
            "hex32",
        ),
        ServiceSpec("elb", "createELB", "", "elb_id", "ELB.1050", "Insufficient EIP quota.", "hex32"),
        ServiceSpec(
            "ecs",
            "createServer",
            "createSingleServer",
            "server_id",
            "Ecs.0013",
            "The current EIP quota limit has been reached. Apply to increase the quota.",
            "hex32",
        ),
        ServiceSpec(
            "evs",
            "createVolume",
            "createSingleVolume",
            "volume_id",
            "EVS.2024",
            "Insufficient volume quota.",
            "hex32",
        ),
        ServiceSpec(
            "ims",
            "imsCreateImageByInstance",
            "",
            "image_id",
            "IMG.0024",
            "Failed to create the image from the ECS.",
            "hex32",
        ),
        ServiceSpec(
            "bms",
            "baremetalBatchCreate",
            "baremetalSingleCreate",
            "server_id",
            "BMS.0011",
            "Insufficient bare metal server resources.",
            "hex32",
        ),
        ServiceSpec(
            "elbv3",
            "batchCreateV3Loadbalancer",
            "createLoadbalancer",
            "loadbalancer",
            "ELB.8902",
            "Insufficient load balancer quota.",
            "uuid",
        ),
        ServiceSpec(
            "dcs", "masterStandbySwapJob", "", "", "DCS.4045", "Master/standby switchover failed.", "uuid"
        ),
        ServiceSpec(
            "rds", "CreateMysqlInstance", "", "", "DBS.280238", "Failed to create the DB instance.", "uuid"
        ),
        ServiceSpec(
            "sdrs",
            "createProtectionGroupNoCG",
            "createProtectedInstanceNoCG",
            "protected_instance_id",
            "SDRS.1202",
            "Insufficient quota.",
            "hex32",
        ),
        ServiceSpec(
            "eip", "createEip", "createSingleEip", "", "VPC.0521", "Insufficient EIP quota.", "hex32"
        ),
        ServiceSpec("dds", "CreateMongoDB", "", "", "DBS.200022", "Failed to create the instance.", "uuid"),
        ServiceSpec(
            "gaussdb", "CreateGaussDBforMySQLInstance", "", "", "DBS.280238", "Creation failed.", "uuid"
        ),
        ServiceSpec(
            "gaussdb-opengauss", "CreateGaussDBV5Instance", "", "", "DBS.280238", "Creation failed.", "uuid"
        ),
        ServiceSpec("gaussdb-nosql", "CreateInstance", "", "", "DBS.200022", "Creation failed.", "uuid"),
        ServiceSpec("ddm", "CreateDDMInstance", "", "", "DBS.300002", "Creation failed.", "uuid"),
        ServiceSpec(
            "sfs-turbo", "createShare", "createShareVM", "", "SFS.TC.0008", "Insufficient quota.", "uuid"
        ),
        ServiceSpec("cfw", "createFirewall", "", "", "CFW.00109003", "Creation failed.", "uuid"),
        ServiceSpec("cph", "createCloudPhoneServer", "", "", "CPS.0005", "Insufficient resources.", "hex32"),
        ServiceSpec(
            "workspace-app", "CREATE_SERVER", "CREATE_SERVER", "", "WKS.0001", "Insufficient quota.", "uuid"
        ),
        ServiceSpec("swr", "CreateInstance", "", "", "SVCSTG.SWR.4000", "Creation failed.", "uuid"),
        ServiceSpec("kafka", "bindInstancePublicIp", "", "", "DMS.00400001", "Task failed.", "hex32"),
        ServiceSpec("rabbitmq", "bindInstancePublicIp", "", "", "DMS.00400001", "Task failed.", "hex32"),
        ServiceSpec("rocketmq", "bindInstancePublicIp", "", "", "DMS.00400001", "Task failed.", "hex32"),
        ServiceSpec("apig", "import_api", "", "", "APIG.3001", "Import failed.", "hex32"),
        ServiceSpec("ges", "ImportGraph", "", "", "GES.8011", "Failed to import the graph.", "hex32"),
        ServiceSpec("cse", "Create", "", "", "SVCSTG.00500400", "Engine job failed.", "hex32"),
        ServiceSpec("cbr", "backup", "", "", "BackupService.9900", "Backup failed.", "uuid"),
        ServiceSpec("geip", "CreateGlobalEip", "", "", "GEIP.0001", "Insufficient global EIP quota.", "uuid"),
    )
}

# Raw status words per service: (initial, running, success, failure).
STATUS_WORDS: dict[str, tuple[str, str, str, str]] = {
    "cce": ("Initializing", "Running", "Success", "Failed"),
    "cce-autopilot": ("Initializing", "Running", "Success", "Failed"),
    "elbv3": ("INIT", "RUNNING", "COMPLETE", "FAIL"),
    "rds": ("Running", "Running", "Completed", "Failed"),
    "dds": ("Running", "Running", "Completed", "Failed"),
    "gaussdb": ("Pending", "Running", "Completed", "Failed"),
    "gaussdb-opengauss": ("Running", "Running", "Completed", "Failed"),
    "gaussdb-nosql": ("Running", "Running", "Completed", "Failed"),
    "ddm": ("Running", "Running", "Completed", "Failed"),
    "sfs-turbo": ("waiting", "running", "success", "failed"),
    "cfw": ("Running", "Running", "Success", "Failed"),
    "cph": ("1", "1", "2", "-1"),
    "workspace-app": ("WAITING", "RUNNING", "SUCCESS", "FAILED"),
    "swr": ("Initializing", "Running", "Success", "Failed"),
    "kafka": ("CREATED", "EXECUTING", "SUCCESS", "FAILED"),
    "rabbitmq": ("CREATED", "EXECUTING", "SUCCESS", "FAILED"),
    "rocketmq": ("CREATED", "EXECUTING", "SUCCESS", "FAILED"),
    "apig": ("waiting", "processing", "succeed", "failed"),
    "ges": ("pending", "running", "success", "failed"),
    "cse": ("Init", "Executing", "Finished", "Error"),
    "cbr": ("waiting", "running", "success", "failed"),
    # No document names Global EIP's in-progress words: the simulator says RUNNING, which the provider reads
    # as UNKNOWN (one warning, the wait goes on), as it would any word it was never told.
    "geip": ("RUNNING", "RUNNING", "FINISH_SUCC", "FINISH_ROLLBACK_SUCC"),
}
DOMAIN_SCOPED = ("geip",)
"""Services whose jobs live under the account (``/v3/{domain_id}/...``), not a project."""
V1_WORDS = ("INIT", "RUNNING", "SUCCESS", "FAIL")


def status_words(service: str) -> tuple[str, str, str, str]:
    return STATUS_WORDS.get(service, V1_WORDS)


def new_id(style: str) -> str:
    """A resource or job id in the service's own style (32 hex like ECS, or a dashed UUID like CCE)."""
    return uuid.uuid4().hex if style == "hex32" else str(uuid.uuid4())


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def go_time(ts: float) -> str:
    """CCE's Go ``time.Time`` string: ``2018-08-02 08:12:40.672772389 +0000 UTC``."""
    dt = _utc(ts)
    nanos = round((ts - int(ts)) * 1e9) % 1_000_000_000
    return dt.strftime("%Y-%m-%d %H:%M:%S") + f".{nanos:09d} +0000 UTC"


def ms_z(ts: float) -> str:
    """ECS family / classic ELB: ``2015-09-17T03:05:38.756Z``."""
    dt = _utc(ts)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{dt.microsecond // 1000:03d}Z"


def seconds_z(ts: float) -> str:
    """ELB v3: ``2024-03-23T08:20:42Z``."""
    return _utc(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def naive(ts: float) -> str:
    """DWS: ``2022-11-09T20:25:00`` (no zone)."""
    return _utc(ts).strftime("%Y-%m-%dT%H:%M:%S")


def plus0000(ts: float) -> str:
    """RDS: ``2018-08-06T10:41:14+0000``."""
    return _utc(ts).strftime("%Y-%m-%dT%H:%M:%S+0000")


def epoch_ms(ts: float) -> str:
    """DCS: milliseconds since the epoch as a string, ``1684191545379``."""
    return str(int(ts * 1000))


def space_seconds(ts: float) -> str:
    """SFS Turbo: ``2016-01-02 15:04:05`` (UTC, no zone)."""
    return _utc(ts).strftime("%Y-%m-%d %H:%M:%S")


TIME_FORMATS: dict[str, Callable[[float], str]] = {
    "go_time": go_time,
    "ms_z": ms_z,
    "seconds_z": seconds_z,
    "naive": naive,
    "plus0000": plus0000,
    "epoch_ms": epoch_ms,
    "space_seconds": space_seconds,
}
"""Each service's documented time format by name (``job_facts.JobApiFacts.time_format``)."""


def iam_time(ts: float) -> str:
    """IAM token times: ``2026-11-23T08:00:00.123000Z``."""
    return _utc(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> float:
    return time.time()
