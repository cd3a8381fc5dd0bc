"""End to end, in the Airflow UI: the Cloud jobs page, the Cloud job tab, and the connection form's Test.

Each check is made twice where a person could see it: through HTTP (what the plugin serves, to whom)
and in Chromium (what the page shows), with a screenshot saved in ``test-output/e2e/``:

- ``cloud-jobs-page.png``: the Cloud jobs page with three waits in flight (two deferred: CCE and DWS,
  two runs; one CCE sensor in poke mode);
- ``cloud-jobs-page-dark.png``: the same page with the UI in dark mode;
- ``cloud-job-tab-deferred.png``: the Cloud job tab of a deferred sensor (phase, progress bar, sub-jobs);
- ``cloud-job-tab-success.png`` / ``cloud-job-tab-failed.png``: the tab after the job succeeded / failed;
- ``connection-test.png``: the connections list after clicking Test on ``cloudjobs_default``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
import requests

from airflow_provider_cloudjobs.testing import simulator

from .browser import Browser, find_chromium
from .harness import AIRFLOW_3_2_PLUS, CONSOLE_URL, SECRETS, Deployment, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

DAG = "e2e_ui_wait"
POKE_DAG = "e2e_ui_poke"
TASK = "wait_for_job"
# Cloud-provided text that is HTML: it must show as text, never run or render.
HOSTILE_NAME = "<img src=x onerror=\"document.title='pwned'\">ui-cluster"
HOSTILE_MESSAGE = '<script>document.title="pwned"</script><b>Quota exceeded</b> for ui-warehouse'
NO_HTML_INJECTED = """(() => {
  const doc = document.querySelector('iframe').contentDocument;
  const content = doc.getElementById('cj-content');
  return doc.title !== 'pwned' && document.title !== 'pwned'
    && content.querySelectorAll('img, script, b').length === 0;
})()"""
# Clicks the navigation's Browse button once it is rendered (the word may show before the button does).
# Airflow 3.2+ labels the navigation button (aria-label); 3.1 only shows "Browse" under its icon.
CLICK_BROWSE = """(() => {
  const button = Array.from(document.querySelectorAll('button'))
    .find(b => b.getAttribute('aria-label') === 'Browse' || b.innerText.trim() === 'Browse');
  if (!button) return false;
  button.click();
  return true;
})()"""
CLOUD_JOBS_ITEM = """(() => {
  const item = Array.from(document.querySelectorAll('a')).find(a => a.innerText.trim() === 'Cloud jobs');
  return item ? item.getAttribute('href') : null;
})()"""
PROGRESS_BARS = """(() => {
  const doc = document.querySelector('iframe').contentDocument;
  return Array.from(doc.querySelectorAll('[role=progressbar]'))
    .map(bar => [bar.getAttribute('aria-valuenow'), bar.firstChild.getBoundingClientRect().width]);
})()"""


def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    return path


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, "a credential reached a page"


def tab_path(run_id: str, task_id: str = TASK, dag_id: str = DAG) -> str:
    return f"/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}/plugin/cloud-job"


def ti_api(run_id: str, task_id: str = TASK, dag_id: str = DAG) -> str:
    return f"/cloudjobs/api/ti/{dag_id}/{quote(run_id, safe='')}/{task_id}/-1"


def start_waits(
    deployment: Deployment, sim: simulator.SimulatorClient, seconds: float, *, deferred: bool = True
) -> dict[str, Any]:
    """Two runs of the UI DAG: a CCE job that succeeds and a DWS job that fails, both with markup in
    what the cloud says about them (the cluster's name, the failure message)."""
    jobs = {
        "cce": sim.create_job("cce", seconds_to_finish=seconds, sub_jobs=3, resource_name=HOSTILE_NAME),
        "dws": sim.create_job(
            "dws", seconds_to_finish=seconds, outcome="fail", error_code="DWS.0047", message=HOSTILE_MESSAGE
        ),
    }
    runs = {svc: deployment.api.trigger(DAG, {"job_id": job, "service": svc}) for svc, job in jobs.items()}
    for run_id in runs.values():
        if deferred:
            ti = deployment.wait_ti_state(DAG, run_id, TASK, ["deferred", "success", "failed"])
            assert ti["state"] == "deferred", ti
    # A third wait that never defers: a sensor in poke mode, running in the executor's one slot (the two
    # above resume in it once it is done).
    jobs["poke"] = sim.create_job("cce", seconds_to_finish=seconds, sub_jobs=2, resource_name="ui-poked")
    runs["poke"] = deployment.api.trigger(POKE_DAG, {"job_id": jobs["poke"]})
    if deferred:
        ti = deployment.wait_ti_state(POKE_DAG, runs["poke"], TASK, ["running", "success", "failed"])
        assert ti["state"] == "running", ti
    return {"jobs": jobs, "runs": runs}


# -- the plugin as Airflow serves it, and who may see it ---------------------------------------------
def test_ui_plugin_is_loaded_and_its_data_behind_airflow_auth(deployment: Deployment) -> None:
    api = deployment.api
    plugins = {p["name"]: p for p in api.get("/api/v2/plugins")["plugins"]}
    assert "cloudjobs" in plugins, sorted(plugins)
    views = {v["name"]: v for v in plugins["cloudjobs"]["external_views"]}
    assert views["Cloud jobs"]["destination"] == "nav"
    assert views["Cloud jobs"]["href"] == "/cloudjobs/"
    tab = views["Cloud job"]
    assert tab["destination"] == "task_instance"
    assert tab["url_route"] == "cloud-job"
    for placeholder in ("{DAG_ID}", "{RUN_ID}", "{TASK_ID}", "{MAP_INDEX}"):
        assert placeholder in tab["href"]
    errors = api.get("/api/v2/plugins/importErrors")
    assert not [e for e in errors["import_errors"] if "cloudjobs" in json.dumps(e)], errors

    paths = [
        "/cloudjobs/",
        "/cloudjobs/api/waits",
        f"/cloudjobs/ti/{DAG}/any-run/{TASK}/-1",
        f"/cloudjobs/api/ti/{DAG}/any-run/{TASK}/-1",
        "/cloudjobs/static/cloudjobs.js",
    ]
    seen: dict[str, list[int]] = {}
    for path in paths:
        url = deployment.base_url + path
        anonymous = requests.get(url, timeout=30)
        bad_bearer = requests.get(url, headers={"Authorization": "Bearer not-a-jwt"}, timeout=30)
        bad_cookie = requests.get(url, cookies={"_token": "not-a-jwt"}, timeout=30)
        statuses = [anonymous.status_code, bad_bearer.status_code, bad_cookie.status_code]
        authorized = api.session.get(url, timeout=60)
        if not path.startswith("/cloudjobs/api/"):
            # A page shell or its script: the same bytes whoever asks (Airflow 3.1's UI cannot sign an
            # iframe's request in); no data in them.
            for response in (anonymous, bad_bearer, bad_cookie):
                assert (response.status_code, response.content) == (200, authorized.content), path
            seen[path] = [*statuses, authorized.status_code]
            continue
        assert anonymous.status_code == 401, (path, anonymous.status_code, anonymous.text[:300])
        assert bad_bearer.status_code in (401, 403), (path, bad_bearer.text[:300])
        assert bad_cookie.status_code in (401, 403), (path, bad_cookie.text[:300])
        for response in (anonymous, bad_bearer, bad_cookie):
            assert set(response.json()) == {"detail"}, response.text[:300]
        statuses.append(authorized.status_code)
        expected = 404 if path.startswith("/cloudjobs/api/ti/") else 200  # no such run: nothing to show
        assert authorized.status_code == expected, (path, authorized.status_code, authorized.text[:300])
        seen[path] = statuses
    deployment.observe("ui_1_auth", statuses_anonymous_badbearer_badcookie_admin=seen, views=views)


# -- the Cloud jobs page and the Cloud job tab while the sensors are deferred ------------------------
def test_cloud_jobs_page_and_tab_while_deferred(
    deployment: Deployment, sim: simulator.SimulatorClient
) -> None:
    api = deployment.api
    # ~75 s of cloud work: long enough to load and photograph three pages while both are running.
    started = start_waits(deployment, sim, seconds=75)
    jobs, runs = started["jobs"], started["runs"]
    deployment.artifacts["ui_waits"] = started

    def all_running() -> dict[str, Any] | None:
        body = api.get("/cloudjobs/api/waits")
        rows = {r["job_id"]: r for r in body["in_flight"] if r["dag_id"] in (DAG, POKE_DAG)}
        ready = all(
            (rows.get(job) or {}).get("job")
            and rows[job]["job"]["phase"] == "RUNNING"
            and (rows[job]["job"]["progress"] or 0) > 0
            for job in jobs.values()
        )
        return body if ready else None

    body = wait_for("the waits RUNNING with progress on /cloudjobs/api/waits", all_running, timeout=60)
    assert body["cloud_calls"] <= 24, body["cloud_calls"]  # one refresh starts a bounded number of calls
    rows = {r["job_id"]: r for r in body["in_flight"] if r["dag_id"] in (DAG, POKE_DAG)}
    cce, dws, poke = rows[jobs["cce"]], rows[jobs["dws"]], rows[jobs["poke"]]
    # Found from its task instance and rendered template fields (job id and connection), not from a trigger.
    assert poke["state"] == "running", poke
    assert poke["run_id"] == runs["poke"]
    assert poke["job"]["resource_name"] == "ui-poked"
    assert (poke["conn_id"], poke["conn_known"]) == (
        "cloudjobs_default",
        True,
    )  # from its rendered template fields
    assert (cce["run_id"], dws["run_id"]) == (runs["cce"], runs["dws"])  # two runs, told apart
    assert cce["state"] == dws["state"] == "deferred"
    assert (cce["service"], dws["service"]) == ("cce", "dws")
    assert cce["task_id"] == TASK
    assert cce["job"]["resource_name"] == HOSTILE_NAME
    assert len(cce["job"]["sub_jobs"]) == 3
    assert cce["deadline"]
    assert dws["deadline"]
    assert cce["console_url"].startswith(CONSOLE_URL + "/"), cce["console_url"]
    assert "raw" not in cce["job"]
    assert_no_secret(json.dumps(body))

    shots = deployment.out_dir
    assert api.token
    with Browser(chromium(), width=1440, height=900) as browser:
        browser.set_cookie("_token", api.token, deployment.base_url)
        # Found where a person looks: Browse > Cloud jobs in the navigation.
        browser.goto(f"{deployment.base_url}/")
        browser.wait_text(["Browse"])
        browser.wait_until("the Browse button", lambda: browser.eval(CLICK_BROWSE))
        menu_item = browser.wait_until("Browse > Cloud jobs", lambda: browser.eval(CLOUD_JOBS_ITEM))
        assert menu_item.endswith("/plugin/cloud-jobs"), menu_item
        browser.eval(f"document.querySelector('a[href=\"{menu_item}\"]').click()")
        text = browser.wait_text(
            [jobs["cce"], jobs["dws"], jobs["poke"], "RUNNING", "ui-cluster", "In flight"]
        )
        assert "Cloud jobs" in text
        assert HOSTILE_NAME in text  # shown as the text it is
        assert browser.eval(NO_HTML_INJECTED), "cloud-provided HTML was rendered in the page"
        bars = browser.wait_until("progress bars drawn", lambda: browser.eval(PROGRESS_BARS))
        assert any(float(width) > 0 for _, width in bars), bars
        browser.screenshot(shots / "cloud-jobs-page.png")
        assert_no_secret(
            browser.eval("document.querySelector('iframe').contentDocument.documentElement.outerHTML")
        )

        browser.color_scheme("dark")
        browser.goto(f"{deployment.base_url}/plugin/cloud-jobs")
        browser.wait_text([jobs["cce"], jobs["dws"], "RUNNING"])
        theme = browser.wait_until(
            "the page to follow the UI's dark mode",
            lambda: browser.eval(
                "document.querySelector('iframe').contentDocument.documentElement.dataset.theme === 'dark'"
            ),
        )
        assert theme
        browser.screenshot(shots / "cloud-jobs-page-dark.png")
        browser.color_scheme("light")

        browser.goto(deployment.base_url + tab_path(runs["cce"]))
        tab_text = browser.wait_text([jobs["cce"], "RUNNING", "Sub-jobs", "ui-cluster", "deferred"])
        bars = browser.wait_until("the tab's progress bar", lambda: browser.eval(PROGRESS_BARS))
        assert float(bars[0][0]) > 0, bars
        assert "Open in the cloud console" in tab_text
        browser.screenshot(shots / "cloud-job-tab-deferred.png")

    deployment.observe(
        "ui_2_in_flight",
        runs=runs,
        jobs=jobs,
        cloud_calls=body["cloud_calls"],
        rows={k: {f: v for f, v in r.items() if f != "job"} for k, r in rows.items()},
        phases={k: (r["job"]["phase"], r["job"]["progress"]) for k, r in rows.items()},
        progress_bars=bars,
    )


# -- the tab once the job is over -----------------------------------------------------------------
def test_cloud_job_tab_after_success_and_failure(deployment: Deployment) -> None:
    api = deployment.api
    # The waits the previous test watched (the simulator is not reset: their jobs go on), or new ones.
    started = deployment.artifacts.get("ui_waits")
    if started is None:
        assert deployment.sim is not None
        deployment.sim.reset()
        started = start_waits(deployment, deployment.sim, seconds=6, deferred=False)
    jobs, runs = started["jobs"], started["runs"]
    assert deployment.wait_run_done(DAG, runs["cce"], timeout=180)["state"] == "success"
    assert deployment.wait_run_done(DAG, runs["dws"], timeout=180)["state"] == "failed"
    assert deployment.wait_run_done(POKE_DAG, runs["poke"], timeout=180)["state"] == "success"

    ok = api.get(ti_api(runs["cce"]))["task"]
    assert ok["state"] == "success"
    assert ok["job_source"] == "xcom"  # the final job from the task's XCom, no cloud call
    assert ok["job"]["phase"] == "SUCCEEDED"
    assert ok["job"]["progress"] == 100
    failed = api.get(ti_api(runs["dws"]))["task"]
    assert failed["state"] == "failed"
    assert failed["job"]["phase"] == "FAILED", failed
    assert failed["job"]["error_code"] == "DWS.0047"
    assert failed["job"]["message"] == HOSTILE_MESSAGE
    listed = api.get("/cloudjobs/api/waits")
    finished = {r["job_id"]: r["state"] for r in listed["finished"]}
    assert finished.get(jobs["cce"]) == "success", finished
    assert finished.get(jobs["dws"]) == "failed", finished
    assert finished.get(jobs["poke"]) == "success", finished
    assert not {jobs["cce"], jobs["poke"]} & {r["job_id"] for r in listed["in_flight"]}

    shots = deployment.out_dir
    assert api.token
    with Browser(chromium(), width=1440, height=900) as browser:
        browser.set_cookie("_token", api.token, deployment.base_url)
        browser.goto(deployment.base_url + tab_path(runs["cce"]))
        browser.wait_text([jobs["cce"], "SUCCEEDED", "100%", "final job"])
        browser.screenshot(shots / "cloud-job-tab-success.png")

        browser.goto(deployment.base_url + tab_path(runs["dws"]))
        text = browser.wait_text([jobs["dws"], "FAILED", "DWS.0047", "Quota exceeded"])
        assert HOSTILE_MESSAGE in text  # the markup shows as text
        assert browser.eval(NO_HTML_INJECTED), "cloud-provided HTML was rendered in the page"
        browser.screenshot(shots / "cloud-job-tab-failed.png")
    deployment.observe(
        "ui_3_finished",
        success={k: ok[k] for k in ("state", "job_source", "console_url")} | {"phase": ok["job"]["phase"]},
        failed={k: failed[k] for k in ("state", "job_source", "error")}
        | {k: failed["job"][k] for k in ("phase", "error_code", "message")},
    )


# -- the connection form's Test, as the UI sends it ------------------------------------------------
def test_connection_test_button_works_from_the_ui(deployment: Deployment) -> None:
    if not AIRFLOW_3_2_PLUS:
        pytest.skip(
            "Airflow 3.1 tests a connection exactly as the form sends it, without the stored password, so "
            "its list's Test button cannot log in for any connection type (test_deployment.py tests 3.1's "
            "Test with every field sent)"
        )
    api = deployment.api
    listed = {
        c["connection_id"]: c for c in api.get("/api/v2/connections", params={"limit": 100})["connections"]
    }
    conn = listed["cloudjobs_default"]
    # Exactly the body Airflow 3.3's connections list builds for its Test button (hidden host and port
    # included, as "" and Number(null) = 0).
    body = {
        "conn_type": conn["conn_type"],
        "connection_id": conn["connection_id"],
        "description": conn.get("description") or "",
        "extra": conn["extra"] or "{}",
        "host": conn.get("host") or "",
        "login": conn.get("login") or "",
        "password": conn.get("password") or "",
        "port": 0,
        "schema": conn.get("schema") or "",
    }
    result = api.post("/api/v2/connections/test", body)
    assert result["status"] is True, result
    assert_no_secret(json.dumps(result))
    # Why the plugin's fix is needed: Airflow itself refuses that body (port 0 is not the stored NULL);
    # the fix applies to cloudjobs tests only, so the same body under another type still shows it.
    refused = api.request(
        "POST", "/api/v2/connections/test", json={**body, "conn_type": "http"}, expect=(200, 400)
    )
    assert "differs from the stored connection" in json.dumps(refused), refused

    assert api.token
    with Browser(chromium(), width=1440, height=900) as browser:
        browser.set_cookie("_token", api.token, deployment.base_url)
        browser.goto(f"{deployment.base_url}/connections")
        browser.wait_text(["cloudjobs_default"])
        clicked = browser.eval(
            """(() => {
              const row = Array.from(document.querySelectorAll('tr'))
                .find(tr => Array.from(tr.cells || []).some(td => td.innerText.trim() === 'cloudjobs_default'));
              if (!row) return 'no row';
              const button = Array.from(row.querySelectorAll('button'))
                .find(b => /test/i.test(b.getAttribute('aria-label') || b.title || b.innerText));
              if (!button) return 'no button';
              button.click();
              return 'clicked';
            })()"""
        )
        assert clicked == "clicked", clicked
        exchange = browser.wait_until(
            "the UI's test request to be answered",
            lambda: [x for x in browser.exchanges("/api/v2/connections/test") if "answer" in x],
        )[0]
        sent = json.loads(exchange["sent"])
        assert sent["port"] == 0, sent  # what the UI sends for the hidden port ...
        assert sent["host"] == "", sent
        assert exchange["status"] == 200, exchange  # ... and Airflow now tests it
        answer = json.loads(exchange["answer"])
        assert answer["status"] is True, answer
        browser.screenshot(deployment.out_dir / "connection-test.png")
    sent_shown = {k: v for k, v in sent.items() if k not in ("password", "extra")}
    deployment.observe(
        "ui_4_connection_test", http=result, same_body_as_http=refused, ui_sent=sent_shown, ui_answer=answer
    )


def test_connection_test_never_sends_the_stored_password_elsewhere(deployment: Deployment) -> None:
    """Test reuses the stored password when the form sends it masked. A user who may test connections but
    edits the endpoints in the form (not saved) must not get that password sent to a server of theirs."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append(self.rfile.read(length).decode("utf-8", "replace"))
            self.send_response(500)
            self.end_headers()

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    api = deployment.api
    conn = {
        c["connection_id"]: c for c in api.get("/api/v2/connections", params={"limit": 100})["connections"]
    }["cloudjobs_default"]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    elsewhere = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        extra = {
            **json.loads(conn["extra"] or "{}"),
            "iam_endpoint": elsewhere,
            "endpoints": {"*": elsewhere},
        }
        body = {
            "conn_type": "cloudjobs",
            "connection_id": "cloudjobs_default",
            "extra": json.dumps(extra),
            "login": conn.get("login") or "",
            "password": "***",  # what the form sends for a password it did not change
            "host": "",
            "port": 0,
        }
        refused = api.request("POST", "/api/v2/connections/test", json=body, expect=(200, 400))
        assert seen == [], "the stored password went to an endpoint the stored connection does not name"
        assert "password" in json.dumps(refused), refused
        # with the password typed again, testing other endpoints is the user's own business
        body["password"] = "typed-again"
        api.request("POST", "/api/v2/connections/test", json=body, expect=(200,))
        assert len(seen) == 1
        assert "typed-again" in seen[0]
        assert simulator.PASSWORD not in seen[0]
    finally:
        server.shutdown()
        server.server_close()
