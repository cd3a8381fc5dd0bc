"""The cloud simulator, spoken to with plain HTTP clients (requests, aiohttp), as the cloud would be."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import threading
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiohttp
import pytest
import requests

from airflow_provider_cloudjobs.testing import simulator as sim_module
from airflow_provider_cloudjobs.testing.simulator import (
    CloudSimulator,
    SimulatorClient,
    start_in_subprocess,
    stop_subprocess,
)

P = sim_module.PROJECT_ID
PATHS = {
    "cce": "/api/v3/projects/{p}/jobs/{j}",
    "cce-autopilot": "/autopilot/v3/projects/{p}/jobs/{j}",
    "dws": "/v1.0/{p}/job/{j}",
    "elb": "/v1.0/{p}/jobs/{j}",
    "ecs": "/v1/{p}/jobs/{j}",
    "evs": "/v1/{p}/jobs/{j}",
    "ims": "/v1/{p}/jobs/{j}",
    "bms": "/v1/{p}/jobs/{j}",
    "elbv3": "/v3/{p}/elb/jobs/{j}",
    "dcs": "/v2/{p}/jobs/{j}",
    "rds": "/v3/{p}/jobs?id={j}",
}
# (initial, running, success, failure) raw status words per service.
WORDS = {
    "cce": ("Initializing", "Running", "Success", "Failed"),
    "cce-autopilot": ("Initializing", "Running", "Success", "Failed"),
    "elbv3": ("INIT", "RUNNING", "COMPLETE", "FAIL"),
    "rds": ("Running", "Running", "Completed", "Failed"),
}
V1 = ("INIT", "RUNNING", "SUCCESS", "FAIL")
GO_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9} \+0000 UTC$")
MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SEC_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
NAIVE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
PLUS0000 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$")
IAM_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def token_body(
    user: str = sim_module.USER_NAME,
    password: str = sim_module.PASSWORD,
    domain: str = sim_module.DOMAIN_NAME,
    project: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "password": password, "domain": {"name": domain}}},
            },
            "scope": {"project": project or {"name": sim_module.REGION}},
        }
    }


def get_token(sim: CloudSimulator, **kwargs: Any) -> str:
    response = requests.post(sim.url + "/v3/auth/tokens", json=token_body(**kwargs), timeout=10)
    assert response.status_code == 201, response.text
    return response.headers["X-Subject-Token"]


def job_get(
    sim: CloudSimulator, service: str, job_id: str, token: str, project: str = P
) -> requests.Response:
    url = sim.url + PATHS[service].format(p=project, j=job_id)
    return requests.get(url, headers={"X-Auth-Token": token}, timeout=10)


def raw_status(service: str, body: dict[str, Any]) -> str:
    if service.startswith("cce"):
        return str(body["status"]["phase"])
    if service in ("elbv3", "rds"):
        return str(body["job"]["status"])
    return str(body["status"])


def sub_jobs(service: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    if service.startswith("cce"):
        return list(body["spec"]["subJobs"])
    if service == "elbv3":
        return list(body["job"]["sub_jobs"])
    return list(body.get("entities", {}).get("sub_jobs", []))


def sub_status(service: str, sub: dict[str, Any]) -> str:
    return str(sub["status"]["phase"] if service.startswith("cce") else sub["status"])


@pytest.fixture
def token(cloud_simulator: CloudSimulator) -> str:
    return get_token(cloud_simulator)


# -- IAM ------------------------------------------------------------------------------------------
def test_token_is_issued_like_iam(cloud_simulator: CloudSimulator) -> None:
    response = requests.post(cloud_simulator.url + "/v3/auth/tokens", json=token_body(), timeout=10)

    assert response.status_code == 201
    value = response.headers["X-Subject-Token"]
    assert value.startswith("MII")
    assert len(value) > 300
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])
    token = response.json()["token"]
    assert token["methods"] == ["password"]
    assert IAM_TIME.match(token["expires_at"])
    assert IAM_TIME.match(token["issued_at"])
    expires = datetime.strptime(token["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert 86000 < expires.timestamp() - time.time() <= 86400
    assert token["project"]["id"] == P
    assert token["project"]["name"] == sim_module.REGION
    assert token["project"]["domain"]["name"] == sim_module.DOMAIN_NAME
    assert token["user"]["name"] == sim_module.USER_NAME
    assert token["catalog"] == []
    assert cloud_simulator.stats()["iam_token_calls"] == 1


def test_token_scoped_by_project_id(cloud_simulator: CloudSimulator) -> None:
    response = requests.post(
        cloud_simulator.url + "/v3/auth/tokens",
        json=token_body(project={"id": sim_module.OTHER_PROJECT_ID}),
        timeout=10,
    )
    assert response.status_code == 201
    assert response.json()["token"]["project"] == {
        "id": sim_module.OTHER_PROJECT_ID,
        "name": sim_module.OTHER_REGION,
        "domain": {"name": sim_module.DOMAIN_NAME, "id": response.json()["token"]["project"]["domain"]["id"]},
    }


@pytest.mark.parametrize(
    "kwargs",
    [{"password": "wrong"}, {"user": "nobody"}, {"domain": "other-domain"}],
    ids=["password", "user", "domain"],
)
def test_wrong_credentials_get_iams_401(cloud_simulator: CloudSimulator, kwargs: dict[str, Any]) -> None:
    response = requests.post(cloud_simulator.url + "/v3/auth/tokens", json=token_body(**kwargs), timeout=10)

    assert response.status_code == 401
    assert "X-Subject-Token" not in response.headers
    assert response.headers["X-Request-Id"]
    assert response.json() == {
        "error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}
    }
    stats = cloud_simulator.stats()
    assert stats["iam_token_calls"] == 1
    assert stats["auth_failures"] == 1
    assert stats["iam_calls_by_user"] == {kwargs.get("user", sim_module.USER_NAME): 1}


@pytest.mark.parametrize(
    "payload", [b"not json", b"{}", b'{"auth": {"identity": {"methods": ["password"]}}}']
)
def test_malformed_token_request_is_400(cloud_simulator: CloudSimulator, payload: bytes) -> None:
    response = requests.post(
        cloud_simulator.url + "/v3/auth/tokens",
        data=payload,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400
    assert cloud_simulator.stats()["iam_token_calls"] == 1


def test_unknown_project_scope_is_refused(cloud_simulator: CloudSimulator) -> None:
    response = requests.post(
        cloud_simulator.url + "/v3/auth/tokens", json=token_body(project={"name": "xx-nowhere-1"}), timeout=10
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    "domain", [{"id": sim_module.DOMAIN_ID}, {"name": sim_module.DOMAIN_NAME}], ids=["by-id", "by-name"]
)
def test_an_account_scoped_token_names_the_domain_and_no_project(
    cloud_simulator: CloudSimulator, domain: dict[str, str]
) -> None:
    body = token_body()
    body["auth"]["scope"] = {"domain": domain}
    response = requests.post(cloud_simulator.url + "/v3/auth/tokens", json=body, timeout=10)
    assert response.status_code == 201, response.text
    token = response.json()["token"]
    assert token["domain"]["id"] == sim_module.DOMAIN_ID
    assert "project" not in token
    assert cloud_simulator.stats()["iam_domain_token_calls"] == 1


@pytest.mark.parametrize("domain", [{"id": "0" * 32}, {"name": "another-account"}], ids=["id", "name"])
def test_another_accounts_scope_is_refused(cloud_simulator: CloudSimulator, domain: dict[str, str]) -> None:
    body = token_body()
    body["auth"]["scope"] = {"domain": domain}
    response = requests.post(cloud_simulator.url + "/v3/auth/tokens", json=body, timeout=10)
    assert response.status_code == 401
    assert cloud_simulator.stats()["tokens_issued"] == 0


def test_projects_by_region_name(cloud_simulator: CloudSimulator, token: str) -> None:
    response = requests.get(
        cloud_simulator.url + "/v3/projects",
        params={"name": sim_module.REGION},
        headers={"X-Auth-Token": token},
        timeout=10,
    )
    assert response.status_code == 200
    body = response.json()
    assert [p["id"] for p in body["projects"]] == [P]
    project = body["projects"][0]
    assert project["name"] == sim_module.REGION
    assert project["enabled"] is True
    assert project["domain_id"]
    assert set(body["links"]) == {"self", "previous", "next"}
    unauthenticated = requests.get(cloud_simulator.url + "/v3/projects", timeout=10)
    assert unauthenticated.status_code == 401


# -- API Gateway authentication on job calls -------------------------------------------------------
def test_job_call_without_token_is_apigw_0301(cloud_simulator: CloudSimulator) -> None:
    job_id = cloud_simulator.create_job("cce")
    response = requests.get(cloud_simulator.url + PATHS["cce"].format(p=P, j=job_id), timeout=10)
    assert response.status_code == 401
    body = response.json()
    assert body["error_code"] == "APIGW.0301"
    assert body["error_msg"] == "Incorrect IAM authentication information: x-auth-token not found"
    assert body["request_id"] == response.headers["X-Request-Id"]
    assert cloud_simulator.job_state(job_id)["gets"] == 0


def test_unknown_token_is_apigw_0301(cloud_simulator: CloudSimulator) -> None:
    job_id = cloud_simulator.create_job("ecs")
    response = job_get(cloud_simulator, "ecs", job_id, "MIIbogus")
    assert response.status_code == 401
    assert response.json()["error_code"] == "APIGW.0301"
    assert "decrypt token fail" in response.json()["error_msg"]


def test_expired_token_is_apigw_0307(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("dws")
    assert job_get(cloud_simulator, "dws", job_id, token).status_code == 200

    cloud_simulator.expire_tokens()
    response = job_get(cloud_simulator, "dws", job_id, token)

    assert response.status_code == 401
    assert response.json()["error_code"] == "APIGW.0307"
    assert response.json()["error_msg"] == "The token must be updated."
    fresh = get_token(cloud_simulator)
    assert job_get(cloud_simulator, "dws", job_id, fresh).status_code == 200
    assert cloud_simulator.stats()["auth_failures"] == 1


def test_token_ttl_config_makes_short_lived_tokens(cloud_simulator: CloudSimulator) -> None:
    cloud_simulator.configure(token_ttl=0)
    token = get_token(cloud_simulator)
    job_id = cloud_simulator.create_job("elb")
    assert job_get(cloud_simulator, "elb", job_id, token).json()["error_code"] == "APIGW.0307"


def test_token_of_another_project_is_403(cloud_simulator: CloudSimulator) -> None:
    other = get_token(cloud_simulator, project={"id": sim_module.OTHER_PROJECT_ID})
    job_id = cloud_simulator.create_job("cce")
    response = job_get(cloud_simulator, "cce", job_id, other)
    assert response.status_code == 403
    assert response.json()["errorCode"] == "CCE.01403001"
    assert cloud_simulator.job_state(job_id)["gets"] == 0


# -- job progression, per service ----------------------------------------------------------------
@pytest.mark.parametrize("service", sorted(PATHS))
@pytest.mark.parametrize("outcome", ["success", "fail"])
def test_job_progresses_to_its_outcome(
    cloud_simulator: CloudSimulator, token: str, service: str, outcome: str
) -> None:
    init, running, success, fail = WORDS.get(service, V1)
    job_id = cloud_simulator.create_job(service, outcome=outcome, polls_to_finish=4, sub_jobs=2)

    bodies = []
    for _ in range(6):
        response = job_get(cloud_simulator, service, job_id, token)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.headers["X-Request-Id"]
        bodies.append(response.json())
    statuses = [raw_status(service, body) for body in bodies]

    terminal = success if outcome == "success" else fail
    assert statuses == [init, running, running, terminal, terminal, terminal]
    state = cloud_simulator.job_state(job_id)
    assert state["visible_polls"] == 6
    assert state["is_terminal"]
    assert state["status"] == terminal
    assert cloud_simulator.stats()["job_polls"] == {job_id: 6}


def test_cce_job_has_the_seed_shape(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("cce", polls_to_finish=5, sub_jobs=3, resource_name="my-cluster")
    bodies = [job_get(cloud_simulator, "cce", job_id, token).json() for _ in range(5)]

    first, last = bodies[0], bodies[-1]
    assert first["kind"] == "Job"
    assert first["apiVersion"] == "v3"
    assert first["metadata"]["uid"] == job_id
    assert GO_TIME.match(first["metadata"]["creationTimestamp"])
    assert GO_TIME.match(first["metadata"]["updateTimestamp"])
    assert first["spec"]["type"] == "CreateCluster"
    assert first["spec"]["resourceName"] == "my-cluster"
    assert {"clusterUID", "resourceID", "extendParam", "subJobs"} <= set(first["spec"])
    assert last["status"] == {"phase": "Success", "reason": ""}
    done_per_poll = [sum(s["status"]["phase"] == "Success" for s in b["spec"]["subJobs"]) for b in bodies]
    assert done_per_poll == sorted(done_per_poll)
    assert done_per_poll[0] == 0
    assert done_per_poll[-1] == 3
    assert len(set(done_per_poll)) >= 3  # sub-jobs finish one by one
    for sub in last["spec"]["subJobs"]:
        assert sub["kind"] == "Job"
        assert GO_TIME.match(sub["metadata"]["creationTimestamp"])
    assert last["metadata"]["updateTimestamp"] >= first["metadata"]["updateTimestamp"]


def test_cce_failure_names_the_failed_sub_job(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job(
        "cce",
        outcome="fail",
        polls_to_finish=2,
        error_code="CCE.01400008",
        message="Insufficient server quota",
    )
    job_get(cloud_simulator, "cce", job_id, token)
    body = job_get(cloud_simulator, "cce", job_id, token).json()

    assert body["status"]["phase"] == "Failed"
    assert "Insufficient server quota" in body["status"]["reason"]
    failed = [s for s in body["spec"]["subJobs"] if s["status"]["phase"] == "Failed"]
    assert len(failed) == 1
    assert "CCE.01400008" in failed[0]["status"]["reason"]


def test_dws_job_like_seed_002(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("dws", outcome="fail", polls_to_finish=4)
    bodies = [job_get(cloud_simulator, "dws", job_id, token).json() for _ in range(4)]

    assert set(bodies[0]) == {
        "job_id",
        "job_name",
        "status",
        "progress",
        "begin_time",
        "end_time",
        "failed_code",
        "failed_detail",
    }
    progress = [int(b["progress"].rstrip("%")) for b in bodies[:3]]
    assert progress == sorted(progress)
    assert progress[0] < progress[2]
    assert NAIVE.match(bodies[0]["begin_time"])
    assert bodies[0]["end_time"] is None
    last = bodies[-1]
    assert last["status"] == "FAIL"
    assert NAIVE.match(last["end_time"])
    assert last["failed_code"] == "CreateELBTask-fail:DWS.0114"
    assert last["failed_detail"] == "DWS.0114:ELB private IP is not configured."


def test_classic_elb_job_like_seed_004(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("elb", polls_to_finish=2)
    running = job_get(cloud_simulator, "elb", job_id, token).json()
    done = job_get(cloud_simulator, "elb", job_id, token).json()

    assert set(running) == {
        "status",
        "entities",
        "job_id",
        "job_type",
        "begin_time",
        "end_time",
        "error_code",
        "fail_reason",
    }
    assert re.fullmatch(r"[0-9a-f]{32}", running["entities"]["elb_id"])
    assert MS_Z.match(running["begin_time"])
    assert running["end_time"] == ""
    assert running["error_code"] is None
    assert running["fail_reason"] is None
    assert done["status"] == "SUCCESS"
    assert MS_Z.match(done["end_time"])


def test_ecs_failure_reports_on_job_and_one_sub_job(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("ecs", outcome="fail", polls_to_finish=3, sub_jobs=3)
    bodies = [job_get(cloud_simulator, "ecs", job_id, token).json() for _ in range(3)]

    assert bodies[0]["entities"] == {}  # INIT: the sub-jobs do not exist yet
    last = bodies[-1]
    assert last["status"] == "FAIL"
    assert last["error_code"] == "Ecs.0013"
    assert last["fail_reason"]
    assert MS_Z.match(last["begin_time"])
    assert MS_Z.match(last["end_time"])
    assert last["entities"]["sub_jobs_total"] == 3
    subs = last["entities"]["sub_jobs"]
    assert [s["status"] for s in subs] == ["SUCCESS", "SUCCESS", "FAIL"]
    assert subs[2]["entities"]["errorcode_message"] == last["fail_reason"]
    assert subs[2]["error_code"] == "Ecs.0013"
    assert subs[0]["error_code"] is None
    assert all(s["job_type"] == "createSingleServer" and "server_id" in s["entities"] for s in subs)


def test_ecs_sub_jobs_finish_one_by_one(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("ecs", polls_to_finish=4, sub_jobs=3)
    bodies = [job_get(cloud_simulator, "ecs", job_id, token).json() for _ in range(4)]
    done = [sum(s["status"] == "SUCCESS" for s in sub_jobs("ecs", b)) for b in bodies]
    assert done == [0, 1, 2, 3]
    running = bodies[1]["entities"]["sub_jobs"]
    assert [s["status"] for s in running] == ["SUCCESS", "RUNNING", "INIT"]
    assert running[0]["end_time"]
    assert running[1]["end_time"] == ""


def test_evs_and_bms_sub_job_entities(cloud_simulator: CloudSimulator, token: str) -> None:
    for service, key in (("evs", "volume_id"), ("bms", "server_id")):
        job_id = cloud_simulator.create_job(service, polls_to_finish=1, sub_jobs=1)
        body = job_get(cloud_simulator, service, job_id, token).json()
        assert body["status"] == "SUCCESS"
        assert key in body["entities"]["sub_jobs"][0]["entities"]


def test_ims_progress_is_a_fraction(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("ims", polls_to_finish=5, resource_name="my-image")
    bodies = [job_get(cloud_simulator, "ims", job_id, token).json() for _ in range(5)]
    fractions = [b["entities"]["process_percent"] for b in bodies]
    assert fractions == sorted(fractions)
    assert fractions[0] == 0
    assert fractions[-1] == 1
    assert all(0 <= f <= 1 for f in fractions)
    assert bodies[-1]["entities"]["image_name"] == "my-image"
    assert bodies[-1]["entities"]["image_id"]


def test_ecs_pending_payment_through_raw_statuses(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("ecs", raw_statuses=["PENDING_PAYMENT", "RUNNING", "SUCCESS"])
    statuses = [job_get(cloud_simulator, "ecs", job_id, token).json()["status"] for _ in range(4)]
    assert statuses == ["PENDING_PAYMENT", "RUNNING", "SUCCESS", "SUCCESS"]


def test_unknown_raw_status_repeats(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("dws", raw_statuses=["INIT", "WEIRD"])
    statuses = [job_get(cloud_simulator, "dws", job_id, token).json()["status"] for _ in range(4)]
    assert statuses == ["INIT", "WEIRD", "WEIRD", "WEIRD"]
    assert cloud_simulator.job_state(job_id)["is_terminal"] is False


def test_elbv3_job_shape(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job(
        "elbv3", outcome="fail", polls_to_finish=2, error_code="ELB.8902", message="quota exceeded"
    )
    running = job_get(cloud_simulator, "elbv3", job_id, token)
    failed = job_get(cloud_simulator, "elbv3", job_id, token).json()

    assert running.json()["request_id"] == running.headers["X-Request-Id"]
    job = failed["job"]
    assert job["job_id"] == job_id
    assert job["project_id"] == P
    assert job["resource_id"]
    assert job["status"] == "FAIL"
    assert job["error_code"] == "ELB.8902"
    assert job["error_msg"] == "quota exceeded"
    assert SEC_Z.match(job["begin_time"])
    assert SEC_Z.match(job["end_time"])
    assert running.json()["job"]["end_time"] is None
    sub = job["sub_jobs"][-1]
    assert sub["status"] == "FAIL"
    assert sub["entities"][0]["resource_type"] == "loadbalancer"


def test_rds_job_shape(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("rds", polls_to_finish=4, resource_name="my-db")
    bodies = [job_get(cloud_simulator, "rds", job_id, token).json()["job"] for _ in range(4)]

    assert [b["status"] for b in bodies] == ["Running", "Running", "Running", "Completed"]
    progress = [int(b["process"].rstrip("%")) for b in bodies[:3]]
    assert progress == sorted(progress)
    assert progress[0] < progress[2]
    assert bodies[-1]["process"] == ""
    assert PLUS0000.match(bodies[0]["created"])
    assert bodies[0]["ended"] is None
    assert PLUS0000.match(bodies[-1]["ended"])
    assert bodies[-1]["instance"]["name"] == "my-db"
    assert bodies[-1]["id"] == job_id


def test_rds_without_id_query_is_400(cloud_simulator: CloudSimulator, token: str) -> None:
    response = requests.get(f"{cloud_simulator.url}/v3/{P}/jobs", headers={"X-Auth-Token": token}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error_code"].startswith("DBS.")


def test_dcs_job_uses_millisecond_timestamps(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("dcs", outcome="fail", polls_to_finish=2)
    running = job_get(cloud_simulator, "dcs", job_id, token).json()
    failed = job_get(cloud_simulator, "dcs", job_id, token).json()
    assert re.fullmatch(r"\d{13}", running["begin_time"])
    assert running["end_time"] == ""
    assert failed["status"] == "FAIL"
    assert re.fullmatch(r"\d{13}", failed["end_time"])
    assert int(failed["end_time"]) >= int(failed["begin_time"])
    assert failed["fail_reason"]


def test_job_is_served_only_on_its_own_path_and_project(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("dws")
    assert job_get(cloud_simulator, "elb", job_id, token).status_code == 404
    other_project_job = cloud_simulator.create_job("dws", project_id=sim_module.OTHER_PROJECT_ID)
    assert job_get(cloud_simulator, "dws", other_project_job, token).status_code == 404


def test_terminal_jobs_stay_terminal_and_end_time_is_stable(
    cloud_simulator: CloudSimulator, token: str
) -> None:
    job_id = cloud_simulator.create_job("ecs", polls_to_finish=1)
    first = job_get(cloud_simulator, "ecs", job_id, token).json()
    again = [job_get(cloud_simulator, "ecs", job_id, token).json() for _ in range(3)]
    assert first["status"] == "SUCCESS"
    assert all(b["status"] == "SUCCESS" and b["end_time"] == first["end_time"] for b in again)


def test_wall_time_progress(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("dws", polls_to_finish=3, seconds_to_finish=0.4)
    first = job_get(cloud_simulator, "dws", job_id, token).json()["status"]
    seen = [first]
    deadline = time.monotonic() + 10
    while seen[-1] != "SUCCESS" and time.monotonic() < deadline:
        seen.append(job_get(cloud_simulator, "dws", job_id, token).json()["status"])
        time.sleep(0.02)
    assert first == "INIT"
    assert seen[-1] == "SUCCESS"
    assert seen == sorted(seen, key=["INIT", "RUNNING", "SUCCESS"].index)


def test_seconds_per_step_config_finishes_without_polls(cloud_simulator: CloudSimulator, token: str) -> None:
    cloud_simulator.configure(seconds_per_step=0.0)
    job_id = cloud_simulator.create_job("elb", polls_to_finish=5)
    assert job_get(cloud_simulator, "elb", job_id, token).json()["status"] == "SUCCESS"


# -- 404 visibility window and vanishing ------------------------------------------------------------
@pytest.mark.parametrize(
    ("service", "code_of"),
    [
        ("cce", lambda b: b["errorCode"]),
        ("ecs", lambda b: b["error"]["code"]),
        ("dws", lambda b: b["error_code"]),
        ("elb", lambda b: b["error_code"]),
        ("rds", lambda b: b["error_code"]),
    ],
)
def test_job_appears_after_a_404_window(
    cloud_simulator: CloudSimulator, token: str, service: str, code_of: Any
) -> None:
    job_id = cloud_simulator.create_job(service, visible_after_polls=2, polls_to_finish=2)
    responses = [job_get(cloud_simulator, service, job_id, token) for _ in range(4)]

    assert [r.status_code for r in responses] == [404, 404, 200, 200]
    assert code_of(responses[0].json())
    assert raw_status(service, responses[2].json()) == WORDS.get(service, V1)[0]
    state = cloud_simulator.job_state(job_id)
    assert state["not_found_polls"] == 2
    assert state["visible_polls"] == 2
    assert cloud_simulator.stats()["job_polls"][job_id] == 4


def test_job_vanishes_after_k_visible_polls(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("cce", vanish_after_polls=2, polls_to_finish=5)
    codes = [job_get(cloud_simulator, "cce", job_id, token).status_code for _ in range(5)]
    assert codes == [200, 200, 404, 404, 404]
    assert cloud_simulator.job_state(job_id)["vanished"] is True


def test_unknown_job_is_404_and_counted(cloud_simulator: CloudSimulator, token: str) -> None:
    response = job_get(cloud_simulator, "ecs", "0" * 32, token)
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"code", "message"}
    assert cloud_simulator.stats()["job_polls"] == {"0" * 32: 1}


def test_unknown_api_is_apigw_0101(cloud_simulator: CloudSimulator) -> None:
    response = requests.get(cloud_simulator.url + "/v9/nothing/here", timeout=10)
    assert response.status_code == 404
    assert response.json()["error_code"] == "APIGW.0101"
    assert response.headers["X-Request-Id"] == response.json()["request_id"]


# -- faults -----------------------------------------------------------------------------------------
def test_429_fault_with_retry_after(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("cce")
    cloud_simulator.inject_fault("429", count=2, retry_after=3)

    first, second, third = (job_get(cloud_simulator, "cce", job_id, token) for _ in range(3))

    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["Retry-After"] == "3"
    assert first.json()["error_code"] == "APIGW.0308"
    assert first.json()["error_msg"].startswith("The throttling threshold has been reached")
    assert raw_status("cce", third.json()) == "Initializing"  # faults did not advance the job
    stats = cloud_simulator.stats()
    assert stats["faults_served"] == 2
    assert stats["job_polls"] == {job_id: 1}
    assert stats["job_requests"] == 3


def test_429_without_retry_after_has_no_header(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("cce")
    cloud_simulator.inject_fault("429")
    assert "Retry-After" not in job_get(cloud_simulator, "cce", job_id, token).headers


@pytest.mark.parametrize(
    ("kind", "status", "content_type"),
    [
        ("500", 500, "text/html"),
        ("502", 502, "application/json"),
        ("503", 503, "text/html"),
        ("404", 404, "application/json"),
        ("token_expired", 401, "application/json"),
    ],
)
def test_status_faults(
    cloud_simulator: CloudSimulator, token: str, kind: str, status: int, content_type: str
) -> None:
    job_id = cloud_simulator.create_job("ecs")
    cloud_simulator.inject_fault(kind)

    faulty = job_get(cloud_simulator, "ecs", job_id, token)
    normal = job_get(cloud_simulator, "ecs", job_id, token)

    assert faulty.status_code == status
    assert faulty.headers["Content-Type"].startswith(content_type)
    assert faulty.headers["X-Request-Id"]
    if kind == "500":
        assert "<title>500 Internal Server Error</title>" in faulty.text
    if kind == "token_expired":
        assert faulty.json()["error_code"] == "APIGW.0307"
    assert normal.status_code == 200
    assert normal.json()["status"] == "INIT"
    assert cloud_simulator.stats()["responses_by_status"] == {str(status): 1, "200": 1, "201": 1}


def test_reset_fault_drops_the_connection(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("dws")
    cloud_simulator.inject_fault("reset")

    with pytest.raises(requests.ConnectionError):
        job_get(cloud_simulator, "dws", job_id, token)
    assert job_get(cloud_simulator, "dws", job_id, token).json()["status"] == "INIT"
    stats = cloud_simulator.stats()
    assert stats["faults_served"] == 1
    assert stats["requests"] == 3


def test_slow_fault_delays_and_does_not_advance(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("elb", polls_to_finish=2)
    cloud_simulator.inject_fault("slow", delay=0.3)

    started = time.monotonic()
    slow = job_get(cloud_simulator, "elb", job_id, token)
    elapsed = time.monotonic() - started

    assert elapsed >= 0.3
    assert slow.status_code == 200
    assert slow.json()["status"] == "INIT"
    assert job_get(cloud_simulator, "elb", job_id, token).json()["status"] == "INIT"
    assert cloud_simulator.job_state(job_id)["visible_polls"] == 1


def test_slow_read_timeout_is_seen_by_the_client(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("elb")
    cloud_simulator.inject_fault("slow", delay=1.0)
    with pytest.raises(requests.ReadTimeout):
        requests.get(
            cloud_simulator.url + PATHS["elb"].format(p=P, j=job_id),
            headers={"X-Auth-Token": token},
            timeout=0.2,
        )


def test_malformed_json_fault(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("rds")
    cloud_simulator.inject_fault("malformed_json")

    response = job_get(cloud_simulator, "rds", job_id, token)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)
    assert cloud_simulator.job_state(job_id)["visible_polls"] == 0


def test_iam_500_fault_hits_only_iam(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("cce")
    cloud_simulator.inject_fault("iam_500")

    assert job_get(cloud_simulator, "cce", job_id, token).status_code == 200
    failed = requests.post(cloud_simulator.url + "/v3/auth/tokens", json=token_body(), timeout=10)
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == 500
    assert (
        requests.post(cloud_simulator.url + "/v3/auth/tokens", json=token_body(), timeout=10).status_code
        == 201
    )


def test_unfiltered_service_faults_spare_iam(cloud_simulator: CloudSimulator) -> None:
    cloud_simulator.inject_fault("503")
    assert (
        requests.post(cloud_simulator.url + "/v3/auth/tokens", json=token_body(), timeout=10).status_code
        == 201
    )
    assert cloud_simulator.stats()["faults_pending"] == 1


def test_faults_filtered_by_job_and_path(cloud_simulator: CloudSimulator, token: str) -> None:
    target = cloud_simulator.create_job("ecs")
    other = cloud_simulator.create_job("ecs")
    cloud_simulator.inject_fault("502", job_id=target)
    cloud_simulator.inject_fault("429", path_contains="/v3/auth/tokens")

    assert job_get(cloud_simulator, "ecs", other, token).status_code == 200
    assert job_get(cloud_simulator, "ecs", target, token).status_code == 502
    assert (
        requests.post(cloud_simulator.url + "/v3/auth/tokens", json=token_body(), timeout=10).status_code
        == 429
    )


def test_faults_are_served_in_order(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("cce")
    cloud_simulator.inject_fault("500", count=2)
    cloud_simulator.inject_fault("429")
    codes = [job_get(cloud_simulator, "cce", job_id, token).status_code for _ in range(4)]
    assert codes == [500, 500, 429, 200]


def test_bad_fault_arguments_are_refused(cloud_simulator: CloudSimulator) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        cloud_simulator.inject_fault("teapot")
    with pytest.raises(ValueError, match="delay"):
        cloud_simulator.inject_fault("slow")
    with pytest.raises(ValueError, match="unknown service"):
        cloud_simulator.create_job("nosuch")


# -- stats, reset, concurrency -----------------------------------------------------------------------
def test_stats_count_everything(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("ecs")
    job_get(cloud_simulator, "ecs", job_id, token)
    job_get(cloud_simulator, "ecs", job_id, "MIIbad")
    requests.get(cloud_simulator.url + "/nowhere", timeout=10)

    stats = cloud_simulator.stats()
    assert stats["requests"] == 4
    assert stats["job_requests"] == 2
    assert stats["iam_token_calls"] == 1
    assert stats["iam_calls_by_user"] == {sim_module.USER_NAME: 1}
    assert stats["job_polls"] == {job_id: 1}
    assert stats["responses_by_status"] == {"201": 1, "200": 1, "401": 1, "404": 1}
    assert stats["auth_failures"] == 1
    assert stats["faults_served"] == 0
    assert stats["max_concurrent_requests"] == 1


def test_reset_forgets_everything(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("ecs")
    cloud_simulator.inject_fault("500")
    cloud_simulator.configure(default_polls_to_finish=9)

    cloud_simulator.reset()

    assert job_get(cloud_simulator, "ecs", job_id, token).status_code == 401  # tokens are gone too
    fresh = get_token(cloud_simulator)
    assert job_get(cloud_simulator, "ecs", job_id, fresh).status_code == 404
    stats = cloud_simulator.stats()
    assert stats["faults_pending"] == 0
    assert stats["jobs"] == 0
    assert stats["iam_token_calls"] == 1
    with pytest.raises(KeyError):
        cloud_simulator.job_state(job_id)
    assert cloud_simulator.configure()["default_polls_to_finish"] == 3


def test_max_concurrent_requests(cloud_simulator: CloudSimulator, token: str) -> None:
    job_id = cloud_simulator.create_job("cce")
    cloud_simulator.inject_fault("slow", count=3, delay=0.5)
    threads = [
        threading.Thread(target=job_get, args=(cloud_simulator, "cce", job_id, token)) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert cloud_simulator.stats()["max_concurrent_requests"] == 3


def test_many_concurrent_waits_with_aiohttp(cloud_simulator: CloudSimulator, token: str) -> None:
    jobs = cloud_simulator.create_jobs("ecs", 300, polls_to_finish=3)
    assert len(set(jobs)) == 300

    async def wait_all() -> list[str]:
        async with aiohttp.ClientSession(headers={"X-Auth-Token": token}) as session:

            async def wait(job_id: str) -> str:
                status = ""
                while status not in ("SUCCESS", "FAIL"):
                    async with session.get(cloud_simulator.url + PATHS["ecs"].format(p=P, j=job_id)) as resp:
                        assert resp.headers["X-Request-Id"]
                        status = (await resp.json())["status"]
                return status

            return await asyncio.gather(*(wait(j) for j in jobs))

    assert asyncio.run(wait_all()) == ["SUCCESS"] * 300
    stats = cloud_simulator.stats()
    assert stats["job_requests"] == 900
    assert stats["responses_by_status"]["200"] == 900
    assert stats["max_open_connections"] > 10


# -- creation APIs ---------------------------------------------------------------------------------------
def test_create_cce_cluster_returns_job_id(cloud_simulator: CloudSimulator, token: str) -> None:
    cloud_simulator.configure(default_polls_to_finish=2)
    body = {
        "kind": "Cluster",
        "apiVersion": "v3",
        "metadata": {"name": "my-cluster"},
        "spec": {"flavor": "cce.s1.small", "type": "VirtualMachine"},
    }
    response = requests.post(
        f"{cloud_simulator.url}/api/v3/projects/{P}/clusters",
        json=body,
        headers={"X-Auth-Token": token},
        timeout=10,
    )

    assert response.status_code == 201
    cluster = response.json()
    assert cluster["kind"] == "Cluster"
    assert cluster["metadata"]["name"] == "my-cluster"
    job_id = cluster["status"]["jobID"]
    statuses = [raw_status("cce", job_get(cloud_simulator, "cce", job_id, token).json()) for _ in range(2)]
    assert statuses == ["Initializing", "Success"]
    job = job_get(cloud_simulator, "cce", job_id, token).json()
    assert job["spec"]["clusterUID"] == cluster["metadata"]["uid"]
    assert job["spec"]["resourceName"] == "my-cluster"
    assert cloud_simulator.stats()["create_requests"] == 1


def test_create_with_fail_in_name_fails(cloud_simulator: CloudSimulator, token: str) -> None:
    cloud_simulator.configure(default_polls_to_finish=1)
    node = requests.post(
        f"{cloud_simulator.url}/api/v3/projects/{P}/clusters/c-1/nodes",
        json={"kind": "Node", "metadata": {"name": "node-fail"}},
        headers={"X-Auth-Token": token},
        timeout=10,
    )
    assert node.status_code == 201
    job = job_get(cloud_simulator, "cce", node.json()["status"]["jobID"], token).json()
    assert job["status"]["phase"] == "Failed"
    assert job["spec"]["type"] == "CreateNode"
    assert job["spec"]["clusterUID"] == "c-1"


def test_create_classic_elb_dws_elb_and_ecs(cloud_simulator: CloudSimulator, token: str) -> None:
    headers = {"X-Auth-Token": token}
    url = cloud_simulator.url
    elb = requests.post(
        f"{url}/v1.0/{P}/elbaas/loadbalancers",
        json={"name": "lb1", "type": "External"},
        headers=headers,
        timeout=10,
    ).json()
    assert set(elb) == {"uri", "job_id"}
    assert job_get(cloud_simulator, "elb", elb["job_id"], token).json()["job_type"] == "createELB"

    dws = requests.post(
        f"{url}/v1.0/{P}/clusters/cluster-1/elbs/elb-fail", headers=headers, timeout=10
    ).json()
    assert set(dws) == {"job_id"}
    cloud_simulator.configure(default_polls_to_finish=1)

    ecs = requests.post(
        f"{url}/v1/{P}/cloudservers", json={"server": {"name": "vm", "count": 2}}, headers=headers, timeout=10
    ).json()
    assert len(ecs["serverIds"]) == 2
    done = job_get(cloud_simulator, "ecs", ecs["job_id"], token).json()
    assert [s["entities"]["server_id"] for s in done["entities"]["sub_jobs"]] == ecs["serverIds"]


def test_creation_needs_authentication_and_a_body(cloud_simulator: CloudSimulator, token: str) -> None:
    url = f"{cloud_simulator.url}/v1/{P}/cloudservers"
    assert requests.post(url, json={"server": {"name": "x"}}, timeout=10).status_code == 401
    bad = requests.post(url, json={"nothing": 1}, headers={"X-Auth-Token": token}, timeout=10)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "Ecs.0005"


# -- AK/SK ------------------------------------------------------------------------------------------------
def _sdk_sign(
    method: str, url: str, ak: str, sk: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> dict[str, str]:
    """SDK-HMAC-SHA256 as the official SDK signs, written here independently of the provider's signer."""
    parts = urlsplit(url)
    signed = {
        "host": parts.netloc,
        "x-sdk-date": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
        "content-type": "application/json",
    }
    signed.update({k.lower(): v for k, v in (headers or {}).items()})
    sdk_date = signed["x-sdk-date"]
    names = sorted(signed)
    uri = "/".join(quote(segment, safe="~") for segment in unquote(parts.path).split("/"))
    if not uri.endswith("/"):
        uri += "/"
    pairs = sorted(tuple(p.split("=", 1)) if "=" in p else (p, "") for p in parts.query.split("&") if p)
    query = "&".join(f"{quote(unquote(k), safe='~')}={quote(unquote(v), safe='~')}" for k, v in pairs)
    canonical = "\n".join(
        [
            method,
            uri,
            query,
            "".join(f"{n}:{signed[n].strip()}\n" for n in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    to_sign = f"SDK-HMAC-SHA256\n{sdk_date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(sk.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    out = {"X-Sdk-Date": sdk_date, "Content-Type": "application/json", **(headers or {})}
    out["Authorization"] = (
        f"SDK-HMAC-SHA256 Access={ak}, SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return out


@pytest.fixture
def signer_available() -> None:
    pytest.importorskip(
        "airflow_provider_cloudjobs.auth.signer", reason="the provider's signer is not there yet"
    )


@pytest.mark.usefixtures("signer_available")
@pytest.mark.parametrize("service", ["cce", "rds"])
def test_aksk_signed_job_get_is_accepted(cloud_simulator: CloudSimulator, service: str) -> None:
    job_id = cloud_simulator.create_job(service)
    url = cloud_simulator.url + PATHS[service].format(p=P, j=job_id)
    headers = _sdk_sign("GET", url, sim_module.ACCESS_KEY, sim_module.SECRET_KEY)
    response = requests.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert raw_status(service, response.json()) == WORDS[service][0]
    assert cloud_simulator.stats()["iam_token_calls"] == 0


@pytest.mark.usefixtures("signer_available")
def test_aksk_signed_post_and_projects(cloud_simulator: CloudSimulator) -> None:
    url = f"{cloud_simulator.url}/v1/{P}/cloudservers"
    body = json.dumps({"server": {"name": "vm"}}).encode()
    response = requests.post(
        url,
        data=body,
        headers=_sdk_sign("POST", url, sim_module.ACCESS_KEY, sim_module.SECRET_KEY, body),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    projects_url = f"{cloud_simulator.url}/v3/projects?name={sim_module.REGION}"
    projects = requests.get(
        projects_url,
        headers=_sdk_sign("GET", projects_url, sim_module.ACCESS_KEY, sim_module.SECRET_KEY),
        timeout=10,
    )
    assert projects.status_code == 200
    assert projects.json()["projects"][0]["id"] == P


@pytest.mark.usefixtures("signer_available")
@pytest.mark.parametrize("tamper", ["secret", "path", "signature", "access_key"])
def test_aksk_tampered_is_rejected(cloud_simulator: CloudSimulator, tamper: str) -> None:
    job_id = cloud_simulator.create_job("ecs")
    url = cloud_simulator.url + PATHS["ecs"].format(p=P, j=job_id)
    sk = "wrong-secret" if tamper == "secret" else sim_module.SECRET_KEY
    ak = "UNKNOWNACCESSKEY0001" if tamper == "access_key" else sim_module.ACCESS_KEY
    headers = _sdk_sign("GET", url, ak, sk)
    if tamper == "signature":
        headers["Authorization"] = headers["Authorization"][:-4] + "0000"
    target = url.replace(job_id, "f" * 32) if tamper == "path" else url

    response = requests.get(target, headers=headers, timeout=10)

    assert response.status_code == 401
    assert response.json()["error_code"] == "APIGW.0301"
    assert response.json()["error_msg"].startswith("Incorrect IAM authentication information")
    assert cloud_simulator.job_state(job_id)["gets"] == 0
    assert cloud_simulator.stats()["auth_failures"] == 1


@pytest.mark.usefixtures("signer_available")
def test_requests_signed_by_the_providers_signer_are_accepted(cloud_simulator: CloudSimulator) -> None:
    from airflow_provider_cloudjobs.auth.signer import sign_request

    job_id = cloud_simulator.create_job("rds")
    url = cloud_simulator.url + PATHS["rds"].format(p=P, j=job_id)
    headers = sign_request(
        "GET", url, {"Content-Type": "application/json"}, b"", sim_module.ACCESS_KEY, sim_module.SECRET_KEY
    )
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    headers = sign_request("GET", url, {}, b"", sim_module.ACCESS_KEY, "not-the-secret")
    rejected = requests.get(url, headers=headers, timeout=10)
    assert rejected.status_code == 401
    assert (
        rejected.json()["error_msg"] == "Incorrect IAM authentication information: verify aksk signature fail"
    )


@pytest.mark.usefixtures("signer_available")
def test_aksk_unknown_key_and_stale_date_messages(cloud_simulator: CloudSimulator) -> None:
    url = cloud_simulator.url + PATHS["ecs"].format(p=P, j="a" * 32)
    unknown = requests.get(url, headers=_sdk_sign("GET", url, "UNKNOWNACCESSKEY0001", "x"), timeout=10)
    assert unknown.json()["error_msg"] == (
        "Incorrect IAM authentication information: ak UNKNOWNACCESSKEY0001 not exist"
    )
    stale = _sdk_sign(
        "GET", url, sim_module.ACCESS_KEY, sim_module.SECRET_KEY, headers={"X-Sdk-Date": "20200101T000000Z"}
    )
    response = requests.get(url, headers=stale, timeout=10)
    assert response.status_code == 401
    assert "X-Sdk-Date" in response.json()["error_msg"]


@pytest.mark.usefixtures("signer_available")
def test_aksk_for_a_foreign_project_is_403(cloud_simulator: CloudSimulator) -> None:
    foreign = "f" * 32
    url = cloud_simulator.url + PATHS["dws"].format(p=foreign, j="a" * 32)
    response = requests.get(
        url, headers=_sdk_sign("GET", url, sim_module.ACCESS_KEY, sim_module.SECRET_KEY), timeout=10
    )
    assert response.status_code == 403


# -- lifecycle: in process and as a CLI subprocess --------------------------------------------------------
def test_connection_extra_points_everything_at_the_simulator(cloud_simulator: CloudSimulator) -> None:
    extra = cloud_simulator.connection_extra()
    assert extra == {
        "auth_type": "password",
        "domain_name": sim_module.DOMAIN_NAME,
        "region": sim_module.REGION,
        "project_id": P,
        "domain_id": sim_module.DOMAIN_ID,  # for global services (Global EIP)
        "iam_endpoint": cloud_simulator.url,
        "endpoints": {"*": cloud_simulator.url},
        "verify": False,
        "timeout": 10,
    }
    assert cloud_simulator.connection_extra("aksk")["auth_type"] == "aksk"
    assert re.fullmatch(r"[0-9a-f]{32}", P)


def test_only_loopback_addresses_are_bound() -> None:
    with pytest.raises(ValueError, match="loopback"):
        CloudSimulator(host="0.0.0.0")


def test_second_in_process_simulator_starts_and_stops() -> None:
    with CloudSimulator() as other:
        assert requests.get(other.url + "/_sim/stats", timeout=10).json()["requests"] == 0
        url = other.url
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/_sim/stats", timeout=2)


def test_cli_subprocess_start_drive_and_stop() -> None:
    client, proc = start_in_subprocess(token_ttl=60)
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", client.url)
        job_id = client.create_job("dws", polls_to_finish=2, outcome="fail")
        token = requests.post(client.url + "/v3/auth/tokens", json=token_body(), timeout=10)
        expires = token.json()["token"]["expires_at"]
        ttl = (
            datetime.strptime(expires, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
            - time.time()
        )
        assert 0 < ttl <= 60
        headers = {"X-Auth-Token": token.headers["X-Subject-Token"]}
        statuses = [
            requests.get(f"{client.url}/v1.0/{P}/job/{job_id}", headers=headers, timeout=10).json()["status"]
            for _ in range(2)
        ]
        assert statuses == ["INIT", "FAIL"]
        assert client.job_state(job_id)["is_terminal"] is True
        client.inject_fault("503")
        assert (
            requests.get(f"{client.url}/v1.0/{P}/job/{job_id}", headers=headers, timeout=10).status_code
            == 503
        )
        client.expire_tokens()
        assert (
            requests.get(f"{client.url}/v1.0/{P}/job/{job_id}", headers=headers, timeout=10).status_code
            == 401
        )
        stats = client.stats()
        assert stats["iam_token_calls"] == 1
        assert stats["faults_served"] == 1
        assert stats["job_polls"] == {job_id: 2}
        assert client.configure(default_polls_to_finish=4)["default_polls_to_finish"] == 4
        bulk = client.create_jobs("ecs", 3, outcome="fail")
        assert len(set(bulk)) == 3
        assert client.job_state(bulk[0])["outcome"] == "fail"
        assert client.job_state(bulk[0])["polls_to_finish"] == 4
        with pytest.raises(ValueError, match="unknown service"):
            client.create_job("nosuch")
        with pytest.raises(KeyError):
            client.job_state("missing")
        client.reset()
        assert client.stats()["requests"] == 0
    finally:
        code = stop_subprocess(proc)
    assert code == 0
    assert proc.stdout is not None
    assert proc.stdout.closed


def test_cli_prints_exactly_one_json_line_with_its_pid() -> None:
    client, proc = start_in_subprocess(seconds_per_step=0)
    try:
        assert proc.poll() is None
        assert client.pid == proc.pid
        job_id = client.create_job("elb", polls_to_finish=4)
        token = requests.post(client.url + "/v3/auth/tokens", json=token_body(), timeout=10)
        headers = {"X-Auth-Token": token.headers["X-Subject-Token"]}
        body = requests.get(f"{client.url}/v1.0/{P}/jobs/{job_id}", headers=headers, timeout=10).json()
        assert body["status"] == "SUCCESS"  # seconds_per_step 0: done at once
    finally:
        proc.terminate()
        remaining, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert remaining == ""  # nothing after the one JSON line (read by start_in_subprocess)


def test_simulator_client_matches_in_process_api() -> None:
    names = (
        "create_job",
        "create_jobs",
        "inject_fault",
        "expire_tokens",
        "stats",
        "reset",
        "job_state",
        "configure",
        "connection_extra",
    )
    for name in names:
        assert callable(getattr(CloudSimulator, name))
        assert callable(getattr(SimulatorClient, name))
