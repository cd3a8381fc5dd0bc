"""Input checks that run before any request, so a bad job id never becomes a wrong URL."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from airflow_provider_cloudjobs.exceptions import CloudJobsInputError

# Matched whole (fullmatch): "$" would let a trailing newline through.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,254}")
_PROJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: A path parameter's name, as it stands in a profile's path template (``{instance_id}``).
PARAM_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
#: Placeholders filled from their own arguments, never from ``path_params``.
RESERVED_PARAMS = frozenset({"project_id", "job_id"})
MAX_PATH_PARAMS = 8
_NAMED_PROBLEMS = (  # '..' first: "../x" is a path traversal attempt before it is a stray '/'
    ("..", "'..'"),
    ("/", "a '/'"),
    ("?", "a '?'"),
    ("#", "a '#'"),
    ("%", "a '%' (percent-encoding)"),
    ("\\", "a backslash"),
)


def shown(value: Any, limit: int = 80) -> str:
    """A value quoted in an error message: its repr, cut short (a job id may come from anywhere)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validate_job_id(job_id: Any) -> str:
    """A job id as it may appear in a URL path segment; the error names what is wrong with it."""
    if job_id is None or (isinstance(job_id, str) and not job_id.strip()):
        raise CloudJobsInputError("job_id is empty: pass the id the cloud returned when the job was created")
    return validate_id(job_id, "job_id", "cloud job id")


def validate_id(value: Any, name: str, what: str) -> str:
    """An id as it may appear in a URL path segment (a job id, an instance id ...); ``name`` is the field
    the error names, ``what`` the kind of id ("cloud job id")."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise CloudJobsInputError(f"{name} is empty: pass the {what}")
    if not isinstance(value, str):
        raise CloudJobsInputError(f"{name} must be a string, got {type(value).__name__} {shown(value)}")
    for needle, problem in _NAMED_PROBLEMS:
        if needle in value:
            raise CloudJobsInputError(f"{name} {shown(value)} contains {problem}, which no {what} has")
    if any(ch.isspace() for ch in value):
        raise CloudJobsInputError(f"{name} {shown(value)} contains whitespace, which no {what} has")
    if not _SAFE_ID.fullmatch(value):
        raise CloudJobsInputError(
            f"{name} {shown(value)} has characters a {what} does not have "
            "(letters, digits and . _ : @ + - only, at most 255)"
        )
    return value


def validate_path_params(path_params: Any) -> dict[str, str]:
    """The ids a job path needs besides the project and the job (``{"instance_id": "..."}``), checked as
    strictly as a job id: each value becomes a URL path segment. Which names a service needs is checked
    against its profile (:func:`airflow_provider_cloudjobs.profiles.ServiceProfile.job_path`)."""
    if path_params is None:
        return {}
    if not isinstance(path_params, Mapping):
        raise CloudJobsInputError(
            f"path_params must be a mapping of names to ids such as {{'instance_id': '...'}}, "
            f"got {type(path_params).__name__} {shown(path_params)}"
        )
    if len(path_params) > MAX_PATH_PARAMS:
        raise CloudJobsInputError(f"path_params has {len(path_params)} entries; at most {MAX_PATH_PARAMS}")
    checked = {}
    for key, value in path_params.items():
        if not isinstance(key, str) or not PARAM_NAME.fullmatch(key) or key in RESERVED_PARAMS:
            raise CloudJobsInputError(
                f"path_params has a key {shown(key)} that is not a path parameter name (lower-case letters, "
                "digits and '_'; project_id and job_id have their own arguments)"
            )
        checked[key] = validate_id(value, f"path_params[{key!r}]", "cloud resource id")
    return checked


def validate_project_id(project_id: Any) -> str | None:
    """An optional project id override; None or empty means "the connection's project"."""
    if project_id is None or project_id == "":
        return None
    if not isinstance(project_id, str) or not _PROJECT_ID.fullmatch(project_id):
        raise CloudJobsInputError(
            f"project_id {shown(project_id)} is not a project id (letters, digits, '-' and '_' only, at most 64)"
        )
    return project_id


def validate_request_path(path: Any) -> str:
    """An API path for :meth:`CloudJobsHook.request` (may hold ``{project_id}``): it starts with ``/``, holds
    no whitespace (it goes into the request line) and no ``..`` segment (it stays under the service)."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise CloudJobsInputError(f"path must be a string starting with '/', got {shown(path)}")
    if ".." in path.split("?", 1)[0].split("/"):
        raise CloudJobsInputError(f"path {shown(path)} contains a '..' segment")
    if any(ch.isspace() for ch in path):
        raise CloudJobsInputError(f"path {shown(path)} contains whitespace")
    return path
