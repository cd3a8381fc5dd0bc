"""The UI plugin's parts that need no Airflow deployment: the connection Test fix, the bound on cloud
calls (cache, budget, one call per job at a time, few at once), and what of a job reaches a page."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

from airflow_provider_cloudjobs.plugins.asgi import (
    TestConnectionBlankEndpoint,
    cloudjobs_test_body,
    strip_blank_endpoint,
)
from airflow_provider_cloudjobs.plugins.live import JobLookups, Lookup, page_job

# -- the Test button: what the 3.2+ UI sends for a stored connection ----------------------------------
UI_BODY = {
    "conn_type": "cloudjobs",
    "connection_id": "cloudjobs_default",
    "description": "",
    "extra": "{}",
    "host": "",
    "login": "user",
    "password": "***",
    "port": 0,
    "schema": "",
}


def test_blank_hidden_fields_of_a_cloudjobs_test_are_dropped() -> None:
    body = strip_blank_endpoint(cloudjobs_test_body(json.dumps(UI_BODY).encode()))
    assert body is not None
    sent = json.loads(body)
    assert "host" not in sent
    assert "port" not in sent
    assert "schema" not in sent
    assert {k: v for k, v in sent.items()} == {
        k: v for k, v in UI_BODY.items() if k not in ("host", "port", "schema")
    }


@pytest.mark.parametrize(
    "change",
    [
        {"conn_type": "http"},  # another type keeps Airflow's own check
        {"host": "iam.example.com", "port": 443, "schema": "x"},  # a real endpoint is not blank
    ],
)
def test_other_test_requests_are_left_alone(change: dict[str, Any]) -> None:
    assert strip_blank_endpoint(cloudjobs_test_body(json.dumps({**UI_BODY, **change}).encode())) is None


def test_a_body_that_is_not_json_is_left_to_airflow() -> None:
    assert strip_blank_endpoint(cloudjobs_test_body(b"{not json")) is None


def run_middleware(path: str, body: bytes, method: str = "POST") -> tuple[bytes, dict[bytes, bytes]]:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        seen["body"] = b"".join(chunks)
        seen["headers"] = dict(scope["headers"])

    parts = [body[: len(body) // 2], body[len(body) // 2 :]]  # arrives in two chunks

    async def receive() -> dict[str, Any]:
        chunk = parts.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(parts)}

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    asyncio.run(TestConnectionBlankEndpoint(app)(scope, receive, None))
    return seen["body"], seen["headers"]


def test_middleware_rewrites_only_the_connection_test_request() -> None:
    body = json.dumps(UI_BODY).encode()
    sent, headers = run_middleware("/api/v2/connections/test", body)
    assert "port" not in json.loads(sent)
    assert headers[b"content-length"] == str(len(sent)).encode()

    untouched, _ = run_middleware("/api/v2/connections", body)  # creating a connection: as sent
    assert untouched == body
    untouched, _ = run_middleware(
        "/api/v2/connections/test", json.dumps({**UI_BODY, "conn_type": "http"}).encode()
    )
    assert json.loads(untouched)["port"] == 0


# -- bounded cloud calls ----------------------------------------------------------------------------
class FakeCloud:
    """Counts lookups; optionally blocks them until released, to see how many run at once."""

    def __init__(self, block: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.running = 0
        self.most_at_once = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        if not block:
            self.release.set()

    def __call__(self, key: tuple[Any, ...]) -> Lookup:
        with self.lock:
            self.calls.append(key)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.release.wait(10)
        with self.lock:
            self.running -= 1
        if key[3] == "broken":
            raise RuntimeError("GET https://cce.example/jobs/broken answered HTTP 500")
        return Lookup(
            time.monotonic(), job={"job_id": key[3], "phase": "RUNNING", "is_terminal": key[3] == "done"}
        )


def keys(n: int) -> list[tuple[str, str, None, str, None]]:
    return [("conn", "cce", None, f"job-{i}", None) for i in range(n)]


def test_a_page_of_hundreds_of_waits_makes_at_most_budget_calls_per_refresh() -> None:
    cloud = FakeCloud()
    lookups = JobLookups(cloud, ttl=60)
    first = lookups.get_many(keys(300), budget=24)
    assert len(cloud.calls) == 24
    assert sum(1 for v in first.values() if v is not None) == 24
    lookups.get_many(keys(300), budget=24)  # the next refresh: the next 24, the first are cached
    assert len(cloud.calls) == 48
    assert len(set(cloud.calls)) == 48


def test_cached_answers_are_reused_until_they_are_stale() -> None:
    cloud = FakeCloud()
    lookups = JobLookups(cloud, ttl=0.2, terminal_ttl=60)
    wanted = [("conn", "cce", None, "job-1", None), ("conn", "cce", None, "done", None)]
    lookups.get_many(wanted, budget=10)
    lookups.get_many(wanted, budget=10)
    assert len(cloud.calls) == 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(cloud.calls) < 3:
        lookups.get_many(wanted, budget=10)
        time.sleep(0.05)
    # the running job is asked again once stale; the finished one is not
    assert [k[3] for k in cloud.calls] == ["job-1", "done", "job-1"]


def test_many_requests_for_one_job_make_one_call_and_few_run_at_once() -> None:
    cloud = FakeCloud(block=True)
    lookups = JobLookups(cloud, max_concurrent=4)
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(lookups.get_many(keys(10), budget=10, timeout=10)))
        for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and cloud.running < 4:
        time.sleep(0.01)
    cloud.release.set()
    for thread in threads:
        thread.join(10)
    assert len(cloud.calls) == 10  # five pages asked for the same ten jobs
    assert cloud.most_at_once == 4
    assert all(all(v is not None for v in r.values()) for r in results)


def test_an_error_is_cached_and_shown_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    _secrets_masker().add_mask("s3cr3t-Passw0rd")

    def failing(key: Any) -> Lookup:
        raise RuntimeError("IAM refused user 'u' with password s3cr3t-Passw0rd")

    lookups = JobLookups(failing)
    found = lookups.get_many([("conn", "cce", None, "x", None)], budget=1)
    error = found[("conn", "cce", None, "x", None)].error  # type: ignore[union-attr]
    assert "IAM refused" in error
    assert "s3cr3t-Passw0rd" not in error
    lookups.get_many([("conn", "cce", None, "x", None)], budget=1)
    assert lookups.calls == 1


def test_a_page_gets_the_job_without_its_raw_body() -> None:
    job = {
        "job_id": "j",
        "phase": "RUNNING",
        "raw": {"token": "x"},
        "entities": {"a": 1},
        "sub_jobs": [{"job_id": "s", "phase": "SUCCEEDED", "raw": {}, "sub_jobs": []}],
    }
    shown = page_job(job)
    assert shown is not None
    assert "raw" not in shown
    assert "entities" not in shown
    assert shown["sub_jobs"][0]["job_id"] == "s"
    assert "raw" not in shown["sub_jobs"][0]


def test_a_connection_test_destination_is_where_the_credentials_go():
    from airflow_provider_cloudjobs.plugins.asgi import destination

    stored = {"domain_name": "d", "region": "cn-north-4", "project_id": "p1"}
    same = destination("alice", json.dumps({**stored, "timeout": "12"}))  # not a destination field
    assert same == destination("alice", stored)
    for changed in (
        {"iam_endpoint": "https://evil.example"},
        {"endpoints": {"*": "https://evil.example"}},
        {"endpoint_domain": "evil.example"},
        {"region": "eu-de"},
        {"verify": False},
    ):
        assert destination("alice", {**stored, **changed}) != same, changed
    assert destination("alice", "{not json") is None
