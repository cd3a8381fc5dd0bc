"""``e2e_ui_wait``: one deferrable ``CloudJobSensor`` through ``cloudjobs_default`` on the job and service
given in ``dag_run.conf`` (``job_id``, ``service``): what the UI tests watch in the Cloud jobs page and
the Cloud job tab."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_cloudjobs.sensors.cloudjobs import CloudJobSensor

with DAG(
    dag_id="e2e_ui_wait",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["e2e"],
):
    CloudJobSensor(
        task_id="wait_for_job",
        job_id="{{ dag_run.conf['job_id'] }}",
        service="{{ dag_run.conf.get('service', 'cce') }}",
        deferrable=True,
        poke_interval=float(os.environ.get("CLOUDJOBS_E2E_POKE_INTERVAL", "1")),
        timeout=float(os.environ.get("CLOUDJOBS_E2E_LONG_TIMEOUT", "240")),
    )
