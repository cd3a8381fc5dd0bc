"""Our AK/SK signer against the official SDK's signer, on thousands of randomised requests.

Both sign the same request (method, unicode and percent-encoded path, repeated keys and empty values in
the query, headers, body) with a fixed ``X-Sdk-Date``; the ``Authorization`` headers must be identical.
The SDK's signer adds ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`` for bodies whose Content-Type is not
JSON, which ours never does (it always covers the payload), so requests here are JSON or have no
Content-Type, as every job call of the provider is.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_cloudjobs.auth.signer import sign_request

pytest.importorskip("huaweicloudsdkcore", reason="the official SDK (the conformance extra) is not installed")
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

HOST = "ecs.cn-north-4.myhuaweicloud.com"
DATE = "20261201T094500Z"
AK, SK = "HPUAEXAMPLEACCESSKEY", "Ex4mpleSecretKey/with+chars=="

# Text as it appears in real paths and queries: letters, digits, reserved and unreserved punctuation,
# spaces, percent signs, and non-ASCII (accents, CJK, emoji).
_TEXT = st.text(
    alphabet=st.sampled_from(
        [*list("abcXYZ019-_.~!$&'()*+,;=:@% /?#[]\"<>^`{|}"), "é", "ß", "中", "文", "😀", "\xa0"]
    ),
    max_size=12,
)
_SEGMENT = _TEXT.filter(lambda s: "/" not in s and s not in (".", ".."))


@st.composite
def requests(draw):
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "get", "post"]))
    segments = draw(st.lists(_SEGMENT, min_size=1, max_size=5))
    trailing = draw(st.booleans())
    path_text = "/" + "/".join(segments) + ("/" if trailing else "")
    # The path on the wire is percent-encoded, sometimes with a pre-encoded '%2F' or '%25' kept as is.
    raw_path = quote(path_text, safe="/~")
    keys = draw(
        st.lists(st.sampled_from(["id", "limit", "name", "a b", "中文", "x~y", "k+v", "Z"]), max_size=6)
    )
    query = [(key, draw(st.one_of(st.just(""), _TEXT))) for key in keys]  # repeated keys and empty values
    body = draw(st.one_of(st.just(b""), st.binary(max_size=64), _TEXT.map(lambda s: s.encode("utf-8"))))
    headers = {"X-Sdk-Date": DATE}
    if draw(st.booleans()):
        headers["Content-Type"] = "application/json;charset=UTF-8"
    if draw(st.booleans()):
        headers["X-Project-Id"] = draw(st.sampled_from(["0a1b2c3d4e5f40718293a4b5c6d7e8f9", " padded "]))
    if draw(st.booleans()):
        headers["X_Underscore"] = "not signed"
    return method, raw_path, query, body, headers


def sdk_authorization(method, raw_path, query, body, headers) -> str:
    request = SdkRequest(
        method=method,
        schema="https",
        host=HOST,
        resource_path=raw_path,
        query_params=list(query),
        header_params=dict(headers),
        body=body,
    )
    return Signer(BasicCredentials(AK, SK)).sign(request).header_params["Authorization"]


def our_authorization(method, raw_path, query, body, headers) -> str:
    query_text = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    url = f"https://{HOST}{raw_path}" + (f"?{query_text}" if query_text else "")
    return sign_request(method, url, headers, body, AK, SK)["Authorization"]


@settings(
    max_examples=3000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(requests())
def test_signature_is_byte_identical_to_the_sdk_signers(request_parts) -> None:
    assert our_authorization(*request_parts) == sdk_authorization(*request_parts)


def test_known_request_signs_alike() -> None:
    """One fixed request (what a job GET looks like), so a failure above can be compared by eye."""
    parts = (
        "GET",
        "/v1/0a1b2c3d4e5f40718293a4b5c6d7e8f9/jobs/ff80808",
        [("id", "ff80808")],
        b"",
        {"X-Sdk-Date": DATE},
    )
    assert our_authorization(*parts) == sdk_authorization(*parts)
    assert our_authorization(*parts).startswith(
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host;x-sdk-date, "
    )


def test_an_empty_query_key_signs_alike() -> None:
    parts = ("GET", "/v1/p/jobs/x", [("", "v")], b"", {"X-Sdk-Date": DATE})
    assert our_authorization(*parts) == sdk_authorization(*parts)


def test_a_global_eip_job_get_is_signed_as_the_sdks_global_credentials_sign_it() -> None:
    """AK/SK for a domain-scoped service (Global EIP): the headers the provider sends carry the same
    ``X-Domain-Id`` that ``GlobalCredentials.sign_request`` adds, signed, with the same Authorization."""
    from huaweicloudsdkcore.auth.credentials import GlobalCredentials

    from airflow_provider_cloudjobs.connection import CloudJobsSettings
    from airflow_provider_cloudjobs.profiles import BUILTIN_PROFILES
    from airflow_provider_cloudjobs.request_flow import _headers

    domain_id = "d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f"
    settings = CloudJobsSettings(
        conn_id="c", auth_type="aksk", login=AK, secret=SK, region="cn-north-4", domain_id=domain_id
    )
    profile = BUILTIN_PROFILES["geip"]
    path = profile.job_path("", "ff80808", domain_id=domain_id)
    url = settings.base_url(profile) + path
    ours = _headers(settings, None, "GET", url, b"", profile.scope)
    sent = {k: v for k, v in ours.items() if k != "Authorization"}
    assert sent["X-Domain-Id"] == domain_id
    assert "x-domain-id" in ours["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")

    given = {k: v for k, v in sent.items() if k != "X-Domain-Id"}  # the SDK adds it itself
    request = SdkRequest(
        method="GET",
        schema="https",
        host="eip.myhuaweicloud.com",
        resource_path=path,
        query_params=[],
        header_params=given,
        body=b"",
    )
    signed = GlobalCredentials(AK, SK, domain_id).sign_request(request)
    assert signed.header_params["X-Domain-Id"] == domain_id
    assert signed.header_params["Authorization"] == ours["Authorization"]


def test_a_project_service_is_signed_without_x_domain_id() -> None:
    from airflow_provider_cloudjobs.connection import CloudJobsSettings
    from airflow_provider_cloudjobs.request_flow import _headers

    settings = CloudJobsSettings(conn_id="c", auth_type="aksk", login=AK, secret=SK, domain_id="d1")
    headers = _headers(settings, None, "GET", f"https://{HOST}/v1/p/jobs/x", b"", "project")
    assert "X-Domain-Id" not in headers
