"""CloudRequestOperator in real DAG runs (``dag.test()``): the creating call, the wait, crash recovery.

Every request goes to the cloud simulator, which counts the creating calls it received
(``create_requests``): the number a user would otherwise find as duplicate clusters in the console.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk import task
from dagtest_support import wait_task

from airflow_provider_cloudjobs.links import CONSOLE_URL_KEY
from airflow_provider_cloudjobs.operators.cloudjobs import STATE_KEY, CloudRequestOperator, answer_shape
from airflow_provider_cloudjobs.testing.contract import NORMALISED_JOB_KEYS
from airflow_provider_cloudjobs.testing.simulator import PROJECT_ID


@pytest.fixture(autouse=True)
def _secrets_masker_as_before():
    """Each DAG run masks the IAM tokens it got in this process's secrets masker, which only grows (a real
    task process starts with an empty one) and recompiles one regex of every secret on each addition. Put
    it back after each test, so this module's many runs do not grow it for the tests after them (a larger
    regex is recompiled on every later mask, which tests measuring memory with tracemalloc count)."""
    from airflow.sdk._shared.secrets_masker.secrets_masker import _secrets_masker

    masker = _secrets_masker()
    patterns, replacer = set(masker.patterns), masker.replacer
    yield
    masker.patterns, masker.replacer = patterns, replacer


def has_task_state_store() -> bool:
    try:
        import airflow.sdk.bases.resumablejobmixin  # noqa: F401  (arrived with the task state store, 3.3)
    except ImportError:
        return False
    return True


needs_store = pytest.mark.skipif(
    not has_task_state_store(), reason="this Airflow has no task state store (Airflow 3.3+)"
)
MODES = ["deferrable", "sync"]

#: The creating call of each example DAG's service: path, body (``NAME`` is the resource name; the simulator
#: fails the job of a name holding "fail"), and where the answer keeps the job id.
CREATES: dict[str, tuple[str, Any, tuple[str, ...]]] = {
    "cce": (
        "/api/v3/projects/{project_id}/clusters",
        {"kind": "Cluster", "apiVersion": "v3", "metadata": {"name": "NAME"}, "spec": {}},
        ("status", "jobID"),
    ),
    "ecs": (
        "/v1/{project_id}/cloudservers",
        {"server": {"name": "NAME", "flavorRef": "s6.small.1", "adminPass": "Ecs-Admin-P4ss!"}},
        ("job_id",),
    ),
    "elb": (
        "/v1.0/{project_id}/elbaas/loadbalancers",
        {"name": "NAME", "vpc_id": "vpc-id", "type": "Internal"},
        ("job_id",),
    ),
    "dws": ("/v1.0/{project_id}/clusters/NAME/elbs/elb-0001", None, ("job_id",)),
}


def named(value: Any, name: str) -> Any:
    return json.loads(json.dumps(value).replace("NAME", name))


def request_task(
    service: str = "cce",
    mode: str = "sync",
    name: str = "demo",
    *,
    cls: type[CloudRequestOperator] | None = None,
    **kwargs: Any,
) -> CloudRequestOperator:
    path, body, _ = CREATES[service]
    kwargs.setdefault("task_id", "create")
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("timeout", 30.0)
    kwargs.setdefault("path", path.replace("NAME", name))
    kwargs.setdefault("json", named(body, name))
    return (cls or CloudRequestOperator)(service=service, deferrable=mode == "deferrable", **kwargs)


def job_id_in(answer: dict[str, Any], service: str) -> str:
    value: Any = answer
    for part in CREATES[service][2]:
        value = value[part]
    return str(value)


def creates(sim) -> int:
    return int(sim.stats()["create_requests"])


# -- what a DAG author sees on a good day -------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("service", sorted(CREATES))
def test_sends_once_waits_and_returns_the_job(cloud_simulator, conn_id, make_dag, run_dag, service, mode):
    cloud_simulator.configure(default_polls_to_finish=3)
    with make_dag() as dag:
        create = request_task(service, mode, name="orders-prod")

        @task
        def downstream(job: dict) -> str:
            return f"{job['job_id']} {job['phase']}"

        downstream(create.output)

    result = run_dag(dag)

    assert result.state == "success", result.log
    ti = result.ti("create")
    assert (ti.state, ti.try_number) == ("success", 1)
    answer = result.xcom("create", "response")
    job_id = job_id_in(answer, service)
    job = result.xcom("create")
    assert set(job) == NORMALISED_JOB_KEYS
    assert (job["service"], job["job_id"], job["phase"], job["is_terminal"]) == (
        service,
        job_id,
        "SUCCEEDED",
        True,
    )
    assert result.xcom("downstream") == f"{job_id} SUCCEEDED"
    assert creates(cloud_simulator) == 1
    assert cloud_simulator.stats()["job_polls"][job_id] == 3
    assert result.deferred == (1 if mode == "deferrable" else 0)
    if service == "cce":
        assert result.xcom("create", CONSOLE_URL_KEY)
    assert result.log_lines("Sending POST", "once: not repeated within this try")
    if service == "ecs":
        assert "Ecs-Admin-P4ss!" not in result.log  # the request body is never logged
    if has_task_state_store():
        assert result.log_lines(f"Job {job_id} stored in the task state store")
    else:
        assert result.log_lines("no task state store", "crash recovery is off")


def test_path_body_service_and_project_are_rendered(cloud_simulator, conn_id, make_dag, run_dag):
    with make_dag() as dag:
        CloudRequestOperator(
            task_id="create",
            service="{{ 'c' + 'ce' }}",
            project_id="{{ '" + PROJECT_ID + "' }}",
            path="/api/v3/projects/{project_id}/{{ 'clusters' }}",
            json={"kind": "Cluster", "metadata": {"name": "{{ task.task_id }}-{{ ti.try_number }}"}},
            wait_for_completion=False,
        )

    result = run_dag(dag)

    assert result.state == "success", result.log
    answer = result.xcom("create", "response")
    assert answer["metadata"]["name"] == "create-1"  # the simulator echoes the cluster it created
    job = result.xcom("create")
    assert cloud_simulator.job_state(job["job_id"])["resource_name"] == "create-1"


def test_without_waiting_returns_the_job_right_after_the_create(cloud_simulator, conn_id, make_dag, run_dag):
    cloud_simulator.configure(default_polls_to_finish=5)
    with make_dag() as dag:
        request_task("cce", "deferrable", wait_for_completion=False, name="no-wait")

    result = run_dag(dag)

    assert result.state == "success", result.log
    job = result.xcom("create")
    assert (job["phase"], job["is_terminal"]) == ("PENDING", False)
    assert job["job_id"] == job_id_in(result.xcom("create", "response"), "cce")
    assert cloud_simulator.stats()["job_polls"][job["job_id"]] == 1
    assert result.deferred == 0
    assert creates(cloud_simulator) == 1


# -- every Outcomes row of the wait, after a create ---------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_failed_job_fails_without_retries_and_without_a_second_create(
    cloud_simulator, conn_id, make_dag, run_dag, mode
):
    cloud_simulator.configure(default_polls_to_finish=2)
    with make_dag() as dag:  # retries=2, retry_delay=0: a retry would show as try_number 3
        request_task("cce", mode, name="cluster-will-fail")

    result = run_dag(dag)

    ti = result.ti("create")
    assert (ti.state, ti.try_number) == ("failed", 1)
    job_id = job_id_in(result.xcom("create", "response"), "cce")
    lines = result.log_lines("AirflowFailException", f"CCE job {job_id} failed")
    assert any("Insufficient server quota" in line for line in lines), result.log
    assert creates(cloud_simulator) == 1
    if has_task_state_store():  # how to start afresh, since a cleared try would reconnect to this job
        assert result.log_lines("delete the task state key", STATE_KEY)


@pytest.mark.parametrize("mode", MODES)
def test_fail_on_job_failure_false_returns_the_failed_job(cloud_simulator, conn_id, make_dag, run_dag, mode):
    cloud_simulator.configure(default_polls_to_finish=2)
    with make_dag() as dag:
        request_task("elb", mode, fail_on_job_failure=False, name="elb-fail")

    result = run_dag(dag)

    assert result.ti("create").state == "success"
    job = result.xcom("create")
    assert (job["phase"], job["error_code"]) == ("FAILED", "ELB.1050")
    assert creates(cloud_simulator) == 1


@pytest.mark.parametrize("mode", MODES)
def test_timeout_fails_clearly(cloud_simulator, conn_id, make_dag, run_dag, mode):
    cloud_simulator.configure(default_polls_to_finish=100_000)
    with make_dag() as dag:
        request_task("ecs", mode, timeout=0.6, poll_interval=0.1, name="slow")

    result = run_dag(dag)

    ti = result.ti("create")
    assert (ti.state, ti.try_number) == ("failed", 1)
    job_id = job_id_in(result.xcom("create", "response"), "ecs")
    assert result.log_lines("AirflowFailException", "Timed out waiting for ECS job", job_id), result.log
    assert creates(cloud_simulator) == 1


@pytest.mark.parametrize("mode", MODES)
def test_retryable_faults_while_polling_do_not_end_the_wait(
    cloud_simulator, conn_id, make_dag, run_dag, fast_backoff, mode
):
    cloud_simulator.configure(default_polls_to_finish=2)
    cloud_simulator.inject_fault("503", path_contains="/jobs/", count=2)
    with make_dag() as dag:
        request_task("cce", mode, name="faulty")

    result = run_dag(dag)

    ti = result.ti("create")
    assert (ti.state, ti.try_number) == ("success", 1), result.log
    assert cloud_simulator.stats()["faults_served"] == 2
    assert creates(cloud_simulator) == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_job_not_visible_yet_is_waited_for_within_the_grace(
    cloud_simulator, conn_id, make_dag, run_dag, fast_backoff, mode
):
    cloud_simulator.configure(default_polls_to_finish=2)
    cloud_simulator.inject_fault("404", path_contains="/jobs/", count=2)
    with make_dag() as dag:
        request_task("cce", mode, name="late")

    result = run_dag(dag)

    assert result.ti("create").state == "success", result.log
    assert result.log_lines("is not visible yet (404)"), result.log
    assert creates(cloud_simulator) == 1


def test_an_expired_token_on_the_create_is_refreshed_and_the_refused_request_sent_again(
    cloud_simulator, conn_id, make_dag, run_dag
):
    cloud_simulator.configure(default_polls_to_finish=1)
    cloud_simulator.inject_fault("token_expired", path_contains="/clusters", count=1)
    with make_dag(retries=0) as dag:
        request_task("cce", name="token")

    result = run_dag(dag)

    assert result.ti("create").state == "success", result.log
    stats = cloud_simulator.stats()
    assert stats["create_requests"] == 2  # the first was refused with 401: nothing was created
    assert stats["jobs"] == 1
    assert stats["iam_token_calls"] == 2


def test_wrong_password_fails_at_once_before_anything_is_sent(
    cloud_simulator, cloudjobs_conn, make_dag, run_dag
):
    cloudjobs_conn(password="Bad-Secret-42")
    with make_dag() as dag:
        request_task("cce", name="never")

    result = run_dag(dag)

    ti = result.ti("create")
    assert (ti.state, ti.try_number) == ("failed", 1)
    assert result.log_lines("AirflowFailException", "username or password is wrong"), result.log
    assert "Bad-Secret-42" not in result.log
    stats = cloud_simulator.stats()
    assert (stats["iam_token_calls"], stats["create_requests"]) == (1, 0)


# -- the creating call itself ---------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["500", "502", "reset", "malformed_json"])
def test_a_failed_create_is_not_retried_within_the_try(cloud_simulator, conn_id, make_dag, run_dag, fault):
    cloud_simulator.inject_fault(fault, path_contains="/clusters", count=1)
    with make_dag(retries=0) as dag:
        request_task("cce", name="unlucky")

    result = run_dag(dag)

    ti = result.ti("create")
    assert (ti.state, ti.try_number) == ("failed", 1)
    assert creates(cloud_simulator) == 1  # sent once: the fault was not followed by a second POST
    assert cloud_simulator.stats()["job_requests"] == 0
    assert result.log_lines("It was sent once and not repeated in this try"), result.log
    assert not result.has_xcom("create", "response")


def test_a_retry_after_a_failed_create_sends_it_again(cloud_simulator, conn_id, make_dag, run_dag):
    """The window recovery cannot close: no answer, no job id to reconnect to. One create per try."""
    cloud_simulator.configure(default_polls_to_finish=1)
    cloud_simulator.inject_fault("500", path_contains="/clusters", count=1)
    with make_dag(retries=1) as dag:
        request_task("cce", name="second-try")

    result = run_dag(dag)

    ti = result.ti("create")
    assert (ti.state, ti.try_number) == ("success", 2), result.log
    assert creates(cloud_simulator) == 2


def test_a_throttled_create_says_the_cloud_did_not_take_it(cloud_simulator, conn_id, make_dag, run_dag):
    cloud_simulator.inject_fault("429", path_contains="/cloudservers", count=1, retry_after=1)
    with make_dag(retries=0) as dag:
        request_task("ecs", name="throttled")

    result = run_dag(dag)

    assert result.ti("create").state == "failed"
    assert creates(cloud_simulator) == 1
    assert result.log_lines("throttled (HTTP 429): the cloud did not take it"), result.log


def test_an_answer_without_a_job_id_fails_quoting_its_shape_and_no_secret(
    cloud_simulator, conn_id, make_dag, run_dag
):
    # DWS's create-cluster answers {"cluster": {"id": ...}}: the cluster's id, but no job to wait on.
    body = {
        "cluster": {
            "name": "dw-1",
            "node_type": "dws.m3.xlarge",
            "user_name": "dbadmin",
            "user_pwd": "Dws-P4ss!",
        }
    }
    with make_dag() as dag:  # retries=2: the cloud accepted the request, so no retry may send it again
        CloudRequestOperator(task_id="create", service="dws", path="/v1.0/{project_id}/clusters", json=body)

    result = run_dag(dag)

    ti = result.ti("create")
    assert (ti.state, ti.try_number) == ("failed", 1)
    assert creates(cloud_simulator) == 1
    lines = result.log_lines("AirflowFailException", "has no job id at 'job_id', where DWS puts it")
    assert any("The answer's shape: {cluster: {id: str}}" in line for line in lines), result.log
    assert "Dws-P4ss!" not in result.log


def test_job_id_path_finds_the_job_id_elsewhere_and_a_wrong_one_fails(
    cloud_simulator, conn_id, make_dag, run_dag
):
    with make_dag() as dag:
        request_task(
            "cce", task_id="right", job_id_path="status.jobID", wait_for_completion=False, name="custom-path"
        )
        request_task("ecs", task_id="wrong", job_id_path="serverIds")

    result = run_dag(dag)

    assert result.ti("right").state == "success"
    assert result.xcom("right")["job_id"] == result.xcom("right", "response")["status"]["jobID"]
    assert result.ti("wrong").state == "failed"
    assert result.log_lines("has a [str] at 'serverIds' (job_id_path), not a job id"), result.log
    assert "Ecs-Admin-P4ss!" not in result.log


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "clusters"}, "path must be a string starting with '/'"),
        ({"path": "/api/v3/projects/{project_id}/../clusters"}, "contains a '..' segment"),
        ({"service": "nope"}, "Unknown service 'nope'"),
        ({"project_id": "a/b"}, "is not a project id"),
    ],
)
def test_bad_input_is_rejected_before_any_request(
    cloud_simulator, conn_id, make_dag, run_dag, kwargs, message
):
    service = kwargs.pop("service", "cce")
    with make_dag() as dag:
        if service == "cce":
            request_task("cce", **kwargs)
        else:
            CloudRequestOperator(task_id="create", service=service, path="/v1/{project_id}/x", **kwargs)

    result = run_dag(dag)

    ti = result.ti("create")
    assert (ti.state, ti.try_number) == ("failed", 1)
    assert result.log_lines(message), result.log
    assert cloud_simulator.stats()["requests"] == 0


def test_a_bad_method_is_refused_when_the_dag_is_defined():
    with pytest.raises(ValueError, match="method must be one of"):
        CloudRequestOperator(task_id="x", service="cce", path="/x", method="TRACE")


def test_the_shape_of_an_answer_holds_keys_and_types_never_values():
    answer = {"server": {"adminPass": "s3cret-value", "count": 2, "ok": True, "tags": ["a", "b"]}, "x": None}
    shape = answer_shape(answer)
    assert shape == "{server: {adminPass: str, count: number, ok: bool, tags: [str, … 2 items]}, x: null}"
    assert "s3cret" not in shape


# -- crash recovery (Airflow 3.3+: the task state store) ------------------------------------------------
class DiesOnTry1(CloudRequestOperator):
    """A task whose first try dies after the cloud accepted the request, as a lost worker would: in the
    first poll (sync) or when the trigger hands the job back (deferrable)."""

    def poll(self, wait, profile, context, interval):
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated crash of try 1 after the create")
        return super().poll(wait, profile, context, interval)

    def execute_complete(self, context, event):
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated crash of try 1 after the create")
        return super().execute_complete(context, event)


@needs_store
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("name", "polls", "final"),
    [("reconnect-running", 4, "success"), ("reconnect-done", 1, "success"), ("reconnect-fail", 1, "failed")],
)
def test_a_later_try_reconnects_instead_of_creating_again(
    cloud_simulator, conn_id, make_dag, run_dag, mode, name, polls, final
):
    cloud_simulator.configure(default_polls_to_finish=polls)
    with make_dag(retries=1) as dag:
        request_task("cce", mode, name, cls=DiesOnTry1)

    result = run_dag(dag)

    ti = result.ti("create")
    assert (ti.state, ti.try_number) == (final, 2), result.log
    assert creates(cloud_simulator) == 1  # the retry did not send the request again
    job_id = job_id_in(result.xcom("create", "response"), "cce")  # re-pushed by try 2 from the store
    assert result.log_lines("simulated crash of try 1")
    assert result.log_lines(f"Try 2: reconnecting to CCE job {job_id}, started by try 1"), result.log
    if final == "success":
        job = result.xcom("create")
        assert (job["job_id"], job["phase"]) == (job_id, "SUCCEEDED")
    else:
        lines = result.log_lines("AirflowFailException", f"CCE job {job_id} failed")
        assert any("Insufficient server quota" in line for line in lines), result.log
        assert result.log_lines("delete the task state key", STATE_KEY)


@needs_store
def test_reconnecting_without_waiting_returns_the_job_as_it_is_now(
    cloud_simulator, conn_id, make_dag, run_dag
):
    cloud_simulator.configure(default_polls_to_finish=10)

    class DiesAfterStoring(CloudRequestOperator):
        def _wait_or_look(self, context, *, reconnected):
            if context["ti"].try_number == 1:
                raise RuntimeError("simulated crash of try 1 after the create")
            return super()._wait_or_look(context, reconnected=reconnected)

    with make_dag(retries=1) as dag:
        request_task("cce", name="look", cls=DiesAfterStoring, wait_for_completion=False)

    result = run_dag(dag)

    ti = result.ti("create")
    assert (ti.state, ti.try_number) == ("success", 2), result.log
    job = result.xcom("create")
    assert job["job_id"] == job_id_in(result.xcom("create", "response"), "cce")
    assert job["is_terminal"] is False
    assert creates(cloud_simulator) == 1


@needs_store
def test_what_the_store_holds_is_plain_json_without_the_request_body(
    cloud_simulator, conn_id, make_dag, run_dag
):
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.utils.session import create_session

    with make_dag() as dag:
        request_task("ecs", wait_for_completion=False, name="stored")

    result = run_dag(dag)

    with create_session() as session:
        rows = session.query(TaskStateStoreModel).filter_by(dag_id=dag.dag_id, task_id="create").all()
        stored = {row.key: json.loads(row.value) for row in rows}
    record = stored[STATE_KEY]
    assert record["job_id"] == result.xcom("create")["job_id"]
    assert (record["service"], record["method"], record["try_number"]) == ("ecs", "POST", 1)
    assert record["response"] == result.xcom("create", "response")
    assert "Ecs-Admin-P4ss!" not in json.dumps(stored)


@pytest.mark.skipif(has_task_state_store(), reason="this Airflow has a task state store: recovery is on")
def test_without_a_task_state_store_a_retry_creates_again_and_the_log_said_so(
    cloud_simulator, conn_id, make_dag, run_dag
):
    cloud_simulator.configure(default_polls_to_finish=1)
    with make_dag(retries=1) as dag:
        request_task("cce", name="old-airflow", cls=DiesOnTry1)

    result = run_dag(dag)

    ti = result.ti("create")
    assert (ti.state, ti.try_number) == ("success", 2)
    assert creates(cloud_simulator) == 2
    assert len(result.log_lines("no task state store", "crash recovery is off")) == 2  # once per try


def test_the_plain_operator_still_waits_on_a_given_job(cloud_simulator, conn_id, make_dag, run_dag):
    """CloudRequestOperator is built on CloudJobOperator: the latter keeps its own contract."""
    job_id = cloud_simulator.create_job("dws", polls_to_finish=2)
    with make_dag() as dag:
        wait_task("operator-sync", job_id, "dws")

    result = run_dag(dag)

    assert result.xcom("wait")["phase"] == "SUCCEEDED"
    assert creates(cloud_simulator) == 0
