"""End to end: the provider inside a real Airflow 3 deployment, observed only through Airflow's REST API.

One deployment (api-server, scheduler with the LocalExecutor and a single executor slot,
dag-processor, triggerer; SQLite) and one cloud simulator serve every test here; see ``harness.py``.
What each test saw is also written to ``test-output/e2e/observations.json``.
Run alone with ``python3 dev.py test tests/e2e``.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

import pytest

from airflow_provider_cloudjobs.testing import sim_common, simulator
from airflow_provider_cloudjobs.testing.contract import NORMALISED_JOB_KEYS as JOB_KEYS

from .browser import find_chromium, screenshot
from .harness import AIRFLOW_3_2_PLUS, CONSOLE_URL, SECRETS, SHORT_TIMEOUT, Deployment, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

CCE = "example_cloudjobs_cce"
FORM_FIELDS = ("auth_type", "domain_name", "region", "project_id", "iam_endpoint", "endpoints", "console_url")
# An IAM token as the simulator issues them (long, base64url, "MII..."): must never reach a log.
TOKEN_RE = re.compile(r"MII[A-Za-z0-9_\-]{100,}")
WAITING = ["deferred", "success", "failed", "up_for_retry"]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, "a credential appears in a task log"
    assert not TOKEN_RE.search(text), "an IAM token appears in a task log"


def short(job_id: str) -> str:
    return job_id if len(job_id) <= 12 else job_id[:8] + "…"


def lines_with(log: str, *needles: str) -> list[str]:
    """Log lines containing every needle (the exception detail of an error line counts), shortened."""
    found = []
    for line in log.splitlines():
        if all(n in line for n in needles):
            event, _, context = line.partition(" {")
            detail = re.search(r'"exc_type": "(\w+)", "exc_value": "((?:[^"\\]|\\.)*)"', context)
            found.append(f"{event} {detail.group(1)}: {detail.group(2)}" if detail else event)
    return found


def timestamp(value: Any) -> float:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


# -- 1. the provider as Airflow sees it ------------------------------------------------------------
def test_provider_and_connection_form_are_served(deployment: Deployment) -> None:
    api = deployment.api
    listed = api.get("/api/v2/providers", params={"limit": 100})["providers"]
    providers = {p["package_name"]: p for p in listed}
    assert "airflow-provider-cloudjobs" in providers, sorted(providers)
    assert providers["airflow-provider-cloudjobs"]["version"] == "0.1.0"

    # What the UI's connection form is built from (Airflow 3.2+: conn-fields + ui-field-behaviour).
    hook_meta = {h["connection_type"]: h for h in api.get("/ui/connections/hook_meta")}
    meta = hook_meta["cloudjobs"]
    assert meta["hook_class_name"] == "airflow_provider_cloudjobs.hooks.cloudjobs.CloudJobsHook"
    assert meta["hook_name"] == "Huawei Cloud Jobs"
    if not AIRFLOW_3_2_PLUS:
        # Airflow 3.1 reads no conn-fields: the type is offered, its extras go in the Extra JSON (README).
        assert (meta["standard_fields"], meta["extra_fields"]) == (None, None), meta
        deployment.observe("1_provider", provider=providers["airflow-provider-cloudjobs"], hook_meta=meta)
        return
    standard = meta["standard_fields"]
    assert standard["host"]["hidden"]
    assert standard["port"]["hidden"]
    assert not standard["login"]["hidden"]
    assert standard["login"]["title"]
    assert standard["password"]["title"]
    assert standard["password"]["placeholder"]
    extra = meta["extra_fields"]
    for name in FORM_FIELDS:
        assert name in extra, f"connection form lacks {name}: {sorted(extra)}"
        assert extra[name]["schema"].get("title"), f"{name} has no label"
    assert extra["auth_type"]["schema"]["enum"] == ["password", "aksk", "token"]
    assert extra["auth_type"]["value"] == "password"
    assert extra["token"]["schema"].get("format") == "password"

    # Every example DAG (and the suite's own) parsed without an import error.
    errors = api.get("/api/v2/importErrors")
    assert errors["total_entries"] == 0, [(e["filename"], e["stack_trace"]) for e in errors["import_errors"]]
    deployment.observe(
        "1_provider",
        provider=providers["airflow-provider-cloudjobs"],
        hook_name=meta["hook_name"],
        relabelled={k: v["title"] for k, v in standard.items() if isinstance(v, dict) and v.get("title")},
        hidden=sorted(k for k, v in standard.items() if isinstance(v, dict) and v.get("hidden")),
        form_fields={k: v["schema"].get("title") for k, v in extra.items()},
        dags=sorted(d["dag_id"] for d in api.get("/api/v2/dags")["dags"]),
    )


# -- 2. connections: from `airflow connections add` and from an AIRFLOW_CONN_ variable ----------------
def test_connections_from_cli_and_env_work(deployment: Deployment, sim: simulator.SimulatorClient) -> None:
    api = deployment.api
    stored = api.get("/api/v2/connections/cloudjobs_default")
    assert stored["conn_type"] == "cloudjobs"
    assert stored["login"] == simulator.USER_NAME
    assert simulator.PASSWORD not in json.dumps(stored)
    assert json.loads(stored["extra"])["domain_name"] == simulator.DOMAIN_NAME

    # The UI's "Test" button on a saved connection: Airflow 3.2+ merges in its hidden password, 3.1 tests
    # the form as sent (every field, the password typed again). cloudjobs_env exists only as
    # AIRFLOW_CONN_CLOUDJOBS_ENV in the deployment's environment.
    tested = {}
    for conn_id in ("cloudjobs_default", "cloudjobs_env"):
        body = {"connection_id": conn_id, "conn_type": "cloudjobs"}
        if not AIRFLOW_3_2_PLUS:
            form = deployment.connection()
            body.update(login=form["login"], password=form["password"], extra=json.dumps(form["extra"]))
        result = api.post("/api/v2/connections/test", body)
        assert result["status"] is True, f"{conn_id}: {result}"
        assert simulator.PASSWORD not in result["message"]
        tested[conn_id] = result

    # A wrong password fails the test with IAM's answer, and the password is not echoed back.
    wrong = "Wr0ng-e2e-Passw0rd"
    conn = deployment.connection(password=wrong)
    body = {
        "connection_id": "cloudjobs_e2e_wrong",
        "conn_type": "cloudjobs",
        "login": conn["login"],
        "password": wrong,
        "extra": json.dumps(conn["extra"]),
    }
    refused = api.post("/api/v2/connections/test", body)
    assert refused["status"] is False, refused
    assert wrong not in refused["message"]
    assert re.search(r"IAM|401|password|credential", refused["message"], re.I), refused["message"]
    deployment.observe(
        "2_connections",
        stored={k: stored[k] for k in ("connection_id", "conn_type", "login", "password")},
        tests=tested,
        wrong_password=refused,
    )


# -- 3. example DAG (a): create, wait deferred, use the job downstream --------------------------------
def test_example_cce_dag_defers_and_succeeds(deployment: Deployment, sim: simulator.SimulatorClient) -> None:
    api = deployment.api
    # The create-cluster job moves by wall time: 5 steps of 8 s, ~32 s from create to Success. It shows
    # "Running 1/2 sub-jobs, 50%" from 16 s to 32 s, long enough for a fresh triggerer's first poll
    # (its first trigger waits ~8 s for the triggerer's in-process execution API to start).
    sim.configure(default_polls_to_finish=5, seconds_per_step=8)
    run_id = api.trigger(CCE, {"cluster_name": "e2e-cluster"})

    deferred = deployment.wait_ti_state(CCE, run_id, "wait_for_cluster", WAITING)
    assert deferred["state"] == "deferred", f"the sensor should be deferred while the job runs: {deferred}"
    created = api.xcom(CCE, run_id, "create_cluster")  # the job right after the create (no wait)
    job_id = created["job_id"]
    assert isinstance(job_id, str)
    assert job_id
    assert api.xcom(CCE, run_id, "create_cluster", "response")["status"]["jobID"] == job_id
    trigger = deferred.get("trigger") or {}
    assert "CloudJobTrigger" in str(trigger.get("classpath")), deferred
    assert_no_secret(json.dumps(trigger))

    # The executor has exactly one slot (parallelism 1): another DAG's task runs to completion while
    # the sensor is deferred, so the sensor holds no worker slot while it waits.
    ping_run = api.trigger("e2e_ping")
    ping = deployment.wait_run_done("e2e_ping", ping_run, timeout=120)
    assert ping["state"] == "success"
    sensor_now = api.ti(CCE, run_id, "wait_for_cluster")
    ping_ti = api.ti("e2e_ping", ping_run, "ping")
    finished_first = sensor_now["end_date"] and timestamp(sensor_now["end_date"]) < timestamp(
        ping_ti["end_date"]
    )
    assert not finished_first, f"the sensor finished before the ping task could run: {sensor_now}"

    run = deployment.wait_run_done(CCE, run_id, timeout=180)
    assert run["state"] == "success", run
    sensor = api.ti(CCE, run_id, "wait_for_cluster")
    assert sensor["state"] == "success"
    assert sensor["try_number"] == 1, sensor

    job = api.xcom(CCE, run_id, "wait_for_cluster")
    assert isinstance(job, dict), job
    assert set(job) >= JOB_KEYS, sorted(JOB_KEYS - set(job))
    assert job["service"] == "cce"
    assert job["job_id"] == job_id
    assert job["status"] == "Success"
    assert job["phase"] == "SUCCEEDED"
    assert job["is_terminal"] is True
    assert job["progress"] == 100
    assert job["resource_name"] == "e2e-cluster"
    assert len(job["sub_jobs"]) == 2
    assert all(s["phase"] == "SUCCEEDED" for s in job["sub_jobs"])
    assert job["raw"], "raw body missing"
    assert sim.job_state(job_id)["phase"] == "success"

    report = api.xcom(CCE, run_id, "report")
    assert f"job {job_id} SUCCEEDED" in report, report

    log = api.log(CCE, run_id, "wait_for_cluster", 1)
    progress = lines_with(log, f"CCE job {short(job_id)}")
    assert any("Running 1/2 sub-jobs, 50%" in line for line in progress), "\n".join(progress) or log
    assert any("Success 2/2 sub-jobs, 100%" in line for line in progress), "\n".join(progress)
    assert_no_secret(log)
    for task_id in ("create_cluster", "report"):
        assert_no_secret(api.log(CCE, run_id, task_id, 1))

    deployment.artifacts["cce_success"] = {"run_id": run_id, "job_id": job_id, "job": job}
    deployment.observe(
        "3_example_cce",
        run_id=run_id,
        sensor_while_waiting={
            k: deferred.get(k) for k in ("state", "try_number", "trigger", "triggerer_job")
        },
        ping_while_deferred={
            "state": ping_ti["state"],
            "start": ping_ti["start_date"],
            "end": ping_ti["end_date"],
        },
        sensor_final={k: sensor[k] for k in ("state", "try_number", "start_date", "end_date")},
        xcom_keys=sorted(job),
        xcom={k: v for k, v in job.items() if k not in ("raw", "sub_jobs")},
        sub_jobs=[{k: s[k] for k in ("job_id", "job_type", "phase")} for s in job["sub_jobs"]],
        report=report,
        progress_lines=progress,
    )


# -- 6. the "Cloud console" extra link --------------------------------------------------------------
def test_cloud_console_link_resolves(deployment: Deployment) -> None:
    done = deployment.artifacts.get("cce_success")
    if not done:
        pytest.skip("needs the successful example run of test_example_cce_dag_defers_and_succeeds")
    links = deployment.api.links(CCE, done["run_id"], "wait_for_cluster")
    url = links["extra_links"].get("Cloud console")
    assert url, links
    # The console base from the connection's `console_url`, then the job's cluster in its region.
    assert url.startswith(CONSOLE_URL + "/"), url
    assert done["job"]["resource_id"] in url, url
    assert f"region={simulator.REGION}" in url, url
    deployment.observe("6_link", links=links)


# -- 4. the triggerer dies while sensors are deferred -------------------------------------------------
def test_triggerer_killed_and_restarted(deployment: Deployment, sim: simulator.SimulatorClient) -> None:
    api = deployment.api
    # Long: ~60 s of cloud work under a 240 s sensor timeout; it must resume and succeed.
    # Short: a 10-minute job under a SHORT_TIMEOUT (40 s) sensor timeout that passes in the outage.
    long_job = sim.create_job("cce", polls_to_finish=5, seconds_to_finish=60, resource_name="outage-long")
    short_job = sim.create_job("cce", polls_to_finish=5, seconds_to_finish=600, resource_name="outage-short")
    runs = {
        "short": ("e2e_wait_short", api.trigger("e2e_wait_short", {"job_id": short_job}), short_job),
        "long": ("e2e_wait_long", api.trigger("e2e_wait_long", {"job_id": long_job}), long_job),
    }

    def gets() -> dict[str, int]:
        return {name: int(sim.job_state(job)["gets"]) for name, (_, _, job) in runs.items()}

    before: dict[str, dict[str, Any]] = {}
    for name, (dag_id, run_id, job_id) in runs.items():
        ti = deployment.wait_ti_state(dag_id, run_id, "wait", WAITING, timeout=120)
        assert ti["state"] == "deferred", ti
        # The triggerer polls it (GET 1 is the sensor's own check before deferring).
        wait_for(f"the triggerer to poll {name}", lambda j=job_id: sim.job_state(j)["gets"] >= 2, timeout=60)
        before[name] = api.ti(dag_id, run_id, "wait")

    deployment.kill_service("triggerer")  # SIGKILL to its whole process group, as a crash would
    killed_at = time.time()
    gets_at_kill = gets()
    health = wait_for(
        "the API to report the triggerer unhealthy",
        lambda: (h := deployment.health())["triggerer"]["status"] != "healthy" and h,
        timeout=60,
    )
    # The short sensor's absolute deadline passes during the outage: SHORT_TIMEOUT after execute() began,
    # which is shortly after the task's start_date (the API does not show trigger kwargs).
    short_deadline = timestamp(before["short"]["start_date"]) + SHORT_TIMEOUT
    wait_for("the short sensor's deadline to pass", lambda: time.time() > short_deadline + 5, timeout=90)
    # Nobody polled during the outage, and both tasks stayed deferred (no worker picked them up).
    assert gets() == gets_at_kill
    for dag_id, run_id, _ in runs.values():
        assert api.ti(dag_id, run_id, "wait")["state"] == "deferred"

    deployment.start_service("triggerer")
    restarted_at = time.time()
    wait_for(
        "the new triggerer to be healthy",
        lambda: deployment.health()["triggerer"]["status"] == "healthy",
        timeout=90,
        check=deployment.check_alive,
    )

    # The short wait ends in a timeout at once, without polling its job again: not a fresh wait.
    dag_id, run_id, job_id = runs["short"]
    short_done = deployment.wait_run_done(dag_id, run_id, timeout=120)
    assert short_done["state"] == "failed", short_done
    short_ti = api.ti(dag_id, run_id, "wait")
    assert short_ti["state"] == "failed", short_ti
    assert short_ti["try_number"] == 1, short_ti
    assert sim.job_state(job_id)["gets"] == gets_at_kill["short"], "the restarted triggerer polled again"
    short_log = api.log(dag_id, run_id, "wait", 1)
    assert "AirflowSensorTimeout" in short_log, short_log[-3000:]
    timeout_lines = lines_with(short_log, f"Timed out waiting for CCE job {job_id}")
    assert timeout_lines, short_log[-3000:]
    assert_no_secret(short_log)

    # The long wait resumes in the new triggerer (same trigger, same deadline) and succeeds.
    dag_id, run_id, job_id = runs["long"]
    long_done = deployment.wait_run_done(dag_id, run_id, timeout=150)
    assert long_done["state"] == "success", long_done
    assert sim.job_state(job_id)["gets"] > gets_at_kill["long"]
    job = api.xcom(dag_id, run_id, "wait")
    assert job["phase"] == "SUCCEEDED"
    assert job["job_id"] == job_id
    long_ti = api.ti(dag_id, run_id, "wait")
    assert long_ti["try_number"] == 1, long_ti
    long_log = api.log(dag_id, run_id, "wait", 1)
    assert_no_secret(long_log)
    deployment.observe(
        "4_triggerer_restart",
        triggerer_health_during_outage=health["triggerer"],
        outage_seconds=round(restarted_at - killed_at, 1),
        short_deadline_passed_before_restart=short_deadline < restarted_at,
        triggers_before={name: ti.get("trigger") for name, ti in before.items()},
        job_gets_at_kill=gets_at_kill,
        job_gets_at_end=gets(),
        short={"run": short_done["state"], "ti": short_ti["state"], "try_number": short_ti["try_number"]},
        short_log_timeout_lines=timeout_lines + lines_with(short_log, "AirflowSensorTimeout")[:2],
        long={"run": long_done["state"], "try_number": long_ti["try_number"], "phase": job["phase"]},
        long_log_progress=lines_with(long_log, f"CCE job {short(job_id)}"),
    )


# -- 5. a failing cloud job --------------------------------------------------------------------------
def test_failing_job_fails_the_run_without_retries(
    deployment: Deployment, sim: simulator.SimulatorClient
) -> None:
    api = deployment.api
    sim.configure(default_polls_to_finish=3, seconds_per_step=3)
    run_id = api.trigger(CCE, {"cluster_name": "e2e-fail-cluster"})  # a name with "fail": the job fails

    run = deployment.wait_run_done(CCE, run_id, timeout=180)
    assert run["state"] == "failed", run
    job_id = api.xcom(CCE, run_id, "create_cluster")["job_id"]
    sensor = api.ti(CCE, run_id, "wait_for_cluster")
    assert sensor["state"] == "failed", sensor
    assert sensor["try_number"] == 1, f"a failed cloud job must not be retried: {sensor}"
    assert sensor["max_tries"] >= 2, f"the DAG configures retries, none may be spent: {sensor}"
    tries = api.tries(CCE, run_id, "wait_for_cluster")
    assert [t["try_number"] for t in tries] == [1], tries
    assert api.ti(CCE, run_id, "report")["state"] == "upstream_failed"

    log = api.log(CCE, run_id, "wait_for_cluster", 1)
    reason = sim_common.SERVICES["cce"].fail_message
    failure_lines = lines_with(log, f"CCE job {job_id} failed")
    assert failure_lines, log[-4000:]
    assert any(reason in line for line in failure_lines), failure_lines
    assert "AirflowFailException" in log, log[-4000:]
    assert_no_secret(log)
    deployment.observe(
        "5_failing_job",
        run=run["state"],
        sensor={k: sensor[k] for k in ("state", "try_number", "max_tries")},
        tries=[{k: t[k] for k in ("try_number", "state")} for t in tries],
        failure_lines=failure_lines,
    )


# -- 7. a person's view: the grid with the deferred task ------------------------------------------------
def test_grid_screenshot_shows_deferred_task(deployment: Deployment, sim: simulator.SimulatorClient) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    api = deployment.api
    sim.configure(default_polls_to_finish=5, seconds_per_step=10)  # ~40 s: time to look at it
    run_id = api.trigger(CCE, {"cluster_name": "e2e-screenshot"})
    ti = deployment.wait_ti_state(CCE, run_id, "wait_for_cluster", WAITING)
    assert ti["state"] == "deferred", ti

    out = deployment.out_dir / "grid-deferred.png"
    out.unlink(missing_ok=True)
    url = f"{deployment.base_url}/dags/{CCE}/runs/{run_id}"
    assert api.token
    text = screenshot(chromium, url, ("_token", api.token), out, wait_text=["wait_for_cluster", "Deferred"])
    assert out.stat().st_size > 10_000, out
    assert "wait_for_cluster" in text
    assert "Deferred" in text, text[:2000]
    run = deployment.wait_run_done(CCE, run_id, timeout=180)
    assert run["state"] == "success", run
    deployment.observe("7_screenshot", path=str(out), url=url, bytes=out.stat().st_size)
