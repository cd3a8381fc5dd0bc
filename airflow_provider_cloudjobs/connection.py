"""Read a ``cloudjobs`` Airflow connection into a validated, typed settings object.

The same connection arrives three ways (the 3.2+ UI form, a URI, JSON in ``AIRFLOW_CONN_...``); in
a URI every extra is a string and ``endpoints`` is JSON text. Everything is checked here, before any
request, and errors name the field. Secrets never appear in ``repr`` or in an error message.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_cloudjobs.exceptions import CloudJobsInputError
from airflow_provider_cloudjobs.profiles import ServiceProfile
from airflow_provider_cloudjobs.validation import shown

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "cloudjobs_default"
CONN_TYPE = "cloudjobs"
DEFAULT_ENDPOINT_DOMAIN = "myhuaweicloud.com"
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 600.0
DEFAULT_MAX_RESPONSE_BYTES = 8 << 20
MAX_RESPONSE_BYTES_RANGE = (1 << 10, 256 << 20)
AUTH_TYPES = ("password", "aksk", "token")

# Patterns are matched whole (fullmatch): "$" would let a trailing newline through.
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
_PROJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}", re.IGNORECASE)
_ACCESS_KEY = re.compile(r"[A-Za-z0-9]{1,128}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,65536}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True)
class CloudJobsSettings:
    """One connection, parsed. ``secret`` is the password, the SK or the token, by ``auth_type``."""

    conn_id: str
    auth_type: str
    login: str = ""
    secret: str = field(default="", repr=False)
    domain_name: str = ""
    region: str = ""
    project_id: str = ""
    domain_id: str = ""
    endpoint_domain: str = DEFAULT_ENDPOINT_DOMAIN
    iam_endpoint: str = ""
    endpoints: Mapping[str, str] = field(default_factory=dict)
    verify: bool | str = True
    timeout: float = DEFAULT_TIMEOUT
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    console_url: str = ""
    services: Mapping[str, ServiceProfile] = field(default_factory=dict)

    def base_url(self, profile: ServiceProfile) -> str:
        """Where a service's API lives: ``endpoints[key]``, ``endpoints["*"]``, or the cloud's default host.

        A global service (``regional=False``) is matched by its key only: Global EIP's host prefix ``eip``
        is also the key of the regional EIP service, whose endpoint must not get its calls.
        """
        by_host = self.endpoints.get(profile.host) if profile.regional else None
        explicit = self.endpoints.get(profile.key) or by_host or self.endpoints.get("*")
        if explicit:
            return explicit.rstrip("/")
        if not profile.regional:
            return f"https://{profile.host}.{self.endpoint_domain}"
        if not self.region:
            raise CloudJobsInputError(
                f"Connection {self.conn_id!r} has no 'region' in extra and no 'endpoints' entry for "
                f"service {profile.key!r}: cannot tell where the {profile.label} API is"
            )
        return f"https://{profile.host}.{self.region}.{self.endpoint_domain}"

    def domain_id_for(self, profile: ServiceProfile) -> str:
        """The account id a domain-scoped service's path and credentials need; refused, naming the field,
        before any request when the connection has none."""
        if not self.domain_id:
            raise CloudJobsInputError(
                f"Connection {self.conn_id!r} has no 'domain_id' in extra: {profile.label} jobs are scoped "
                "by the account, not a project; set extra 'domain_id' to the account ID (console: My "
                "Credentials > API Credentials)"
            )
        return self.domain_id

    @property
    def iam_url(self) -> str:
        if self.iam_endpoint:
            return self.iam_endpoint.rstrip("/")
        if not self.region:
            raise CloudJobsInputError(
                f"Connection {self.conn_id!r} needs 'region' or 'iam_endpoint' in extra to reach IAM"
            )
        return f"https://iam.{self.region}.{self.endpoint_domain}"

    @property
    def console_base(self) -> str:
        return (self.console_url or f"https://console.{self.endpoint_domain}").rstrip("/")

    @functools.cached_property
    def cache_key(self) -> str:
        """Identifies a credential set (not only the conn id): a rotated password gets a fresh token."""
        material = "\0".join(
            [
                self.conn_id,
                self.auth_type,
                self.login,
                self.secret,
                self.domain_name,
                self.region,
                self.project_id,
                self.domain_id,
                self.iam_endpoint,
                self.endpoint_domain,
            ]
        )
        return hashlib.sha256(material.encode()).hexdigest()


def _as_bool_or_path(value: Any, conn_id: str) -> bool | str:
    if isinstance(value, bool):
        return value
    if value is None:
        return True
    text = str(value).strip()
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return not text  # an empty field is unset: verify, as by default
    if not os.path.exists(text):
        raise CloudJobsInputError(
            f"Connection {conn_id!r}: extra 'verify' must be true, false or the path of a CA bundle; "
            f"{shown(text)} is neither a boolean nor an existing file"
        )
    return text  # a CA bundle path


def _as_number(value: Any, name: str, conn_id: str, default: float, bounds: tuple[float, float]) -> float:
    if value in (None, ""):
        return default
    low, high = bounds
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or not low < number <= high:
        raise CloudJobsInputError(
            f"Connection {conn_id!r}: extra '{name}' must be a number above {low:g} and at most {high:g}, "
            f"got {shown(value)}"
        )
    return number


def _as_url(value: Any, name: str, conn_id: str) -> str:
    """An http(s) base URL with a host and nothing that could send traffic elsewhere (userinfo, query)."""
    text = str(value or "").strip()
    if not text:
        return ""
    problem = None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts, problem = None, "is not a URL"
    if parts is not None:
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            problem = "must be an http(s) URL with a host"
        elif "@" in parts.netloc:
            problem = "must not hold user information ('@')"
        elif parts.query or parts.fragment or "?" in text or "#" in text:
            problem = "must not hold a query or fragment"
        elif _CONTROL.search(text) or " " in text:
            problem = "must not hold spaces or control characters"
    if problem:
        raise CloudJobsInputError(f"Connection {conn_id!r}: {name} {problem}, got {shown(text)}")
    return text.rstrip("/")


def _as_mapping(value: Any, name: str, conn_id: str) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise CloudJobsInputError(
                f"Connection {conn_id!r}: extra '{name}' must be a JSON object: {exc.msg} at position {exc.pos}"
            ) from None
    if not isinstance(value, Mapping):
        raise CloudJobsInputError(
            f"Connection {conn_id!r}: extra '{name}' must be an object, got {type(value).__name__}"
        )
    return dict(value)


def _extra_value(extra: Mapping[str, Any], name: str) -> Any:
    """A field as the 3.2+ form stores it (plain key) or as pre-3.2 forms did (``extra__cloudjobs__x``)."""
    value = extra.get(name)
    if value in (None, ""):
        value = extra.get(f"extra__{CONN_TYPE}__{name}")
    return value


def _id_extra(conn_id: str, name: str, value: Any, what: str) -> str:
    """A project or account id from the extra ("" when absent), refused naming the field when malformed."""
    text = str(value or "").strip()
    if text and not _PROJECT_ID.fullmatch(text):
        raise CloudJobsInputError(
            f"Connection {conn_id!r}: {name} {shown(text)} is not {what} "
            "(letters, digits, '-' and '_' only, at most 64)"
        )
    return text


def settings_from_connection(conn: Any) -> CloudJobsSettings:
    """Parse an Airflow ``Connection`` (SDK or core); raises :class:`CloudJobsInputError` naming the field."""
    conn_id = getattr(conn, "conn_id", None) or DEFAULT_CONN_ID
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    if not isinstance(extra, Mapping):
        raise CloudJobsInputError(f"Connection {conn_id!r}: extra must be a JSON object")

    def get(name: str) -> Any:
        return _extra_value(extra, name)

    auth_type = str(get("auth_type") or "password").strip().lower()
    if auth_type not in AUTH_TYPES:
        raise CloudJobsInputError(
            f"Connection {conn_id!r}: auth_type {auth_type!r} is not one of {', '.join(AUTH_TYPES)}"
        )
    login = (conn.login or "").strip()
    # The secret by auth_type: a pre-issued token (extra field, or the password box), else password / SK.
    secret = str(get("token") or conn.password or "").strip() if auth_type == "token" else conn.password or ""

    region = str(get("region") or "").strip()
    if region and not _REGION.fullmatch(region):
        raise CloudJobsInputError(
            f"Connection {conn_id!r}: region {shown(region)} is not a region name like 'cn-north-4'"
        )
    project_id = _id_extra(conn_id, "project_id", get("project_id"), "a project id")
    domain_id = _id_extra(conn_id, "domain_id", get("domain_id"), "an account id")
    endpoint_domain = str(get("endpoint_domain") or DEFAULT_ENDPOINT_DOMAIN).strip().strip(".")
    if not _DOMAIN.fullmatch(endpoint_domain) or len(endpoint_domain) > 253:
        raise CloudJobsInputError(
            f"Connection {conn_id!r}: endpoint_domain {shown(endpoint_domain)} is not a DNS domain like "
            "'myhuaweicloud.com' (no scheme, path, port or '@')"
        )

    endpoints = {
        str(k).lower(): _as_url(v, f"endpoints[{str(k)[:40]!r}]", conn_id)
        for k, v in _as_mapping(get("endpoints"), "endpoints", conn_id).items()
    }
    iam_endpoint = _as_url(get("iam_endpoint"), "iam_endpoint", conn_id)

    services: dict[str, ServiceProfile] = {}
    for key, spec in _as_mapping(get("services"), "services", conn_id).items():
        if not isinstance(spec, Mapping):
            raise CloudJobsInputError(
                f"Connection {conn_id!r}: services[{key!r}] must be an object describing the service"
            )
        services[key.lower()] = ServiceProfile.from_dict(key.lower(), spec)

    settings = CloudJobsSettings(
        conn_id=conn_id,
        auth_type=auth_type,
        login=login,
        secret=secret,
        domain_name=str(get("domain_name") or "").strip(),
        region=region,
        project_id=project_id,
        domain_id=domain_id,
        endpoint_domain=endpoint_domain,
        iam_endpoint=iam_endpoint,
        endpoints=endpoints,
        verify=_as_bool_or_path(get("verify"), conn_id),
        timeout=_as_number(get("timeout"), "timeout", conn_id, DEFAULT_TIMEOUT, (0, MAX_TIMEOUT)),
        max_response_bytes=int(
            _as_number(
                get("max_response_bytes"),
                "max_response_bytes",
                conn_id,
                DEFAULT_MAX_RESPONSE_BYTES,
                MAX_RESPONSE_BYTES_RANGE,
            )
        ),
        console_url=_as_url(get("console_url"), "console_url", conn_id),
        services=services,
    )
    _check_credentials(settings)
    _warn_if_insecure(settings)
    return settings


_warned: set[tuple[str, str]] = set()


def _warn_if_insecure(settings: CloudJobsSettings) -> None:
    """Said once per connection and process, the same on workers and in the triggerer."""
    plain = sorted(
        {url for url in (settings.iam_endpoint, *settings.endpoints.values()) if url.startswith("http:")}
    )
    warnings = []
    if plain:
        warnings.append(
            f"sends its credentials unencrypted (plain http) to {', '.join(plain)}: use https outside a test bed"
        )
    if settings.verify is False:
        warnings.append(
            "has verify=false: TLS certificates are not checked, so anyone on the path can read its "
            "credentials; set a CA bundle path instead"
        )
    for text in warnings:
        if (settings.conn_id, text) not in _warned and len(_warned) < 256:
            _warned.add((settings.conn_id, text))
            log.warning("Connection %r %s", settings.conn_id, text)


def _check_credentials(settings: CloudJobsSettings) -> None:
    conn_id = settings.conn_id
    if settings.auth_type == "password":
        missing = [
            name
            for name, value in (
                ("login (IAM user name)", settings.login),
                ("password", settings.secret),
                ("extra 'domain_name' (the account the IAM user belongs to)", settings.domain_name),
            )
            if not value
        ]
        if not (settings.project_id or settings.region):
            missing.append("extra 'project_id' or 'region' (the token's project scope)")
    elif settings.auth_type == "aksk":
        missing = [
            name
            for name, value in (
                ("login (Access Key Id)", settings.login),
                ("password (Secret Access Key)", settings.secret),
            )
            if not value
        ]
        if settings.login and not _ACCESS_KEY.fullmatch(settings.login):
            raise CloudJobsInputError(
                f"Connection {conn_id!r}: login (Access Key Id) must be letters and digits only"
            )
        if not (settings.project_id or settings.region):
            missing.append("extra 'project_id' or 'region'")
    else:
        missing = [] if settings.secret else ["extra 'token' (the pre-issued token)"]
        if settings.secret and not _TOKEN.fullmatch(settings.secret):
            raise CloudJobsInputError(
                f"Connection {conn_id!r}: the token holds spaces or control characters, which no token has"
            )
        if not settings.project_id:
            missing.append("extra 'project_id' (a pre-issued token cannot tell us its project)")
    if _CONTROL.search(settings.login + settings.domain_name):
        raise CloudJobsInputError(
            f"Connection {conn_id!r}: login or extra 'domain_name' holds a control character (a newline?)"
        )
    if missing:
        raise CloudJobsInputError(
            f"Connection {conn_id!r} (auth_type {settings.auth_type}) is missing: {'; '.join(missing)}"
        )
