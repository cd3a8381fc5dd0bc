"""The example DAGs parse cleanly and run end to end (``dag.test()``) against the cloud simulator."""

from __future__ import annotations

import inspect
from datetime import timedelta
from pathlib import Path

import pytest

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "example_dags"
EXAMPLE_FILES = sorted(EXAMPLE_DIR.glob("*.py"))
EXAMPLE_DAG_IDS = {"example_cloudjobs_cce", "example_cloudjobs_dws_elb", "example_cloudjobs_ecs_mapped"}


def dag_bag(folder: Path):
    """A DagBag of ``folder`` only, never Airflow's own examples (3.1 still has include_examples)."""
    try:  # Airflow 3.2+
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    kwargs = {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}
    return DagBag(dag_folder=str(folder), safe_mode=False, **kwargs)


def test_there_are_examples():
    assert {path.stem for path in EXAMPLE_FILES} == EXAMPLE_DAG_IDS


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: path.name)
def test_example_file_parses_without_import_errors(path):
    bag = dag_bag(path)
    assert bag.import_errors == {}
    assert list(bag.dags) == [path.stem]
    dag = bag.dags[path.stem]
    assert "example" in dag.tags
    assert dag.schedule is None  # examples never run by themselves
    assert dag.task_dict  # something to run


@pytest.fixture
def examples(cloud_simulator, cloudjobs_conn, monkeypatch):
    """The example DAGs, loaded with a poll interval fit for tests, their connection on the simulator."""
    monkeypatch.setenv("CLOUDJOBS_EXAMPLE_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("CLOUDJOBS_EXAMPLE_TIMEOUT", "60")
    cloudjobs_conn("cloudjobs_default")
    cloud_simulator.configure(default_polls_to_finish=3)
    bag = dag_bag(EXAMPLE_DIR)
    assert bag.import_errors == {}
    return bag.dags


def test_cce_example_creates_a_cluster_and_reports_it(cloud_simulator, examples, run_dag):
    dag = examples["example_cloudjobs_cce"]
    assert dag.task_dict["wait_for_cluster"].poke_interval == 0.05

    result = run_dag(dag, run_conf={"cluster_name": "orders-prod"})

    assert result.state == "success", result.log
    job = result.xcom("wait_for_cluster")
    assert (job["service"], job["phase"], job["resource_name"]) == ("cce", "SUCCEEDED", "orders-prod")
    assert job["job_id"] == result.xcom("create_cluster")["job_id"]
    assert result.xcom("create_cluster", "response")["status"]["jobID"] == job["job_id"]
    assert result.deferred == 1
    assert result.xcom("report").startswith(f"Cluster orders-prod ready: job {job['job_id']} SUCCEEDED")
    assert cloud_simulator.stats()["create_requests"] == 1


def test_cce_example_fails_on_a_failed_cluster_job_without_retrying(cloud_simulator, examples, run_dag):
    dag = examples["example_cloudjobs_cce"]
    assert dag.default_args["retries"] == 2
    # Were the failure retried, the retries would run at once and show in try_number (not in 2 x 5 min).
    dag.task_dict["wait_for_cluster"].retry_delay = timedelta(0)

    result = run_dag(dag, run_conf={"cluster_name": "will-fail"})

    assert result.state == "failed"
    ti = result.ti("wait_for_cluster")
    assert (ti.state, ti.try_number) == ("failed", 1)
    assert result.ti("report").state == "upstream_failed"
    assert result.log_lines("AirflowFailException", result.xcom("create_cluster")["job_id"]), result.log


def test_dws_elb_example_binds_and_announces(cloud_simulator, examples, run_dag):
    result = run_dag(examples["example_cloudjobs_dws_elb"])

    assert result.state == "success", result.log
    assert result.xcom("create_elb")["phase"] == "SUCCEEDED"
    assert result.xcom("create_elb")["resource_id"]  # what bind_elb builds its path from
    binding = result.xcom("bind_elb")
    assert (binding["service"], binding["phase"]) == ("dws", "SUCCEEDED")
    assert result.ti("announce").state == "success"
    assert result.ti("investigate").state == "skipped"
    assert result.deferred == 2
    assert cloud_simulator.stats()["create_requests"] == 2


def test_dws_elb_example_investigates_a_failed_binding(cloud_simulator, examples, run_dag):
    result = run_dag(examples["example_cloudjobs_dws_elb"], run_conf={"dws_cluster_id": "dws-fail-0001"})

    assert result.state == "success", result.log  # fail_on_job_failure=False: the branch handles it
    binding = result.xcom("bind_elb")
    assert (binding["phase"], binding["is_terminal"]) == ("FAILED", True)
    assert result.ti("bind_elb").state == "success"
    assert result.ti("investigate").state == "success"
    assert result.ti("announce").state == "skipped"


def test_ecs_mapped_example_waits_on_every_server(cloud_simulator, examples, run_dag):
    result = run_dag(examples["example_cloudjobs_ecs_mapped"], run_conf={"servers": 3})

    assert result.state == "success", result.log
    job_ids = [result.xcom("create_server", "response", map_index=index)["job_id"] for index in range(3)]
    assert len(set(job_ids)) == 3
    waits = [result.ti("create_server", index) for index in range(3)]
    assert [ti.state for ti in waits] == ["success"] * 3
    jobs = [result.xcom("create_server", map_index=index) for index in range(3)]
    assert [job["job_id"] for job in jobs] == job_ids
    assert all(job["phase"] == "SUCCEEDED" for job in jobs)
    assert result.xcom("summarize") == [job["resource_id"] for job in jobs]
    assert result.deferred == 3
    assert cloud_simulator.stats()["create_requests"] == 3
    assert cloud_simulator.stats()["iam_token_calls"] == 1  # one token for the whole run
