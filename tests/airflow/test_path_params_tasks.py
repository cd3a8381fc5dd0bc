"""The sensor and the operators on jobs whose path carries a second id (``path_params``), in DAG runs."""

from __future__ import annotations

import pytest
from airflow.sdk import task
from dagtest_support import wait_task

from airflow_provider_cloudjobs.operators.cloudjobs import CloudRequestOperator

INSTANCE = "8c3d5e2a-1111-4a2b-9c8d-7e6f5a4b3c2d"


@pytest.mark.parametrize("mode", ["sensor-deferrable", "sensor-poke", "operator-deferrable", "operator-sync"])
def test_the_instance_id_from_an_upstream_xcom_is_rendered_into_the_wait(
    cloud_simulator, conn_id, make_dag, run_dag, mode
):
    job_id = cloud_simulator.create_job("kafka", polls_to_finish=3, path_params={"instance_id": INSTANCE})
    with make_dag() as dag:

        @task
        def resize() -> dict:
            return {"instance_id": INSTANCE, "job_id": job_id}

        started = resize()
        wait = wait_task(
            mode,
            "{{ ti.xcom_pull('resize')['job_id'] }}",
            "kafka",
            path_params={"instance_id": "{{ ti.xcom_pull('resize')['instance_id'] }}"},
        )
        started >> wait

    result = run_dag(dag)

    assert result.ti("wait").state == "success", result.log
    job = result.xcom("wait")
    assert (job["job_id"], job["phase"]) == (job_id, "SUCCEEDED")
    assert result.deferred == (1 if mode.endswith("-deferrable") else 0)


@pytest.mark.parametrize(
    ("path_params", "needle"),
    [
        (None, "pass path_params with ['instance_id']"),
        ({"instance_id": "../x"}, "path_params['instance_id'] '../x' contains '..'"),
        ({"instance_id": INSTANCE, "graph_id": "g"}, "['graph_id'] are not in DMS for Kafka's job path"),
    ],
)
def test_bad_path_params_fail_the_task_before_any_request(
    cloud_simulator, conn_id, make_dag, run_dag, path_params, needle
):
    job_id = cloud_simulator.create_job("kafka", path_params={"instance_id": INSTANCE})
    with make_dag(retries=2) as dag:
        wait_task("sensor-deferrable", job_id, "kafka", path_params=path_params)

    result = run_dag(dag)

    ti = result.ti("wait")
    assert (ti.state, ti.try_number) == ("failed", 1)  # not retried: the same input renders again
    assert result.log_lines(needle), result.log
    assert cloud_simulator.stats()["job_requests"] == 0


def test_the_request_operator_checks_path_params_before_sending(cloud_simulator, conn_id, make_dag, run_dag):
    with make_dag() as dag:
        CloudRequestOperator(
            task_id="resize",
            service="kafka",
            path="/v2/{project_id}/instances/" + INSTANCE + "/extend",
            json={"new_storage_space": 600},
            poll_interval=0.05,
            timeout=30.0,
        )

    result = run_dag(dag)

    assert result.ti("resize").state == "failed"
    assert result.log_lines("pass path_params with ['instance_id']"), result.log
    assert cloud_simulator.stats()["create_requests"] == 0


def resize_task(**kwargs) -> CloudRequestOperator:
    return CloudRequestOperator(
        task_id="resize",
        service="kafka",
        path="/v2/kafka/{project_id}/instances/{{ ti.xcom_pull('instance') }}/extend",
        json={"oper_type": "storage", "new_storage_space": 600},
        path_params={"instance_id": "{{ ti.xcom_pull('instance') }}"},
        poll_interval=0.05,
        timeout=30.0,
        **kwargs,
    )


@pytest.mark.parametrize("mode", ["deferrable", "sync"])
def test_the_request_operator_waits_on_the_task_under_its_instance(
    cloud_simulator, conn_id, make_dag, run_dag, mode
):
    with make_dag() as dag:

        @task
        def instance() -> str:
            return INSTANCE

        instance() >> resize_task(deferrable=mode == "deferrable")

    result = run_dag(dag)

    assert result.ti("resize").state == "success", result.log
    job = result.xcom("resize")
    assert job["job_id"] == result.xcom("resize", "response")["job_id"]
    assert job["phase"] == "SUCCEEDED"
    assert cloud_simulator.stats()["create_requests"] == 1


def _has_task_state_store() -> bool:
    try:
        import airflow.sdk.bases.resumablejobmixin  # noqa: F401  (arrived with the task state store, 3.3)
    except ImportError:
        return False
    return True


class DiesOnTry1(CloudRequestOperator):
    def _wait_or_look(self, context, *, reconnected):
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated crash of try 1 after the request")
        return super()._wait_or_look(context, reconnected=reconnected)


@pytest.mark.skipif(not _has_task_state_store(), reason="this Airflow has no task state store (Airflow 3.3+)")
def test_a_later_try_reconnects_to_the_task_under_the_same_instance(
    cloud_simulator, conn_id, make_dag, run_dag
):
    """Try 2 reads the stored path_params: without them it could not find the task (and must not resend)."""
    with make_dag(retries=1) as dag:

        @task
        def instance() -> str:
            return INSTANCE

        # Try 2 renders no instance: only the stored record can say where the task is.
        instance() >> DiesOnTry1(
            task_id="resize",
            service="kafka",
            path="/v2/kafka/{project_id}/instances/" + INSTANCE + "/extend",
            json={"oper_type": "storage"},
            path_params={"instance_id": "{{ ti.xcom_pull('instance') if ti.try_number == 1 else 'gone' }}"},
            not_found_grace=2.0,
            poll_interval=0.05,
            timeout=30.0,
        )

    result = run_dag(dag)

    ti = result.ti("resize")
    assert (ti.state, ti.try_number) == ("success", 2), result.log
    assert cloud_simulator.stats()["create_requests"] == 1
    assert result.xcom("resize")["phase"] == "SUCCEEDED"


def test_without_waiting_the_operator_returns_the_task_under_its_instance(
    cloud_simulator, conn_id, make_dag, run_dag
):
    job_id = cloud_simulator.create_job("apig", polls_to_finish=5, path_params={"instance_id": INSTANCE})
    with make_dag() as dag:
        wait_task(
            "operator-sync", job_id, "apig", path_params={"instance_id": INSTANCE}, wait_for_completion=False
        )

    result = run_dag(dag)

    assert result.ti("wait").state == "success", result.log
    job = result.xcom("wait")
    assert (job["job_id"], job["status"], job["is_terminal"]) == (job_id, "waiting", False)
