"""CloudJobOperator in real DAG runs (``dag.test()``): deferrable, synchronous, and not waiting at all."""

from __future__ import annotations

import pytest
from airflow.sdk import task
from dagtest_support import wait_task

from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook
from airflow_provider_cloudjobs.links import CONSOLE_URL_KEY
from airflow_provider_cloudjobs.testing.contract import NORMALISED_JOB_KEYS


@pytest.mark.parametrize("mode", ["operator-deferrable", "operator-sync"])
def test_success_returns_the_normalised_job_as_xcom(cloud_simulator, conn_id, make_dag, run_dag, mode):
    job_id = cloud_simulator.create_job("dws", polls_to_finish=3)
    with make_dag() as dag:
        operator = wait_task(mode, job_id, "dws")

        @task
        def downstream(job: dict) -> float:
            return job["progress"]

        downstream(operator.output)

    result = run_dag(dag)

    assert result.state == "success"
    ti = result.ti("wait")
    assert (ti.state, ti.try_number) == ("success", 1)
    job = result.xcom("wait")
    assert set(job) == NORMALISED_JOB_KEYS
    assert (job["service"], job["job_id"], job["phase"], job["status"]) == (
        "dws",
        job_id,
        "SUCCEEDED",
        "SUCCESS",
    )
    assert job == CloudJobsHook(conn_id).get_job(job_id, "dws")  # the final job, as the hook normalises it
    assert result.xcom("downstream") == 100.0
    assert result.deferred == (1 if mode == "operator-deferrable" else 0)
    assert result.xcom("wait", CONSOLE_URL_KEY)


def test_without_waiting_returns_the_job_as_it_is_now(cloud_simulator, conn_id, make_dag, run_dag):
    job_id = cloud_simulator.create_job("cce", polls_to_finish=5)
    with make_dag() as dag:
        wait_task("operator-deferrable", job_id, wait_for_completion=False)

    result = run_dag(dag)

    assert result.ti("wait").state == "success"
    job = result.xcom("wait")
    assert job["job_id"] == job_id
    assert job["phase"] == "PENDING"
    assert job["is_terminal"] is False
    assert result.deferred == 0
    assert cloud_simulator.stats()["job_polls"][job_id] == 1
    assert result.xcom("wait", CONSOLE_URL_KEY)


@pytest.mark.parametrize("mode", ["operator-deferrable", "operator-sync"])
def test_failed_job_fails_the_task_without_retries(cloud_simulator, conn_id, make_dag, run_dag, mode):
    job_id = cloud_simulator.create_job(
        "cce", polls_to_finish=3, sub_jobs=3, outcome="fail", error_code="CCE.01500001", message="No quota"
    )
    with make_dag() as dag:  # retries=2, retry_delay=0: a retryable error would show as try_number 3
        wait_task(mode, job_id)

    result = run_dag(dag)

    assert result.state == "failed"
    ti = result.ti("wait")
    assert (ti.state, ti.try_number, ti.max_tries) == ("failed", 1, 2)
    lines = result.log_lines("AirflowFailException")
    assert any(
        all(part in line for part in ("CCE job", job_id, "CCE.01500001", "No quota", "Failed sub-jobs"))
        for line in lines
    ), lines
    assert not result.has_xcom("wait")


@pytest.mark.parametrize("mode", ["operator-deferrable", "operator-sync"])
def test_fail_on_job_failure_false_hands_the_failed_job_downstream(
    cloud_simulator, conn_id, make_dag, run_dag, mode
):
    job_id = cloud_simulator.create_job(
        "elb", polls_to_finish=2, outcome="fail", error_code="ELB.1004", message="Subnet exhausted"
    )
    with make_dag() as dag:
        operator = wait_task(mode, job_id, "elb", fail_on_job_failure=False)

        @task
        def downstream(job: dict) -> str:
            return f"{job['phase']} {job['error_code']}"

        downstream(operator.output)

    result = run_dag(dag)

    assert result.state == "success"
    assert result.ti("wait").state == "success"
    job = result.xcom("wait")
    assert (job["job_id"], job["phase"], job["is_terminal"]) == (job_id, "FAILED", True)
    assert "Subnet exhausted" in job["message"]
    assert result.xcom("downstream") == "FAILED ELB.1004"
    assert result.log_lines("fail_on_job_failure=False", job_id), result.log


@pytest.mark.parametrize("mode", ["operator-deferrable", "operator-sync"])
def test_timeout_fails_with_a_clear_message_and_no_retry(cloud_simulator, conn_id, make_dag, run_dag, mode):
    job_id = cloud_simulator.create_job("ecs", polls_to_finish=100_000)
    with make_dag() as dag:
        wait_task(mode, job_id, "ecs", timeout=0.6, poll_interval=0.1)

    result = run_dag(dag)

    ti = result.ti("wait")
    assert (ti.state, ti.try_number) == ("failed", 1)
    lines = result.log_lines("AirflowFailException", "Timed out waiting for ECS job", job_id)
    assert lines, result.log
    assert "never seen" not in lines[0]  # it was seen: the first check runs before any deferral
    assert cloud_simulator.stats()["job_polls"][job_id] >= 1


def test_job_id_from_an_upstream_task(cloud_simulator, conn_id, make_dag, run_dag):
    job_id = cloud_simulator.create_job("ecs", polls_to_finish=2)
    with make_dag() as dag:

        @task
        def create() -> str:
            return job_id

        wait_task("operator-deferrable", create(), "ecs")

    result = run_dag(dag)

    assert result.ti("wait").state == "success"
    assert result.xcom("wait")["job_id"] == job_id
