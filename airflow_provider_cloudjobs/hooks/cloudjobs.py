"""CloudJobsHook: authenticated calls to Huawei Cloud (and compatible clouds), sync and async.

Every call is a flow of :mod:`airflow_provider_cloudjobs.request_flow` (what to send, what to retry,
when to log in) run by one of two drivers that only do I/O: requests for workers (``get_job``,
``request``, ``test_connection``) and aiohttp for the triggerer (``aget_job``, ``arequest``), which
shares one session, one connection lookup and one login per connection among all the waits of its
event loop (:mod:`airflow_provider_cloudjobs.loop_state`) and, through
:data:`~airflow_provider_cloudjobs.auth.tokens.TOKEN_CACHE`, one token per credential set per process.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import time
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import requests
import urllib3
from aiohttp.helpers import get_env_proxy_for_url
from airflow.sdk import BaseHook
from yarl import URL

from airflow_provider_cloudjobs._compat import AirflowNotFoundException, amask_secret, mask_secret
from airflow_provider_cloudjobs.auth.tokens import TOKEN_CACHE, IssuedToken
from airflow_provider_cloudjobs.connection import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    CloudJobsSettings,
    settings_from_connection,
)
from airflow_provider_cloudjobs.exceptions import CloudJobsError, CloudJobsInputError
from airflow_provider_cloudjobs.job import normalize_job
from airflow_provider_cloudjobs.loop_state import close_loop_state, loop_state
from airflow_provider_cloudjobs.profiles import ServiceProfile, get_profile
from airflow_provider_cloudjobs.request_flow import (
    Connection,
    Flow,
    FlowRunner,
    HttpRequest,
    HttpResponse,
    Send,
    Sleep,
    Step,
    Token,
    call,
    login,
    with_connection,
)
from airflow_provider_cloudjobs.transport import BodyReader, connection_error, timeout_error
from airflow_provider_cloudjobs.validation import (
    validate_job_id,
    validate_path_params,
    validate_project_id,
    validate_request_path,
)

T = TypeVar("T")
Profile = ServiceProfile | None
DEFAULT_MAX_RETRIES = 4
_CHUNK = 64 << 10
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})


async def close_shared_session() -> None:
    """Close the running loop's HTTP session (tests and the benchmark call it before their loop ends)."""
    await close_loop_state()


class CloudJobsHook(BaseHook):
    """Talk to the cloud's job APIs through a ``cloudjobs`` connection.

    :param cloudjobs_conn_id: the connection (password, AK/SK or pre-issued token; see the README).
    :param max_retries: retries of a retryable failure (429, 5xx, connection error, time-out, non-JSON
        body) inside one call, with capped exponential backoff; 0 leaves retrying to the caller (the
        wait, which retries until its deadline). A POST or PATCH is never retried.
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

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form layout for Airflow < 3.2 (3.2+ reads ``conn-fields`` from the provider info instead)."""
        from airflow_provider_cloudjobs.provider_info import UI_FIELD_BEHAVIOUR

        return {
            "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
            "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
        }

    # ------------------------------------------------------------------ public API
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
        """The parsed connection, looked up without blocking the event loop, once for all its waits."""
        if self._settings is None:
            self._settings = await loop_state().connection(self.cloudjobs_conn_id, self._alookup_conn)
        return self._settings

    def profile(self, service: str, settings: CloudJobsSettings | None = None) -> ServiceProfile:
        return get_profile(service, (settings or self._settings or _EMPTY).services)

    def get_job(
        self,
        job_id: str,
        service: str = "cce",
        project_id: str | None = None,
        profile: Profile = None,
        path_params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The job as it is now, normalised (see :mod:`airflow_provider_cloudjobs.job`).

        ``path_params``: the further ids the service's job path needs, e.g. ``{"instance_id": "..."}`` for a
        DMS Kafka task (``/v2/{project_id}/instances/{instance_id}/tasks/{job_id}``).
        """
        return self._drive(self._job_flow(job_id, service, project_id, profile, path_params))

    async def aget_job(
        self,
        job_id: str,
        service: str = "cce",
        project_id: str | None = None,
        profile: Profile = None,
        path_params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Async :meth:`get_job`; ``profile`` lets a trigger bring a service the triggerer never registered."""
        return await self._adrive(self._job_flow(job_id, service, project_id, profile, path_params))

    def request(
        self, method: str, service: str, path: str, *, json: Any = None, project_id: str | None = None
    ) -> Any:
        """Call any API of a service: ``path`` may hold ``{project_id}``; returns the decoded JSON.

        Example: ``hook.request("POST", "cce", "/api/v3/projects/{project_id}/clusters", json=spec)``.
        A POST or PATCH is sent once: a failure after it may have reached the cloud is raised, not retried.
        """
        return self._drive(self._request_flow(method, service, path, json, project_id))

    async def arequest(
        self, method: str, service: str, path: str, *, json: Any = None, project_id: str | None = None
    ) -> Any:
        """Async :meth:`request`."""
        return await self._adrive(self._request_flow(method, service, path, json, project_id))

    def test_connection(self) -> tuple[bool, str]:
        """What the UI's "Test" button runs: log in (or make a harmless signed call) and say how it went."""
        try:
            return True, self._drive(with_connection(self.cloudjobs_conn_id, self._test_flow))
        except Exception as exc:  # the UI shows the message; it never holds a secret
            return False, str(exc)

    # ------------------------------------------------------------------ flows (what to do, once)
    def _job_flow(
        self,
        job_id: str,
        service: str,
        project_id: str | None,
        profile: ServiceProfile | None,
        path_params: Mapping[str, str] | None,
    ) -> Flow[dict[str, Any]]:
        job_id = validate_job_id(job_id)
        validate_project_id(project_id)
        params = validate_path_params(path_params)

        def flow(settings: CloudJobsSettings) -> Flow[dict[str, Any]]:
            chosen = profile or self.profile(service, settings)
            chosen.checked_path_params(params)  # before any request, also the one that finds the project
            base = settings.base_url(chosen)
            if chosen.scope == "domain":  # a global service: the account, not a project (none looked up)
                if project_id:  # would be silently ignored: the user meant something else
                    raise CloudJobsInputError(
                        f"project_id {project_id!r} given, but {chosen.label} jobs live under the account "
                        "(extra 'domain_id'), not a project: leave project_id empty"
                    )
                path = chosen.job_path("", job_id, params, domain_id=settings.domain_id_for(chosen))
            else:
                pid = yield from self._project_flow(settings, project_id)
                path = chosen.job_path(pid, job_id, params)
            body = yield from call(settings, "GET", base + path, retries=self.max_retries, scope=chosen.scope)
            return normalize_job(body, chosen, job_id=job_id)

        return with_connection(self.cloudjobs_conn_id, flow)

    def _request_flow(
        self, method: str, service: str, path: str, body: Any, project_id: str | None
    ) -> Flow[Any]:
        validate_request_path(path)
        if str(method).upper() not in _METHODS:
            raise CloudJobsInputError(
                f"method {str(method)[:20]!r} is not one of {', '.join(sorted(_METHODS))}"
            )
        validate_project_id(project_id)

        def flow(settings: CloudJobsSettings) -> Flow[Any]:
            profile = self.profile(service, settings)
            base, filled = settings.base_url(profile), path
            if profile.scope == "domain":  # a global service's call: {domain_id}, the account's credentials
                domain_id = settings.domain_id_for(profile)
                filled = filled.replace("{domain_id}", quote(domain_id, safe=""))
            pid = (yield from self._project_flow(settings, project_id)) if "{project_id}" in path else ""
            url = base + filled.replace("{project_id}", quote(pid, safe=""))
            return (
                yield from call(
                    settings,
                    method,
                    url,
                    body,
                    retries=self.max_retries,
                    want_object=False,
                    scope=profile.scope,
                )
            )

        return with_connection(self.cloudjobs_conn_id, flow)

    def _project_flow(self, settings: CloudJobsSettings, override: str | None) -> Flow[str]:
        """The project of a call: the override (checked by the caller before any request), the
        connection's, the token's, or the one IAM lists under the region's name."""
        project_id = override or settings.project_id
        if project_id:
            return project_id
        if settings.auth_type == "password":
            token: IssuedToken = yield Token(settings)
            if token.project_id:
                return token.project_id
        url = f"{settings.iam_url}/v3/projects?name={quote(settings.region)}"
        return _project_from_listing(
            settings, (yield from call(settings, "GET", url, retries=self.max_retries))
        )

    def _test_flow(self, settings: CloudJobsSettings) -> Flow[str]:
        if settings.auth_type == "password":
            token = yield from login(settings)
            return (
                f"IAM issued a token for user {settings.login!r} in domain {settings.domain_name!r}, "
                f"project {token.project_id or settings.project_id or settings.region}"
            )
        query = f"?name={quote(settings.region)}" if settings.region else ""
        projects = yield from call(
            settings, "GET", f"{settings.iam_url}/v3/projects{query}", retries=self.max_retries
        )
        count = len(projects.get("projects", [])) if isinstance(projects, Mapping) else 0
        how = "AK/SK signature" if settings.auth_type == "aksk" else "Token"
        return f"{how} accepted by IAM ({count} project(s) visible)"

    # ------------------------------------------------------------------ sync driver (requests)
    def _drive(self, flow: Flow[T]) -> T:
        runner = FlowRunner(flow)
        while (step := runner.next_step()) is not None:
            try:
                runner.answer(self._perform(step))
            except CloudJobsError as exc:
                runner.fail(exc)
        return runner.result  # type: ignore[no-any-return]

    def _perform(self, step: Step) -> Any:
        if isinstance(step, Send):
            return self._send(step.request)
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        if isinstance(step, Connection):
            if step.stale is not None and self._settings is step.stale:
                self._settings = None
            return self.get_conn()
        return TOKEN_CACHE.get(
            step.settings,
            step.rejected,
            functools.partial(self._login, step.settings, step.scope),
            step.scope,
        )

    def _login(self, settings: CloudJobsSettings, scope: str = "project") -> IssuedToken:
        token: IssuedToken = self._drive(login(settings, scope))
        mask_secret(token.value)
        return token

    def _send(self, request: HttpRequest) -> HttpResponse:
        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False  # no ~/.netrc: it would replace the AK/SK Authorization header
        deadline = time.monotonic() + request.timeout
        try:
            with self._session.request(
                request.method,
                request.url,
                data=request.body or None,
                headers=dict(request.headers),
                timeout=(request.timeout, request.timeout),
                verify=_sync_verify(request.verify),
                allow_redirects=False,
                stream=True,
                proxies=_sync_proxies(request.url),
            ) as response:
                reader = BodyReader(request.what, request.max_bytes, response.headers)
                read = getattr(response.raw, "read1", response.raw.read)
                while chunk := read(_CHUNK, decode_content=False):
                    reader.feed(chunk)
                    if time.monotonic() > deadline:  # requests' timeout is per read; ours is the whole answer
                        raise timeout_error(request.what, request.timeout)
                return HttpResponse(response.status_code, response.headers, reader.body())
        except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError):
            raise timeout_error(request.what, request.timeout) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise connection_error(request.what, exc) from None

    # ------------------------------------------------------------------ async driver (aiohttp)
    async def _adrive(self, flow: Flow[T]) -> T:
        runner = FlowRunner(flow)
        while (step := runner.next_step()) is not None:
            try:
                runner.answer(await self._aperform(step))
            except CloudJobsError as exc:
                runner.fail(exc)
        return runner.result  # type: ignore[no-any-return]

    async def _aperform(self, step: Step) -> Any:
        if isinstance(step, Send):
            return await self._asend(step.request)
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        if isinstance(step, Connection):
            if step.stale is not None and self._settings is step.stale:
                self._settings = await loop_state().connection(
                    self.cloudjobs_conn_id, self._alookup_conn, step.stale
                )
            return await self.aget_conn()
        return await TOKEN_CACHE.aget(
            step.settings,
            step.rejected,
            functools.partial(self._alogin, step.settings, step.scope),
            step.scope,
        )

    async def _alogin(self, settings: CloudJobsSettings, scope: str = "project") -> IssuedToken:
        token: IssuedToken = await self._adrive(login(settings, scope))
        await amask_secret(token.value)
        return token

    async def _alookup_conn(self) -> CloudJobsSettings:
        try:
            conn = await self.aget_connection(self.cloudjobs_conn_id)
        except AirflowNotFoundException:
            raise _missing_connection(self.cloudjobs_conn_id) from None
        settings = settings_from_connection(conn)
        if settings.secret:
            await amask_secret(settings.secret)
        return settings

    async def _asend(self, request: HttpRequest) -> HttpResponse:
        target = URL(request.url, encoded=True)
        proxy, proxy_auth = _env_proxy(target.scheme, target.host or "")
        try:
            async with (
                loop_state()
                .session()
                .request(
                    request.method,
                    target,
                    data=request.body or None,
                    headers=dict(request.headers),
                    ssl=_ssl_option(request.verify),
                    timeout=aiohttp.ClientTimeout(total=request.timeout),
                    proxy=proxy,
                    proxy_auth=proxy_auth,
                    allow_redirects=False,
                ) as response
            ):
                reader = BodyReader(request.what, request.max_bytes, response.headers)
                async for chunk in response.content.iter_any():
                    reader.feed(chunk)
                return HttpResponse(response.status, response.headers, reader.body())
        except asyncio.TimeoutError:
            raise timeout_error(request.what, request.timeout) from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise connection_error(request.what, exc) from None


_EMPTY = CloudJobsSettings(conn_id="", auth_type="token")


def _missing_connection(conn_id: str) -> CloudJobsError:
    """Not an input error: a connection added a moment later (or a secrets backend back up) cures it."""
    return CloudJobsError(
        f"Connection {conn_id!r} is not defined: add a 'cloudjobs' connection with that id (Admin > "
        f"Connections, `airflow connections add`, or AIRFLOW_CONN_{conn_id.upper()})"
    )


def _project_from_listing(settings: CloudJobsSettings, listing: Any) -> str:
    projects = listing.get("projects", []) if isinstance(listing, Mapping) else []
    for project in projects if isinstance(projects, list) else []:
        if isinstance(project, Mapping) and project.get("name") == settings.region and project.get("id"):
            return validate_project_id(str(project["id"])) or ""
    raise CloudJobsInputError(
        f"Connection {settings.conn_id!r}: IAM knows no project named {settings.region!r}; "
        "set extra 'project_id'"
    )


def _sync_verify(verify: bool | str) -> bool | str:
    """``verify=true`` honours REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, as requests' trust_env would."""
    if verify is True:
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return verify


def _sync_proxies(url: str) -> dict[str, str]:
    """The environment's proxies for ``url`` (HTTP(S)_PROXY, NO_PROXY), read as requests' trust_env would."""
    return requests.utils.get_environ_proxies(url, no_proxy=None)


@functools.lru_cache(maxsize=64)
def _env_proxy(scheme: str, host: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy the environment asks for (HTTP(S)_PROXY, NO_PROXY), as aiohttp's trust_env reads it."""
    try:
        return get_env_proxy_for_url(URL.build(scheme=scheme, host=host))
    except (LookupError, ValueError):
        return None, None


def _ssl_option(verify: bool | str) -> Any:
    if verify is True:
        return None
    return False if verify is False else _ssl_context(verify)


@functools.lru_cache(maxsize=16)
def _ssl_context(cafile: str) -> ssl.SSLContext:
    """One SSL context per CA bundle: building one reads the bundle from disk."""
    return ssl.create_default_context(cafile=cafile)
