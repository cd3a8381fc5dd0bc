"""Test set-up: a throwaway AIRFLOW_HOME (set before Airflow is imported) and the cloud simulator fixtures."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="cloudjobs-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_HOME / 'airflow.db'}")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(__file__).resolve().parents[1] / "example_dags"))

pytest_plugins = ["airflow_provider_cloudjobs.testing.pytest_plugin"]


import json  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def fast_backoff(monkeypatch):
    """Shrink the retry backoff so fault tests take milliseconds; the backoff logic itself is unchanged."""
    from airflow_provider_cloudjobs import transport

    monkeypatch.setattr(transport, "BACKOFF_BASE", 0.02)
    monkeypatch.setattr(transport, "BACKOFF_CAP", 0.1)


@pytest.fixture(autouse=True)
def _supervisor_comms_name_on_airflow_31(monkeypatch):
    """Airflow 3.1.0's async connection lookup imports ``task_runner.SUPERVISOR_COMMS`` before it tries the
    secrets backends, a name that exists only inside a task or triggerer process. Defining it (unused: the
    environment-variable backend answers first) lets a test process look connections up as a triggerer does.
    """
    from airflow.sdk.execution_time import task_runner

    if not hasattr(task_runner, "SUPERVISOR_COMMS"):
        monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", None, raising=False)


@pytest.fixture(autouse=True)
def _fresh_token_cache():
    """Each test starts with no cached token, as a fresh process would."""
    from airflow_provider_cloudjobs.auth.tokens import TOKEN_CACHE

    TOKEN_CACHE.clear()
    yield
    TOKEN_CACHE.clear()


@pytest.fixture
def cloudjobs_conn(cloud_simulator, monkeypatch):
    """Factory: define a ``cloudjobs`` connection to the simulator through AIRFLOW_CONN_<ID>; returns the id."""
    from airflow_provider_cloudjobs.testing import simulator

    def make(conn_id: str = "cloudjobs_default", auth_type: str = "password", **overrides) -> str:
        extra = cloud_simulator.connection_extra(auth_type=auth_type)
        login, password = simulator.USER_NAME, simulator.PASSWORD
        if auth_type == "aksk":
            login, password = simulator.ACCESS_KEY, simulator.SECRET_KEY
        login = overrides.pop("login", login)
        password = overrides.pop("password", password)
        extra.update(overrides)
        if auth_type == "token":
            login, password = "", ""
        body = {"conn_type": "cloudjobs", "login": login, "password": password, "extra": extra}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(body))
        return conn_id

    return make
