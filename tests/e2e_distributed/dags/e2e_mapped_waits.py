"""``e2e_mapped_waits``: one deferrable ``CloudJobSensor`` per job id in ``dag_run.conf['job_ids']``
(dynamic task mapping), the shape of a DAG that starts many cloud jobs and waits on them all at once."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, get_current_context, task

from airflow_provider_cloudjobs.sensors.cloudjobs import CloudJobSensor

POKE_INTERVAL = float(os.environ.get("CLOUDJOBS_E2E_POKE_INTERVAL", "1"))
TIMEOUT = float(os.environ.get("CLOUDJOBS_E2E_LONG_TIMEOUT", "300"))

with DAG(
    dag_id="e2e_mapped_waits",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["e2e"],
    max_active_tasks=64,
    default_args={"retries": 2},
):

    @task
    def job_ids() -> list[str]:
        return list(get_current_context()["dag_run"].conf["job_ids"])

    CloudJobSensor.partial(
        task_id="wait",
        service="cce",
        deferrable=True,
        poke_interval=POKE_INTERVAL,
        timeout=TIMEOUT,
    ).expand(job_id=job_ids())
