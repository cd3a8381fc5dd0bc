"""DAG of the end-to-end suite: ``e2e_create_sync``, one ``CloudRequestOperator`` that creates a CCE cluster
(named by ``dag_run.conf['cluster_name']``) and waits for its job in the worker (sync mode, one retry).
The suite kills the task's process while it polls and watches the retry reconnect.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_cloudjobs.operators.cloudjobs import CloudRequestOperator

POLL_INTERVAL = float(os.environ.get("CLOUDJOBS_E2E_POKE_INTERVAL", "1"))

with DAG(
    dag_id="e2e_create_sync",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["e2e"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=1)},
):
    CloudRequestOperator(
        task_id="create",
        service="cce",
        path="/api/v3/projects/{project_id}/clusters",
        json={
            "kind": "Cluster",
            "apiVersion": "v3",
            "metadata": {"name": "{{ dag_run.conf['cluster_name'] }}"},
            "spec": {"flavor": "cce.s1.small", "version": "v1.29"},
        },
        cloudjobs_conn_id="cloudjobs_env",
        deferrable=False,
        poll_interval=POLL_INTERVAL,
        timeout=240,
    )
