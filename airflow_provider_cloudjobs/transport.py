"""HTTP answers as data: reading bodies within bounds, classifying statuses, spacing out retries.

Pure code with no I/O, shared by the sync (requests) and async (aiohttp) drivers of the hook, so both
read bodies, error pages, ``X-Request-Id`` and ``Retry-After`` the same way, hold the same limits and
agree on what is worth retrying. Every function here is linear in its input: answers come from a
network we do not trust, and one slow parse stalls every wait of a triggerer.
"""

from __future__ import annotations

import json
import math
import random
import zlib
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import pendulum

from airflow_provider_cloudjobs.exceptions import (
    CloudJobNotFoundError,
    CloudJobsAPIError,
    CloudJobsAuthError,
)

BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
RETRY_AFTER_CAP = 600.0
DEFAULT_MAX_RESPONSE_BYTES = 8 << 20
#: An error page is read for its code and message up to this many bytes; the rest cannot matter.
ERROR_SCAN_BYTES = 64 << 10
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_MAX_MESSAGE = 300


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): capped exponential backoff with jitter.

    A server's ``Retry-After`` raises the delay (never past :data:`RETRY_AFTER_CAP`) and never lowers
    it: ``Retry-After: 0`` or a date in the past cannot turn backoff into a tight loop. Base and cap are
    read at call time so tests can shrink them.
    """
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** min(max(0, attempt - 1), 32)))
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None and retry_after > 0:
        floor = min(RETRY_AFTER_CAP, retry_after)
        delay = max(delay, floor + random.uniform(0, min(1.0, 0.1 * floor)))
    return delay


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); a past or negative one is 0."""
    if not value:
        return None
    value = value.strip()[:64]
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - pendulum.now("UTC").timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return min(RETRY_AFTER_CAP, max(0.0, seconds))


def clip(text: str, limit: int = _MAX_MESSAGE) -> str:
    """One line of at most ``limit`` characters, for messages that quote what the cloud or a user sent."""
    text = " ".join(text[: limit * 4].split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _strip_tags(text: str) -> str:
    """Text outside ``<...>``, in one pass (a regex backtracks on thousands of unclosed ``<``)."""
    parts, pos = [], 0
    while True:
        start = text.find("<", pos)
        if start < 0:
            parts.append(text[pos:])
            break
        parts.append(text[pos:start])
        end = text.find(">", start)
        if end < 0:
            break
        pos = end + 1
    return " ".join(parts)


def _html_message(text: str) -> str:
    lower = text.lower()
    start = lower.find("<title")
    if start >= 0:
        opened = lower.find(">", start)
        closed = lower.find("</title", opened) if opened >= 0 else -1
        if closed >= 0:
            return _strip_tags(text[opened + 1 : closed])
    return _strip_tags(text)


def parse_error_body(body: bytes | str) -> tuple[str | None, str | None]:
    """The cloud's error code and message from any of its error shapes (first 64 KiB only).

    Seen shapes: ``{"error_code", "error_msg"}`` (API Gateway, most services), ``{"code", "message"}``,
    ``{"error": {"code", "message"}}`` (ECS, IAM), ``{"errorCode", "errorMessage"}``, Kubernetes-style
    ``{"kind": "Status", "message", "reason"}`` (CCE), and HTML pages from load balancers.
    """
    text = (
        body[:ERROR_SCAN_BYTES].decode("utf-8", "replace")
        if isinstance(body, bytes)
        else body[:ERROR_SCAN_BYTES]
    )
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None, (clip(_html_message(text)) or None)
    return _find_code_and_message(data)


def _find_code_and_message(data: Any, depth: int = 0) -> tuple[str | None, str | None]:
    if not isinstance(data, Mapping) or depth > 3:
        return None, None
    code = next((data[k] for k in ("error_code", "errorCode", "code") if data.get(k) not in (None, "")), None)
    message = next(
        (
            data[k]
            for k in ("error_msg", "errorMessage", "message", "error_description", "reason")
            if isinstance(data.get(k), str) and data.get(k)
        ),
        None,
    )
    if isinstance(data.get("error"), Mapping) and (code is None or message is None):
        inner_code, inner_message = _find_code_and_message(data["error"], depth + 1)
        code = code if code is not None else inner_code
        message = message or inner_message
    if isinstance(data.get("error"), str) and not message:
        message = data["error"]
    code_text = clip(str(code), 80) if code is not None and not isinstance(code, (dict, list)) else None
    return code_text, (clip(message) if message else None)


def _request_id(headers: Mapping[str, str]) -> str | None:
    value = headers.get("X-Request-Id") or headers.get("x-request-id")
    return clip(value, 80) if value else None


def api_error(status: int, headers: Mapping[str, str], body: bytes, what: str) -> CloudJobsAPIError:
    """The error for a 4xx/5xx answer; ``what`` says which call it was (no credentials in it)."""
    code, message = parse_error_body(body)
    request_id = _request_id(headers)
    detail = f"{what} answered HTTP {status}"
    if code:
        detail += f", error code {code}"
    if message:
        detail += f": {message}"
    if request_id:
        detail += f" (X-Request-Id {request_id})"
    kwargs: dict[str, Any] = {
        "status": status,
        "error_code": code,
        "error_msg": message,
        "request_id": request_id,
    }
    if status == 404:
        return CloudJobNotFoundError(detail, **kwargs)
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(headers.get("Retry-After") or headers.get("retry-after"))
        return CloudJobsAPIError(detail, retryable=True, retry_after=retry_after, **kwargs)
    if status == 401:
        return CloudJobsAuthError(detail, **kwargs)
    return CloudJobsAPIError(detail, **kwargs)


def redirect_error(status: int, headers: Mapping[str, str], what: str) -> CloudJobsAPIError:
    """A 3xx is never followed: the request carries a token, a signature or a password."""
    location = headers.get("Location") or headers.get("location") or ""
    try:
        parts = urlsplit(location)
        target = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    except ValueError:
        target = ""
    return CloudJobsAPIError(
        f"{what} answered HTTP {status}, a redirect to {clip(target or 'an unnamed place', 120)} that was "
        "not followed: credentials are sent only to the endpoints the connection names (check its "
        "'endpoints' and 'iam_endpoint')",
        status=status,
        request_id=_request_id(headers),
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(
    status: int, headers: Mapping[str, str], body: bytes, what: str, *, want_object: bool = True
) -> Any:
    """The JSON of a 2xx answer, strictly (no NaN or Infinity).

    A body that is not JSON (a proxy's page, a cut, nesting too deep to parse) is a retryable error, and
    so, where an object is wanted (every job and IAM call), is JSON that is not an object.
    """
    try:
        data = json.loads(body, parse_constant=_reject_constant) if body else {}
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        problem = f"a body that is not JSON ({len(body)} bytes)"
    else:
        if not want_object or isinstance(data, Mapping):
            return data
        problem = f"JSON that is not an object ({type(data).__name__})"
    request_id = _request_id(headers)
    raise CloudJobsAPIError(
        f"{what} answered HTTP {status} with {problem}"
        + (f" (X-Request-Id {request_id})" if request_id else ""),
        status=status,
        request_id=request_id,
        retryable=True,
    )


def read_answer(status: int, headers: Mapping[str, str], body: bytes, what: str, *, want_object: bool) -> Any:
    """A whole answer: its JSON, or the classified error (redirect, 4xx/5xx, bad body)."""
    if 300 <= status < 400:
        raise redirect_error(status, headers, what)
    if status >= 400 or status < 200:
        raise api_error(status, headers, body, what)
    return decode_json(status, headers, body, what, want_object=want_object)


def connection_error(what: str, exc: BaseException) -> CloudJobsAPIError:
    """A transport failure (refused, reset, DNS, time-out) as a retryable error."""
    kind = type(exc).__name__
    reason = clip(str(exc) or kind)
    return CloudJobsAPIError(f"{what} failed: {kind}: {reason}", retryable=True)


def timeout_error(what: str, seconds: float) -> CloudJobsAPIError:
    return CloudJobsAPIError(
        f"{what} timed out: no whole answer within {seconds:g}s (the connection's 'timeout')", retryable=True
    )


class BodyReader:
    """Collects a body as it arrives, inflating gzip or deflate itself, and stops at ``limit`` bytes.

    Both drivers read raw bytes and feed them here, so a size cap holds however the body is framed or
    compressed: a gzip bomb stops after ``limit`` inflated bytes, not after it has filled the memory.
    """

    __slots__ = ("_inflater", "_limit", "_parts", "_size", "_what")

    def __init__(self, what: str, limit: int, headers: Mapping[str, str]) -> None:
        self._what = what
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        encoding = (headers.get("Content-Encoding") or headers.get("content-encoding") or "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._inflater: Any = zlib.decompressobj(47)  # 32 + 15: gzip or zlib framing, detected
        elif encoding in ("", "identity"):
            self._inflater = None
            length = headers.get("Content-Length") or headers.get("content-length")
            if length and length.strip().isascii() and length.strip().isdigit() and int(length) > limit:
                raise self._too_large()
        else:
            raise CloudJobsAPIError(
                f"{what} answered with Content-Encoding {clip(encoding, 40)!r}, which was not offered",
                retryable=True,
            )

    def _too_large(self) -> CloudJobsAPIError:
        return CloudJobsAPIError(
            f"{self._what} answered a body of more than {self._limit} bytes (the connection's "
            "'max_response_bytes'): not read further"
        )

    def feed(self, chunk: bytes) -> None:
        if self._inflater is not None:
            try:
                chunk = self._inflater.decompress(chunk, self._limit - self._size + 1)
            except zlib.error:
                raise CloudJobsAPIError(
                    f"{self._what} answered a compressed body that does not inflate", retryable=True
                ) from None
            if self._inflater.unconsumed_tail:
                raise self._too_large()
        self._size += len(chunk)
        if self._size > self._limit:
            raise self._too_large()
        self._parts.append(chunk)

    def body(self) -> bytes:
        if self._inflater is not None:
            tail, self._inflater = self._inflater.flush(), None
            self.feed(tail)
        return b"".join(self._parts)
