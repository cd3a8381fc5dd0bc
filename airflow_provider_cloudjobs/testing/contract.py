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

#: The simulator's faults that the contract says are retried while the wait goes on (429 honouring
#: Retry-After, 5xx, a reset connection, a body that is not JSON or not a JSON object, a read time-out),
#: with their options.
#: The "slow" answer is a read time-out for a connection whose ``timeout`` is under its one-second delay.
RETRYABLE_FAULTS: tuple[tuple[str, dict[str, float]], ...] = (
    ("429", {"retry_after": 0.1}),
    ("500", {}),
    ("502", {}),
    ("503", {}),
    ("reset", {}),
    ("malformed_json", {}),
    ("json_not_object", {}),
    ("slow", {"delay": 1.0}),
)
