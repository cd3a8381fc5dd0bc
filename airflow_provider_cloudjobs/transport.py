"""HTTP answers turned into data or into classified errors, and the backoff between retries.

Shared by the sync (requests) and async (aiohttp) paths so both read the cloud's error bodies, the
``X-Request-Id`` and ``Retry-After`` the same way and agree on what is worth retrying.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import pendulum

from airflow_provider_cloudjobs.exceptions import (
    CloudJobNotFoundError,
    CloudJobsAPIError,
    CloudJobsAuthError,
)

BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
RETRY_AFTER_CAP = 600.0
_MAX_MESSAGE = 300
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): capped exponential with full jitter.

    A server's ``Retry-After`` is a floor (with a little jitter on top so throttled waits do not return
    in lockstep), never shortened. Base and cap are read at call time so tests can shrink them.
    """
    if retry_after is not None:
        return min(RETRY_AFTER_CAP, retry_after) + random.uniform(0, min(1.0, 0.1 * max(retry_after, 1.0)))
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** max(0, attempt - 1)))
    return random.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - pendulum.now("UTC").timestamp())


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def parse_error_body(body: bytes | str) -> tuple[str | None, str | None]:
    """The cloud's error code and message from any of its error shapes.

    Seen shapes: ``{"error_code", "error_msg"}`` (API Gateway, most services), ``{"code", "message"}``,
    ``{"error": {"code", "message"}}`` (ECS, IAM), ``{"errorCode", "errorMessage"}``, Kubernetes-style
    ``{"kind": "Status", "message", "reason"}`` (CCE), and HTML pages from load balancers.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        title = _TITLE.search(text)
        plain = title.group(1) if title else _TAGS.sub(" ", text)
        return None, (_clip(plain) or None)
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
    return (str(code) if code is not None else None), (_clip(message) if message else None)


def api_error(status: int, headers: Mapping[str, str], body: bytes, what: str) -> CloudJobsAPIError:
    """The error for a non-2xx answer; ``what`` says which call it was (no credentials in it)."""
    code, message = parse_error_body(body)
    request_id = headers.get("X-Request-Id") or headers.get("x-request-id")
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


def decode_json(
    status: int, headers: Mapping[str, str], body: bytes, what: str, *, want_object: bool = True
) -> Any:
    """The JSON of a 2xx answer. A body that is not JSON (a proxy's page, a cut) is a retryable error,
    and so, where an object is wanted (every job and IAM call), is JSON that is not an object."""
    try:
        data = json.loads(body) if body else {}
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        data, problem = None, f"a body that is not JSON ({len(body)} bytes)"
    else:
        if not want_object or isinstance(data, Mapping):
            return data
        problem = f"JSON that is not an object ({type(data).__name__})"
    request_id = headers.get("X-Request-Id") or headers.get("x-request-id")
    raise CloudJobsAPIError(
        f"{what} answered HTTP {status} with {problem}"
        + (f" (X-Request-Id {request_id})" if request_id else ""),
        status=status,
        request_id=request_id,
        retryable=True,
    )


def connection_error(what: str, exc: BaseException) -> CloudJobsAPIError:
    """A transport failure (refused, reset, DNS, time-out) as a retryable error."""
    kind = type(exc).__name__
    reason = str(exc) or kind
    return CloudJobsAPIError(f"{what} failed: {kind}: {_clip(reason)}", retryable=True)
