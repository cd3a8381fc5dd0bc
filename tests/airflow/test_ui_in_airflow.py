"""The UI plugin inside Airflow (also on the oldest Airflow we support): Airflow finds it, and its API
answers from Airflow's own records after real DAG runs, only for DAGs the user may read."""

from __future__ import annotations

from typing import Any

import pytest
from dagtest_support import wait_task

from airflow_provider_cloudjobs.plugins import CloudJobsPlugin

# fastapi.testclient warns about its httpx transport on newer Starlette; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_airflow_loads_the_plugin_from_the_package() -> None:
    from airflow import plugins_manager
    from airflow.providers_manager import ProvidersManager

    info = {p["name"]: p for p in plugins_manager.get_plugin_info()}
    assert "cloudjobs" in info, sorted(info)
    views = {v["name"]: v for v in info["cloudjobs"]["external_views"]}
    assert views["Cloud jobs"]["destination"] == "nav"
    assert views["Cloud job"]["destination"] == "task_instance"
    assert views["Cloud job"]["href"].endswith("/ti/{DAG_ID}/{RUN_ID}/{TASK_ID}/{MAP_INDEX}")
    assert [a["url_prefix"] for a in info["cloudjobs"]["fastapi_apps"]] == ["/cloudjobs"]
    # Declared in the provider info too (what eager provider discovery loads).
    manager = ProvidersManager()
    manager.initialize_providers_plugins()
    declared = {p.name: p.plugin_class for p in manager.plugins}
    assert declared.get("cloudjobs") == "airflow_provider_cloudjobs.plugins.CloudJobsPlugin"


class OnlySomeDags:
    """An auth manager that lets the user read the task instances of the given DAGs only."""

    def __init__(self, readable: set[str]) -> None:
        self.readable = readable

    def is_authorized_dag(
        self, *, method: str, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        return method == "GET" and details is not None and details.id in self.readable


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch):
    """The plugin's app as the API server mounts it, with a logged-in user (auth itself: the e2e suite)."""
    import airflow.api_fastapi.app as api_app
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    def make(readable: set[str]) -> Any:
        monkeypatch.setattr(api_app, "get_auth_manager", lambda: OnlySomeDags(readable))
        root = FastAPI()
        app = CloudJobsPlugin.fastapi_apps[0]["app"]
        inner = app._load()
        inner.dependency_overrides[get_user] = lambda: object()
        root.mount("/cloudjobs", app)
        return TestClient(root)

    return make


def test_finished_waits_show_their_final_job_to_readers_only(
    cloud_simulator, conn_id, make_dag, run_dag, client
) -> None:
    ok_job = cloud_simulator.create_job("cce", polls_to_finish=2, sub_jobs=2, resource_name="<b>c1</b>")
    bad_job = cloud_simulator.create_job("dws", polls_to_finish=2, outcome="fail", message="no quota")
    with make_dag() as ok_dag:
        wait_task("sensor-deferrable", ok_job)
    with make_dag() as bad_dag:
        wait_task("sensor-poke", bad_job, "dws")
    ok_run = run_dag(ok_dag)
    bad_run = run_dag(bad_dag)
    assert ok_run.ti("wait").state == "success"
    assert bad_run.ti("wait").state == "failed"

    http = client({ok_dag.dag_id, bad_dag.dag_id})
    listed = http.get("/cloudjobs/api/waits")
    assert listed.status_code == 200, listed.text
    assert listed.headers["content-security-policy"].startswith("default-src 'none'")
    finished = {r["job_id"]: r for r in listed.json()["finished"]}
    assert finished[ok_job]["state"] == "success"
    assert finished[ok_job]["job"]["phase"] == "SUCCEEDED"
    assert finished[ok_job]["job"]["resource_name"] == "<b>c1</b>"
    assert finished[ok_job]["job_source"] == "xcom"
    assert finished[bad_job]["state"] == "failed"
    assert finished[bad_job]["service"] == "dws"
    assert listed.json()["in_flight"] == []

    tab = http.get(f"/cloudjobs/api/ti/{bad_dag.dag_id}/{bad_run.run_id}/wait/-1")
    assert tab.status_code == 200, tab.text
    failed = tab.json()["task"]
    assert failed["job"]["phase"] == "FAILED"  # asked from the cloud: a failed task has no XCom
    assert failed["job"]["message"] == "no quota"
    assert failed["job_source"] == "cloud"
    assert "raw" not in failed["job"]
    page = http.get(f"/cloudjobs/ti/{bad_dag.dag_id}/{bad_run.run_id}/wait/{{MAP_INDEX}}")
    assert page.status_code == 200
    assert 'src="/cloudjobs/static/cloudjobs.js"' in page.text

    # Someone who may read only the first DAG sees nothing of the second.
    narrow = client({ok_dag.dag_id})
    seen = {r["job_id"] for r in narrow.get("/cloudjobs/api/waits").json()["finished"]}
    assert ok_job in seen
    assert bad_job not in seen
    assert narrow.get(f"/cloudjobs/api/ti/{bad_dag.dag_id}/{bad_run.run_id}/wait/-1").status_code == 403
    # The tab's shell is the same empty page for everyone: what it shows comes from the API above.
    shell = narrow.get(f"/cloudjobs/ti/{bad_dag.dag_id}/{bad_run.run_id}/wait/-1")
    assert shell.status_code == 200
    assert bad_job not in shell.text
    assert "no quota" not in shell.text


def test_a_service_the_trigger_carries_is_read_with_that_profile(cloud_simulator, conn_id) -> None:
    """A service registered only where the DAG runs (its profile in the trigger's kwargs) is unknown in
    the API server; the page reads the job with the profile the trigger carries."""
    import json

    from airflow_provider_cloudjobs.exceptions import CloudJobsInputError
    from airflow_provider_cloudjobs.plugins import live
    from airflow_provider_cloudjobs.profiles import get_profile

    job_id = cloud_simulator.create_job("ecs", polls_to_finish=1)
    carried = json.dumps(get_profile("ecs").to_dict())
    found = live._fetch_with_hook((conn_id, "my-servers", None, job_id, carried, None))
    assert found.job is not None
    assert found.job["job_id"] == job_id
    assert found.job["phase"] == "SUCCEEDED"
    with pytest.raises(CloudJobsInputError):
        live._fetch_with_hook((conn_id, "my-servers", None, job_id, None, None))


def test_the_page_looks_a_task_up_under_the_instance_its_wait_recorded(cloud_simulator, conn_id) -> None:
    """A deferred wait records its path ids in the trigger's kwargs, a poking one in its rendered fields;
    either way the Cloud jobs page finds the task under the same instance."""
    from airflow_provider_cloudjobs.plugins import live, records

    ids = {"instance_id": "inst-42"}
    job_id = cloud_simulator.create_job("kafka", polls_to_finish=1, path_params=ids)
    deferred = records.WaitRecord("d", "r", "t", -1, "deferred", 1, "CloudJobSensor")
    records._apply_trigger(
        deferred, {"job_id": job_id, "service": "kafka", "cloudjobs_conn_id": conn_id, "path_params": ids}
    )
    poking = records.WaitRecord("d", "r", "t2", -1, "running", 1, "CloudJobSensor")
    rendered = {"job_id": job_id, "service": "kafka", "cloudjobs_conn_id": conn_id, "path_params": ids}
    records._apply_rendered(poking, rendered)

    assert deferred.lookup_key == poking.lookup_key
    found = live._fetch_with_hook(deferred.lookup_key)
    assert found.error is None
    assert (found.job["job_id"], found.job["phase"]) == (job_id, "SUCCEEDED")
    # Another instance's task of the same id is another cache entry, not this one.
    other = records.WaitRecord("d", "r", "t3", -1, "running", 1, "CloudJobSensor")
    records._apply_rendered(other, {**rendered, "path_params": '{"instance_id": "inst-43"}'})
    assert other.path_params == {"instance_id": "inst-43"}
    assert other.lookup_key != deferred.lookup_key


def test_a_connection_saved_in_the_metadata_database_is_found_by_the_page(
    cloud_simulator, airflow_db, monkeypatch
) -> None:
    """A connection saved in the UI lives in the metadata database; the API server must find it there
    (on Airflow 3.1 the Task SDK's lookup only asks a task supervisor, which the API server lacks)."""
    import json

    from airflow.models.connection import Connection
    from airflow.sdk.execution_time import task_runner

    # As in the API server, which runs no task: no channel to a task supervisor (dag.test() sets one).
    monkeypatch.delattr(task_runner, "SUPERVISOR_COMMS", raising=False)
    from airflow.utils.session import create_session

    from airflow_provider_cloudjobs.plugins import live
    from airflow_provider_cloudjobs.testing import simulator

    conn_id = "cloudjobs_saved_in_db"
    saved = Connection(
        conn_id=conn_id,
        conn_type="cloudjobs",
        login=simulator.USER_NAME,
        password=simulator.PASSWORD,
        extra=json.dumps(cloud_simulator.connection_extra(auth_type="password")),
    )
    with create_session() as session:
        session.add(saved)
    try:
        job_id = cloud_simulator.create_job("cce", polls_to_finish=1)
        found = live._fetch_with_hook((conn_id, "cce", None, job_id, None, None))
        assert found.job is not None
        assert (found.job["job_id"], found.job["phase"]) == (job_id, "SUCCEEDED")
    finally:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == conn_id).delete()
        live._hooks.pop(conn_id, None)
