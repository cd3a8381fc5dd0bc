"""CloudJobSensor in real DAG runs (``dag.test()``): deferring to CloudJobTrigger, and poking."""

from __future__ import annotations

import pytest
from airflow.sdk import task
from dagtest_support import wait_task

from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook
from airflow_provider_cloudjobs.links import CONSOLE_URL_KEY
from airflow_provider_cloudjobs.testing import simulator
from airflow_provider_cloudjobs.testing.contract import NORMALISED_JOB_KEYS
from airflow_provider_cloudjobs.testing.simulator import CloudSimulator


def current_job(sim: CloudSimulator, conn_id: str, job_id: str, service: str = "cce") -> dict:
    """The job as the hook normalises it now (a terminal job no longer changes)."""
    return CloudJobsHook(conn_id).get_job(job_id, service)


@pytest.mark.parametrize("mode", ["sensor-deferrable", "sensor-poke"])
def test_success_returns_the_normalised_job_as_xcom(cloud_simulator, conn_id, make_dag, run_dag, mode):
    job_id = cloud_simulator.create_job("cce", polls_to_finish=3, sub_jobs=2)
    with make_dag() as dag:
        sensor = wait_task(mode, job_id)

        @task
        def downstream(job: dict) -> str:
            return f"{job['job_id']} {job['phase']}"

        downstream(sensor.output)

    result = run_dag(dag)

    assert result.state == "success"
    assert result.ti("wait").state == "success"
    assert result.ti("wait").try_number == 1
    job = result.xcom("wait")
    assert set(job) == NORMALISED_JOB_KEYS
    assert job["job_id"] == job_id
    assert job["phase"] == "SUCCEEDED"
    assert job["is_terminal"] is True
    assert job["progress"] == 100.0
    assert len(job["sub_jobs"]) == 2
    assert cloud_simulator.stats()["job_polls"][job_id] == 3  # one request per poll, none wasted
    assert result.deferred == (1 if mode == "sensor-deferrable" else 0)
    assert result.xcom("downstream") == f"{job_id} SUCCEEDED"  # the XCom is usable downstream
    assert job == current_job(cloud_simulator, conn_id, job_id)


def test_already_finished_job_does_not_defer(cloud_simulator, conn_id, make_dag, run_dag):
    job_id = cloud_simulator.create_job("ecs", polls_to_finish=1)
    with make_dag() as dag:
        wait_task("sensor-deferrable", job_id, "ecs")

    result = run_dag(dag)

    assert result.ti("wait").state == "success"
    assert result.deferred == 0
    assert cloud_simulator.stats()["job_polls"][job_id] == 1
    assert result.xcom("wait")["phase"] == "SUCCEEDED"


def test_console_url_is_pushed_and_the_extra_link_resolves(cloud_simulator, conn_id, make_dag, run_dag):
    job_id = cloud_simulator.create_job("cce", polls_to_finish=3, sub_jobs=1)
    with make_dag() as dag:
        wait_task("sensor-deferrable", job_id)

    result = run_dag(dag)

    job = result.xcom("wait")
    url = result.xcom("wait", CONSOLE_URL_KEY)
    assert url.startswith("https://console.")
    assert job["resource_id"] in url
    assert simulator.REGION in url
    # Airflow 3 stores the computed extra link as XCom when the task ends.
    assert result.xcom("wait", "_link_CloudConsoleLink") == url


@pytest.mark.parametrize("mode", ["sensor-deferrable", "sensor-poke"])
def test_failed_job_fails_the_task_without_retries(cloud_simulator, conn_id, make_dag, run_dag, mode):
    job_id = cloud_simulator.create_job(
        "ecs", polls_to_finish=3, outcome="fail", error_code="Ecs.0036", message="Insufficient quota"
    )
    with make_dag() as dag:  # retries=2, retry_delay=0: a retryable error would show as try_number 3
        wait_task(mode, job_id, "ecs")

    result = run_dag(dag)

    assert result.state == "failed"
    ti = result.ti("wait")
    assert ti.state == "failed"
    assert ti.try_number == 1
    assert ti.max_tries == 2
    lines = result.log_lines("AirflowFailException")
    assert lines, result.log
    assert any(
        all(part in line for part in ("ECS job", job_id, "Ecs.0036", "Insufficient quota", "Failed sub-jobs"))
        for line in lines
    ), lines
    assert cloud_simulator.stats()["job_polls"][job_id] == 3


@pytest.mark.parametrize("mode", ["sensor-deferrable", "sensor-poke"])
def test_timeout_is_a_sensor_timeout_and_not_retried(cloud_simulator, conn_id, make_dag, run_dag, mode):
    job_id = cloud_simulator.create_job("dws", polls_to_finish=100_000)
    with make_dag() as dag:
        wait_task(mode, job_id, "dws", timeout=0.6, poke_interval=0.1)

    result = run_dag(dag)

    ti = result.ti("wait")
    assert ti.state == "failed"
    assert ti.try_number == 1
    assert result.log_lines("AirflowSensorTimeout"), result.log
    if mode == "sensor-deferrable":  # the trigger's own deadline, saying what it knows of the job
        lines = result.log_lines("Timed out waiting for DWS job", job_id)
        assert lines, result.log
        assert "never seen" not in lines[0]  # the task's own check saw it before deferring
    assert cloud_simulator.stats()["job_polls"][job_id] >= 1


@pytest.mark.parametrize("mode", ["sensor-deferrable", "sensor-poke"])
def test_soft_fail_skips_on_job_failure(cloud_simulator, conn_id, make_dag, run_dag, mode):
    job_id = cloud_simulator.create_job("cce", polls_to_finish=2, outcome="fail", error_code="CCE.01400001")
    with make_dag() as dag:
        wait_task(mode, job_id, soft_fail=True)

    result = run_dag(dag)

    assert result.state == "success"  # a skipped task does not fail the run
    assert result.ti("wait").state == "skipped"
    assert result.ti("wait").try_number == 1
    assert not result.has_xcom("wait")
    assert cloud_simulator.stats()["job_polls"][job_id] == 2  # it did see the job fail


def test_job_id_is_templated_from_an_upstream_xcom(cloud_simulator, conn_id, make_dag, run_dag):
    job_id = cloud_simulator.create_job("elb", polls_to_finish=2)
    with make_dag() as dag:

        @task
        def create() -> str:
            return job_id

        created = create()
        sensor = wait_task("sensor-deferrable", "{{ ti.xcom_pull(task_ids='create') }}", "{{ 'el' ~ 'b' }}")
        created >> sensor

    result = run_dag(dag)

    assert result.ti("wait").state == "success"
    assert result.xcom("wait")["job_id"] == job_id
    assert result.xcom("wait")["service"] == "elb"
