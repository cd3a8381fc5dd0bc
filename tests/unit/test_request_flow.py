"""The request flow without any network: driven step by step with scripted answers.

What it shows is what the drivers then cannot get wrong: where credentials go, what is sent again, how
long a throttled call backs off.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_cloudjobs.auth.tokens import IssuedToken
from airflow_provider_cloudjobs.connection import CloudJobsSettings
from airflow_provider_cloudjobs.exceptions import CloudJobsAPIError, CloudJobsAuthError
from airflow_provider_cloudjobs.request_flow import (
    Connection,
    FlowRunner,
    HttpResponse,
    Send,
    Sleep,
    Token,
    call,
    login,
    with_connection,
)

SETTINGS = CloudJobsSettings(
    conn_id="c",
    auth_type="password",
    login="alice",
    secret="pw-secret",
    domain_name="acme",
    region="cn-north-4",
    project_id="p1",
    iam_endpoint="https://iam.example",
    endpoints={"*": "https://api.example"},
)
TOKEN = IssuedToken(value="tok-1", expires_at=2e9, refresh_at=2e9)
URL = "https://api.example/v1/p1/jobs/j1"


def answer(status: int, body: Any = None, **headers: str) -> HttpResponse:
    raw = json.dumps(body).encode() if body is not None else b""
    return HttpResponse(status, {"Content-Type": "application/json", **headers}, raw)


def run(flow, answers: list[HttpResponse | BaseException], token: IssuedToken = TOKEN):
    """Drive ``flow``; returns (result or raised error, the steps it asked for)."""
    runner, steps, queue = FlowRunner(flow), [], list(answers)
    while True:
        try:
            step = runner.next_step()
        except Exception as exc:
            return exc, steps
        if step is None:
            return runner.result, steps
        steps.append(step)
        if isinstance(step, Send):
            reply = queue.pop(0)
            if isinstance(reply, BaseException):
                runner.fail(reply)
            else:
                runner.answer(reply)
        elif isinstance(step, Token):
            runner.answer(token)
        elif isinstance(step, Connection):
            runner.answer(SETTINGS)


def sends(steps) -> list[Send]:
    return [step for step in steps if isinstance(step, Send)]


def test_a_get_carries_the_token_and_returns_the_json():
    result, steps = run(call(SETTINGS, "GET", URL, retries=0), [answer(200, {"status": "RUNNING"})])
    assert result == {"status": "RUNNING"}
    (send,) = sends(steps)
    assert send.request.headers["X-Auth-Token"] == "tok-1"
    assert send.request.url == URL
    assert "tok-1" not in send.request.what


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_an_error_and_nothing_is_sent_again(status):
    error, steps = run(
        call(SETTINGS, "GET", URL, retries=3), [answer(status, Location="https://evil.example:8443/x")]
    )
    assert isinstance(error, CloudJobsAPIError)
    assert not error.retryable
    assert "evil.example:8443" in str(error)
    assert len(sends(steps)) == 1


def test_a_401_refreshes_the_token_once_then_fails_clearly():
    error, steps = run(call(SETTINGS, "GET", URL, retries=3), [answer(401, {"error_code": "APIGW.0307"})] * 2)
    assert isinstance(error, CloudJobsAuthError)
    tokens = [step for step in steps if isinstance(step, Token)]
    assert [step.rejected for step in tokens] == [None, TOKEN]  # the second asks for a new token
    assert len(sends(steps)) == 2


@pytest.mark.parametrize(
    "failure",
    [
        answer(503, {"error_code": "APIGW.0202"}),
        HttpResponse(200, {}, b"<html>proxy</html>"),
        CloudJobsAPIError("POST ... failed: ReadTimeout", retryable=True),
    ],
)
def test_a_post_is_sent_once_whatever_comes_back(failure):
    error, steps = run(call(SETTINGS, "POST", URL, {"a": 1}, retries=5), [failure])
    assert isinstance(error, CloudJobsAPIError)
    assert not error.retryable
    assert "not retried" in str(error)
    assert len(sends(steps)) == 1
    assert not any(isinstance(step, Sleep) for step in steps)


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
def test_idempotent_methods_are_retried(method):
    result, steps = run(
        call(SETTINGS, method, URL, retries=2), [answer(503), answer(502), answer(200, {"ok": 1})]
    )
    assert result == {"ok": 1}
    assert len(sends(steps)) == 3


@pytest.mark.parametrize("retry_after", ["0", "-5", "Wed, 21 Oct 2015 07:28:00 GMT", "garbage", "nan"])
def test_retry_after_never_shortens_backoff(retry_after, monkeypatch):
    from airflow_provider_cloudjobs import transport

    monkeypatch.setattr(transport, "BACKOFF_BASE", 1.0)
    throttled = answer(429, {"error_code": "APIGW.0308"}, **{"Retry-After": retry_after})
    error, steps = run(call(SETTINGS, "GET", URL, retries=4), [throttled] * 5)
    assert isinstance(error, CloudJobsAPIError)
    sleeps = [step.seconds for step in steps if isinstance(step, Sleep)]
    assert len(sleeps) == 4
    for attempt, seconds in enumerate(sleeps, start=1):
        assert seconds >= 2 ** (attempt - 1) / 2  # at least half the exponential ceiling


def test_retry_after_raises_backoff_to_its_floor():
    throttled = answer(429, {}, **{"Retry-After": "30"})
    _, steps = run(call(SETTINGS, "GET", URL, retries=1), [throttled, answer(200, {})])
    (sleep,) = [step for step in steps if isinstance(step, Sleep)]
    assert 30 <= sleep.seconds <= 31.0


def test_the_login_sends_the_password_only_to_iam_and_reads_the_token():
    body = {
        "token": {
            "expires_at": "2030-01-01T00:00:00Z",
            "issued_at": "2029-12-31T00:00:00Z",
            "project": {"id": "p1"},
        }
    }
    result, steps = run(login(SETTINGS), [answer(201, body, **{"X-Subject-Token": "tok-new"})])
    assert isinstance(result, IssuedToken)
    assert result.value == "tok-new"
    assert result.expires_at - result.refresh_at == 600  # 24 h lifetime: refreshed 10 min before
    (send,) = sends(steps)
    assert send.request.url == "https://iam.example/v3/auth/tokens"
    assert "pw-secret" not in send.request.what


@pytest.mark.parametrize(("status", "error_type"), [(401, CloudJobsAuthError), (307, CloudJobsAPIError)])
def test_a_refused_or_redirected_login_is_not_sent_again(status, error_type):
    error, steps = run(
        login(SETTINGS), [answer(status, {"error": {"code": "401"}}, Location="https://evil/")]
    )
    assert type(error) is error_type
    assert len(sends(steps)) == 1
    assert "pw-secret" not in str(error)


def test_an_auth_failure_rereads_the_connection_and_retries_only_if_it_changed():
    rotated = CloudJobsSettings(**{**SETTINGS.__dict__, "secret": "new-pw"})
    seen: list[CloudJobsSettings] = []

    def body(settings):
        seen.append(settings)
        if settings is SETTINGS:
            raise CloudJobsAuthError("IAM refused")
        return "ok"
        yield  # a generator

    flow = with_connection("c", body)
    runner = FlowRunner(flow)
    assert runner.next_step() == Connection("c")
    runner.answer(SETTINGS)
    assert runner.next_step() == Connection("c", stale=SETTINGS)
    runner.answer(rotated)
    assert runner.next_step() is None
    assert runner.result == "ok"
    assert seen == [SETTINGS, rotated]

    unchanged = FlowRunner(with_connection("c", body))
    unchanged.next_step()
    unchanged.answer(SETTINGS)
    unchanged.next_step()
    unchanged.answer(SETTINGS)
    with pytest.raises(CloudJobsAuthError):
        unchanged.next_step()
