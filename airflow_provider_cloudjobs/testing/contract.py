"""What ``CONTRACT.md`` fixes about the normalised job, written down once for every test suite to check.

Kept apart from :mod:`airflow_provider_cloudjobs.job` on purpose: a test that took the key list from the
code under test would pass whatever that code produced.
"""

from __future__ import annotations

#: The keys of the normalised job (the XCom value), the same for every service.
NORMALISED_JOB_KEYS = frozenset(
    {
        "service",
        "job_id",
        "status",
        "phase",
        "is_terminal",
        "progress",
        "job_type",
        "resource_id",
        "resource_name",
        "error_code",
        "message",
        "created_at",
        "started_at",
        "updated_at",
        "ended_at",
        "sub_jobs",
        "entities",
        "raw",
    }
)
