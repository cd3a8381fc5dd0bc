"""Create a CCE cluster, wait for its job in the triggerer, use the finished job downstream.

The create call goes through ``CloudJobsHook.request`` (auth, signing, retries and error messages
handled); the cloud answers with a job id, which the deferrable sensor waits on without holding a
worker slot. Against the local simulator (``python3 dev.py demo``) the whole DAG takes seconds.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook
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

    @task
    def create_cluster(params: dict[str, Any] | None = None) -> str:
        """POST the cluster spec; CCE answers with the cluster, whose status carries the job id."""
        name = (params or {}).get("cluster_name", "demo-cluster")
        spec = {
            "kind": "Cluster",
            "apiVersion": "v3",
            "metadata": {"name": name},
            "spec": {
                "flavor": "cce.s1.small",
                "version": "v1.29",
                "hostNetwork": {"vpc": "vpc-id", "subnet": "subnet-id"},
                "containerNetwork": {"mode": "overlay_l2"},
            },
        }
        cluster = CloudJobsHook().request("POST", "cce", "/api/v3/projects/{project_id}/clusters", json=spec)
        return cluster["status"]["jobID"]

    job_id = create_cluster()

    wait_for_cluster = CloudJobSensor(
        task_id="wait_for_cluster",
        job_id=job_id,
        service="cce",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=TIMEOUT,
    )

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
