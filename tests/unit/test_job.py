"""The normaliser against bodies nobody designed: bounded, strict JSON out, nothing lost that matters."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_cloudjobs import job as job_module
from airflow_provider_cloudjobs.job import MAX_SUB_JOB_DEPTH, normalize_job, parse_progress
from airflow_provider_cloudjobs.profiles import BUILTIN_PROFILES, ServiceProfile
from airflow_provider_cloudjobs.testing.contract import NORMALISED_JOB_KEYS

NESTED = ServiceProfile(
    key="nested", host="nested", path="/v1/{project_id}/jobs/{job_id}", sub_jobs="sub_jobs"
)


def nested_body(depth: int) -> dict:
    body: dict = {"job_id": f"j{depth}", "status": "RUNNING", "fail_reason": "", "sub_jobs": []}
    for level in range(depth - 1, -1, -1):
        body = {"job_id": f"j{level}", "status": "RUNNING", "sub_jobs": [body]}
    return body


@pytest.mark.parametrize("value", ["nan", "NaN%", "inf", "-inf%", float("nan"), float("inf"), 1e400])
def test_progress_that_is_not_a_number_is_unknown_not_100(value):
    assert parse_progress(value) is None


def test_a_job_with_nan_progress_reports_no_progress():
    profile = BUILTIN_PROFILES["dws"]
    job = normalize_job({"status": "RUNNING", "progress": "nan%", "job_id": "j"}, profile)
    assert job["progress"] is None
    json.dumps(job, allow_nan=False)


def test_the_raw_body_is_kept_once_not_in_every_sub_job():
    body = nested_body(MAX_SUB_JOB_DEPTH)
    job = normalize_job(body, NESTED, job_id="j0")
    assert job["raw"] == body
    sub = job["sub_jobs"][0]
    assert sub["raw"] is None
    assert set(sub) == NORMALISED_JOB_KEYS
    wide = {
        "job_id": "j",
        "status": "RUNNING",
        "sub_jobs": [{"job_id": f"s{i}", "status": "RUNNING"} for i in range(300)],
    }
    size = len(json.dumps(wide))
    assert len(json.dumps(normalize_job(wide, NESTED))) < 20 * size


def test_nesting_past_the_depth_limit_is_cut_not_a_recursion_error():
    job = normalize_job(nested_body(400), NESTED, job_id="j0")  # as deep as json.loads goes
    depth, node = 0, job
    while node["sub_jobs"]:
        node, depth = node["sub_jobs"][0], depth + 1
    assert depth == MAX_SUB_JOB_DEPTH
    assert len(json.dumps(job)) < 10 * len(json.dumps(nested_body(MAX_SUB_JOB_DEPTH + 1))) + len(
        json.dumps(job["raw"])
    )


def test_unknown_status_warnings_are_bounded(caplog, monkeypatch):
    monkeypatch.setattr(job_module, "_warned_statuses", set())
    with caplog.at_level(logging.WARNING, logger="airflow_provider_cloudjobs.job"):
        for index in range(2000):
            normalize_job({"status": f"WEIRD-{index}" + "x" * 1000}, BUILTIN_PROFILES["ecs"], job_id="j")
    assert len(job_module._warned_statuses) == job_module.MAX_WARNED_STATUSES
    assert all(len(record.getMessage()) < 600 for record in caplog.records)


# Keys the profiles read, so that generated bodies reach the normaliser's every branch.
KEYS = [
    "status", "job_id", "jobs", "job", "progress", "sub_jobs", "entities", "fail_reason", "error_code",
    "begin_time", "end_time", "spec", "subJobs", "phase", "metadata", "uid", "process", "x",
]  # fmt: skip
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.dictionaries(st.sampled_from(KEYS), JSON, max_size=8),
    key=st.sampled_from(sorted(BUILTIN_PROFILES)),
)
def test_any_json_object_normalises_to_the_contract_shape_in_strict_bounded_json(body, key):
    job = normalize_job(body, BUILTIN_PROFILES[key], job_id="fallback")
    assert set(job) == NORMALISED_JOB_KEYS
    assert job["phase"] in ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "UNKNOWN")
    assert job["progress"] is None or 0.0 <= job["progress"] <= 100.0
    text = json.dumps(job, allow_nan=False)
    assert len(text) <= 20 * len(json.dumps(body)) + 2000
