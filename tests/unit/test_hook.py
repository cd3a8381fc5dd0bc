"""CloudJobsHook against the cloud simulator: auth modes, token cache, retries, errors, every service."""

from __future__ import annotations

import asyncio
import gc
import threading

import aiohttp
import airflow
import pytest
from packaging.version import Version

from airflow_provider_cloudjobs.auth import tokens
from airflow_provider_cloudjobs.exceptions import (
    CloudJobNotFoundError,
    CloudJobsAPIError,
    CloudJobsAuthError,
    CloudJobsError,
    CloudJobsInputError,
)
from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook, close_shared_session
from airflow_provider_cloudjobs.testing import simulator
from airflow_provider_cloudjobs.testing.contract import RETRYABLE_FAULTS

SERVICES = ["cce", "cce-autopilot", "dws", "elb", "ecs", "evs", "ims", "bms", "elbv3", "dcs", "rds"]

AIRFLOW_BEFORE_3_2 = Version(airflow.__version__) < Version("3.2")


def poll_until_terminal(hook: CloudJobsHook, job_id: str, service: str, limit: int = 20) -> list[dict]:
    seen = []
    for _ in range(limit):
        job = hook.get_job(job_id, service)
        seen.append(job)
        if job["is_terminal"]:
            return seen
    raise AssertionError(f"{service} job {job_id} never finished: {[j['status'] for j in seen]}")


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_progresses_to_success(cloud_simulator, cloudjobs_conn, service):
    conn_id = cloudjobs_conn()
    job_id = cloud_simulator.create_job(service, polls_to_finish=3)
    jobs = poll_until_terminal(CloudJobsHook(conn_id), job_id, service)
    assert len(jobs) == 3
    assert jobs[0]["phase"] in ("PENDING", "RUNNING")
    assert all(not job["is_terminal"] for job in jobs[:-1])
    final = jobs[-1]
    assert (final["service"], final["job_id"], final["phase"], final["is_terminal"]) == (
        service,
        job_id,
        "SUCCEEDED",
        True,
    )
    assert final["progress"] == 100.0
    assert final["error_code"] is None
    assert final["ended_at"] is not None
    assert final["ended_at"].endswith("Z")


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_reports_failure_reason(cloud_simulator, cloudjobs_conn, service):
    conn_id = cloudjobs_conn()
    job_id = cloud_simulator.create_job(
        service,
        polls_to_finish=2,
        outcome="fail",
        error_code="SIM.0500",
        message="quota exhausted in simulation",
    )
    final = poll_until_terminal(CloudJobsHook(conn_id), job_id, service)[-1]
    assert (final["phase"], final["is_terminal"]) == ("FAILED", True)
    assert final["message"]
    assert "quota exhausted in simulation" in final["message"]


def test_aksk_signed_requests(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn(auth_type="aksk")
    job_id = cloud_simulator.create_job("ecs", polls_to_finish=1)
    assert CloudJobsHook(conn_id).get_job(job_id, "ecs")["phase"] == "SUCCEEDED"
    assert cloud_simulator.stats()["iam_token_calls"] == 0  # AK/SK never asks IAM for a token


def test_aksk_wrong_secret_is_a_clear_auth_failure(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn(auth_type="aksk", password="not-the-secret-key")
    job_id = cloud_simulator.create_job("ecs")
    with pytest.raises(CloudJobsAuthError) as info:
        CloudJobsHook(conn_id).get_job(job_id, "ecs")
    assert "HTTP 401" in str(info.value)
    assert "not-the-secret-key" not in str(info.value)


def test_aksk_without_project_id_looks_it_up_by_region(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn(auth_type="aksk", project_id="")
    job_id = cloud_simulator.create_job("cce", polls_to_finish=1)
    assert CloudJobsHook(conn_id).get_job(job_id, "cce")["phase"] == "SUCCEEDED"


def test_password_scope_by_region_name_when_no_project_id(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn(project_id="")
    job_id = cloud_simulator.create_job("dws", polls_to_finish=1)
    assert CloudJobsHook(conn_id).get_job(job_id, "dws")["phase"] == "SUCCEEDED"


def test_pre_issued_token(cloud_simulator, cloudjobs_conn):
    token = cloud_simulator.issue_token()
    conn_id = cloudjobs_conn("cj_token", auth_type="token", token=token)
    job_id = cloud_simulator.create_job("elb", polls_to_finish=1)
    assert CloudJobsHook(conn_id).get_job(job_id, "elb")["phase"] == "SUCCEEDED"


def test_expired_pre_issued_token_fails_clearly_after_one_retry(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn(auth_type="token", token="MIIexpiredTokenValue")
    job_id = cloud_simulator.create_job("elb")
    with pytest.raises(CloudJobsAuthError) as info:
        CloudJobsHook(conn_id).get_job(job_id, "elb")
    assert "HTTP 401" in str(info.value)
    assert "X-Request-Id" in str(info.value)
    assert "MIIexpiredTokenValue" not in str(info.value)
    assert cloud_simulator.stats()["job_requests"] == 2  # the call, then once more after "refreshing"


def test_token_is_cached_across_hooks_and_calls(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn()
    job_ids = [cloud_simulator.create_job("cce", polls_to_finish=5) for _ in range(3)]
    for job_id in job_ids:
        CloudJobsHook(conn_id).get_job(job_id, "cce")
        CloudJobsHook(conn_id).get_job(job_id, "cce")
    assert cloud_simulator.stats()["iam_token_calls"] == 1


def test_concurrent_threads_share_one_token_fetch(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn()
    job_id = cloud_simulator.create_job("cce", polls_to_finish=50)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            CloudJobsHook(conn_id).get_job(job_id, "cce")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cloud_simulator.stats()["iam_token_calls"] == 1


async def test_concurrent_coroutines_share_one_token_and_one_session(cloud_simulator, cloudjobs_conn):
    from airflow_provider_cloudjobs.loop_state import loop_state

    conn_id = cloudjobs_conn()
    job_ids = [cloud_simulator.create_job("ecs", polls_to_finish=9) for _ in range(40)]
    try:
        jobs = await asyncio.gather(*(CloudJobsHook(conn_id).aget_job(job_id, "ecs") for job_id in job_ids))
        assert [job["job_id"] for job in jobs] == job_ids
        assert cloud_simulator.stats()["iam_token_calls"] == 1
        loop = asyncio.get_running_loop()
        open_here = [
            obj
            for obj in gc.get_objects()
            if type(obj) is aiohttp.ClientSession and not obj.closed and obj._loop is loop
        ]
        assert open_here == [loop_state().session()]  # one session for all 40 calls
    finally:
        await close_shared_session()


def test_token_refreshed_shortly_before_expiry(cloud_simulator, cloudjobs_conn, monkeypatch):
    conn_id = cloudjobs_conn()
    job_id = cloud_simulator.create_job("cce", polls_to_finish=10)
    hook = CloudJobsHook(conn_id)
    hook.get_job(job_id, "cce")
    token = tokens.TOKEN_CACHE.peek(hook.get_conn().cache_key)
    assert token is not None
    assert token.refresh_at < token.expires_at
    # Move this process's clock to just past the refresh point (the token is still valid at the cloud).
    now = token.refresh_at + 1
    monkeypatch.setattr(tokens.time, "time", lambda: now)
    hook.get_job(job_id, "cce")
    assert cloud_simulator.stats()["iam_token_calls"] == 2


def test_token_expired_at_the_cloud_is_refreshed_once(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn()
    job_id = cloud_simulator.create_job("cce", polls_to_finish=10)
    hook = CloudJobsHook(conn_id)
    hook.get_job(job_id, "cce")
    cloud_simulator.expire_tokens()
    assert hook.get_job(job_id, "cce")["job_id"] == job_id
    assert cloud_simulator.stats()["iam_token_calls"] == 2


def test_wrong_password_fails_at_once_with_iam_code_and_no_secret(cloud_simulator, cloudjobs_conn, caplog):
    conn_id = cloudjobs_conn(password="Wrong-Pa55word")
    job_id = cloud_simulator.create_job("cce")
    with pytest.raises(CloudJobsAuthError) as info:
        CloudJobsHook(conn_id).get_job(job_id, "cce")
    message = str(info.value)
    assert "IAM" in message
    assert "HTTP 401" in message
    assert info.value.error_code
    assert info.value.error_code in message
    assert "Wrong-Pa55word" not in message
    assert "Wrong-Pa55word" not in caplog.text
    assert cloud_simulator.stats()["iam_token_calls"] == 1  # no retry: IAM locks accounts out
    assert cloud_simulator.stats()["job_requests"] == 0


@pytest.mark.parametrize(
    ("kind", "options"),
    [*RETRYABLE_FAULTS, ("iam_500", {})],
)
def test_retryable_faults_are_retried(cloud_simulator, cloudjobs_conn, fast_backoff, kind, options):
    conn_id = cloudjobs_conn(timeout=0.5)
    job_id = cloud_simulator.create_job("cce", polls_to_finish=1)
    cloud_simulator.inject_fault(kind, count=2, **options)
    assert CloudJobsHook(conn_id, max_retries=3).get_job(job_id, "cce")["phase"] == "SUCCEEDED"
    assert cloud_simulator.stats()["faults_served"] == 2


def test_retries_give_up_with_the_last_error(cloud_simulator, cloudjobs_conn, fast_backoff):
    conn_id = cloudjobs_conn()
    job_id = cloud_simulator.create_job("cce")
    cloud_simulator.inject_fault("503", count=10)
    with pytest.raises(CloudJobsAPIError) as info:
        CloudJobsHook(conn_id, max_retries=2).get_job(job_id, "cce")
    assert info.value.retryable
    assert info.value.status == 503
    assert "HTTP 503" in str(info.value)
    assert cloud_simulator.stats()["faults_served"] == 3


def test_retry_after_is_honoured(cloud_simulator, cloudjobs_conn, fast_backoff):
    import time

    conn_id = cloudjobs_conn()
    job_id = cloud_simulator.create_job("cce", polls_to_finish=1)
    CloudJobsHook(conn_id).get_job(job_id, "cce")  # token fetched outside the timed part
    cloud_simulator.inject_fault("429", count=1, retry_after=0.6)
    started = time.monotonic()
    CloudJobsHook(conn_id).get_job(job_id, "cce")
    assert time.monotonic() - started >= 0.6  # far above the shrunken backoff (<= 0.1 s)


def test_not_found_carries_the_cloud_error_and_request_id(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn()
    with pytest.raises(CloudJobNotFoundError) as info:
        CloudJobsHook(conn_id).get_job("0123456789abcdef", "ecs")
    assert info.value.status == 404
    assert not info.value.retryable
    assert info.value.request_id
    assert info.value.request_id in str(info.value)
    assert info.value.error_code
    assert info.value.error_code in str(info.value)


def test_other_project_is_forbidden_not_retried(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn()
    job_id = cloud_simulator.create_job("cce")
    with pytest.raises(CloudJobsAPIError) as info:
        CloudJobsHook(conn_id).get_job(job_id, "cce", project_id="ffffffffffffffffffffffffffffffff")
    assert info.value.status == 403
    assert not info.value.retryable


@pytest.mark.parametrize(
    ("job_id", "service"),
    [("", "cce"), ("a/../b", "cce"), ("x?y", "cce"), ("ok-id", "nosuch"), ("a b", "ecs")],
)
def test_bad_input_sends_no_request(cloud_simulator, cloudjobs_conn, job_id, service):
    conn_id = cloudjobs_conn()
    with pytest.raises(CloudJobsInputError):
        CloudJobsHook(conn_id).get_job(job_id, service)
    assert cloud_simulator.stats()["requests"] == 0


def test_generic_request_creates_a_cce_cluster(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn()
    cluster = CloudJobsHook(conn_id).request(
        "POST",
        "cce",
        "/api/v3/projects/{project_id}/clusters",
        json={"kind": "Cluster", "apiVersion": "v3", "metadata": {"name": "c1"}, "spec": {}},
    )
    job_id = cluster["status"]["jobID"]
    assert CloudJobsHook(conn_id).get_job(job_id, "cce")["job_type"] == "CreateCluster"


@pytest.mark.parametrize("auth_type", ["password", "aksk", "token"])
def test_test_connection_reports_success(cloud_simulator, cloudjobs_conn, auth_type):
    extra = {}
    if auth_type == "token":
        extra["token"] = cloud_simulator.issue_token()
    conn_id = cloudjobs_conn(auth_type=auth_type, **extra)
    ok, message = CloudJobsHook(conn_id).test_connection()
    assert ok, message


def test_test_connection_reports_wrong_password_without_it(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn(password="Nope-Nope-123")
    ok, message = CloudJobsHook(conn_id).test_connection()
    assert not ok
    assert "HTTP 401" in message
    assert "Nope-Nope-123" not in message


def test_secrets_never_in_simulator_visible_repr(cloudjobs_conn):
    settings = CloudJobsHook(cloudjobs_conn()).get_conn()
    assert simulator.PASSWORD not in repr(settings)


@pytest.mark.skipif(
    AIRFLOW_BEFORE_3_2,
    reason="Airflow 3.1 asks the task supervisor for a connection no backend has; a test process has none",
)
def test_undefined_connection_is_named_before_any_request(cloud_simulator):
    with pytest.raises(
        CloudJobsError, match=r"Connection 'nope_conn' is not defined.*AIRFLOW_CONN_NOPE_CONN"
    ):
        CloudJobsHook("nope_conn").get_job("job-1", "cce")
    assert cloud_simulator.stats()["requests"] == 0
