"""Every connection field that builds a URL, a header or a bound is checked before any request."""

from __future__ import annotations

import json
import logging

import pytest
from airflow.sdk import Connection

from airflow_provider_cloudjobs.connection import settings_from_connection
from airflow_provider_cloudjobs.exceptions import CloudJobsInputError
from airflow_provider_cloudjobs.profiles import ServiceProfile
from airflow_provider_cloudjobs.validation import validate_job_id, validate_project_id

PASSWORD = "S3cret-pa55word!"
BASE = {"domain_name": "acme", "region": "cn-north-4", "project_id": "p1"}


def settings(login: str = "alice", password: str = PASSWORD, **extra):
    return settings_from_connection(
        Connection(
            conn_id="cj",
            conn_type="cloudjobs",
            login=login,
            password=password,
            extra=json.dumps({**BASE, **extra}),
        )
    )


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"project_id": "p1\nHost: evil"}, "project_id"),
        ({"region": "cn-north-4\n.evil"}, "region"),
        ({"endpoint_domain": "evil.example@myhuaweicloud.com"}, "endpoint_domain"),
        ({"endpoint_domain": "myhuaweicloud.com/evil"}, "endpoint_domain"),
        ({"endpoint_domain": "evil.example:8443"}, "endpoint_domain"),
        ({"endpoints": {"cce": "https://user:pw@evil.example"}}, "endpoints['cce']"),
        ({"endpoints": {"cce": "https://cce.example/?next=evil"}}, "endpoints['cce']"),
        ({"endpoints": {"cce": "ftp://cce.example"}}, "endpoints['cce']"),
        ({"endpoints": {"cce": "https://cce.example:99999"}}, "endpoints['cce']"),
        ({"iam_endpoint": "https://iam.example\r\nX-Evil: 1"}, "iam_endpoint"),
        ({"console_url": "javascript:alert(document.cookie)"}, "console_url"),
        ({"console_url": "https://console.example#frag"}, "console_url"),
        ({"verify": "/no/such/ca-bundle.pem"}, "verify"),
        ({"verify": "flase"}, "verify"),
        ({"timeout": "nan"}, "timeout"),
        ({"timeout": "inf"}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": 10_000}, "timeout"),
        ({"max_response_bytes": 10}, "max_response_bytes"),
        ({"max_response_bytes": 1 << 40}, "max_response_bytes"),
    ],
)
def test_fields_that_could_send_traffic_elsewhere_or_unbounded_are_refused(extra, field):
    with pytest.raises(CloudJobsInputError) as info:
        settings(**extra)
    assert field in str(info.value)
    assert PASSWORD not in str(info.value)


def test_a_token_with_a_newline_is_refused_without_quoting_it():
    token = "MIIsecretpart1\nX-Injected: secretpart2"
    with pytest.raises(CloudJobsInputError) as info:
        settings(auth_type="token", token=token)
    assert "secretpart" not in str(info.value)
    assert "token" in str(info.value)


def test_an_access_key_with_a_newline_is_refused():
    with pytest.raises(CloudJobsInputError, match="Access Key"):
        settings(login="AKID\r\nX-Evil: 1", auth_type="aksk")


def test_good_urls_keep_their_path_and_lose_the_trailing_slash(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    parsed = settings(
        endpoints={"cce": "https://gw.example:8443/cce/"},
        iam_endpoint="https://iam.example/",
        console_url="https://console.example/",
        verify=str(bundle),
        timeout="12.5",
        max_response_bytes="65536",
        endpoint_domain="otc.t-systems.com",
    )
    assert parsed.endpoints["cce"] == "https://gw.example:8443/cce"
    assert parsed.iam_url == "https://iam.example"
    assert parsed.console_base == "https://console.example"
    assert (parsed.verify, parsed.timeout, parsed.max_response_bytes) == (str(bundle), 12.5, 65536)


@pytest.fixture(autouse=True)
def _forget_warnings(monkeypatch):
    from airflow_provider_cloudjobs import connection

    monkeypatch.setattr(connection, "_warned", set())


def test_plain_http_and_unverified_tls_are_warned_about_once(caplog):
    with caplog.at_level(logging.WARNING, logger="airflow_provider_cloudjobs.connection"):
        settings(iam_endpoint="http://iam.example", verify="false")
        settings(iam_endpoint="http://iam.example", verify="false")
    assert caplog.text.count("unencrypted (plain http) to http://iam.example") == 1
    assert caplog.text.count("verify=false") == 1


async def test_unverified_tls_is_warned_about_on_the_async_path_too(monkeypatch, caplog):
    from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook, close_shared_session

    body = {
        "conn_type": "cloudjobs",
        "login": "alice",
        "password": PASSWORD,
        "extra": {**BASE, "verify": False},
    }
    monkeypatch.setenv("AIRFLOW_CONN_CJ_ASYNC", json.dumps(body))
    with caplog.at_level(logging.WARNING, logger="airflow_provider_cloudjobs.connection"):
        try:
            await CloudJobsHook("cj_async").aget_conn()
        finally:
            await close_shared_session()
    assert "verify=false" in caplog.text


def test_a_huge_job_id_is_not_echoed_whole():
    with pytest.raises(CloudJobsInputError) as info:
        validate_job_id("a" * 100_000 + "/")
    assert len(str(info.value)) < 300


@pytest.mark.parametrize("project_id", ["p1\n", "p1 ", "\np1"])
def test_a_project_override_with_a_newline_is_refused(project_id):
    with pytest.raises(CloudJobsInputError, match="project_id"):
        validate_project_id(project_id)


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/v1/{project_id}/jobs/{job_id}/{", "unbalanced"),
        ("/v1/{project_id}/jobs/{job_id}/{0}", "not plain names"),
        ("/v1/{project_id}/jobs/{job_id}/{}", "not plain names"),
        ("/v1/{project_id}/jobs/{job_id.__class__}", "not plain names"),
        ("/v1/{project_id}/jobs/{job_id!r}", "not plain names"),
        ("/v1/{project_id}/jobs/{job_id:>40}", "not plain names"),
        ("/v1/{project_id}/{Instance}/jobs/{job_id}", "not plain names"),
    ],
)
def test_a_custom_profile_path_with_a_placeholder_that_is_not_a_plain_name_is_refused(path, needle):
    with pytest.raises(CloudJobsInputError, match=needle):
        ServiceProfile.from_dict("mine", {"host": "mine", "path": path})
