"""DAGs of the end-to-end suite (copied into the deployment's dags folder next to the example DAGs).

``e2e_wait_long`` and ``e2e_wait_short``: one deferrable ``CloudJobSensor`` on the job id given in
  ``dag_run.conf['job_id']``, through the ``cloudjobs_env`` connection (defined only by an
  ``AIRFLOW_CONN_CLOUDJOBS_ENV`` variable); they differ in the sensor's ``timeout``.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_cloudjobs.sensors.cloudjobs import CloudJobSensor

POKE_INTERVAL = float(os.environ.get("CLOUDJOBS_E2E_POKE_INTERVAL", "1"))
SHORT_TIMEOUT = float(os.environ.get("CLOUDJOBS_E2E_SHORT_TIMEOUT", "40"))
LONG_TIMEOUT = float(os.environ.get("CLOUDJOBS_E2E_LONG_TIMEOUT", "240"))
START = pendulum.datetime(2026, 1, 1, tz="UTC")

for dag_id, timeout in (("e2e_wait_long", LONG_TIMEOUT), ("e2e_wait_short", SHORT_TIMEOUT)):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=START,
        catchup=False,
        tags=["e2e"],
        default_args={"retries": 2},
    ):
        CloudJobSensor(
            task_id="wait",
            job_id="{{ dag_run.conf['job_id'] }}",
            service="cce",
            cloudjobs_conn_id="cloudjobs_env",
            deferrable=True,
            poke_interval=POKE_INTERVAL,
            timeout=timeout,
        )
