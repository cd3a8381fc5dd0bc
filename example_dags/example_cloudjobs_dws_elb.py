"""Bind a classic ELB to a DWS cluster, wait with the operator, and branch on the job's phase.

``fail_on_job_failure=False`` hands a failed job to the next task instead of failing, so the
branch can clean up or notify: the job's ``phase``, ``error_code`` and ``message`` say what happened.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook
from airflow_provider_cloudjobs.operators.cloudjobs import CloudJobOperator

POLL_INTERVAL = float(os.environ.get("CLOUDJOBS_EXAMPLE_POLL_INTERVAL", "30"))

with DAG(
    dag_id="example_cloudjobs_dws_elb",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "cloudjobs", "dws", "elb"],
    params={
        "dws_cluster_id": Param("dws-cluster-0001", type="string"),
        "elb_name": Param("dws-elb", type="string"),
    },
) as dag:

    @task
    def create_elb(params: dict[str, Any] | None = None) -> str:
        """Create a classic load balancer; the answer carries the ELB job id."""
        body = {
            "name": (params or {}).get("elb_name", "dws-elb"),
            "vpc_id": "vpc-id",
            "type": "Internal",
            "bandwidth": 1,
            "admin_state_up": 1,
        }
        return CloudJobsHook().request("POST", "elb", "/v1.0/{project_id}/elbaas/loadbalancers", json=body)[
            "job_id"
        ]

    elb_job = CloudJobOperator(
        task_id="wait_for_elb",
        job_id=create_elb(),
        service="elb",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=3600,
    )

    @task
    def bind_elb(elb: dict[str, Any], params: dict[str, Any] | None = None) -> str:
        """Associate the new ELB with the DWS cluster; DWS answers with its own job id."""
        cluster = (params or {}).get("dws_cluster_id", "dws-cluster-0001")
        path = f"/v1.0/{{project_id}}/clusters/{cluster}/elbs/{elb['resource_id']}"
        return CloudJobsHook().request("POST", "dws", path)["job_id"]

    dws_job = CloudJobOperator(
        task_id="wait_for_binding",
        job_id=bind_elb(elb_job.output),
        service="dws",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=3600,
        fail_on_job_failure=False,
    )

    @task.branch
    def on_phase(job: dict[str, Any]) -> str:
        return "announce" if job["phase"] == "SUCCEEDED" else "investigate"

    @task
    def announce(job: dict[str, Any]) -> None:
        print(f"DWS job {job['job_id']} bound the ELB ({job['progress']}%)")

    @task
    def investigate(job: dict[str, Any]) -> None:
        print(f"DWS job {job['job_id']} {job['phase']}: {job['error_code']} {job['message']}")

    on_phase(dws_job.output) >> [announce(dws_job.output), investigate(dws_job.output)]
