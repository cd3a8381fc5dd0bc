"""A Global EIP job waited on through real Airflow (``dag.test()``): deferred in the trigger and poked."""

from __future__ import annotations

import pytest
from dagtest_support import wait_task

from airflow_provider_cloudjobs.testing import simulator


@pytest.mark.parametrize("auth_type", ["aksk", "password"])
@pytest.mark.parametrize("mode", ["sensor-deferrable", "operator-sync"])
def test_a_global_eip_job_is_waited_on_to_success(
    cloud_simulator, cloudjobs_conn, make_dag, run_dag, mode, auth_type
):
    cloudjobs_conn(auth_type=auth_type)
    job_id = cloud_simulator.create_job("geip", polls_to_finish=3)
    with make_dag() as dag:
        wait_task(mode, job_id, "geip")

    result = run_dag(dag)

    assert result.ti("wait").state == "success"
    job = result.xcom("wait")
    assert (job["service"], job["job_id"], job["phase"], job["status"]) == (
        "geip",
        job_id,
        "SUCCEEDED",
        "FINISH_SUCC",
    )
    assert result.deferred == (1 if mode == "sensor-deferrable" else 0)
    stats = cloud_simulator.stats()
    assert stats["job_polls"][job_id] == 3
    assert stats["auth_failures"] == 0
    assert stats["iam_domain_token_calls"] == (0 if auth_type == "aksk" else stats["iam_token_calls"])
    for secret in (simulator.PASSWORD, simulator.SECRET_KEY):
        assert secret not in result.log


def test_a_global_eip_wait_without_domain_id_fails_naming_the_field(
    cloud_simulator, cloudjobs_conn, make_dag, run_dag
):
    cloudjobs_conn(auth_type="aksk", domain_id="")
    job_id = cloud_simulator.create_job("geip")
    with make_dag() as dag:
        wait_task("sensor-deferrable", job_id, "geip")

    result = run_dag(dag)

    assert result.ti("wait").state == "failed"
    assert "'domain_id'" in result.log
    assert cloud_simulator.stats()["requests"] == 0
