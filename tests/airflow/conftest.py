"""Running small DAGs through real Airflow (``dag.test()``) against the cloud simulator.

``dag.test()`` runs each task in-process through the Task SDK and the execution API, and runs a
deferred task's trigger in-process after a serde round trip of its kwargs, then resumes the task:
the whole path a deployment takes, minus the scheduler and the triggerer processes. The task log
goes to this process's stdout, where the ``run_dag`` fixture collects it.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pendulum
import pytest
from dagtest_support import DagResult, read_back, sync_dag_to_db

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The session's metadata DB (a fresh SQLite file in the throwaway AIRFLOW_HOME), with its bundle."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.utils import db

    db.initdb()
    DagBundlesManager().sync_bundles_to_db()


@pytest.fixture(scope="session", autouse=True)
def _one_in_process_api_server() -> Iterator[None]:
    """dag.test() talks to an in-process execution API. Airflow 3.1 builds a new one (its versioned
    routes cost about a second) for every task run and trigger run; 3.2+ caches it. Cache it on 3.1 too,
    as later releases do, so the DAG-run tests take seconds instead of minutes there."""
    from airflow.sdk.execution_time import supervisor

    factory = supervisor.in_process_api_server
    with pytest.MonkeyPatch.context() as patch:
        if not hasattr(factory, "cache_info"):
            patch.setattr(supervisor, "in_process_api_server", functools.lru_cache(maxsize=1)(factory))
        yield


@pytest.fixture
def run_dag(airflow_db, capfd, caplog) -> Callable[[Any], DagResult]:
    """Run a DAG with ``dag.test()`` and read back what it left: states, try numbers, XComs, log.

    The log is what the task runner printed (structlog, on stdout) and what went through stdlib
    logging in this process (the inline trigger's helpers), one record per line.
    """

    def run(dag: Any, **test_kwargs: Any) -> DagResult:
        sync_dag_to_db(dag)
        capfd.readouterr()
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            dag_run = dag.test(**test_kwargs)
        out, err = capfd.readouterr()
        # Shown again in pytest's report of a failing test.
        sys.stdout.write(out)
        sys.stderr.write(err)
        tasks, xcoms = read_back(dag.dag_id, dag_run.run_id)
        state = dag_run.state
        records = "\n".join(
            f"[{record.levelname.lower():<9}] {record.getMessage()} [{record.name}]"
            + (f"\n{record.exc_text}" if record.exc_text else "")
            for record in caplog.records
        )
        text = "\n".join([out, err, records])
        return DagResult(
            dag_id=dag.dag_id,
            run_id=dag_run.run_id,
            state=str(getattr(state, "value", state)),
            tasks=tasks,
            xcoms=xcoms,
            log=text,
            records=[(r.levelno, r.name, r.getMessage()) for r in caplog.records],
        )

    return run


@pytest.fixture
def make_dag(request) -> Callable[..., Any]:
    """A DAG named after the test, with ``retries=2`` and no retry delay by default: a test that expects
    "no retry consumed" sees the retries happen (try_number > 1) if the task raised a retryable error."""
    from airflow.sdk import DAG

    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")[:200]
    counter = iter(range(1000))

    def make(**default_args: Any) -> Any:
        args = {"retries": 2, "retry_delay": timedelta(0), **default_args}
        index = next(counter)
        dag_id = base if index == 0 else f"{base}_{index}"
        return DAG(dag_id, schedule=None, start_date=START_DATE, catchup=False, default_args=args)

    return make


@pytest.fixture
def conn_id(cloudjobs_conn) -> str:
    """The default ``cloudjobs`` connection, pointing at the simulator."""
    return cloudjobs_conn()


@pytest.fixture
def fresh_unknown_status_warnings(monkeypatch) -> None:
    """The "unknown status" warning is once per process and status: start each test with none given."""
    from airflow_provider_cloudjobs import job

    monkeypatch.setattr(job, "_warned_statuses", set())
