"""The request path, written once: connection, token, signature, send, one refresh on 401, classify, retry.

Sans-I/O, in the manner of httpx's ``Auth.auth_flow``: a flow is a generator that yields what it needs
done and receives the result (or has the failure thrown into it):

- :class:`Send` an :class:`HttpRequest`, get an :class:`HttpResponse` (body already read within the cap);
- :class:`Sleep` some seconds (backoff between retries);
- :class:`Token` for a credential set (from the process-wide cache, logging in through :func:`login`);
- :class:`Connection` settings (looked up once, or anew after IAM refused the ones in hand).

The hook drives flows with requests on workers and with aiohttp in the triggerer. The drivers do only
I/O, so what is sent where, what is retried and what is remembered is decided here, once.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow_provider_cloudjobs.auth.signer import sign_request
from airflow_provider_cloudjobs.auth.tokens import IssuedToken, issued_token, password_auth_body
from airflow_provider_cloudjobs.connection import CloudJobsSettings
from airflow_provider_cloudjobs.exceptions import CloudJobsAPIError, CloudJobsAuthError
from airflow_provider_cloudjobs.transport import (
    IDEMPOTENT_METHODS,
    api_error,
    backoff_delay,
    decode_json,
    read_answer,
    redirect_error,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
JSON_TYPE = "application/json;charset=utf-8"
_UNSAFE_HEADER = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request as the flow wants it sent; ``what`` names it in errors (method and URL, no secret)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    what: str
    timeout: float
    verify: bool | str
    max_bytes: int


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Send:
    request: HttpRequest


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Token:
    """A token for ``settings`` scoped to its project, or (``scope="domain"``) to its account."""

    settings: CloudJobsSettings
    rejected: IssuedToken | None = None
    scope: str = "project"


@dataclass(frozen=True, slots=True)
class Connection:
    conn_id: str
    stale: CloudJobsSettings | None = None


Step = Send | Sleep | Token | Connection
Flow = Generator[Step, Any, T]


class FlowRunner:
    """Advances a flow for a driver: hands it the last step's result or error, returns its next step."""

    __slots__ = ("_error", "_flow", "_value", "result")

    def __init__(self, flow: Flow[Any]) -> None:
        self._flow = flow
        self._value: Any = None
        self._error: BaseException | None = None
        self.result: Any = None

    def next_step(self) -> Step | None:
        """The next step to perform, or None when the flow has returned (its value is in ``result``)."""
        try:
            if self._error is not None:
                error, self._error = self._error, None
                step = self._flow.throw(error)
            else:
                step = self._flow.send(self._value)
        except StopIteration as done:
            self.result = done.value
            return None
        self._value = None
        return step

    def answer(self, value: Any) -> None:
        self._value = value

    def fail(self, error: BaseException) -> None:
        self._error = error


def encode(body: Any) -> bytes:
    return b"" if body is None else json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def http_request(
    settings: CloudJobsSettings, method: str, url: str, headers: Mapping[str, str], body: bytes
) -> HttpRequest:
    for name, value in headers.items():
        if _UNSAFE_HEADER.search(value):  # never hand a client a value it would quote back in its error
            raise CloudJobsAPIError(f"{method} {url}: header {name} holds a control character; not sent")
    return HttpRequest(
        method=method,
        url=url,
        headers=dict(headers),
        body=body,
        what=f"{method} {url}",
        timeout=settings.timeout,
        verify=settings.verify,
        max_bytes=settings.max_response_bytes,
    )


def login(settings: CloudJobsSettings, scope: str = "project") -> Flow[IssuedToken]:
    """Ask IAM for a token with the connection's password, scoped to its project (or, ``scope="domain"``,
    to its account). Never retried here: the token cache remembers a failure and spaces out the next
    attempt for every caller."""
    url = f"{settings.iam_url}/v3/auth/tokens"
    headers = {"Content-Type": JSON_TYPE, "Accept": "application/json", "Accept-Encoding": "gzip, deflate"}
    request = http_request(settings, "POST", url, headers, encode(password_auth_body(settings, scope)))
    what = f"IAM ({url}) for user {settings.login!r} of domain {settings.domain_name!r}"
    if scope == "domain":
        what += " (account-scoped token)"
    response: HttpResponse = yield Send(request)
    status, answer_headers = response.status, response.headers
    if 300 <= status < 400:
        raise redirect_error(status, answer_headers, what)
    if status >= 400:
        error = api_error(status, answer_headers, response.body, what)
        if status in (400, 401, 403):
            raise CloudJobsAuthError(
                str(error),
                status=status,
                error_code=error.error_code,
                error_msg=error.error_msg,
                request_id=error.request_id,
            )
        raise error
    body = decode_json(status, answer_headers, response.body, what)
    token = issued_token(answer_headers.get("X-Subject-Token"), body)
    if token is None:
        raise CloudJobsAPIError(
            f"{what} answered HTTP {status} without an X-Subject-Token header", status=status, retryable=True
        )
    return token


def _headers(
    settings: CloudJobsSettings,
    token: IssuedToken | None,
    method: str,
    url: str,
    body: bytes,
    scope: str = "project",
) -> dict[str, str]:
    headers = {"Content-Type": JSON_TYPE, "Accept": "application/json", "Accept-Encoding": "gzip, deflate"}
    if settings.auth_type == "aksk":
        if scope == "domain":  # as the SDK's GlobalCredentials: the account id, signed with the rest
            headers["X-Domain-Id"] = settings.domain_id
        return sign_request(method, url, headers, body, settings.login, settings.secret)
    assert token is not None
    headers["X-Auth-Token"] = token.value
    return headers


def _not_retried(exc: CloudJobsAPIError, method: str) -> CloudJobsAPIError:
    return CloudJobsAPIError(
        f"{exc}; not retried: a {method} is sent once, as the cloud may already have accepted it",
        status=exc.status,
        error_code=exc.error_code,
        error_msg=exc.error_msg,
        request_id=exc.request_id,
    )


def _attempt(
    settings: CloudJobsSettings, method: str, url: str, body: bytes, want_object: bool, scope: str
) -> Flow[Any]:
    """One attempt: token, signature, send, classify. A 401 refreshes the token and sends again, once
    (the cloud refused the request, so nothing was done). A failure after a POST or PATCH left is final."""
    rejected: IssuedToken | None = None
    for refreshed in (False, True):
        token = None if settings.auth_type == "aksk" else (yield Token(settings, rejected, scope))
        headers = _headers(settings, token, method, url, body, scope)
        request = http_request(settings, method, url, headers, body)
        try:
            response: HttpResponse = yield Send(request)
            if response.status == 401 and token is not None and not refreshed:
                log.info("%s answered 401: refreshing the token once", request.what)
                rejected = token
                continue
            return read_answer(
                response.status, response.headers, response.body, request.what, want_object=want_object
            )
        except CloudJobsAPIError as exc:
            if exc.retryable and method not in IDEMPOTENT_METHODS:
                raise _not_retried(exc, method) from None
            raise
    raise AssertionError("unreachable: the second pass returns or raises")


def call(
    settings: CloudJobsSettings,
    method: str,
    url: str,
    body: Any = None,
    *,
    retries: int,
    want_object: bool = True,
    scope: str = "project",
) -> Flow[Any]:
    """One API call: the decoded JSON, or the classified error. ``scope="domain"``: a global service's call,
    with an account-scoped token or, for AK/SK, ``X-Domain-Id`` signed in.

    Retryable failures (429, 5xx, transport errors, bad bodies, an IAM outage) are retried up to
    ``retries`` times with backoff; a POST or PATCH that may have reached the cloud never is (see
    :func:`_attempt`), so it is not sent again behind the caller's back.
    """
    method = method.upper()
    encoded = encode(body)
    attempt = 0
    while True:
        attempt += 1
        try:
            return (yield from _attempt(settings, method, url, encoded, want_object, scope))
        except CloudJobsAPIError as exc:
            if not exc.retryable or isinstance(exc, CloudJobsAuthError) or attempt > retries:
                raise
            delay = backoff_delay(attempt, exc.retry_after)
            log.warning("%s; retrying in %.1fs (retry %d of %d)", exc, delay, attempt, retries)
            yield Sleep(delay)


def with_connection(conn_id: str, body: Callable[[CloudJobsSettings], Flow[T]]) -> Flow[T]:
    """Run ``body`` with the connection; if IAM refuses its credentials, re-read the connection and, when
    they changed (a rotated password), run it once more with the new ones."""
    settings: CloudJobsSettings = yield Connection(conn_id)
    try:
        return (yield from body(settings))
    except CloudJobsAuthError:
        fresh: CloudJobsSettings = yield Connection(conn_id, stale=settings)
        if fresh.cache_key == settings.cache_key:
            raise
        log.info("Connection %r changed since it was read: trying its new credentials", conn_id)
        return (yield from body(fresh))
