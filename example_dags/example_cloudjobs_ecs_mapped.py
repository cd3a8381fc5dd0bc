"""Create a fleet of ECS servers and wait on every job at once with dynamic task mapping.

Each mapped sensor instance defers to its own trigger; a triggerer holds thousands of them in one
event loop with one HTTP session and one token per connection.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook
from airflow_provider_cloudjobs.sensors.cloudjobs import CloudJobSensor

POLL_INTERVAL = float(os.environ.get("CLOUDJOBS_EXAMPLE_POLL_INTERVAL", "30"))

with DAG(
    dag_id="example_cloudjobs_ecs_mapped",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "cloudjobs", "ecs"],
    params={"servers": Param(3, type="integer", minimum=1, maximum=50)},
) as dag:

    @task
    def create_servers(params: dict[str, Any] | None = None) -> list[str]:
        """One ECS create call per server (one job each), as a fleet rollout often does."""
        hook = CloudJobsHook()
        count = int((params or {}).get("servers", 3))
        job_ids = []
        for index in range(count):
            body = {
                "server": {
                    "name": f"web-{index:02d}",
                    "flavorRef": "s6.small.1",
                    "imageRef": "image-id",
                    "vpcid": "vpc-id",
                    "nics": [{"subnet_id": "subnet-id"}],
                    "count": 1,
                }
            }
            job_ids.append(hook.request("POST", "ecs", "/v1/{project_id}/cloudservers", json=body)["job_id"])
        return job_ids

    waits = CloudJobSensor.partial(
        task_id="wait_for_server",
        service="ecs",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=3600,
    ).expand(job_id=create_servers())

    @task
    def summarize(jobs: list[dict[str, Any]]) -> list[str]:
        servers = [job["resource_id"] for job in jobs]
        print(f"{len(servers)} servers ready: {', '.join(servers)}")
        return servers

    summarize(waits.output)
