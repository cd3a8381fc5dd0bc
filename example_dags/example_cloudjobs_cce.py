"""Create a CCE cluster crash-safely, wait for its job in the triggerer, use the finished job downstream.

``CloudRequestOperator`` sends the create call (at most once per try) and, on Airflow 3.3+, keeps the job
id CCE answers with in the task state store before anything else, so a retry after a crash reconnects to
that job instead of creating a second cluster. Here it does not wait itself (``wait_for_completion=False``:
it returns the job as it is right after the create); the deferrable sensor waits without holding a worker
slot. Against the local simulator (``python3 dev.py demo``) the whole DAG takes seconds.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_cloudjobs.operators.cloudjobs import CloudRequestOperator
from airflow_provider_cloudjobs.sensors.cloudjobs import CloudJobSensor

POLL_INTERVAL = float(os.environ.get("CLOUDJOBS_EXAMPLE_POLL_INTERVAL", "30"))
TIMEOUT = float(os.environ.get("CLOUDJOBS_EXAMPLE_TIMEOUT", str(2 * 3600)))

with DAG(
    dag_id="example_cloudjobs_cce",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "cloudjobs", "cce"],
    params={"cluster_name": Param("demo-cluster", type="string", description="Name of the CCE cluster")},
    default_args={"retries": 2},
) as dag:
    # CCE answers with the cluster, whose status.jobID is the job id (the operator knows where to look).
    create_cluster = CloudRequestOperator(
        task_id="create_cluster",
        service="cce",
        path="/api/v3/projects/{project_id}/clusters",
        json={
            "kind": "Cluster",
            "apiVersion": "v3",
            "metadata": {"name": "{{ params.cluster_name }}"},
            "spec": {
                "flavor": "cce.s1.small",
                "version": "v1.29",
                "hostNetwork": {"vpc": "vpc-id", "subnet": "subnet-id"},
                "containerNetwork": {"mode": "overlay_l2"},
            },
        },
        wait_for_completion=False,
    )

    wait_for_cluster = CloudJobSensor(
        task_id="wait_for_cluster",
        job_id="{{ ti.xcom_pull(task_ids='create_cluster')['job_id'] }}",
        service="cce",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=TIMEOUT,
    )
    create_cluster >> wait_for_cluster

    @task
    def report(job: dict[str, Any]) -> str:
        """Downstream use of the normalised job (the sensor's XCom return_value)."""
        line = (
            f"Cluster {job['resource_name'] or job['resource_id']} ready: job {job['job_id']} "
            f"{job['phase']} in {len(job['sub_jobs'])} sub-jobs, ended {job['ended_at']}"
        )
        print(line)
        return line

    report(wait_for_cluster.output)
