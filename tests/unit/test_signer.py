"""SDK-HMAC-SHA256 signer: the official SDK's known answers, canonical forms, and server-side verification."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import pytest
import requests

from airflow_provider_cloudjobs.auth.signer import (
    ALGORITHM,
    HEADER_SDK_DATE,
    ParsedAuthorization,
    SignatureError,
    canonical_query_string,
    canonical_request,
    canonical_uri,
    compute_signature,
    format_sdk_date,
    parse_authorization,
    sign_request,
    split_query,
    string_to_sign,
    verify_request,
)

# -- the official SDK's test vectors (huaweicloud-sdk-python-v3, huaweicloud-sdk-core/tests/test_signer.py) --
VECTOR_URL = "https://service.endpoint.myhuaweicloud.com/resources?size=1"
VECTOR_HOST = "service.endpoint.myhuaweicloud.com"
VECTOR_DATE = "20200608T023900Z"
VECTOR_NOW = datetime(2020, 6, 8, 2, 39, tzinfo=timezone.utc)
# Only these two headers: the SDK adds Host itself and signs no Content-Type unless one is passed.
VECTOR_HEADERS = {"X-Sdk-Date": VECTOR_DATE, "TEST_UNDERSCORE": "TEST_VALUE"}
VECTOR_GET_AUTH = (
    "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, "
    "Signature=cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842"
)
VECTOR_POST_BODY = '{"name":"test","id":1}'
VECTOR_POST_AUTH = (
    "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, "
    "Signature=436b1ac0a1ae03705934bb70ef2f2e09f7bfed2117d731a38235053199323a1f"
)

AK = "TESTACCESSKEY0000001"
# Distinctive so a leak into any message is unmistakable.
SK = "sk-Zq8#never-print-me-4711"
KEYS = {AK: SK}


def _secret_for(access_key: str) -> str | None:
    return KEYS.get(access_key)


# -- known answers -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [("GET", "", VECTOR_GET_AUTH), ("POST", VECTOR_POST_BODY, VECTOR_POST_AUTH)],
    ids=["get", "post"],
)
def test_official_known_answers(method: str, body: str, expected: str) -> None:
    signed = sign_request(method, VECTOR_URL, VECTOR_HEADERS, body, "AccessKey", "SecretKey")

    assert signed["Authorization"] == expected
    # Given headers come back untouched, the date is not duplicated and no Host is added.
    assert signed == {**VECTOR_HEADERS, "Authorization": expected}


def test_known_answer_with_sdk_date_argument_adds_the_header() -> None:
    headers = {"TEST_UNDERSCORE": "TEST_VALUE"}
    signed = sign_request(
        "POST", VECTOR_URL, headers, VECTOR_POST_BODY.encode(), "AccessKey", "SecretKey", sdk_date=VECTOR_DATE
    )

    assert signed[HEADER_SDK_DATE] == VECTOR_DATE
    assert signed["Authorization"] == VECTOR_POST_AUTH
    assert headers == {"TEST_UNDERSCORE": "TEST_VALUE"}  # the input mapping is not modified


@pytest.mark.parametrize(
    ("method", "body", "authorization"),
    [("GET", b"", VECTOR_GET_AUTH), ("POST", VECTOR_POST_BODY.encode(), VECTOR_POST_AUTH)],
    ids=["get", "post"],
)
def test_verifier_accepts_the_official_vectors(method: str, body: bytes, authorization: str) -> None:
    received = {"Host": VECTOR_HOST, **VECTOR_HEADERS, "Authorization": authorization}
    secrets = {"AccessKey": "SecretKey"}

    assert verify_request(method, "/resources", "size=1", received, body, secrets.get, now=VECTOR_NOW) == (
        "AccessKey"
    )


def test_official_query_string_vector() -> None:
    pairs = [
        ("limit", "1"),
        ("enable", "true"),
        ("test", "一 (&=?!#%.*)"),
        ("path", "/tmp/123"),
        ("multi", "3"),
        ("multi", "1"),
        ("multi", "2"),
    ]
    assert canonical_query_string(pairs) == (
        "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123"
        "&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
    )


def test_canonical_request_text_of_the_get_vector() -> None:
    text = canonical_request(
        "get",
        "/resources",
        [("size", "1")],
        {"Host": VECTOR_HOST, "X-Sdk-Date": f"  {VECTOR_DATE} "},
        ["host", "x-sdk-date"],
        hashlib.sha256(b"").hexdigest(),
    )
    assert text == (
        "GET\n/resources/\nsize=1\n"
        "host:service.endpoint.myhuaweicloud.com\nx-sdk-date:20200608T023900Z\n\n"
        "host;x-sdk-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    to_sign = string_to_sign(text, VECTOR_DATE)
    assert to_sign.split("\n") == [ALGORITHM, VECTOR_DATE, hashlib.sha256(text.encode()).hexdigest()]
    assert compute_signature(to_sign, "SecretKey") == VECTOR_GET_AUTH.rsplit("=", 1)[1]


# -- canonical forms ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", "/"),
        ("/", "/"),
        ("/resources", "/resources/"),
        ("/resources/", "/resources/"),
        ("/v1/a b/ü", "/v1/a%20b/%C3%BC/"),
        ("/v1/a%20b/%C3%BC", "/v1/a%20b/%C3%BC/"),
        ("/x/(1)!*'", "/x/%281%29%21%2A%27/"),
        ("/keep-_.~", "/keep-_.~/"),
        ("/a%2Fb", "/a/b/"),  # the SDK decodes before splitting, so an encoded slash separates segments
        ("/a%7eb", "/a~b/"),
    ],
)
def test_canonical_uri(path: str, expected: str) -> None:
    assert canonical_uri(path) == expected


def test_split_query_bare_repeated_and_empty_keys() -> None:
    assert split_query("b=2&flag&a=1&&=x&a=0&c=%2B+&d=x=y") == [
        ("b", "2"),
        ("flag", ""),
        ("a", "1"),
        ("", "x"),  # an empty key is signed, as the official SDK signs it; an empty item is not
        ("a", "0"),
        ("c", "++"),
        ("d", "x=y"),
    ]
    assert canonical_query_string(split_query("b=2&flag&a=1&a=0&c=%2B+&d=x=y")) == (
        "a=0&a=1&b=2&c=%2B%2B&d=x%3Dy&flag="
    )
    assert split_query("") == []


def test_format_sdk_date() -> None:
    assert format_sdk_date(datetime(2020, 6, 8, 10, 39, tzinfo=timezone(timedelta(hours=8)))) == VECTOR_DATE
    assert format_sdk_date(datetime(2020, 6, 8, 2, 39)) == VECTOR_DATE  # naive means UTC
    before = datetime.now(timezone.utc).replace(microsecond=0)
    now_text = format_sdk_date()
    parsed = datetime.strptime(now_text, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    assert before <= parsed <= datetime.now(timezone.utc)


# -- what gets signed ----------------------------------------------------------------------------------
def _signature(
    url: str, headers: dict[str, str] | None = None, body: bytes | str | None = b"", method: str = "GET"
) -> str:
    signed = sign_request(method, url, headers or {}, body, AK, SK, sdk_date=VECTOR_DATE)
    return parse_authorization(signed["Authorization"]).signature


def test_host_port_follows_what_clients_send() -> None:
    assert _signature("https://api.example.com:443/x") == _signature("https://api.example.com/x")
    assert _signature("http://api.example.com:80/x") == _signature("http://api.example.com/x")
    assert _signature("https://API.Example.com/x") == _signature("https://api.example.com/x")
    with_port = _signature("http://api.example.com:8080/x")
    assert with_port != _signature("http://api.example.com/x")
    # An explicit Host header wins over the URL and is signed verbatim.
    assert _signature("http://10.0.0.1/x", {"Host": "api.example.com:8080"}) == with_port
    signed = sign_request("GET", "http://api.example.com:8080/x", {}, None, AK, SK)
    assert not any(name.lower() == "host" for name in signed)


def test_underscore_headers_are_not_signed_others_are() -> None:
    base = _signature("https://h.example.com/x")
    assert _signature("https://h.example.com/x", {"My_Header": "anything"}) == base
    with_type = sign_request(
        "GET", "https://h.example.com/x", {"Content-Type": "application/json", "My_Header": "v"}, b"", AK, SK
    )
    names = parse_authorization(with_type["Authorization"]).signed_headers
    assert names == ("content-type", "host", "x-sdk-date")
    assert with_type["My_Header"] == "v"  # still sent, just not signed


def test_header_values_are_trimmed_but_inner_space_counts() -> None:
    url = "https://h.example.com/x"
    assert _signature(url, {"X-Trace": "  a b \t"}) == _signature(url, {"X-Trace": "a b"})
    assert _signature(url, {"X-Trace": "a  b"}) != _signature(url, {"X-Trace": "a b"})
    assert _signature(url, {"x-trace": "a b"}) == _signature(url, {"X-TRACE": "a b"})


def test_body_forms() -> None:
    url = "https://h.example.com/x"
    assert _signature(url, body=None, method="POST") == _signature(url, body=b"", method="POST")
    assert _signature(url, body="", method="POST") == _signature(url, body=b"", method="POST")
    assert _signature(url, body="ü", method="POST") == _signature(url, body="ü".encode(), method="POST")
    assert _signature(url, body="ü", method="POST") != _signature(
        url, body="ü".encode("latin-1"), method="POST"
    )


def test_query_order_and_encoding_do_not_change_the_signature() -> None:
    assert _signature("https://h.example.com/x?b=2&a=1&a=0") == _signature(
        "https://h.example.com/x?a=0&a=1&b=2"
    )
    assert _signature("https://h.example.com/x?q=a%20b") == _signature("https://h.example.com/x?q=a b")
    assert _signature("https://h.example.com/x?flag") == _signature("https://h.example.com/x?flag=")
    assert _signature("https://h.example.com/x?a=1") != _signature("https://h.example.com/x?a=2")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"headers": {"X-Sdk-Date": VECTOR_DATE}, "sdk_date": "20200608T023901Z"}, "disagrees"),
        ({"sdk_date": "2020-06-08T02:39:00Z"}, "X-Sdk-Date"),
        ({"access_key": ""}, "access key"),
        ({"access_key": "AK WITH SPACE"}, "access key"),
        ({"secret_key": ""}, "secret key"),
    ],
)
def test_sign_request_rejects_bad_input(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {
        "method": "GET",
        "url": VECTOR_URL,
        "headers": {},
        "body": None,
        "access_key": AK,
        "secret_key": SK,
        **kwargs,
    }
    with pytest.raises(ValueError, match=match) as info:
        sign_request(**args)
    assert SK not in str(info.value)


# -- Authorization header --------------------------------------------------------------------------
def test_parse_authorization_round_trip() -> None:
    signed = sign_request(
        "PUT", "https://h.example.com/v1/p/x", {"Content-Type": "application/json"}, b"{}", AK, SK
    )
    parsed = parse_authorization(signed["Authorization"])

    assert parsed.access_key == AK
    assert parsed.signed_headers == ("content-type", "host", "x-sdk-date")
    assert len(parsed.signature) == 64
    rebuilt = (
        f"{ALGORITHM} Access={parsed.access_key}, SignedHeaders={';'.join(parsed.signed_headers)}, "
        f"Signature={parsed.signature}"
    )
    assert rebuilt == signed["Authorization"]
    assert parse_authorization(VECTOR_GET_AUTH) == ParsedAuthorization(
        "AccessKey",
        ("host", "x-sdk-date"),
        "cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842",
    )


SIG = "a" * 64


@pytest.mark.parametrize(
    "value",
    [
        "",
        f"SDK-HMAC-SM3 Access=AK, SignedHeaders=host, Signature={SIG}",
        "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host",
        f"SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature={SIG}",
        f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=, Signature={SIG}",
        f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=Host;X-Sdk-Date, Signature={SIG}",
        f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;;x-sdk-date, Signature={SIG}",
        "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature=xyz",
        f"SDK-HMAC-SHA256 Access=AK, Access=BK, SignedHeaders=host, Signature={SIG}",
        f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature={SIG}, Extra=1",
        f"SDK-HMAC-SHA256 Access=AK SignedHeaders=host Signature={SIG}",
    ],
)
def test_parse_authorization_rejects_malformed(value: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        parse_authorization(value)


# -- verification over real HTTP clients ---------------------------------------------------------------
class _Captured:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str, dict[str, str], bytes]] = []


@pytest.fixture
def echo_server() -> Iterator[tuple[str, _Captured]]:
    """A loopback HTTP server recording each request exactly as it arrived (path, query, headers, body)."""
    captured = _Captured()

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            raw_path, _, raw_query = self.path.partition("?")
            captured.requests.append((self.command, raw_path, raw_query, dict(self.headers.items()), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = _record

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", captured
    finally:
        server.shutdown()
        server.server_close()


# A non-default port, characters clients send literally or encode, an encoded slash, and a query with a
# repeated key, a bare key and an encoded value.
PATH = "/v1/proj-1/jobs/a b(ü)!~/x%2Fy"
QUERY = "?limit=10&tag=z&tag=a&flag&marker=a%2Fb&name=c%20d"
JSON = {"Content-Type": "application/json;charset=utf-8", "Accept": "application/json"}


@pytest.mark.parametrize(("method", "body"), [("GET", b""), ("POST", b'{"server":{"name":"vm"}}')])
def test_requests_round_trip_is_verified(
    echo_server: tuple[str, _Captured], method: str, body: bytes
) -> None:
    base, captured = echo_server
    url = base + PATH + QUERY
    headers = sign_request(method, url, JSON, body, AK, SK)

    assert requests.request(method, url, headers=headers, data=body, timeout=10).status_code == 200

    got_method, raw_path, raw_query, got_headers, got_body = captured.requests[-1]
    assert got_headers["Host"] == base.removeprefix("http://")  # the port is in Host, as signed
    assert verify_request(got_method, raw_path, raw_query, got_headers, got_body, _secret_for) == AK


async def test_aiohttp_round_trip_is_verified(echo_server: tuple[str, _Captured]) -> None:
    base, captured = echo_server
    url = base + PATH + QUERY
    body = b'{"a":1}'
    headers = sign_request("PUT", url, JSON, body, AK, SK)

    async with aiohttp.ClientSession() as session, session.put(url, headers=headers, data=body) as response:
        assert response.status == 200

    got_method, raw_path, raw_query, got_headers, got_body = captured.requests[-1]
    assert verify_request(got_method, raw_path, raw_query, got_headers, got_body, _secret_for) == AK


# -- verification failures ------------------------------------------------------------------------
SIGNED_AT = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
URL = "http://127.0.0.1:8443/v1/p/jobs/j-1?limit=10&offset=0"


def _received(
    body: bytes = b'{"x":1}', *, sk: str = SK, ak: str = AK, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Headers as a server receives them: the signed ones plus the Host the client adds."""
    headers = sign_request(
        "POST", URL, {**JSON, **(extra or {})}, body, ak, sk, sdk_date=format_sdk_date(SIGNED_AT)
    )
    return {"Host": "127.0.0.1:8443", **headers}


def _verify(
    headers: dict[str, str],
    body: bytes = b'{"x":1}',
    *,
    path: str = "/v1/p/jobs/j-1",
    query: str = "limit=10&offset=0",
    now: datetime = SIGNED_AT,
    method: str = "POST",
) -> str:
    return verify_request(method, path, query, headers, body, _secret_for, now=now)


def test_verify_accepts_and_matches_headers_case_insensitively() -> None:
    headers = _received()
    assert _verify(headers) == AK
    assert _verify({name.lower(): value for name, value in headers.items()}) == AK
    assert _verify(headers, query="offset=0&limit=10") == AK  # the query order on the wire does not matter


def _failure(**changes: Any) -> SignatureError:
    headers = changes.pop("headers", None) or _received()
    with pytest.raises(SignatureError) as info:
        _verify(headers, **changes)
    return info.value


def _tampered_cases() -> dict[str, tuple[dict[str, Any], str]]:
    good = _received()
    without_auth = {k: v for k, v in good.items() if k != "Authorization"}
    without_date = {k: v for k, v in good.items() if k != "X-Sdk-Date"}
    return {
        "body": ({"body": b'{"x":2}'}, "signature_mismatch"),
        "empty_body": ({"body": b""}, "signature_mismatch"),
        "wrong_sk": ({"headers": _received(sk="not-the-secret")}, "signature_mismatch"),
        "unknown_ak": ({"headers": _received(ak="UNKNOWNACCESSKEY0001")}, "unknown_access_key"),
        "path": ({"path": "/v1/p/jobs/j-2"}, "signature_mismatch"),
        "query": ({"query": "limit=10&offset=1"}, "signature_mismatch"),
        "extra_query": ({"query": "limit=10&offset=0&x"}, "signature_mismatch"),
        "method": ({"method": "PUT"}, "signature_mismatch"),
        "host": ({"headers": {**good, "Host": "127.0.0.1:9999"}}, "signature_mismatch"),
        "signed_header_value": ({"headers": {**good, "Accept": "text/html"}}, "signature_mismatch"),
        "signed_header_dropped": (
            {"headers": {k: v for k, v in good.items() if k != "Accept"}},
            "signature_mismatch",
        ),
        "stale_date": ({"now": SIGNED_AT + timedelta(seconds=901)}, "clock_skew"),
        "future_date": ({"now": SIGNED_AT - timedelta(minutes=20)}, "clock_skew"),
        "no_authorization": ({"headers": without_auth}, "missing_authorization"),
        "bad_scheme": (
            {"headers": {**good, "Authorization": "Basic dXNlcjpwYXNz"}},
            "malformed_authorization",
        ),
        "bad_authorization": (
            {"headers": {**good, "Authorization": good["Authorization"].replace(", Signature=", ", Sig=")}},
            "malformed_authorization",
        ),
        "no_date": ({"headers": without_date}, "missing_date"),
        "bad_date": ({"headers": {**good, "X-Sdk-Date": "2024-05-01T12:00:00Z"}}, "invalid_date"),
        "swapped_date": (
            {"headers": {**good, "X-Sdk-Date": format_sdk_date(SIGNED_AT + timedelta(seconds=1))}},
            "signature_mismatch",
        ),
    }


@pytest.mark.parametrize("case", list(_tampered_cases()))
def test_verify_rejects(case: str) -> None:
    changes, reason = _tampered_cases()[case]
    error = _failure(**changes)

    assert error.reason == reason
    assert error.code == "APIGW.0301"
    assert error.message
    for text in (str(error), repr(error), error.message, *map(str, error.args)):
        assert SK not in text
        assert "not-the-secret" not in text


def test_clock_skew_boundary() -> None:
    headers = _received()
    assert _verify(headers, now=SIGNED_AT + timedelta(seconds=900)) == AK
    assert _verify(headers, now=SIGNED_AT - timedelta(seconds=900)) == AK
    assert _verify(headers, now=(SIGNED_AT + timedelta(seconds=60)).replace(tzinfo=None)) == AK
    assert (
        verify_request(
            "POST",
            "/v1/p/jobs/j-1",
            "limit=10&offset=0",
            headers,
            b'{"x":1}',
            _secret_for,
            now=SIGNED_AT + timedelta(seconds=60),
            max_skew_seconds=60,
        )
        == AK
    )
    with pytest.raises(SignatureError) as info:
        verify_request(
            "POST",
            "/v1/p/jobs/j-1",
            "limit=10&offset=0",
            headers,
            b'{"x":1}',
            _secret_for,
            now=SIGNED_AT + timedelta(seconds=61),
            max_skew_seconds=60,
        )
    assert info.value.reason == "clock_skew"


def test_unknown_ak_message_mirrors_api_gateway() -> None:
    error = _failure(headers=_received(ak="UNKNOWNACCESSKEY0001"))
    assert error.message == "ak UNKNOWNACCESSKEY0001 not exist"


# -- X-Sdk-Content-Sha256 ---------------------------------------------------------------------------
def test_unsigned_payload_declared_by_the_client_is_accepted() -> None:
    headers = _received(extra={"X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"})
    assert "x-sdk-content-sha256" in parse_authorization(headers["Authorization"]).signed_headers
    assert _verify(headers) == AK
    assert _verify(headers, body=b"any other body") == AK  # that is what UNSIGNED-PAYLOAD means


def test_declared_payload_hash_must_be_the_bodys() -> None:
    body = b'{"x":1}'
    honest = _received(extra={"X-Sdk-Content-Sha256": hashlib.sha256(body).hexdigest()})
    assert _verify(honest) == AK
    assert _failure(headers=honest, body=b'{"x":2}').reason == "signature_mismatch"


def test_unsigned_content_hash_header_cannot_relax_the_body_check() -> None:
    headers = {**_received(), "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"}
    assert _verify(headers) == AK  # ignored: not among SignedHeaders
    assert _failure(headers=headers, body=b'{"x":2}').reason == "signature_mismatch"


def test_empty_body_ignores_a_declared_content_hash() -> None:
    """Official quirk: with no body the empty-string hash is signed even if X-Sdk-Content-Sha256 is set."""
    url = "https://h.example.com/x"
    headers = {"X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD", "X-Sdk-Date": VECTOR_DATE}
    signed = sign_request("GET", url, headers, b"", AK, SK)
    view = {**headers, "Host": "h.example.com"}
    names = ["host", "x-sdk-content-sha256", "x-sdk-date"]
    expected = canonical_request("GET", "/x", [], view, names, hashlib.sha256(b"").hexdigest())
    assert parse_authorization(signed["Authorization"]) == ParsedAuthorization(
        AK, tuple(names), compute_signature(string_to_sign(expected, VECTOR_DATE), SK)
    )


def test_a_stale_authorization_passed_in_is_replaced_not_signed() -> None:
    fresh = sign_request("GET", URL, JSON, b"", AK, SK, sdk_date=format_sdk_date(SIGNED_AT))
    resigned = sign_request(
        "GET", URL, {**JSON, "authorization": "old"}, b"", AK, SK, sdk_date=format_sdk_date(SIGNED_AT)
    )
    assert resigned == fresh
