"""Read a ``cloudjobs`` Airflow connection into a validated, typed settings object.

The same connection arrives three ways (the 3.2+ UI form, a URI, JSON in ``AIRFLOW_CONN_...``); in
a URI every extra is a string and ``endpoints`` is JSON text. Everything is checked here, before any
request, and errors name the field. Secrets never appear in ``repr`` or in an error message.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_cloudjobs.exceptions import CloudJobsInputError
from airflow_provider_cloudjobs.profiles import ServiceProfile

DEFAULT_CONN_ID = "cloudjobs_default"
CONN_TYPE = "cloudjobs"
DEFAULT_ENDPOINT_DOMAIN = "myhuaweicloud.com"
DEFAULT_TIMEOUT = 30.0
AUTH_TYPES = ("password", "aksk", "token")

_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_PROJECT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
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
    endpoint_domain: str = DEFAULT_ENDPOINT_DOMAIN
    iam_endpoint: str = ""
    endpoints: Mapping[str, str] = field(default_factory=dict)
    verify: bool | str = True
    timeout: float = DEFAULT_TIMEOUT
    console_url: str = ""
    services: Mapping[str, ServiceProfile] = field(default_factory=dict)

    def base_url(self, profile: ServiceProfile) -> str:
        """Where a service's API lives: ``endpoints[key]``, ``endpoints["*"]``, or the cloud's default host."""
        explicit = (
            self.endpoints.get(profile.key) or self.endpoints.get(profile.host) or self.endpoints.get("*")
        )
        if explicit:
            return explicit.rstrip("/")
        if not self.region:
            raise CloudJobsInputError(
                f"Connection {self.conn_id!r} has no 'region' in extra and no 'endpoints' entry for "
                f"service {profile.key!r}: cannot tell where the {profile.label} API is"
            )
        return f"https://{profile.host}.{self.region}.{self.endpoint_domain}"

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

    @property
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
    return text  # a CA bundle path


def _as_float(value: Any, name: str, conn_id: str, default: float) -> float:
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CloudJobsInputError(
            f"Connection {conn_id!r}: extra '{name}' must be a number, got {value!r}"
        ) from None
    if number <= 0:
        raise CloudJobsInputError(f"Connection {conn_id!r}: extra '{name}' must be positive, got {value!r}")
    return number


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
    if region and not _REGION.match(region):
        raise CloudJobsInputError(
            f"Connection {conn_id!r}: region {region!r} is not a region name like 'cn-north-4'"
        )
    project_id = str(get("project_id") or "").strip()
    if project_id and not _PROJECT_ID.match(project_id):
        raise CloudJobsInputError(f"Connection {conn_id!r}: project_id {project_id!r} is not a project id")

    endpoints = {
        str(k).lower(): str(v) for k, v in _as_mapping(get("endpoints"), "endpoints", conn_id).items()
    }
    for key, url in endpoints.items():
        if not re.match(r"^https?://[^\s/]+", url):
            raise CloudJobsInputError(
                f"Connection {conn_id!r}: endpoints[{key!r}] must be an http(s) URL, got {url!r}"
            )
    iam_endpoint = str(get("iam_endpoint") or "").strip()
    if iam_endpoint and not re.match(r"^https?://[^\s/]+", iam_endpoint):
        raise CloudJobsInputError(
            f"Connection {conn_id!r}: iam_endpoint must be an http(s) URL, got {iam_endpoint!r}"
        )

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
        endpoint_domain=str(get("endpoint_domain") or DEFAULT_ENDPOINT_DOMAIN).strip().strip("."),
        iam_endpoint=iam_endpoint,
        endpoints=endpoints,
        verify=_as_bool_or_path(get("verify"), conn_id),
        timeout=_as_float(get("timeout"), "timeout", conn_id, DEFAULT_TIMEOUT),
        console_url=str(get("console_url") or "").strip(),
        services=services,
    )
    _check_credentials(settings)
    return settings


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
        if not (settings.project_id or settings.region):
            missing.append("extra 'project_id' or 'region'")
    else:
        missing = [] if settings.secret else ["extra 'token' (the pre-issued token)"]
        if not settings.project_id:
            missing.append("extra 'project_id' (a pre-issued token cannot tell us its project)")
    if missing:
        raise CloudJobsInputError(
            f"Connection {conn_id!r} (auth_type {settings.auth_type}) is missing: {'; '.join(missing)}"
        )
