"""Normalisation of every built-in service's job body, from the seeds' own examples and seed-shaped bodies."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest

from airflow_provider_cloudjobs.job import describe_failure, normalize_job, parse_progress, parse_timestamp
from airflow_provider_cloudjobs.profiles import BUILTIN_PROFILES, get_profile
from airflow_provider_cloudjobs.testing.contract import NORMALISED_JOB_KEYS as KEYS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def ecs_body(status: str, sub_statuses: list[str]) -> dict:
    subs = []
    for index, sub_status in enumerate(sub_statuses):
        sub = {
            "status": sub_status,
            "entities": {"server_id": f"server-{index}"},
            "job_id": f"sub-{index}",
            "job_type": "createSingleServer",
            "begin_time": "2018-08-29T14:18:38.117Z",
            "end_time": "2018-08-29T14:20:33.599Z" if sub_status in ("SUCCESS", "FAIL") else "",
            "error_code": None,
            "fail_reason": None,
        }
        if sub_status == "FAIL":
            sub["error_code"] = "Ecs.0036"
            sub["fail_reason"] = "Insufficient quota"
            sub["entities"]["errorcode_message"] = "Ecs.0036: Insufficient quota of cores"
        subs.append(sub)
    return {
        "status": status,
        "entities": {"sub_jobs_total": len(subs), "sub_jobs": subs},
        "job_id": "2c9eb2c1654fdc1b01655c5e6f3e0a47",
        "job_type": "createServer",
        "begin_time": "2018-08-29T14:18:35.960Z",
        "end_time": "" if status in ("RUNNING", "INIT", "PENDING_PAYMENT") else "2018-08-29T14:20:34.066Z",
        "error_code": None,
        "fail_reason": None,
    }


def test_every_builtin_has_one_profile_and_the_contract_paths():
    assert {"cce", "dws", "elb", "ecs", "evs", "ims", "bms", "elbv3", "dcs", "rds", "cce-autopilot"} <= set(
        BUILTIN_PROFILES
    )
    assert BUILTIN_PROFILES["cce"].path == "/api/v3/projects/{project_id}/jobs/{job_id}"
    assert BUILTIN_PROFILES["dws"].path == "/v1.0/{project_id}/job/{job_id}"
    assert BUILTIN_PROFILES["elb"].path == "/v1.0/{project_id}/jobs/{job_id}"
    for key in ("ecs", "evs", "ims", "bms"):
        assert BUILTIN_PROFILES[key].path == "/v1/{project_id}/jobs/{job_id}"
    assert BUILTIN_PROFILES["rds"].path == "/v3/{project_id}/jobs?id={job_id}"


@pytest.mark.parametrize("seed", ["cce_seed_003", "cce_seed_000"])
def test_cce_seed_running_job(seed):
    body = fixture(seed)
    job = normalize_job(body, get_profile("cce"))
    assert set(job) == KEYS
    assert job["service"] == "cce"
    assert job["job_id"] == "354331b2c-229a-11e8-9c75-0255ac100ceb"
    assert (job["status"], job["phase"], job["is_terminal"]) == ("Running", "RUNNING", False)
    assert job["job_type"] == "CreateCluster"
    assert job["resource_id"] == "6f4dcb2c-229a-11e8-9c75-0255ac100ceb"
    assert job["resource_name"] == "cluster-name"
    assert job["created_at"] == "2018-08-02T08:12:40.672772Z"
    assert job["updated_at"] == "2018-08-02T08:21:50.478108Z"
    assert job["ended_at"] is None
    assert job["message"] is None  # the seed's reason is ""
    assert job["entities"] == {"serverID": "bc467e3a-2338-11e8-825b-0255ac100c13"}
    # both sub-jobs are in Success: progress derived from the share of sub-jobs done
    assert [sub["phase"] for sub in job["sub_jobs"]] == ["SUCCEEDED", "SUCCEEDED"]
    assert job["progress"] == 100.0
    assert job["sub_jobs"][0]["job_type"] == "InstallMaster"
    assert set(job["sub_jobs"][0]) == KEYS
    assert job["raw"] == body
    json.dumps(job)  # XCom-serialisable


def test_cce_progress_from_sub_jobs_and_failure_reason_from_failed_sub_job():
    body = copy.deepcopy(fixture("cce_seed_003"))
    body["spec"]["subJobs"][1]["status"] = {"phase": "Running"}
    assert normalize_job(body, get_profile("cce"))["progress"] == 50.0

    body["status"] = {"phase": "Failed", "reason": ""}
    body["spec"]["subJobs"][1]["status"] = {"phase": "Failed", "reason": "install kubelet timed out"}
    job = normalize_job(body, get_profile("cce"))
    assert (job["phase"], job["is_terminal"]) == ("FAILED", True)
    assert job["message"] == "install kubelet timed out"
    assert job["ended_at"] == job["updated_at"]  # CCE's last update is its end
    text = describe_failure(job)
    assert "CCE job 354331b2c-229a-11e8-9c75-0255ac100ceb failed" in text
    assert "CreatePSMCert fd474f82-9606-11e8-baa8-0255ac10215d install kubelet timed out" in text


def test_dws_seed_failed_job():
    job = normalize_job(fixture("dws_seed_002"), get_profile("dws"))
    assert (job["status"], job["phase"], job["is_terminal"]) == ("FAIL", "FAILED", True)
    assert job["progress"] == 9.0
    assert job["job_id"] == "2c9080e88459fa44018459fbeb600001"
    assert job["job_type"] == "ecfClusterElbCreateJob"
    assert job["error_code"] == "CreateELBTask-fail:DWS.0114"
    assert job["message"] == "DWS.0114:ELB private IP is not configured."
    assert job["started_at"] == "2022-11-09T20:25:00.000000Z"  # naive: the cloud means UTC
    assert job["ended_at"] == "2022-11-09T20:30:00.000000Z"
    assert "error code CreateELBTask-fail:DWS.0114" in describe_failure(job)


def test_classic_elb_seed_running_job():
    job = normalize_job(fixture("elb_seed_004"), get_profile("elb"))
    assert (job["phase"], job["is_terminal"], job["progress"]) == ("RUNNING", False, None)
    assert job["resource_id"] == "ea3e5715b68850a747ec41f335625c08"
    assert job["job_type"] == "deleteELB"
    assert job["started_at"] == "2015-09-17T03:05:38.756000Z"
    assert job["ended_at"] is None  # "" while running
    assert (job["error_code"], job["message"]) == (None, None)


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("INIT", "PENDING"),
        ("RUNNING", "RUNNING"),
        ("PENDING_PAYMENT", "PENDING"),
        ("SUCCESS", "SUCCEEDED"),
        ("FAIL", "FAILED"),
    ],
)
def test_ecs_family_statuses(status, phase):
    for service in ("ecs", "evs", "bms"):
        job = normalize_job(ecs_body(status, ["RUNNING"]), get_profile(service))
        assert job["phase"] == phase
        assert job["is_terminal"] is (phase in ("SUCCEEDED", "FAILED"))


def test_ecs_failure_from_sub_job_fail_reason():
    job = normalize_job(ecs_body("FAIL", ["SUCCESS", "FAIL"]), get_profile("ecs"))
    assert job["error_code"] == "Ecs.0036"
    assert job["message"] == "Insufficient quota"
    assert job["resource_id"] == "server-0"
    assert job["sub_jobs"][1]["phase"] == "FAILED"
    assert "createSingleServer sub-1 [Ecs.0036] Insufficient quota" in describe_failure(job)


def test_ecs_failure_message_from_errorcode_message_when_fail_reason_missing():
    body = ecs_body("FAIL", ["FAIL"])
    body["entities"]["sub_jobs"][0]["fail_reason"] = None
    job = normalize_job(body, get_profile("ecs"))
    assert job["message"] == "Ecs.0036: Insufficient quota of cores"


def test_ecs_progress_is_share_of_sub_jobs():
    job = normalize_job(ecs_body("RUNNING", ["SUCCESS", "RUNNING", "RUNNING", "SUCCESS"]), get_profile("ecs"))
    assert job["progress"] == 50.0


def test_ims_progress_from_process_percent():
    body = {
        "status": "RUNNING",
        "job_id": "ims-1",
        "job_type": "createImageByInstance",
        "entities": {"image_id": "img-1", "process_percent": 0.42},
        "begin_time": "2018-08-29T14:18:35.960Z",
        "end_time": "",
        "error_code": None,
        "fail_reason": None,
    }
    job = normalize_job(body, get_profile("ims"))
    assert job["progress"] == 42.0
    assert job["resource_id"] == "img-1"


def test_elbv3_body_under_job():
    # The fields of the SDK's MainJob model: begin_time / end_time, no created_at or updated_at.
    body = {
        "job": {
            "job_id": "j-3",
            "job_type": "CreateLoadBalancer",
            "status": "COMPLETE",
            "resource_id": "lb-9",
            "project_id": "p",
            "begin_time": "2021-04-01T10:00:00Z",
            "end_time": "2021-04-01T10:01:00Z",
            "error_code": None,
            "error_msg": None,
            "sub_jobs": [],
        },
        "request_id": "r-1",
    }
    job = normalize_job(body, get_profile("elbv3"))
    assert (job["job_id"], job["phase"], job["resource_id"]) == ("j-3", "SUCCEEDED", "lb-9")
    assert job["started_at"] == "2021-04-01T10:00:00.000000Z"
    assert job["ended_at"] == "2021-04-01T10:01:00.000000Z"
    body["job"].update(status="FAIL", error_code="ELB.8902", error_msg="quota exceeded")
    job = normalize_job(body, get_profile("elbv3"))
    assert (job["phase"], job["error_code"], job["message"]) == ("FAILED", "ELB.8902", "quota exceeded")


def test_rds_job_with_percent_and_offset_timestamps():
    body = {
        "job": {
            "id": "rds-1",
            "name": "CreateMysqlInstance",
            "status": "Running",
            "created": "2018-08-06T10:41:14+0000",
            "ended": "",
            "process": "60%",
            "instance": {"id": "inst-1", "name": "db"},
            "entities": {},
        }
    }
    job = normalize_job(body, get_profile("rds"))
    assert (job["phase"], job["progress"], job["resource_name"]) == ("RUNNING", 60.0, "db")
    assert job["created_at"] == "2018-08-06T10:41:14.000000Z"
    body["job"].update(status="Failed", fail_reason="flavor sold out")
    assert normalize_job(body, get_profile("rds"))["message"] == "flavor sold out"


def test_unknown_status_is_unknown_and_warned_once(caplog):
    body = fixture("elb_seed_004")
    body["status"] = "FROZEN"
    with caplog.at_level(logging.WARNING):
        first = normalize_job(body, get_profile("elb"))
        normalize_job(body, get_profile("elb"))
    assert (first["phase"], first["is_terminal"]) == ("UNKNOWN", False)
    assert sum("FROZEN" in record.getMessage() for record in caplog.records) == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2018-08-02 08:12:40.672772389 +0000 UTC", "2018-08-02T08:12:40.672772Z"),
        ("2018-08-02 10:12:40.5 +0200 CEST", "2018-08-02T08:12:40.500000Z"),
        ("2022-11-09T20:25:00", "2022-11-09T20:25:00.000000Z"),
        ("2015-09-17T03:05:38.756Z", "2015-09-17T03:05:38.756000Z"),
        ("2018-08-06T10:41:14+0000", "2018-08-06T10:41:14.000000Z"),
        ("2018-08-06T12:41:14+02:00", "2018-08-06T10:41:14.000000Z"),
        (1533206000, "2018-08-02T10:33:20.000000Z"),
        (1533206000000, "2018-08-02T10:33:20.000000Z"),
        ("", None),
        (None, None),
        ("not a time", None),
    ],
)
def test_parse_timestamp(value, expected):
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize(
    ("value", "scale", "expected"),
    [
        ("9%", 1, 9.0),
        ("60", 1, 60.0),
        (42, 1, 42.0),
        (0.5, 100, 50.0),
        ("150%", 1, 100.0),
        ("n/a", 1, None),
        (None, 1, None),
    ],
)
def test_parse_progress(value, scale, expected):
    assert parse_progress(value, scale) == expected


# -- statuses and places the official SDK documents (see tests/conformance) -----------------------
@pytest.mark.parametrize(
    ("status", "phase", "terminal"),
    [("STOP", "FAILED", True), ("WAITING", "PENDING", False), ("DELAY_SCHEDULED", "PENDING", False)],
)
def test_dws_stopped_job_ends_the_wait_and_queued_ones_wait(status, phase, terminal):
    body = fixture("dws_seed_002")
    body["status"] = status
    job = normalize_job(body, get_profile("dws"))
    assert (job["phase"], job["is_terminal"]) == (phase, terminal)


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("ROLLBACKING", "RUNNING"),
        ("ROLLBACK_FAIL", "FAILED"),
        ("CANCEL", "FAILED"),
        ("COMPLETE", "SUCCEEDED"),
    ],
)
def test_elbv3_rollback_and_cancel_statuses(status, phase):
    job = normalize_job({"job": {"job_id": "j", "status": status, "sub_jobs": []}}, get_profile("elbv3"))
    assert job["phase"] == phase


def test_ims_failed_sub_job_from_sub_jobs_result_is_named_in_the_failure():
    body = {
        "status": "FAIL",
        "job_id": "ims-2",
        "job_type": "batchCreateImages",
        "entities": {
            "error_code": "IMG.0024",
            "error": "Failed to create the image.",
            "sub_jobs_result": [
                {
                    "status": "SUCCESS",
                    "job_id": "s-1",
                    "job_type": "createImage",
                    "entities": {"image_id": "i1"},
                },
                {
                    "status": "FAIL",
                    "job_id": "s-2",
                    "job_type": "createImage",
                    "error_code": "IMG.0003",
                    "fail_reason": "The disk is not attached.",
                },
            ],
        },
        "begin_time": "2018-08-29T14:18:35.960Z",
        "end_time": "2018-08-29T14:20:35.960Z",
        "error_code": None,
        "fail_reason": None,
    }
    job = normalize_job(body, get_profile("ims"))
    assert (job["phase"], job["error_code"], job["message"]) == (
        "FAILED",
        "IMG.0024",
        "Failed to create the image.",
    )
    assert [sub["phase"] for sub in job["sub_jobs"]] == ["SUCCEEDED", "FAILED"]
    assert "createImage s-2 [IMG.0003] The disk is not attached." in describe_failure(job)


def test_gaussdb_nosql_task_is_the_first_entry_of_its_list():
    body = {
        "jobs": [
            {
                "id": "t-1",
                "name": "CreateInstance",
                "status": "Running",
                "start_time": "2024-05-01T08:00:00+0800",
                "end_time": "",
                "progress": "35%",
                "instance": {"id": "ins-1", "name": "nosql-1"},
                "fail_reason": None,
            }
        ],
        "total_count": 1,
    }
    job = normalize_job(body, get_profile("gaussdb-nosql"))
    assert (job["job_id"], job["phase"], job["progress"]) == ("t-1", "RUNNING", 35.0)
    assert (job["resource_id"], job["started_at"]) == ("ins-1", "2024-05-01T00:00:00.000000Z")


def test_sfs_turbo_lower_case_statuses_sub_jobs_and_space_separated_times():
    body = {
        "status": "failed",
        "job_id": "sj",
        "job_type": "createShare",
        "begin_time": "2016-01-02 15:04:05",
        "end_time": "2016-01-02 15:14:05",
        "error_code": "SFS.TC.0008",
        "fail_reason": "Insufficient quota.",
        "sub_jobs": [{"status": "success", "job_id": "s1"}, {"status": "failed", "job_id": "s2"}],
    }
    job = normalize_job(body, get_profile("sfs-turbo"))
    assert (job["phase"], job["error_code"], job["ended_at"]) == (
        "FAILED",
        "SFS.TC.0008",
        "2016-01-02T15:14:05.000000Z",
    )
    assert [sub["phase"] for sub in job["sub_jobs"]] == ["SUCCEEDED", "FAILED"]


@pytest.mark.parametrize(("status", "phase"), [(1, "RUNNING"), (2, "SUCCEEDED"), (-1, "FAILED")])
def test_cph_numeric_statuses(status, phase):
    body = {"job_id": "j", "status": status, "server_id": "srv-1", "error_code": None, "error_msg": None}
    job = normalize_job(body, get_profile("cph"))
    assert (job["status"], job["phase"], job["resource_id"]) == (status, phase, "srv-1")
