"""Create a classic ELB, bind it to a DWS cluster, and branch on the binding job's phase.

Each call that starts a job is a ``CloudRequestOperator``: it sends the request once, finds the job id in
the answer (``job_id`` for classic ELB and DWS), and waits in the triggerer. ``fail_on_job_failure=False``
hands a failed binding job to the next task instead of failing, so the branch can clean up or notify: the
job's ``phase``, ``error_code`` and ``message`` say what happened.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_cloudjobs.operators.cloudjobs import CloudRequestOperator

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
    create_elb = CloudRequestOperator(
        task_id="create_elb",
        service="elb",
        path="/v1.0/{project_id}/elbaas/loadbalancers",
        json={
            "name": "{{ params.elb_name }}",
            "vpc_id": "vpc-id",
            "type": "Internal",
            "bandwidth": 1,
            "admin_state_up": 1,
        },
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=3600,
    )

    # DWS answers the binding with its own job id; the new ELB's id comes from the ELB job.
    bind_elb = CloudRequestOperator(
        task_id="bind_elb",
        service="dws",
        path=(
            "/v1.0/{project_id}/clusters/{{ params.dws_cluster_id }}"
            "/elbs/{{ ti.xcom_pull(task_ids='create_elb')['resource_id'] }}"
        ),
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=3600,
        fail_on_job_failure=False,
    )
    create_elb >> bind_elb

    @task.branch
    def on_phase(job: dict[str, Any]) -> str:
        return "announce" if job["phase"] == "SUCCEEDED" else "investigate"

    @task
    def announce(job: dict[str, Any]) -> None:
        print(f"DWS job {job['job_id']} bound the ELB ({job['progress']}%)")

    @task
    def investigate(job: dict[str, Any]) -> None:
        print(f"DWS job {job['job_id']} {job['phase']}: {job['error_code']} {job['message']}")

    on_phase(bind_elb.output) >> [announce(bind_elb.output), investigate(bind_elb.output)]
