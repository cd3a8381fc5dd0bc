"""CloudJobsHook against a cloud that answers badly on purpose: redirects, drips, bombs, storms.

Each test names the harm a user would suffer (a leaked credential, a second cluster, a stalled triggerer,
a locked IAM account) and shows it does not happen, on the sync (requests) and the async (aiohttp) path.
"""

from __future__ import annotations

import asyncio
import json
import threading
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_provider_cloudjobs.exceptions import CloudJobsAPIError, CloudJobsAuthError, CloudJobsError
from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook, close_shared_session
from airflow_provider_cloudjobs.testing import simulator


class _Recorder(BaseHTTPRequestHandler):
    """Another host: answers every request with a harmless job and remembers what it was sent."""

    seen: list[dict] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        type(self).seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        payload = json.dumps({"status": "SUCCESS", "job_id": "x"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def other_host() -> Iterator[tuple[str, list[dict]]]:
    """A second server on loopback standing for a host the connection never named."""
    seen: list[dict] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _both_paths(hook: CloudJobsHook, job_id: str, service: str = "cce") -> list[BaseException]:
    """The error of one sync and one async ``get_job`` (each with its own fault)."""
    errors: list[BaseException] = []
    for run in ("sync", "async"):
        try:
            if run == "sync":
                hook.get_job(job_id, service)
            else:

                async def once() -> None:
                    try:
                        await hook.aget_job(job_id, service)
                    finally:
                        await close_shared_session()

                asyncio.run(once())
        except CloudJobsError as exc:
            errors.append(exc)
        else:
            raise AssertionError(f"{run} get_job succeeded through a hostile answer")
    return errors


# -- credentials never follow a redirect ---------------------------------------------------------------
def test_a_job_endpoint_redirect_is_not_followed_with_the_token(cloud_simulator, cloudjobs_conn, other_host):
    url, seen = other_host
    conn_id = cloudjobs_conn()
    job_id = cloud_simulator.create_job("cce")
    cloud_simulator.inject_fault("redirect", count=2, location=f"{url}/stolen")
    errors = _both_paths(CloudJobsHook(conn_id, max_retries=0), job_id)
    assert seen == []  # the other host got nothing: no token, no request at all
    for error in errors:
        assert "HTTP 307" in str(error)
        assert "not followed" in str(error)
        assert "127.0.0.1:" in str(error)  # says where it wanted to send us


def test_an_aksk_signed_request_is_not_replayed_to_a_redirect(cloud_simulator, cloudjobs_conn, other_host):
    url, seen = other_host
    conn_id = cloudjobs_conn(auth_type="aksk")
    job_id = cloud_simulator.create_job("ecs")
    cloud_simulator.inject_fault("redirect", count=2, location=f"{url}/stolen")
    _both_paths(CloudJobsHook(conn_id, max_retries=0), job_id, "ecs")
    assert seen == []


def test_an_iam_redirect_never_gets_the_password(cloud_simulator, cloudjobs_conn, other_host):
    url, seen = other_host
    conn_id = cloudjobs_conn()
    job_id = cloud_simulator.create_job("cce")
    cloud_simulator.inject_fault("redirect", count=2, path_contains="/v3/auth/tokens", location=f"{url}/v3")
    errors = _both_paths(CloudJobsHook(conn_id, max_retries=0), job_id)
    assert seen == []
    assert all(simulator.PASSWORD not in str(error) for error in errors)


# -- a create is sent once ------------------------------------------------------------------------------
CREATE = "/api/v3/projects/{project_id}/clusters"
SPEC = {"kind": "Cluster", "apiVersion": "v3", "metadata": {"name": "c1"}, "spec": {"flavor": "cce.s1.small"}}


@pytest.mark.parametrize(
    ("kind", "options"),
    [("503", {}), ("502", {}), ("slow", {"delay": 1.0}), ("malformed_json", {}), ("reset", {})],
)
def test_a_post_is_never_retried(cloud_simulator, cloudjobs_conn, fast_backoff, kind, options):
    conn_id = cloudjobs_conn(timeout=0.5)
    cloud_simulator.inject_fault(kind, count=5, path_contains="/clusters", **options)
    with pytest.raises(CloudJobsAPIError) as info:
        CloudJobsHook(conn_id, max_retries=4).request("POST", "cce", CREATE, json=SPEC)
    assert cloud_simulator.stats()["create_requests"] == 1
    assert "not retried" in str(info.value)


async def test_an_async_post_is_never_retried(cloud_simulator, cloudjobs_conn, fast_backoff):
    conn_id = cloudjobs_conn()
    cloud_simulator.inject_fault("503", count=5, path_contains="/clusters")
    try:
        with pytest.raises(CloudJobsAPIError):
            await CloudJobsHook(conn_id, max_retries=4).arequest("POST", "cce", CREATE, json=SPEC)
    finally:
        await close_shared_session()
    assert cloud_simulator.stats()["create_requests"] == 1


def test_a_get_is_still_retried(cloud_simulator, cloudjobs_conn, fast_backoff):
    conn_id = cloudjobs_conn()
    job_id = cloud_simulator.create_job("cce", polls_to_finish=1)
    cloud_simulator.inject_fault("503", count=2)
    assert CloudJobsHook(conn_id, max_retries=3).get_job(job_id, "cce")["phase"] == "SUCCEEDED"


def test_a_post_refused_with_401_is_sent_again_after_one_token_refresh(cloud_simulator, cloudjobs_conn):
    """A 401 means the cloud did not accept the order: re-sending it with a fresh token creates one cluster."""
    conn_id = cloudjobs_conn()
    hook = CloudJobsHook(conn_id)
    hook.get_job(cloud_simulator.create_job("cce"), "cce")  # a token is cached
    cloud_simulator.expire_tokens()
    answer = hook.request("POST", "cce", CREATE, json=SPEC)
    assert answer["status"]["jobID"]
    assert cloud_simulator.stats()["iam_token_calls"] == 2


# -- hostile bodies -------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_a_large_garbage_error_page_is_read_in_linear_time(cloud_simulator, cloudjobs_conn):
    """A 2 MB page of broken tags: a backtracking parser would take hours on it (and stall the triggerer)."""
    conn_id = cloudjobs_conn()
    job_id = cloud_simulator.create_job("cce")
    cloud_simulator.inject_fault("garbage_html", count=2, size=2_000_000)
    for error in _both_paths(CloudJobsHook(conn_id, max_retries=0), job_id):
        assert "HTTP 503" in str(error)
        assert len(str(error)) < 1000


@pytest.mark.parametrize(
    ("kind", "size"),
    [("huge", 64 << 20), ("gzip_bomb", 200 << 20)],  # streamed with no length; 200 MiB inflated from ~200 KiB
)
def test_a_body_over_the_size_cap_is_refused_without_reading_it_whole(
    cloud_simulator, cloudjobs_conn, kind, size
):
    conn_id = cloudjobs_conn(max_response_bytes=1 << 20)
    job_id = cloud_simulator.create_job("cce")
    cloud_simulator.inject_fault(kind, count=2, size=size)
    tracemalloc.start()
    try:
        errors = _both_paths(CloudJobsHook(conn_id, max_retries=0), job_id)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    for error in errors:
        assert "max_response_bytes" in str(error)
        assert "1048576" in str(error)
    # the cap is 1 MiB; read whole, the body would be 64 or 200 MiB (the margin is for whatever else the
    # process allocates meanwhile: the simulator's thread, log capture)
    assert peak < 24 << 20


def test_deeply_nested_json_is_a_retryable_bad_body_not_a_crash(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn()
    job_id = cloud_simulator.create_job("cce")
    cloud_simulator.inject_fault("deep_json", count=2, size=400_000)
    for error in _both_paths(CloudJobsHook(conn_id, max_retries=0), job_id):
        assert isinstance(error, CloudJobsAPIError)
        assert error.retryable
        assert "not JSON" in str(error)


def test_a_dripping_answer_ends_at_the_timeout_on_both_paths(cloud_simulator, cloudjobs_conn):
    """One byte every 0.2 s never trips a per-read time-out; ``timeout`` is the whole request's."""
    conn_id = cloudjobs_conn(timeout=1)
    job_id = cloud_simulator.create_job("cce")
    cloud_simulator.inject_fault("drip", count=2, delay=0.2)
    for error in _both_paths(CloudJobsHook(conn_id, max_retries=0), job_id):
        assert "timed out" in str(error).lower() or "Timeout" in str(error)
        assert error.retryable
    # the simulator sent at most ~1 s worth of bytes before each request was dropped: not the whole body
    assert cloud_simulator.stats()["faults_served"] == 2


# -- login storms ---------------------------------------------------------------------------------------
async def test_a_wrong_password_makes_one_iam_attempt_for_many_waits(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn(password="Wrong-Pa55word")
    job_ids = cloud_simulator.create_jobs("cce", 100)
    try:
        results = await asyncio.gather(
            *(CloudJobsHook(conn_id, max_retries=0).aget_job(job_id, "cce") for job_id in job_ids),
            return_exceptions=True,
        )
    finally:
        await close_shared_session()
    assert all(isinstance(result, CloudJobsAuthError) for result in results)
    assert cloud_simulator.stats()["iam_token_calls"] == 1
    # and later calls within the memory window do not try again either (sync path included)
    with pytest.raises(CloudJobsAuthError):
        CloudJobsHook(conn_id, max_retries=0).get_job(job_ids[0], "cce")
    assert cloud_simulator.stats()["iam_token_calls"] == 1


async def test_an_iam_outage_backs_off_for_everyone(cloud_simulator, cloudjobs_conn):
    conn_id = cloudjobs_conn()
    job_ids = cloud_simulator.create_jobs("cce", 100)
    cloud_simulator.inject_fault("iam_500", count=100)
    try:
        results = await asyncio.gather(
            *(CloudJobsHook(conn_id, max_retries=0).aget_job(job_id, "cce") for job_id in job_ids),
            return_exceptions=True,
        )
    finally:
        await close_shared_session()
    assert all(isinstance(result, CloudJobsAPIError) and result.retryable for result in results)
    stats = cloud_simulator.stats()
    assert (stats["faults_served"], stats["faults_pending"]) == (1, 99)  # one login attempt reached IAM
    assert all((result.retry_after or 0) > 0 for result in results)  # every wait is told to back off


def test_a_token_expiring_behind_the_local_clock_is_still_reused(
    cloud_simulator, cloudjobs_conn, monkeypatch
):
    """A worker whose clock runs two days ahead of IAM's: its tokens look expired on arrival."""
    import time
    from types import SimpleNamespace

    from airflow_provider_cloudjobs.auth import tokens

    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: time.time() + 2 * 86400))
    conn_id = cloudjobs_conn()
    job_id = cloud_simulator.create_job("cce", polls_to_finish=10)
    hook = CloudJobsHook(conn_id)
    for _ in range(5):
        hook.get_job(job_id, "cce")
    assert cloud_simulator.stats()["iam_token_calls"] == 1


# -- the environment cannot change what is sent -----------------------------------------------------------
def test_a_netrc_entry_does_not_replace_the_aksk_signature(
    cloud_simulator, cloudjobs_conn, monkeypatch, tmp_path
):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password other-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    conn_id = cloudjobs_conn(auth_type="aksk")
    job_id = cloud_simulator.create_job("ecs", polls_to_finish=1)
    assert CloudJobsHook(conn_id, max_retries=0).get_job(job_id, "ecs")["phase"] == "SUCCEEDED"


@pytest.mark.parametrize("method", ["GET\r\nX-Evil: 1", "TRACE", ""])
def test_a_method_that_is_not_an_api_method_is_refused_before_any_request(
    cloud_simulator, cloudjobs_conn, method
):
    conn_id = cloudjobs_conn()
    with pytest.raises(CloudJobsError, match="method"):
        CloudJobsHook(conn_id).request(method, "cce", CREATE)
    assert cloud_simulator.stats()["requests"] == 0


@pytest.mark.parametrize("path", ["/v1/{project_id}/../admin", "/v1/a b", "v1/jobs"])
def test_a_path_that_leaves_the_service_or_breaks_the_request_line_is_refused(
    cloud_simulator, cloudjobs_conn, path
):
    conn_id = cloudjobs_conn()
    with pytest.raises(CloudJobsError, match="path"):
        CloudJobsHook(conn_id).request("GET", "cce", path)
    assert cloud_simulator.stats()["requests"] == 0
