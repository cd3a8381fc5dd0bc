"""What the UI tests watch in the Cloud jobs page and the Cloud job tab, through ``cloudjobs_default``:

``e2e_ui_wait``: a deferrable ``CloudJobSensor`` on the job and service in ``dag_run.conf``
(``job_id``, ``service``); ``e2e_ui_poke``: a ``CloudJobSensor`` in poke mode on the CCE job in
``dag_run.conf['job_id']``."""

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

# The same wait without the triggerer: a sensor in poke mode (it holds its worker slot while it waits).
with DAG(
    dag_id="e2e_ui_poke",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["e2e"],
):
    CloudJobSensor(
        task_id="wait_for_job",
        job_id="{{ dag_run.conf['job_id'] }}",
        mode="poke",
        deferrable=False,
        poke_interval=2,
        timeout=float(os.environ.get("CLOUDJOBS_E2E_LONG_TIMEOUT", "240")),
    )
