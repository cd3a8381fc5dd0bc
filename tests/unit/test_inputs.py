"""Connection parsing (form, URI, JSON), service profiles from data, and input checks: all before any request."""

from __future__ import annotations

import json

import pytest
from airflow.sdk import Connection

from airflow_provider_cloudjobs.connection import settings_from_connection
from airflow_provider_cloudjobs.exceptions import CloudJobsInputError
from airflow_provider_cloudjobs.profiles import (
    BUILTIN_PROFILES,
    ServiceProfile,
    get_profile,
    register_service,
)
from airflow_provider_cloudjobs.validation import validate_job_id, validate_project_id

PASSWORD = "S3cret-pa55word!"


def conn(**kwargs) -> Connection:
    extra = kwargs.pop("extra", {})
    return Connection(
        conn_id=kwargs.pop("conn_id", "cj"), conn_type="cloudjobs", extra=json.dumps(extra), **kwargs
    )


def test_password_connection_defaults_build_huawei_endpoints():
    settings = settings_from_connection(
        conn(login="alice", password=PASSWORD, extra={"domain_name": "acme", "region": "cn-north-4"})
    )
    assert settings.auth_type == "password"
    assert settings.iam_url == "https://iam.cn-north-4.myhuaweicloud.com"
    assert settings.base_url(BUILTIN_PROFILES["cce"]) == "https://cce.cn-north-4.myhuaweicloud.com"
    assert settings.base_url(BUILTIN_PROFILES["elbv3"]) == "https://elb.cn-north-4.myhuaweicloud.com"
    assert settings.console_base == "https://console.myhuaweicloud.com"
    assert PASSWORD not in repr(settings)


def test_open_telekom_cloud_domain_and_endpoint_overrides():
    settings = settings_from_connection(
        conn(
            login="AK",
            password="SK",
            extra={
                "auth_type": "aksk",
                "region": "eu-de",
                "endpoint_domain": "otc.t-systems.com",
                "endpoints": {"cce": "https://cce.example.test/"},
                "iam_endpoint": "https://iam.example.test",
            },
        )
    )
    assert settings.base_url(BUILTIN_PROFILES["cce"]) == "https://cce.example.test"
    assert settings.base_url(BUILTIN_PROFILES["ecs"]) == "https://ecs.eu-de.otc.t-systems.com"
    assert settings.iam_url == "https://iam.example.test"


def test_uri_form_with_string_extras():
    uri = (
        "cloudjobs://alice:S3cret@/?region=cn-north-4&project_id=0a1b2c&domain_name=acme"
        "&verify=false&timeout=7.5&endpoints=%7B%22%2A%22%3A%22http%3A%2F%2F127.0.0.1%3A9%22%7D"
    )
    settings = settings_from_connection(Connection.from_uri(uri, conn_id="from_uri"))
    assert (settings.login, settings.secret, settings.project_id) == ("alice", "S3cret", "0a1b2c")
    assert settings.verify is False
    assert settings.timeout == 7.5
    assert settings.base_url(BUILTIN_PROFILES["dws"]) == "http://127.0.0.1:9"


def test_json_env_form(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv(
        "AIRFLOW_CONN_CJ_JSON",
        json.dumps(
            {
                "conn_type": "cloudjobs",
                "login": "u",
                "password": "p",
                "extra": {"domain_name": "d", "project_id": "abc", "verify": str(bundle)},
            }
        ),
    )
    from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook

    settings = CloudJobsHook("cj_json").get_conn()
    assert (settings.login, settings.domain_name, settings.project_id) == ("u", "d", "abc")
    assert settings.verify == str(bundle)


def test_token_auth_reads_token_from_extra():
    settings = settings_from_connection(
        conn(extra={"auth_type": "token", "token": "tok", "project_id": "p1"})
    )
    assert (settings.auth_type, settings.secret) == ("token", "tok")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"login": "alice", "password": PASSWORD, "extra": {"region": "cn-north-4"}}, "domain_name"),
        ({"login": "alice", "extra": {"domain_name": "d", "region": "cn-north-4"}}, "password"),
        ({"login": "a", "password": PASSWORD, "extra": {"domain_name": "d"}}, "'project_id' or 'region'"),
        ({"extra": {"auth_type": "aksk", "region": "r1"}}, "Access Key"),
        ({"extra": {"auth_type": "token", "project_id": "p"}}, "token"),
        ({"extra": {"auth_type": "kerberos"}}, "auth_type 'kerberos'"),
        (
            {"login": "a", "password": PASSWORD, "extra": {"domain_name": "d", "region": "Bad Region"}},
            "region",
        ),
        (
            {
                "login": "a",
                "password": PASSWORD,
                "extra": {"domain_name": "d", "region": "r1", "timeout": "soon"},
            },
            "'timeout' must be a number",
        ),
        (
            {
                "login": "a",
                "password": PASSWORD,
                "extra": {"domain_name": "d", "region": "r1", "endpoints": "{oops"},
            },
            "'endpoints' must be a JSON object",
        ),
        (
            {
                "login": "a",
                "password": PASSWORD,
                "extra": {"domain_name": "d", "region": "r1", "endpoints": {"cce": "ftp://x"}},
            },
            "endpoints['cce']",
        ),
    ],
)
def test_bad_connections_name_the_field_and_hide_the_password(kwargs, needle):
    with pytest.raises(CloudJobsInputError) as info:
        settings_from_connection(conn(**kwargs))
    assert needle in str(info.value)
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    ("job_id", "needle"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (None, "empty"),
        ("a/b", "'/'"),
        ("a?x=1", "'?'"),
        ("a#b", "'#'"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("a b", "whitespace"),
        ("a\tb", "whitespace"),
        ("a%2Fb", "'%'"),
        (42, "must be a string"),
        ("é", "characters"),
    ],
)
def test_bad_job_ids_rejected_with_reason(job_id, needle):
    with pytest.raises(CloudJobsInputError) as info:
        validate_job_id(job_id)
    assert needle in str(info.value)


def test_good_ids_pass():
    assert validate_job_id("354331b2c-229a-11e8-9c75-0255ac100ceb") == "354331b2c-229a-11e8-9c75-0255ac100ceb"
    assert validate_project_id(None) is None
    with pytest.raises(CloudJobsInputError, match="project_id"):
        validate_project_id("../x")


def test_unknown_service_lists_known_ones():
    with pytest.raises(CloudJobsInputError, match=r"Unknown service 'ecr'.*cce.*dws"):
        get_profile("ecr")


def test_user_service_from_python_and_from_connection_extra():
    vpc = ServiceProfile.from_dict(
        "vpcjobs", {"extends": "ecs", "host": "vpc", "resource_id": ["entities.vpc_id"]}
    )
    register_service(vpc)
    assert get_profile("vpcjobs").path == "/v1/{project_id}/jobs/{job_id}"
    assert get_profile("vpcjobs").resource_id == ("entities.vpc_id",)

    settings = settings_from_connection(
        conn(
            extra={
                "auth_type": "token",
                "token": "t",
                "project_id": "p",
                "services": {
                    "nat": {
                        "host": "nat",
                        "path": "/v2/{project_id}/nat-jobs/{job_id}",
                        "status": "job.state",
                        "phases": {"DONE": "SUCCEEDED", "BUSY": "RUNNING", "BROKEN": "FAILED"},
                        "message": ["job.why"],
                    }
                },
            }
        )
    )
    nat = get_profile("nat", settings.services)
    assert nat.phase_of("done").value == "SUCCEEDED"
    assert ServiceProfile.from_dict("nat", nat.to_dict()) == nat  # plain data round trip (trigger kwargs)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"host": "x", "path": "/v1/jobs"}, "{job_id}"),
        ({"host": "x", "path": "/v1/{job_id}", "phases": {"OK": "DONE"}}, "unknown phases"),
        ({"path": "/v1/{job_id}"}, "needs ['host']"),
        ({"extends": "nope"}, "extends unknown built-in"),
        ({"host": "x", "path": "/v1/{job_id}", "colour": "red"}, "unknown field"),
    ],
)
def test_bad_profiles_are_rejected(spec, needle):
    with pytest.raises(CloudJobsInputError, match=None) as info:
        ServiceProfile.from_dict("custom", spec)
    assert needle in str(info.value)
