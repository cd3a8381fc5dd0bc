"""The "Cloud console" extra link: from a task to its job's resource in the cloud console.

Airflow 3 computes links on the worker (also when a task defers) and stores them as XCom, so the
task pushes the URL under :data:`CONSOLE_URL_KEY` as soon as it knows it, and the link reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom  # the configured XCom backend, as Airflow's providers use

from airflow_provider_cloudjobs.connection import CloudJobsSettings
from airflow_provider_cloudjobs.profiles import ServiceProfile, dig

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

CONSOLE_URL_KEY = "cloud_console_url"


def console_url(
    settings: CloudJobsSettings,
    profile: ServiceProfile,
    job: Mapping[str, Any],
    path_params: Mapping[str, str] | None = None,
) -> str:
    """The console URL of the job's resource (CCE cluster, DWS, ELB, ECS server ...), or ``""``.

    ``path_params`` (``instance_id`` ...) may fill the console path too: a DMS task's body does not name
    its instance, the path that read it does.
    """
    raw = job.get("raw") or {}
    # The root is a dotted path like the profile's other fields (``"job"``, GaussDB NoSQL's ``"jobs.0"``).
    raw_job = dig(raw, profile.root) if profile.root else raw
    if not isinstance(raw_job, Mapping):
        raw_job = {}
    return profile.console_url(
        settings.console_base,
        job,
        raw_job,
        **{**(path_params or {}), "region": settings.region, "project_id": settings.project_id},
    )


class CloudConsoleLink(BaseOperatorLink):
    """Opens the job's resource in the cloud console; the base URL comes from the connection."""

    name = "Cloud console"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return XCom.get_value(key=CONSOLE_URL_KEY, ti_key=ti_key) or ""
