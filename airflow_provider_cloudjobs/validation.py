"""Input checks that run before any request, so a bad job id never becomes a wrong URL."""

from __future__ import annotations

import re
from typing import Any

from airflow_provider_cloudjobs.exceptions import CloudJobsInputError

# Matched whole (fullmatch): "$" would let a trailing newline through.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,254}")
_PROJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
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
    if not isinstance(job_id, str):
        raise CloudJobsInputError(f"job_id must be a string, got {type(job_id).__name__} {shown(job_id)}")
    for needle, name in _NAMED_PROBLEMS:
        if needle in job_id:
            raise CloudJobsInputError(f"job_id {shown(job_id)} contains {name}, which no cloud job id has")
    if any(ch.isspace() for ch in job_id):
        raise CloudJobsInputError(f"job_id {shown(job_id)} contains whitespace, which no cloud job id has")
    if not _SAFE_ID.fullmatch(job_id):
        raise CloudJobsInputError(
            f"job_id {shown(job_id)} has characters a cloud job id does not have "
            "(letters, digits and . _ : @ + - only, at most 255)"
        )
    return job_id


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
