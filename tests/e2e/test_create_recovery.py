"""End to end: a CloudRequestOperator's task process dies while it polls; the retry reconnects to the job
the first try created instead of creating a second cluster (Airflow 3.3's task state store). Before 3.3
there is no store: the test shows what the README promises there (a warning, and the next try creates again).

The deployment's LocalExecutor runs each task as a supervisor process and a forked task process; the
REST API shows the task process's pid. SIGKILL to that pid is what an out-of-memory kill or a crashed
task does: the supervisor reports the try failed, and with ``retries=1`` the scheduler starts try 2.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from airflow_provider_cloudjobs.testing import simulator

from .harness import AIRFLOW_3_3_PLUS, Deployment, wait_for
from .test_deployment import assert_no_secret, lines_with

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

DAG_ID = "e2e_create_sync"


def parent_pid(pid: int) -> int:
    # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after the last ')'.
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_killed_task_process_is_retried_and_reconnects_without_a_second_create(
    deployment: Deployment, sim: simulator.SimulatorClient
) -> None:
    api = deployment.api
    wait_for(
        f"DAG {DAG_ID} to be parsed",
        lambda: api.get(f"/api/v2/dags/{DAG_ID}", expect=(200, 404)).get("dag_id"),
        timeout=120,
        check=deployment.check_alive,
    )
    api.unpause(DAG_ID)
    # The cluster's job moves by wall time: 6 steps of 6 s, ~30 s from create to Success, so try 1 is
    # still polling a running job when it is killed, and try 2 finds it still running.
    sim.configure(default_polls_to_finish=6, seconds_per_step=6)
    run_id = api.trigger(DAG_ID, {"cluster_name": "e2e-crash-cluster"})

    # Try 1 created the cluster (its answer is XCom "response") and is polling the job.
    ti = deployment.wait_ti_state(DAG_ID, run_id, "create", ["running", "success", "failed"])
    assert ti["state"] == "running", ti
    response = wait_for(
        "try 1 to push the create answer",
        lambda: api.get(
            api.ti_path(DAG_ID, run_id, "create") + "/xcomEntries/response", expect=(200, 404)
        ).get("value"),
        timeout=60,
    )
    job_id = api.xcom(DAG_ID, run_id, "create", "response")["status"]["jobID"]
    assert job_id in str(response)
    wait_for("try 1 to poll the job twice", lambda: sim.job_state(job_id)["gets"] >= 2, timeout=60)
    ti = api.ti(DAG_ID, run_id, "create")
    assert (ti["state"], ti["try_number"]) == ("running", 1), ti
    pid = int(ti["pid"])
    # Only a process of this deployment: the task process's parent (the supervisor) is in the
    # scheduler's process group (the LocalExecutor's workers), the task itself in a group of its own.
    scheduler = deployment.services["scheduler"].popen
    assert scheduler is not None
    assert os.getpgid(parent_pid(pid)) == scheduler.pid, "pid is not a task process of this deployment"
    creates_at_kill = sim.stats()["create_requests"]
    gets_at_kill = sim.job_state(job_id)["gets"]
    assert sim.job_state(job_id)["is_terminal"] is False

    os.kill(pid, signal.SIGKILL)
    if not AIRFLOW_3_3_PLUS:
        assert_a_later_try_creates_again(deployment, sim, run_id, job_id)
        return

    run = deployment.wait_run_done(DAG_ID, run_id, timeout=180)
    assert run["state"] == "success", run
    ti = api.ti(DAG_ID, run_id, "create")
    assert (ti["state"], ti["try_number"]) == ("success", 2), ti
    tries = api.tries(DAG_ID, run_id, "create")
    assert [t["try_number"] for t in tries] == [1, 2], tries
    assert tries[-1]["state"] == "success", tries

    stats = sim.stats()
    assert creates_at_kill == 1
    assert stats["create_requests"] == 1, "the retry sent the create request again"
    job_state = sim.job_state(job_id)
    assert job_state["gets"] > gets_at_kill, "try 2 did not poll the job"
    assert job_state["phase"] == "success"
    job = api.xcom(DAG_ID, run_id, "create")
    assert (job["job_id"], job["phase"], job["resource_name"]) == (job_id, "SUCCEEDED", "e2e-crash-cluster")
    assert api.xcom(DAG_ID, run_id, "create", "response")["status"]["jobID"] == job_id

    log1 = api.log(DAG_ID, run_id, "create", 1)
    log2 = api.log(DAG_ID, run_id, "create", 2)
    stored = lines_with(log1, f"Job {job_id} stored in the task state store")
    assert stored, log1[-3000:]
    sent = lines_with(log1, "Sending POST /api/v3/projects/{project_id}/clusters to CCE")
    assert sent, log1[-3000:]
    reconnect = lines_with(log2, f"Try 2: reconnecting to CCE job {job_id}, started by try 1")
    assert reconnect, log2[-3000:]
    assert not lines_with(log2, "Sending POST"), "try 2 sent a request"
    succeeded = lines_with(log2, f"CCE job {job_id} succeeded")
    assert succeeded, log2[-3000:]
    for log in (log1, log2):
        assert_no_secret(log)
    deployment.observe(
        "8_create_crash_recovery",
        run_id=run_id,
        job_id=job_id,
        killed_pid=pid,
        creates_at_kill=creates_at_kill,
        creates_at_end=stats["create_requests"],
        job_gets_at_kill=gets_at_kill,
        job_gets_at_end=job_state["gets"],
        tries=[{k: t[k] for k in ("try_number", "state", "start_date", "end_date")} for t in tries],
        try1_log=sent + stored,
        try2_log=reconnect + succeeded,
    )


def assert_a_later_try_creates_again(
    deployment: Deployment, sim: simulator.SimulatorClient, run_id: str, first_job_id: str
) -> None:
    """Airflow 3.1 and 3.2: no task state store, so each try says recovery is off and a later try sends the
    create again. (3.1 fails a task killed by a signal without a retry, so a person clears it, as they would.)"""
    api = deployment.api
    run = deployment.wait_run_done(DAG_ID, run_id, timeout=180)
    if api.ti(DAG_ID, run_id, "create")["try_number"] == 1:
        assert run["state"] == "failed", run
        api.post(
            f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
            {"dag_run_id": run_id, "task_ids": ["create"], "dry_run": False, "only_failed": True},
        )

    def try_2_done() -> dict | None:
        ti = api.ti(DAG_ID, run_id, "create")
        return ti if ti["try_number"] == 2 and ti["state"] in ("success", "failed") else None

    ti = wait_for("try 2 to finish", try_2_done, timeout=180, check=deployment.check_alive)
    assert ti["state"] == "success", ti
    assert sim.stats()["create_requests"] == 2, "try 2 did not send the create again"
    second = api.xcom(DAG_ID, run_id, "create")
    assert second["phase"] == "SUCCEEDED", second
    assert second["job_id"] != first_job_id, "try 2 reconnected to try 1's job"
    log1 = api.log(DAG_ID, run_id, "create", 1)
    log2 = api.log(DAG_ID, run_id, "create", 2)
    for log in (log1, log2):
        assert lines_with(log, "crash recovery is off"), log[-3000:]
        assert_no_secret(log)
    assert lines_with(log2, "Sending POST /api/v3/projects/{project_id}/clusters to CCE"), log2[-3000:]
    assert not lines_with(log2, "reconnecting"), log2[-3000:]
    deployment.observe(
        "8_create_crash_no_state_store",
        run_id=run_id,
        first_job_id=first_job_id,
        second_job_id=second["job_id"],
        creates=sim.stats()["create_requests"],
        tries=[{k: t[k] for k in ("try_number", "state")} for t in api.tries(DAG_ID, run_id, "create")],
    )
