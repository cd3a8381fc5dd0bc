"""CloudJobsHook: authenticated calls to Huawei Cloud (and compatible clouds), sync and async.

Sync methods (requests) serve workers: ``get_job``, ``request``, ``test_connection``. Async methods
(aiohttp) serve the trigger: they look the connection up with ``aget_connection`` and share one
``aiohttp.ClientSession`` per event loop, so a triggerer holding thousands of waits keeps one pool of
sockets and, through :data:`~airflow_provider_cloudjobs.auth.tokens.TOKEN_CACHE`, one token per connection.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import requests
import tenacity
from aiohttp.helpers import get_env_proxy_for_url
from airflow.sdk import BaseHook
from yarl import URL

from airflow_provider_cloudjobs._compat import AirflowNotFoundException, amask_secret, mask_secret
from airflow_provider_cloudjobs.auth.signer import sign_request
from airflow_provider_cloudjobs.auth.tokens import (
    TOKEN_CACHE,
    IssuedToken,
    issued_token,
    password_auth_body,
    static_token,
)
from airflow_provider_cloudjobs.connection import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    CloudJobsSettings,
    settings_from_connection,
)
from airflow_provider_cloudjobs.exceptions import (
    CloudJobsAPIError,
    CloudJobsAuthError,
    CloudJobsError,
    CloudJobsInputError,
)
from airflow_provider_cloudjobs.job import normalize_job
from airflow_provider_cloudjobs.profiles import ServiceProfile, get_profile
from airflow_provider_cloudjobs.transport import api_error, backoff_delay, connection_error, decode_json
from airflow_provider_cloudjobs.validation import validate_job_id, validate_project_id

log = logging.getLogger(__name__)

DEFAULT_MAX_RETRIES = 4
_JSON = "application/json;charset=utf-8"

_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
    weakref.WeakKeyDictionary()
)


def shared_session() -> aiohttp.ClientSession:
    """The one client session of the running event loop (a triggerer has one loop for all triggers)."""
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        # trust_env=False: with it aiohttp makes two thread-pool hops per request (a netrc lookup that
        # re-reads ~/.netrc, and the proxy lookup). Proxies from the environment are still honoured,
        # resolved once per scheme and host by _env_proxy(); netrc is never wanted (and a netrc entry
        # for the host would even break AK/SK-signed requests, which set their own Authorization).
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200, ttl_dns_cache=300, enable_cleanup_closed=True),
            trust_env=False,
        )
        _sessions[loop] = session
    return session


# Per event loop: conn id -> the connection lookup in flight (see CloudJobsHook.aget_conn).
_conn_lookups: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, asyncio.Future[CloudJobsSettings]]
] = weakref.WeakKeyDictionary()


def _lookup_done(
    in_flight: dict[str, asyncio.Future[CloudJobsSettings]],
    conn_id: str,
    lookup: asyncio.Future[CloudJobsSettings],
) -> None:
    if in_flight.get(conn_id) is lookup:
        del in_flight[conn_id]
    if not lookup.cancelled():
        lookup.exception()  # retrieved here: every waiter re-raises it, even if none is left


async def close_shared_session() -> None:
    """Close the running loop's session (tests and the benchmark call it before their loop ends)."""
    session = _sessions.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()


@functools.lru_cache(maxsize=64)
def _env_proxy(scheme: str, host: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy the environment asks for (HTTP(S)_PROXY, NO_PROXY), as aiohttp's trust_env reads it."""
    try:
        return get_env_proxy_for_url(URL.build(scheme=scheme, host=host))
    except (LookupError, ValueError):
        return None, None


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, CloudJobsAPIError) and exc.retryable


def _wait(state: tenacity.RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    return backoff_delay(state.attempt_number, getattr(exc, "retry_after", None))


def _log_retry(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    sleep = state.next_action.sleep if state.next_action else 0
    log.warning("Retrying in %.1fs (attempt %d): %s", sleep, state.attempt_number, exc)


class CloudJobsHook(BaseHook):
    """Talk to the cloud's job APIs through a ``cloudjobs`` connection.

    :param cloudjobs_conn_id: the connection (password, AK/SK or pre-issued token; see the README).
    :param max_retries: retries of a retryable failure (429, 5xx, connection error, time-out, non-JSON
        body) inside one call, with capped exponential backoff; 0 leaves retrying to the caller (the
        trigger, which retries until its deadline).
    """

    conn_name_attr = "cloudjobs_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Huawei Cloud Jobs"

    def __init__(
        self,
        cloudjobs_conn_id: str = DEFAULT_CONN_ID,
        *,
        max_retries: int = DEFAULT_MAX_RETRIES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cloudjobs_conn_id = cloudjobs_conn_id
        self.max_retries = max_retries
        self._settings: CloudJobsSettings | None = None
        self._session: requests.Session | None = None

    # ------------------------------------------------------------------ connection
    def get_conn(self) -> CloudJobsSettings:
        """The parsed connection (sync lookup; workers only)."""
        if self._settings is None:
            try:
                conn = self.get_connection(self.cloudjobs_conn_id)
            except AirflowNotFoundException:
                raise _missing_connection(self.cloudjobs_conn_id) from None
            settings = settings_from_connection(conn)
            if settings.secret:
                mask_secret(settings.secret)
            self._settings = settings
        return self._settings

    async def aget_conn(self) -> CloudJobsSettings:
        """The parsed connection, looked up without blocking the event loop.

        Waits that start together on one connection (a triggerer picking up thousands of deferred tasks)
        share the lookup in flight instead of each walking the secrets backends (a thread hop each, and
        in a triggerer a round trip to the API server); a lookup that starts later is a fresh one.
        """
        if self._settings is None:
            in_flight = _conn_lookups.setdefault(asyncio.get_running_loop(), {})
            lookup = in_flight.get(self.cloudjobs_conn_id)
            if lookup is None:
                lookup = asyncio.ensure_future(self._alookup_conn())
                in_flight[self.cloudjobs_conn_id] = lookup
                lookup.add_done_callback(functools.partial(_lookup_done, in_flight, self.cloudjobs_conn_id))
            # shield: a cancelled wait must not cancel the lookup the other waits are sharing
            self._settings = await asyncio.shield(lookup)
        return self._settings

    async def _alookup_conn(self) -> CloudJobsSettings:
        try:
            conn = await self.aget_connection(self.cloudjobs_conn_id)
        except AirflowNotFoundException:
            raise _missing_connection(self.cloudjobs_conn_id) from None
        settings = settings_from_connection(conn)
        if settings.secret:
            await amask_secret(settings.secret)
        return settings

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form layout for Airflow < 3.2 (3.2+ reads ``conn-fields`` from the provider info instead)."""
        from airflow_provider_cloudjobs.provider_info import UI_FIELD_BEHAVIOUR

        return {
            "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
            "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
        }

    # ------------------------------------------------------------------ helpers shared by sync and async
    def profile(self, service: str, settings: CloudJobsSettings | None = None) -> ServiceProfile:
        return get_profile(service, (settings or self._settings or _EMPTY).services)

    @staticmethod
    def job_url(settings: CloudJobsSettings, profile: ServiceProfile, job_id: str, project_id: str) -> str:
        path = profile.path.format(project_id=quote(project_id, safe=""), job_id=quote(job_id, safe=""))
        return settings.base_url(profile) + path

    @staticmethod
    def _auth_headers(
        settings: CloudJobsSettings, token: IssuedToken | None, method: str, url: str, body: bytes
    ) -> dict[str, str]:
        headers = {"Content-Type": _JSON, "Accept": "application/json"}
        if settings.auth_type == "aksk":
            return sign_request(method, url, headers, body, settings.login, settings.secret)
        assert token is not None
        headers["X-Auth-Token"] = token.value
        return headers

    @staticmethod
    def _describe(method: str, url: str) -> str:
        return f"{method} {url}"

    @staticmethod
    def _encode(body: Any) -> bytes:
        return b"" if body is None else json.dumps(body, separators=(",", ":")).encode()

    # ------------------------------------------------------------------ sync
    def _http(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def _raw(
        self, settings: CloudJobsSettings, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        try:
            response = self._http().request(
                method,
                url,
                data=body or None,
                headers=dict(headers),
                timeout=settings.timeout,
                verify=settings.verify,
            )
        except requests.RequestException as exc:
            raise connection_error(self._describe(method, url), exc) from None
        return response.status_code, response.headers, response.content

    def _fetch_token(self, settings: CloudJobsSettings) -> IssuedToken:
        if settings.auth_type == "token":
            return static_token(settings)
        url = f"{settings.iam_url}/v3/auth/tokens"
        body = self._encode(password_auth_body(settings))
        status, headers, content = self._raw(settings, "POST", url, {"Content-Type": _JSON}, body)
        token = self._token_from_answer(settings, url, status, headers, content)
        mask_secret(token.value)
        return token

    @staticmethod
    def _token_from_answer(
        settings: CloudJobsSettings, url: str, status: int, headers: Mapping[str, str], content: bytes
    ) -> IssuedToken:
        what = f"IAM ({url}) for user {settings.login!r} of domain {settings.domain_name!r}"
        if status >= 400:
            error = api_error(status, headers, content, what)
            if status in (400, 401, 403):
                raise CloudJobsAuthError(
                    str(error),
                    status=status,
                    error_code=error.error_code,
                    error_msg=error.error_msg,
                    request_id=error.request_id,
                )
            raise error
        token = issued_token(headers.get("X-Subject-Token"), decode_json(status, headers, content, what))
        if token is None:
            raise CloudJobsAPIError(
                f"{what} answered HTTP {status} without an X-Subject-Token header",
                status=status,
                retryable=True,
            )
        return token

    def _token(self, settings: CloudJobsSettings) -> IssuedToken | None:
        if settings.auth_type == "aksk":
            return None
        return TOKEN_CACHE.get(settings.cache_key, lambda: self._fetch_token(settings))

    def _project_id(self, settings: CloudJobsSettings, override: str | None) -> str:
        project_id = validate_project_id(override) or settings.project_id
        if project_id:
            return project_id
        if settings.auth_type == "password":
            token = self._token(settings)
            if token and token.project_id:
                return token.project_id
        return self._lookup_project_id(settings)

    def _lookup_project_id(self, settings: CloudJobsSettings) -> str:
        url = f"{settings.iam_url}/v3/projects?name={quote(settings.region)}"
        return _project_from_listing(settings, self._call(settings, "GET", url))

    def _call_once(
        self, settings: CloudJobsSettings, method: str, url: str, body: bytes, want_object: bool = True
    ) -> Any:
        what = self._describe(method, url)
        for attempt in (1, 2):
            token = self._token(settings)
            status, headers, content = self._raw(
                settings, method, url, self._auth_headers(settings, token, method, url, body), body
            )
            if status == 401 and token is not None and attempt == 1:
                log.info("%s answered 401: refreshing the token once", what)
                TOKEN_CACHE.invalidate(settings.cache_key, token)
                continue
            if status >= 400:
                raise api_error(status, headers, content, what)
            return decode_json(status, headers, content, what, want_object=want_object)
        raise AssertionError("unreachable")

    def _retry_policy(self) -> dict[str, Any]:
        """Retryable failures (429, 5xx, connection errors, non-JSON bodies), with capped jittered backoff."""
        return {
            "retry": tenacity.retry_if_exception(_retryable),
            "stop": tenacity.stop_after_attempt(self.max_retries + 1),
            "wait": _wait,
            "before_sleep": _log_retry,
            "reraise": True,
        }

    def _call(
        self, settings: CloudJobsSettings, method: str, url: str, body: Any = None, want_object: bool = True
    ) -> Any:
        encoded = self._encode(body)
        retrying = tenacity.Retrying(**self._retry_policy())
        return retrying(self._call_once, settings, method, url, encoded, want_object)

    def request(
        self, method: str, service: str, path: str, *, json: Any = None, project_id: str | None = None
    ) -> Any:
        """Call any API of a service: ``path`` may hold ``{project_id}``; returns the decoded JSON.

        Example: ``hook.request("POST", "cce", "/api/v3/projects/{project_id}/clusters", json=spec)``.
        """
        settings = self.get_conn()
        profile = self.profile(service, settings)
        if not path.startswith("/"):
            raise CloudJobsInputError(f"path {path!r} must start with '/'")
        pid = self._project_id(settings, project_id) if "{project_id}" in path else ""
        url = settings.base_url(profile) + path.replace("{project_id}", quote(pid, safe=""))
        return self._call(settings, method.upper(), url, json, want_object=False)

    def get_job(self, job_id: str, service: str = "cce", project_id: str | None = None) -> dict[str, Any]:
        """The job as it is now, normalised (see :mod:`airflow_provider_cloudjobs.job`)."""
        job_id = validate_job_id(job_id)
        settings = self.get_conn()
        profile = self.profile(service, settings)
        url = self.job_url(settings, profile, job_id, self._project_id(settings, project_id))
        return normalize_job(self._call(settings, "GET", url), profile, job_id=job_id)

    def test_connection(self) -> tuple[bool, str]:
        """What the UI's "Test" button runs: log in (or make a harmless signed call) and say how it went."""
        try:
            settings = self.get_conn()
            if settings.auth_type == "password":
                token = self._fetch_token(settings)
                TOKEN_CACHE.invalidate(settings.cache_key)
                return True, (
                    f"IAM issued a token for user {settings.login!r} in domain {settings.domain_name!r}, "
                    f"project {token.project_id or settings.project_id or settings.region}"
                )
            query = f"?name={quote(settings.region)}" if settings.region else ""
            projects = self._call(settings, "GET", f"{settings.iam_url}/v3/projects{query}")
            count = len(projects.get("projects", [])) if isinstance(projects, Mapping) else 0
            how = "AK/SK signature" if settings.auth_type == "aksk" else "Token"
            return True, f"{how} accepted by IAM ({count} project(s) visible)"
        except Exception as exc:  # the UI shows the message; it never holds a secret
            return False, str(exc)

    # ------------------------------------------------------------------ async
    async def _araw(
        self, settings: CloudJobsSettings, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        ssl: Any = (
            None
            if settings.verify is True
            else (False if settings.verify is False else _ssl_context(settings.verify))
        )
        target = URL(url, encoded=True)
        proxy, proxy_auth = _env_proxy(target.scheme, target.host or "")
        try:
            async with shared_session().request(
                method,
                target,
                data=body or None,
                headers=dict(headers),
                ssl=ssl,
                timeout=aiohttp.ClientTimeout(total=settings.timeout),
                proxy=proxy,
                proxy_auth=proxy_auth,
            ) as response:
                return response.status, response.headers, await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise connection_error(self._describe(method, url), exc) from None

    async def _afetch_token(self, settings: CloudJobsSettings) -> IssuedToken:
        if settings.auth_type == "token":
            return static_token(settings)
        url = f"{settings.iam_url}/v3/auth/tokens"
        body = self._encode(password_auth_body(settings))
        status, headers, content = await self._araw(settings, "POST", url, {"Content-Type": _JSON}, body)
        token = self._token_from_answer(settings, url, status, headers, content)
        await amask_secret(token.value)
        return token

    async def _atoken(self, settings: CloudJobsSettings) -> IssuedToken | None:
        if settings.auth_type == "aksk":
            return None
        return await TOKEN_CACHE.aget(settings.cache_key, lambda: self._afetch_token(settings))

    async def _aproject_id(self, settings: CloudJobsSettings, override: str | None) -> str:
        project_id = validate_project_id(override) or settings.project_id
        if project_id:
            return project_id
        if settings.auth_type == "password":
            token = await self._atoken(settings)
            if token and token.project_id:
                return token.project_id
        url = f"{settings.iam_url}/v3/projects?name={quote(settings.region)}"
        return _project_from_listing(settings, await self._acall(settings, "GET", url))

    async def _acall_once(
        self, settings: CloudJobsSettings, method: str, url: str, body: bytes, want_object: bool = True
    ) -> Any:
        what = self._describe(method, url)
        for attempt in (1, 2):
            token = await self._atoken(settings)
            status, headers, content = await self._araw(
                settings, method, url, self._auth_headers(settings, token, method, url, body), body
            )
            if status == 401 and token is not None and attempt == 1:
                log.info("%s answered 401: refreshing the token once", what)
                TOKEN_CACHE.invalidate(settings.cache_key, token)
                continue
            if status >= 400:
                raise api_error(status, headers, content, what)
            return decode_json(status, headers, content, what, want_object=want_object)
        raise AssertionError("unreachable")

    async def _acall(
        self, settings: CloudJobsSettings, method: str, url: str, body: Any = None, want_object: bool = True
    ) -> Any:
        encoded = self._encode(body)
        if self.max_retries <= 0:  # the trigger's case (it retries itself): no per-poll AsyncRetrying
            return await self._acall_once(settings, method, url, encoded, want_object)
        retrying = tenacity.AsyncRetrying(**self._retry_policy())
        return await retrying(self._acall_once, settings, method, url, encoded, want_object)

    async def arequest(
        self, method: str, service: str, path: str, *, json: Any = None, project_id: str | None = None
    ) -> Any:
        """Async :meth:`request`."""
        settings = await self.aget_conn()
        profile = self.profile(service, settings)
        if not path.startswith("/"):
            raise CloudJobsInputError(f"path {path!r} must start with '/'")
        pid = await self._aproject_id(settings, project_id) if "{project_id}" in path else ""
        url = settings.base_url(profile) + path.replace("{project_id}", quote(pid, safe=""))
        return await self._acall(settings, method.upper(), url, json, want_object=False)

    async def aget_job(
        self,
        job_id: str,
        service: str = "cce",
        project_id: str | None = None,
        profile: ServiceProfile | None = None,
    ) -> dict[str, Any]:
        """Async :meth:`get_job`; ``profile`` lets a trigger bring a service the triggerer never registered."""
        job_id = validate_job_id(job_id)
        settings = await self.aget_conn()
        profile = profile or self.profile(service, settings)
        url = self.job_url(settings, profile, job_id, await self._aproject_id(settings, project_id))
        return normalize_job(await self._acall(settings, "GET", url), profile, job_id=job_id)


_EMPTY = CloudJobsSettings(conn_id="", auth_type="token")


def _missing_connection(conn_id: str) -> CloudJobsError:
    """Not an input error: a connection added a moment later (or a secrets backend back up) cures it."""
    return CloudJobsError(
        f"Connection {conn_id!r} is not defined: add a 'cloudjobs' connection with that id (Admin > "
        f"Connections, `airflow connections add`, or AIRFLOW_CONN_{conn_id.upper()})"
    )


def _project_from_listing(settings: CloudJobsSettings, listing: Any) -> str:
    projects = listing.get("projects", []) if isinstance(listing, Mapping) else []
    for project in projects:
        if isinstance(project, Mapping) and project.get("name") == settings.region and project.get("id"):
            return str(project["id"])
    raise CloudJobsInputError(
        f"Connection {settings.conn_id!r}: IAM knows no project named {settings.region!r}; "
        "set extra 'project_id'"
    )


@functools.lru_cache(maxsize=16)
def _ssl_context(cafile: str) -> ssl.SSLContext:
    """One SSL context per CA bundle: building one reads the bundle from disk."""
    return ssl.create_default_context(cafile=cafile)
