"""Reading answers from an untrusted network: bounded, linear, strict, and only the documented errors."""

from __future__ import annotations

import gzip
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_cloudjobs import transport
from airflow_provider_cloudjobs.exceptions import CloudJobsAPIError
from airflow_provider_cloudjobs.transport import (
    BodyReader,
    backoff_delay,
    parse_error_body,
    parse_retry_after,
    read_answer,
)

WHAT = "GET https://api.example/v1/p1/jobs/j1"


def read(raw: bytes, limit: int = 1 << 20, chunk: int = 4096, **headers: str) -> bytes:
    reader = BodyReader(WHAT, limit, headers)
    for start in range(0, len(raw), chunk):
        reader.feed(raw[start : start + chunk])
    return reader.body()


def test_gzip_and_deflate_are_inflated():
    body = json.dumps({"status": "SUCCESS"}).encode()
    assert read(gzip.compress(body), **{"Content-Encoding": "gzip"}) == body
    import zlib

    assert read(zlib.compress(body), **{"Content-Encoding": "deflate"}) == body


def test_a_gzip_bomb_stops_at_the_cap_without_inflating_the_rest():
    bomb = gzip.compress(b"0" * (64 << 20))  # 64 MiB of zeros in ~64 KiB
    reader = BodyReader(WHAT, 1 << 20, {"Content-Encoding": "gzip"})

    def feed_all() -> None:
        for start in range(0, len(bomb), 65536):
            reader.feed(bomb[start : start + 65536])

    with pytest.raises(CloudJobsAPIError, match="max_response_bytes"):
        feed_all()
    assert sum(len(part) for part in reader._parts) <= 1 << 20


def test_a_declared_length_over_the_cap_is_refused_before_reading():
    with pytest.raises(CloudJobsAPIError, match="more than 1024 bytes"):
        BodyReader(WHAT, 1024, {"Content-Length": "999999999"})


def test_an_encoding_never_offered_is_refused():
    with pytest.raises(CloudJobsAPIError, match="Content-Encoding 'br'"):
        BodyReader(WHAT, 1024, {"Content-Encoding": "br"})


@pytest.mark.parametrize(
    "body",
    [b"<title<a " * 20_000, b"<" * 200_000, b"<title>" + b"x" * 200_000, b"{" * 200_000, b"[" * 500_000],
)
def test_error_pages_are_read_within_the_first_64_kib(body):
    code, message = parse_error_body(body)
    assert code is None
    assert message is None or len(message) <= 300


def test_an_error_title_past_64_kib_is_not_looked_for():
    assert parse_error_body(b" " * (70 << 10) + b"<title>late</title>")[1] is None
    assert (
        parse_error_body(b"<html><title>502 Bad Gateway</title><body>x</body></html>")[1] == "502 Bad Gateway"
    )


@pytest.mark.parametrize("text", ["NaN", '{"progress": NaN}', '{"a": Infinity}', '{"a": -Infinity}'])
def test_json_with_nan_or_infinity_is_not_json(text):
    with pytest.raises(CloudJobsAPIError, match="not JSON") as info:
        read_answer(200, {}, text.encode(), WHAT, want_object=True)
    assert info.value.retryable


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0.0), ("-5", 0.0), ("12", 12.0), ("1e9", 600.0), ("nan", None), ("inf", 600.0), ("soon", None)],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value) == expected


def test_a_past_retry_after_date_is_zero():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@given(attempt=st.integers(1, 10_000), retry_after=st.one_of(st.none(), st.floats(allow_nan=False)))
def test_backoff_is_bounded_and_never_below_its_floor(attempt, retry_after):
    delay = backoff_delay(attempt, retry_after)
    ceiling = min(transport.BACKOFF_CAP, transport.BACKOFF_BASE * 2 ** min(attempt - 1, 32))
    assert ceiling / 2 <= delay <= transport.RETRY_AFTER_CAP + 1
    if retry_after is not None and retry_after > 0:
        assert delay >= min(retry_after, transport.RETRY_AFTER_CAP)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)
HEADER = st.dictionaries(
    st.sampled_from(["Content-Encoding", "Content-Length", "Retry-After", "X-Request-Id", "Location"]),
    st.text(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(status=st.integers(100, 599), headers=HEADER, raw=st.binary(max_size=4096), chunk=st.integers(1, 512))
def test_any_bytes_and_headers_give_strict_json_or_a_documented_error(status, headers, raw, chunk):
    try:
        body = read(raw, limit=2048, chunk=chunk, **headers)
        data = read_answer(status, headers, body, WHAT, want_object=False)
    except CloudJobsAPIError as exc:  # the one documented error, and a short one
        assert len(str(exc)) < 1200  # noqa: PT017
        return
    assert len(body) <= 2048
    json.dumps(data, allow_nan=False)  # strict JSON: no NaN or Infinity came through


@settings(max_examples=200, deadline=None)
@given(data=JSON)
def test_any_json_object_in_a_2xx_is_returned_as_is(data):
    raw = json.dumps(data).encode()
    try:
        result = read_answer(200, {}, raw, WHAT, want_object=True)
    except CloudJobsAPIError as exc:
        assert exc.retryable  # noqa: PT017
        assert not isinstance(data, dict)
        return
    assert result == data
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in _leaves(result))


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


@pytest.mark.parametrize("length", ["²", "1e9", "-5", " 12 ", "٣"])
def test_a_content_length_that_is_no_plain_number_is_not_trusted(length):
    assert read(b"{}", **{"Content-Length": length}) == b"{}"
