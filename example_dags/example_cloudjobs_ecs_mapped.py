"""Create a fleet of ECS servers, one create call per server, and wait on every job at once.

``CloudRequestOperator`` mapped over the request bodies (dynamic task mapping): each mapped instance sends
its own create call once, keeps its job id in its own task state (Airflow 3.3+) and defers to its own
trigger; a triggerer holds thousands of them in one event loop with one HTTP session and one token per
connection.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_cloudjobs.operators.cloudjobs import CloudRequestOperator

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
    def server_specs(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """One request body per server (ECS answers each with its own job id)."""
        count = int((params or {}).get("servers", 3))
        return [
            {
                "server": {
                    "name": f"web-{index:02d}",
                    "flavorRef": "s6.small.1",
                    "imageRef": "image-id",
                    "vpcid": "vpc-id",
                    "nics": [{"subnet_id": "subnet-id"}],
                    "count": 1,
                }
            }
            for index in range(count)
        ]

    servers = CloudRequestOperator.partial(
        task_id="create_server",
        service="ecs",
        path="/v1/{project_id}/cloudservers",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=3600,
    ).expand(json=server_specs())

    @task
    def summarize(jobs: list[dict[str, Any]]) -> list[str]:
        servers = [job["resource_id"] for job in jobs]
        print(f"{len(servers)} servers ready: {', '.join(servers)}")
        return servers

    summarize(servers.output)
