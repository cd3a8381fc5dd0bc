"""Global EIP (``geip``): a global service whose jobs live under the account, not a project.

What a user notices: the job is waited on to its end with AK/SK (signed with ``X-Domain-Id``), with a
password (an account-scoped token, its own login beside the project token) and with a pre-issued token;
a connection without ``domain_id`` is refused before any request, naming the field; the default endpoint
is the SDK's region-less host, and ``endpoints`` still overrides it. The simulator refuses what the cloud
refuses: a project-scoped token, or AK/SK without ``X-Domain-Id``.
"""

from __future__ import annotations

import asyncio

import pytest
import requests

from airflow_provider_cloudjobs.connection import CloudJobsSettings, settings_from_connection
from airflow_provider_cloudjobs.exceptions import CloudJobsAPIError, CloudJobsAuthError, CloudJobsInputError
from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook, close_shared_session
from airflow_provider_cloudjobs.profiles import BUILTIN_PROFILES, ServiceProfile
from airflow_provider_cloudjobs.testing import simulator

GEIP = BUILTIN_PROFILES["geip"]


def wait(hook: CloudJobsHook, job_id: str, limit: int = 10) -> list[dict]:
    seen = []
    for _ in range(limit):
        seen.append(hook.get_job(job_id, "geip"))
        if seen[-1]["is_terminal"]:
            return seen
    raise AssertionError([job["status"] for job in seen])


@pytest.mark.parametrize("auth_type", ["aksk", "password"])
def test_a_global_eip_job_is_waited_on_to_success(cloud_simulator, cloudjobs_conn, auth_type):
    conn_id = cloudjobs_conn(auth_type=auth_type)
    job_id = cloud_simulator.create_job("geip", polls_to_finish=3)
    seen = wait(CloudJobsHook(conn_id), job_id)
    assert [job["phase"] for job in seen] == ["UNKNOWN", "UNKNOWN", "SUCCEEDED"]  # no in-progress word known
    final = seen[-1]
    assert (final["service"], final["job_id"], final["status"]) == ("geip", job_id, "FINISH_SUCC")
    assert final["job_type"] == "CreateGlobalEip"
    assert final["ended_at"] is not None
    stats = cloud_simulator.stats()
    assert stats["job_polls"][job_id] == 3
    assert stats["auth_failures"] == 0
    if auth_type == "aksk":
        assert stats["iam_token_calls"] == 0
    else:  # one account-scoped login, and no project login (a global service needs no project)
        assert (stats["iam_token_calls"], stats["iam_domain_token_calls"]) == (1, 1)


def test_a_rolled_back_global_eip_job_fails_with_its_error(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn(auth_type="aksk")
    job_id = cloud_simulator.create_job(
        "geip", outcome="fail", polls_to_finish=2, error_code="GEIP.1234", message="pool exhausted"
    )
    final = wait(CloudJobsHook(conn_id), job_id)[-1]
    assert (final["phase"], final["status"]) == ("FAILED", "FINISH_ROLLBACK_SUCC")
    assert (final["error_code"], final["message"]) == ("GEIP.1234", "pool exhausted")


def test_a_pre_issued_account_token_is_used_as_is(cloud_simulator, cloudjobs_conn):
    state = cloud_simulator.state
    token, _ = state.issue_token(simulator.USER_NAME, "u", "", "", simulator.DOMAIN_ID)
    conn_id = cloudjobs_conn(auth_type="token", token=token)
    job_id = cloud_simulator.create_job("geip", polls_to_finish=1)
    assert CloudJobsHook(conn_id).get_job(job_id, "geip")["phase"] == "SUCCEEDED"
    assert cloud_simulator.stats()["iam_token_calls"] == 0


@pytest.mark.parametrize("auth_type", ["aksk", "password", "token"])
def test_no_domain_id_is_refused_before_any_request_naming_the_field(
    cloud_simulator, cloudjobs_conn, auth_type
):
    conn_id = cloudjobs_conn(auth_type=auth_type, domain_id="", token="MIItoken")
    with pytest.raises(CloudJobsInputError) as info:
        CloudJobsHook(conn_id).get_job("ff8080825ecc523f015ecd0a98f82f77", "geip")
    assert "'domain_id'" in str(info.value)
    assert "Global EIP" in str(info.value)
    with pytest.raises(CloudJobsInputError, match="'domain_id'"):
        CloudJobsHook(conn_id).request("GET", "geip", "/v3/{domain_id}/geip/jobs")
    assert cloud_simulator.stats()["requests"] == 0


def test_a_project_id_for_a_global_service_is_refused_not_ignored(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn(auth_type="aksk")
    with pytest.raises(CloudJobsInputError) as info:
        CloudJobsHook(conn_id).get_job("ff8080825ecc523f015ecd0a98f82f77", "geip", project_id="0a1b2c3d")
    assert "project_id '0a1b2c3d'" in str(info.value)
    assert "'domain_id'" in str(info.value)
    assert cloud_simulator.stats()["requests"] == 0


def test_a_project_token_is_never_sent_to_a_global_service_one_login_per_scope(
    cloud_simulator, cloudjobs_conn
):
    conn_id = cloudjobs_conn()
    cce = cloud_simulator.create_job("cce", polls_to_finish=5)
    geip = cloud_simulator.create_job("geip", polls_to_finish=5)
    for _ in range(3):  # interleaved, through fresh hooks: each scope keeps its own token
        CloudJobsHook(conn_id).get_job(cce, "cce")
        CloudJobsHook(conn_id).get_job(geip, "geip")
    stats = cloud_simulator.stats()
    assert (stats["iam_token_calls"], stats["iam_domain_token_calls"]) == (2, 1)
    assert stats["auth_failures"] == 0  # the simulator would 403 a project token on the geip route


def test_an_expired_account_token_is_refreshed_once_and_the_project_token_kept(
    cloud_simulator, cloudjobs_conn
):
    conn_id = cloudjobs_conn()
    geip = cloud_simulator.create_job("geip", polls_to_finish=9)
    ecs = cloud_simulator.create_job("ecs", polls_to_finish=9)
    CloudJobsHook(conn_id).get_job(geip, "geip")
    cloud_simulator.inject_fault("token_expired", count=1, path_contains="/geip/")
    assert CloudJobsHook(conn_id).get_job(geip, "geip")["status"] == "RUNNING"
    CloudJobsHook(conn_id).get_job(ecs, "ecs")
    stats = cloud_simulator.stats()
    # account login, its refresh after the 401; one project login, untouched by the other scope's refresh
    assert (stats["iam_domain_token_calls"], stats["iam_token_calls"]) == (2, 3)


async def test_concurrent_waits_share_one_account_login(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn()
    jobs = [cloud_simulator.create_job("geip", polls_to_finish=1) for _ in range(8)]
    try:
        found = await asyncio.gather(*(CloudJobsHook(conn_id).aget_job(job, "geip") for job in jobs))
    finally:
        await close_shared_session()
    assert {job["phase"] for job in found} == {"SUCCEEDED"}
    assert cloud_simulator.stats()["iam_domain_token_calls"] == 1


def test_a_refused_account_login_is_remembered_like_a_project_one(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn(password="Wrong-Pa55word")
    job_id = cloud_simulator.create_job("geip")
    for _ in range(3):
        with pytest.raises(CloudJobsAuthError) as info:
            CloudJobsHook(conn_id).get_job(job_id, "geip")
        assert "Wrong-Pa55word" not in str(info.value)
    assert cloud_simulator.stats()["iam_token_calls"] == 1  # IAM locks accounts: one attempt, remembered
    assert cloud_simulator.stats()["job_requests"] == 0


def test_the_simulator_refuses_a_project_token_and_unsigned_domain_on_the_geip_route(
    cloud_simulator, cloudjobs_conn
):
    """As the cloud: a global service takes an account-scoped token or AK/SK with X-Domain-Id only."""
    job_id = cloud_simulator.create_job("geip", polls_to_finish=1)
    url = f"{cloud_simulator.url}/v3/{simulator.DOMAIN_ID}/geip/jobs/{job_id}"
    project_token, _ = cloud_simulator.state.issue_token(
        simulator.USER_NAME, "u", simulator.PROJECT_ID, simulator.REGION
    )
    answer = requests.get(url, headers={"X-Auth-Token": project_token}, timeout=10)
    assert answer.status_code == 403
    assert "scoped to the account" in answer.text

    from airflow_provider_cloudjobs.auth.signer import sign_request

    unsigned = sign_request("GET", url, {}, b"", simulator.ACCESS_KEY, simulator.SECRET_KEY)
    assert requests.get(url, headers=unsigned, timeout=10).status_code == 403
    other = sign_request(
        "GET", url, {"X-Domain-Id": "0" * 32}, b"", simulator.ACCESS_KEY, simulator.SECRET_KEY
    )
    assert requests.get(url, headers=other, timeout=10).status_code == 403
    signed = sign_request(
        "GET", url, {"X-Domain-Id": simulator.DOMAIN_ID}, b"", simulator.ACCESS_KEY, simulator.SECRET_KEY
    )
    assert requests.get(url, headers=signed, timeout=10).status_code == 200


def test_an_account_token_is_refused_by_a_project_service(cloud_simulator):
    job_id = cloud_simulator.create_job("ecs", polls_to_finish=1)
    token, _ = cloud_simulator.state.issue_token(simulator.USER_NAME, "u", "", "", simulator.DOMAIN_ID)
    url = f"{cloud_simulator.url}/v1/{simulator.PROJECT_ID}/jobs/{job_id}"
    assert requests.get(url, headers={"X-Auth-Token": token}, timeout=10).status_code == 403


# -- endpoint and connection ---------------------------------------------------------------------
def test_the_default_endpoint_is_region_less_and_endpoints_override_it_by_key():
    for region in ("cn-north-4", "ap-southeast-1", ""):
        settings = CloudJobsSettings(conn_id="c", auth_type="token", region=region)
        assert settings.base_url(GEIP) == "https://eip.myhuaweicloud.com"
    otc = CloudJobsSettings(conn_id="c", auth_type="token", endpoint_domain="example.test")
    assert otc.base_url(GEIP) == "https://eip.example.test"
    own = CloudJobsSettings(conn_id="c", auth_type="token", endpoints={"geip": "https://geip.internal/"})
    assert own.base_url(GEIP) == "https://geip.internal"
    # "eip" is the regional EIP service's key: its endpoint never gets Global EIP's calls or credentials.
    regional = CloudJobsSettings(
        conn_id="c", auth_type="token", region="cn-north-4", endpoints={"eip": "https://vpc.internal"}
    )
    assert regional.base_url(GEIP) == "https://eip.myhuaweicloud.com"
    assert regional.base_url(BUILTIN_PROFILES["eip"]) == "https://vpc.internal"


class _Conn:
    conn_id = "c"
    login = "AK0001"
    password = "sk"

    def __init__(self, **extra):
        self.extra_dejson = {"auth_type": "aksk", "region": "cn-north-4", **extra}


@pytest.mark.parametrize("bad", ["a/b", "x" * 65, "d1\nx", "../d", "id with space"])
def test_a_malformed_domain_id_is_refused_naming_the_field(bad):
    with pytest.raises(CloudJobsInputError, match="domain_id"):
        settings_from_connection(_Conn(domain_id=bad))


def test_domain_id_is_read_and_separates_credential_sets():
    first = settings_from_connection(_Conn(domain_id="d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f"))
    second = settings_from_connection(_Conn(domain_id="e0e1f2a3b4c5d6e7f8091a2b3c4d5e6f"))
    assert first.domain_id == "d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f"
    assert first.cache_key != second.cache_key


def test_a_profile_of_ones_own_may_be_domain_scoped_and_bad_scopes_are_refused():
    mine = ServiceProfile.from_dict("mine", {"extends": "geip", "path": "/v3/{domain_id}/mine/jobs/{job_id}"})
    assert (mine.scope, mine.regional, mine.path_params) == ("domain", False, ())
    assert mine.job_path("", "j1", domain_id="d1") == "/v3/d1/mine/jobs/j1"
    with pytest.raises(CloudJobsInputError, match="scope"):
        ServiceProfile.from_dict("bad", {"extends": "geip", "scope": "region"})
    with pytest.raises(CloudJobsInputError, match="project_id"):
        ServiceProfile.from_dict("bad", {"extends": "geip", "path": "/v3/{project_id}/jobs/{job_id}"})
    with pytest.raises(CloudJobsInputError, match="path_params"):
        GEIP.job_path("", "j1", {"domain_id": "d1"}, domain_id="d1")


def test_the_domain_scoped_login_asks_iam_for_the_account_scope():
    from airflow_provider_cloudjobs.auth.tokens import password_auth_body

    settings = CloudJobsSettings(
        conn_id="c",
        auth_type="password",
        login="u",
        secret="p",
        domain_name="acct",
        domain_id="d1",
        project_id="p1",
    )
    assert password_auth_body(settings, "domain")["auth"]["scope"] == {"domain": {"id": "d1"}}
    assert password_auth_body(settings)["auth"]["scope"] == {"project": {"id": "p1"}}


def test_a_wrong_account_id_is_the_clouds_clear_403_not_retried(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn(auth_type="aksk", domain_id="0" * 32)
    job_id = cloud_simulator.create_job("geip")
    with pytest.raises(CloudJobsAPIError) as info:
        CloudJobsHook(conn_id).get_job(job_id, "geip")
    assert info.value.status == 403
    assert cloud_simulator.stats()["job_requests"] == 1
