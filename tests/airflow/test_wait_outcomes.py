"""The contract's Outcomes rows that concern the wait itself (faults, tokens, 404s, unknown statuses,
credentials, bad input), through real DAG runs of the sensor and the operator (``dag.test()``)."""

from __future__ import annotations

import re

import pytest
from dagtest_support import MODES, wait_task

from airflow_provider_cloudjobs.testing import simulator
from airflow_provider_cloudjobs.testing.contract import RETRYABLE_FAULTS

DEFERRING = ("sensor-deferrable", "operator-deferrable")


@pytest.mark.parametrize("mode", ["sensor-deferrable", "operator-sync"])
@pytest.mark.parametrize(
    ("kind", "options"),
    RETRYABLE_FAULTS,
)
def test_retryable_faults_do_not_end_the_wait(
    cloud_simulator, cloudjobs_conn, make_dag, run_dag, fast_backoff, mode, kind, options
):
    cloudjobs_conn(timeout=0.3)  # a "slow" answer is a read time-out
    job_id = cloud_simulator.create_job("cce", polls_to_finish=2)
    cloud_simulator.inject_fault(kind, count=3, **options)
    with make_dag() as dag:
        wait_task(mode, job_id)

    result = run_dag(dag)

    ti = result.ti("wait")
    assert (ti.state, ti.try_number) == ("success", 1), result.log
    assert result.xcom("wait")["phase"] == "SUCCEEDED"
    stats = cloud_simulator.stats()
    assert stats["faults_served"] == 3
    assert stats["faults_pending"] == 0
    assert stats["iam_token_calls"] == 1
    assert stats["job_requests"] == 3 + 2  # every fault was retried, then the job was seen twice
    assert stats["job_polls"][job_id] == 2  # faults do not advance the job


def test_retry_after_is_honoured(cloud_simulator, conn_id, make_dag, run_dag, fast_backoff):
    """With a backoff cap of 0.1 s, only the server's Retry-After explains the gap between the tries."""
    job_id = cloud_simulator.create_job("ecs", polls_to_finish=1)
    cloud_simulator.inject_fault("429", count=1, retry_after=1.0)
    with make_dag() as dag:
        wait_task("operator-sync", job_id, "ecs")

    result = run_dag(dag)

    assert result.ti("wait").state == "success"
    retry_lines = result.log_lines("HTTP 429", "retrying in")
    assert len(retry_lines) == 1, result.log
    delay = float(re.search(r"retrying in ([0-9.]+)s", retry_lines[0]).group(1))
    assert 1.0 <= delay <= 1.1  # Retry-After is a floor, with a little jitter on top


@pytest.mark.parametrize("mode", ["sensor-deferrable", "operator-sync"])
def test_token_expiry_mid_wait_refreshes_the_token_once(
    cloud_simulator, conn_id, make_dag, run_dag, fast_backoff, mode
):
    job_id = cloud_simulator.create_job("cce", polls_to_finish=3)
    # The first poll (the task's own check) meets a 502 and retries; the next one (in the trigger, when
    # deferring) is refused: the cached token has expired in the cloud meanwhile.
    cloud_simulator.inject_fault("502", count=1)
    cloud_simulator.inject_fault("token_expired", count=1)
    with make_dag() as dag:
        wait_task(mode, job_id)

    result = run_dag(dag)

    assert result.ti("wait").state == "success", result.log
    stats = cloud_simulator.stats()
    assert stats["iam_token_calls"] == 2  # the first token, and one refresh
    assert stats["responses_by_status"]["401"] == 1
    assert stats["job_requests"] == 2 + 3
    assert result.deferred == (1 if mode == "sensor-deferrable" else 0)


@pytest.mark.parametrize("mode", ["sensor-deferrable", "operator-sync"])
def test_401_after_a_refresh_fails_clearly_without_retries(cloud_simulator, conn_id, make_dag, run_dag, mode):
    job_id = cloud_simulator.create_job("cce", polls_to_finish=3)
    cloud_simulator.inject_fault("token_expired", count=2)
    with make_dag() as dag:
        wait_task(mode, job_id)

    result = run_dag(dag)

    ti = result.ti("wait")
    assert (ti.state, ti.try_number) == ("failed", 1), result.log
    stats = cloud_simulator.stats()
    assert stats["iam_token_calls"] == 2  # one refresh, not a loop
    assert stats["responses_by_status"]["401"] == 2
    assert result.log_lines("AirflowFailException", "HTTP 401", "APIGW.0307"), result.log


@pytest.mark.parametrize("mode", MODES)
def test_late_visible_job_is_waited_for_within_the_grace(cloud_simulator, conn_id, make_dag, run_dag, mode):
    job_id = cloud_simulator.create_job("ecs", polls_to_finish=2, visible_after_polls=3)
    with make_dag() as dag:
        wait_task(mode, job_id, "ecs", not_found_grace=30)

    result = run_dag(dag)

    assert result.ti("wait").state == "success", result.log
    assert result.xcom("wait")["job_id"] == job_id
    assert cloud_simulator.stats()["job_polls"][job_id] == 3 + 2
    assert result.log_lines("is not visible yet (404)"), result.log


@pytest.mark.parametrize("mode", ["sensor-deferrable", "operator-sync"])
def test_job_never_visible_fails_after_the_grace(cloud_simulator, conn_id, make_dag, run_dag, mode):
    with make_dag() as dag:
        wait_task(mode, "a1b2c3d4e5f6", "ecs", not_found_grace=0.3, timeout=30)

    result = run_dag(dag)

    ti = result.ti("wait")
    assert (ti.state, ti.try_number) == ("failed", 1), result.log
    lines = result.log_lines("AirflowFailException", "ECS job a1b2c3d4e5f6 not found", "whole grace period")
    assert lines, result.log
    assert "HTTP 404" in lines[0]


@pytest.mark.parametrize("mode", MODES)
def test_vanished_job_fails_clearly_without_retries(cloud_simulator, conn_id, make_dag, run_dag, mode):
    job_id = cloud_simulator.create_job("cce", polls_to_finish=50, vanish_after_polls=2)
    with make_dag() as dag:
        wait_task(mode, job_id, not_found_grace=60)

    result = run_dag(dag)

    ti = result.ti("wait")
    assert (ti.state, ti.try_number) == ("failed", 1), result.log
    assert result.log_lines("AirflowFailException", f"CCE job {job_id} vanished"), result.log
    assert cloud_simulator.stats()["job_polls"][job_id] == 3


@pytest.mark.parametrize("mode", MODES)
def test_unknown_status_is_unknown_warned_once_and_waited_on(
    cloud_simulator, conn_id, make_dag, run_dag, fresh_unknown_status_warnings, mode
):
    job_id = cloud_simulator.create_job(
        "elb", raw_statuses=["MIGRATING", "MIGRATING", "RUNNING", "MIGRATING", "SUCCESS"]
    )
    with make_dag() as dag:
        wait_task(mode, job_id, "elb")

    result = run_dag(dag)

    assert result.ti("wait").state == "success", result.log
    assert result.xcom("wait")["status"] == "SUCCESS"
    assert len(result.warnings("'MIGRATING'")) == 1, result.records
    assert "UNKNOWN" in result.warnings("'MIGRATING'")[0]
    assert cloud_simulator.stats()["job_polls"][job_id] == 5


@pytest.mark.parametrize("mode", MODES)
def test_wrong_password_fails_fast_and_never_logs_it(
    cloud_simulator, cloudjobs_conn, make_dag, run_dag, mode
):
    cloudjobs_conn(password="Bad-Secret-42")
    job_id = cloud_simulator.create_job("cce")
    with make_dag() as dag:
        wait_task(mode, job_id)

    result = run_dag(dag)

    ti = result.ti("wait")
    assert (ti.state, ti.try_number) == ("failed", 1)
    lines = result.log_lines("AirflowFailException", "HTTP 401")
    assert lines, result.log
    assert "username or password is wrong" in lines[0]
    assert "Bad-Secret-42" not in result.log
    assert simulator.PASSWORD not in result.log
    stats = cloud_simulator.stats()
    assert stats["iam_token_calls"] == 1  # never repeated: lock-outs come from repeated wrong passwords
    assert stats["job_requests"] == 0


def test_a_successful_wait_logs_no_secret(cloud_simulator, conn_id, make_dag, run_dag, fast_backoff):
    job_id = cloud_simulator.create_job("cce", polls_to_finish=2)
    cloud_simulator.inject_fault("token_expired", count=1)
    with make_dag() as dag:
        wait_task("sensor-deferrable", job_id)

    result = run_dag(dag)

    assert result.ti("wait").state == "success"
    assert result.log_lines(f"CCE job {job_id} succeeded"), result.log  # the log was captured
    assert "refreshing the token once" in result.log
    tokens = list(cloud_simulator.state.tokens)  # every token IAM issued during the run
    assert len(tokens) == 2
    for secret in [simulator.PASSWORD, *tokens, *(token[:40] for token in tokens)]:
        assert secret not in result.log


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("job_id", "service", "complaint"),
    [
        ("", "cce", "job_id is empty"),
        ("   ", "cce", "job_id is empty"),
        ("abc/def", "cce", "contains a '/'"),
        ("abc?x=1", "cce", "contains a '?'"),
        ("../../etc", "cce", "contains '..'"),
        ("a1b2c3d4", "nosuchservice", "Unknown service 'nosuchservice'"),
    ],
)
def test_bad_input_is_rejected_before_any_request(
    cloud_simulator, conn_id, make_dag, run_dag, mode, job_id, service, complaint
):
    with make_dag() as dag:
        wait_task(mode, job_id, service)

    result = run_dag(dag)

    ti = result.ti("wait")
    assert (ti.state, ti.try_number) == ("failed", 1)  # retrying cannot fix an input
    assert result.log_lines("AirflowFailException", complaint), result.log
    assert cloud_simulator.stats()["requests"] == 0
