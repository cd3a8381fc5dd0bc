"""Fixtures of the distributed end-to-end suite: one deployment (PostgreSQL, Redis, two Celery workers,
two triggerers) for this suite, stopped whatever happens.

Its output (each process's log, the task logs, ``observations.json``) goes to ``test-output/e2e-distributed/``
(or ``$CLOUDJOBS_E2E_DISTRIBUTED_OUTPUT``) and is kept after the run. Without Debian's ``postgresql`` and
``redis-server`` packages, or without the ``distributed`` extra (the Celery provider, psycopg2), the suite
skips and says what is missing.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.harness import ROOT, wait_for

from .distributed import DAG_ID, DistributedDeployment
from .servers import missing_packages


# Package scope: stopped as soon as this suite is done, not at the end of a whole `dev.py test` session.
@pytest.fixture(scope="package")
def cluster() -> Iterator[DistributedDeployment]:
    missing = missing_packages()
    if missing:
        pytest.skip(
            f"Debian packages missing: {', '.join(missing)} (apt-get install postgresql redis-server)"
        )
    modules = [
        m
        for m in ("airflow.providers.celery", "psycopg2", "asyncpg", "redis")
        if not importlib.util.find_spec(m)
    ]
    if modules:
        pytest.skip(f"python modules missing: {', '.join(modules)} (pip install -e '.[distributed]')")
    out = Path(os.environ.get("CLOUDJOBS_E2E_DISTRIBUTED_OUTPUT") or ROOT / "test-output" / "e2e-distributed")
    out.mkdir(parents=True, exist_ok=True)
    deployment = DistributedDeployment(out)
    try:
        deployment.start()
        wait_for(
            f"DAG {DAG_ID} to be parsed",
            lambda: deployment.api.get(f"/api/v2/dags/{DAG_ID}", expect=(200, 404)).get("dag_id"),
            timeout=120,
            check=deployment.check_alive,
        )
        deployment.api.unpause(DAG_ID)
        yield deployment
    finally:
        deployment.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        deployment = getattr(item, "funcargs", {}).get("cluster")
        if isinstance(deployment, DistributedDeployment):
            report.sections.append(("distributed deployment", deployment.diagnostics()))
