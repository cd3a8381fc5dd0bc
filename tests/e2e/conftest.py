"""Fixtures of the end-to-end suite: one real Airflow deployment shared by every test of the session.

Its output (AIRFLOW_HOME with the task logs and the SQLite database, each service's own log, the
screenshot) goes to ``test-output/e2e/`` (or ``$CLOUDJOBS_E2E_OUTPUT``) and is kept after the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import ROOT, Deployment, wait_for

DAG_IDS = (
    "example_cloudjobs_cce",
    "e2e_ping",
    "e2e_wait_long",
    "e2e_wait_short",
    "e2e_ui_wait",
    "e2e_ui_poke",
)


@pytest.fixture(scope="session")
def e2e_output() -> Path:
    out = Path(os.environ.get("CLOUDJOBS_E2E_OUTPUT") or ROOT / "test-output" / "e2e")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="session")
def deployment(e2e_output: Path) -> Iterator[Deployment]:
    """Simulator + api-server + scheduler + dag-processor + triggerer; stopped whatever happens."""
    deployment = Deployment(e2e_output)
    try:
        deployment.start()
        api = deployment.api
        for dag_id in DAG_IDS:
            wait_for(
                f"DAG {dag_id} to be parsed",
                lambda dag_id=dag_id: _parsed(deployment, dag_id),
                timeout=120,
                check=deployment.check_alive,
            )
            api.unpause(dag_id)
        yield deployment
    finally:
        deployment.stop()


def _parsed(deployment: Deployment, dag_id: str) -> bool:
    """True once the DAG is in the API; fails at once if its file (by naming convention) failed to import."""
    if deployment.api.get(f"/api/v2/dags/{dag_id}", expect=(200, 404)).get("dag_id"):
        return True
    files = {
        "e2e_wait_long": "e2e_cloudjobs.py",
        "e2e_wait_short": "e2e_cloudjobs.py",
        "e2e_ui_wait": "e2e_ui.py",
        "e2e_ui_poke": "e2e_ui.py",
    }
    filename = files.get(dag_id, f"{dag_id}.py")
    for error in deployment.api.get("/api/v2/importErrors")["import_errors"]:
        if error["filename"].endswith(filename):
            raise RuntimeError(f"{filename} failed to import in the dag-processor:\n{error['stack_trace']}")
    return False


@pytest.fixture
def sim(deployment: Deployment):
    """The deployment's simulator, reset (no jobs, faults, tokens; default config) for each test."""
    assert deployment.sim is not None
    deployment.sim.reset()
    return deployment.sim


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        deployment = funcargs.get("deployment")
        if isinstance(deployment, Deployment):
            report.sections.append(("airflow deployment", deployment.diagnostics()))
