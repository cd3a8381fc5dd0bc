"""``e2e_ping``: one plain task. Shows the deployment runs tasks at all, and (with the executor's single
slot) that a deferred sensor leaves that slot free for other work."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

with DAG(
    dag_id="e2e_ping",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["e2e"],
):

    @task
    def ping() -> str:
        print("ping from the e2e suite")
        return "pong"

    ping()
