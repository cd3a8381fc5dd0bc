"""End to end on a distributed deployment: many mapped deferred sensors over two triggerers and two Celery
workers (PostgreSQL, Redis), one triggerer killed mid-wait. Observed through Airflow's REST API, the
cloud simulator's counters and the tap that counts cloud calls per process; see ``distributed.py``.
What the run saw is written to ``test-output/e2e-distributed/observations.json``.
Run alone with ``python3 dev.py test tests/e2e_distributed``.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from e2e.harness import AIRFLOW_3_2_PLUS, SECRETS, wait_for

from airflow_provider_cloudjobs.testing import simulator

from .distributed import DAG_ID, TRIGGERERS, WORKERS, DistributedDeployment

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

WAITS = 20  # mapped sensors, one cloud job each
# A job succeeds on its POLLS-th GET (the sensor's check before deferring is the first; then the
# triggerer polls about once a second). Polled jobs only advance: a wait whose triggerer is dead stays
# RUNNING until another triggerer polls it, so only a taken-over wait can finish.
POLLS = 45
TOKEN_RE = re.compile(r"MII[A-Za-z0-9_\-]{100,}")


def mapped(cluster: DistributedDeployment, run_id: str) -> dict[int, dict[str, Any]]:
    path = cluster.api.ti_path(DAG_ID, run_id, "wait") + "/listMapped"
    body = cluster.api.get(path, params={"limit": 100})
    return {int(ti["map_index"]): ti for ti in body["task_instances"]}


def holder(ti: dict[str, Any]) -> int | None:
    """The id of the triggerer job running this task instance's trigger (None: none yet, or not deferred)."""
    trigger = ti.get("trigger") or {}
    return trigger.get("triggerer_id") if ti.get("state") == "deferred" else None


def test_mapped_waits_spread_survive_a_triggerer_kill_and_resume_on_any_worker(
    cluster: DistributedDeployment,
) -> None:
    api, sim = cluster.api, cluster.sim
    assert sim is not None
    assert cluster.tap is not None
    started = time.monotonic()
    triggerers = cluster.triggerer_jobs()
    name_of = {job_id: name for name, job_id in triggerers.items()}
    job_ids = sim.create_jobs("cce", WAITS, polls_to_finish=POLLS)
    run_id = api.trigger(DAG_ID, {"job_ids": job_ids})

    # 1. Every wait deferred and its trigger picked up by a live triggerer; both triggerers hold some.
    # (Recorded as first seen: under load an early job may finish before the last sensor defers.)
    held: dict[int, int] = {}
    deferring_worker: dict[int, str] = {}

    def all_held() -> bool:
        for i, ti in mapped(cluster, run_id).items():
            if i not in held and holder(ti):
                held[i], deferring_worker[i] = int(holder(ti) or 0), ti["hostname"]
        return len(held) == WAITS

    wait_for("every mapped sensor to be deferred in a triggerer", all_held, timeout=240, interval=1,
             check=cluster.check_alive)  # fmt: skip
    deferred_after = time.monotonic() - started
    spread = Counter(name_of.get(h, f"job {h}") for h in held.values())
    if AIRFLOW_3_2_PLUS:
        # [triggerer] max_trigger_to_select_per_loop (new in 3.2, set low here) makes both claim some.
        assert set(spread) == set(TRIGGERERS), f"the waits did not spread over both triggerers: {spread}"
    else:
        # Airflow 3.1 has no per-loop cap: a triggerer claims every unassigned trigger up to its capacity,
        # so on a loaded machine one may take them all. The takeover below is tested either way.
        assert set(spread) <= set(TRIGGERERS), spread
    assert set(deferring_worker.values()) <= set(WORKERS), deferring_worker

    # 2. Kill the triggerer holding more waits (SIGKILL to its process group, as a lost host).
    victim = max(TRIGGERERS, key=lambda name: (spread[name], name))
    survivor = next(name for name in TRIGGERERS if name != victim)
    victim_id, survivor_id = triggerers[victim], triggerers[survivor]
    orphans = sorted(i for i, ti in mapped(cluster, run_id).items() if holder(ti) == victim_id)
    assert orphans, f"{victim} holds no wait any more"
    gets_at_kill = {i: int(sim.job_state(job_ids[i])["gets"]) for i in orphans}
    assert all(gets < POLLS for gets in gets_at_kill.values()), gets_at_kill
    cluster.kill_service(victim)
    killed = time.monotonic()

    # 3. The survivor takes every orphaned wait over (same trigger, same task instance, still deferred).
    taken: dict[int, float] = {}
    holder_after: dict[int, str] = {}

    def all_taken() -> bool:
        tis = mapped(cluster, run_id)
        for i in orphans:
            if i in taken:
                continue
            h, state = holder(tis[i]), tis[i]["state"]
            assert h != victim_id or state == "deferred", tis[i]
            if h == survivor_id or state != "deferred":
                taken[i] = time.monotonic() - killed
                holder_after[i] = survivor if h == survivor_id else f"already {state}"
        return len(taken) == len(orphans)

    wait_for(f"{survivor} to take over {victim}'s {len(orphans)} waits", all_taken, timeout=120,
             interval=0.5, check=cluster.check_alive)  # fmt: skip
    alive_after = cluster.triggerer_jobs()
    assert set(alive_after) == {survivor}, alive_after

    # 4. Every wait completes on try 1 with the job it was given, resumed on whichever worker Celery chose.
    run = cluster.wait_run_done(DAG_ID, run_id, timeout=240)
    finished = time.monotonic()
    assert run["state"] == "success", run
    after = mapped(cluster, run_id)
    assert {i: ti["state"] for i, ti in after.items()} == dict.fromkeys(range(WAITS), "success")
    assert {i: ti["try_number"] for i, ti in after.items()} == dict.fromkeys(range(WAITS), 1)
    for i in orphans:  # polled again after the kill: by the survivor, the only triggerer left
        assert sim.job_state(job_ids[i])["gets"] > gets_at_kill[i], i
    path = api.ti_path(DAG_ID, run_id, "wait") + "/xcomEntries/return_value"
    for i, job_id in enumerate(job_ids):
        job = api.get(path, params={"map_index": i})["value"]
        job = json.loads(job) if isinstance(job, str) else job
        assert (job["job_id"], job["phase"], job["is_terminal"]) == (job_id, "SUCCEEDED", True), job
    resuming_worker = {i: ti["hostname"] for i, ti in after.items()}
    assert set(resuming_worker.values()) <= set(WORKERS), resuming_worker
    moved = sorted(i for i in range(WAITS) if resuming_worker[i] != deferring_worker[i])

    # 5. One IAM login per process that called the cloud, however many waits it ran.
    traffic = cluster.tap.report()
    callers = [p for p in traffic if p["requests"].get("job_get")]
    logins = {p["pid"]: p["requests"].get("iam_login", 0) for p in traffic}
    stats = sim.stats()
    per_service = Counter(p["service"] for p in callers)
    cluster.observe(
        "distributed",
        waits=WAITS,
        triggerer_jobs=triggerers,
        spread_before_kill=dict(spread),
        killed=victim,
        orphaned_waits=len(orphans),
        holders_before={i: name_of.get(h, h) for i, h in held.items()},
        holders_after_takeover=holder_after,
        live_triggerers_after=alive_after,
        takeover_seconds={"first": round(min(taken.values()), 1), "last": round(max(taken.values()), 1)},
        seconds={
            "trigger_to_all_deferred": round(deferred_after, 1),
            "kill_to_run_done": round(finished - killed, 1),
            "scenario": round(finished - started, 1),
        },
        deferring_worker=dict(Counter(deferring_worker.values())),
        resuming_worker=dict(Counter(resuming_worker.values())),
        resumed_on_other_worker=len(moved),
        iam_token_calls=stats["iam_token_calls"],
        processes_that_polled=len(callers),
        polling_processes_per_service=dict(per_service),
        traffic=traffic,
    )
    assert set(resuming_worker.values()) == set(WORKERS), f"Celery used one worker only: {resuming_worker}"
    assert cluster.tap.unattributed == Counter(), cluster.tap.unattributed
    assert all(count <= 1 for count in logins.values()), traffic
    assert all(logins[p["pid"]] == 1 for p in callers), traffic
    assert stats["iam_token_calls"] == sum(logins.values()) == len(callers), (stats, traffic)
    assert per_service[victim] == per_service[survivor] == 1, per_service
    assert per_service["worker-1"] + per_service["worker-2"] == WAITS, per_service


def test_no_secret_in_any_log(cluster: DistributedDeployment) -> None:
    """Every process log (Airflow's services, PostgreSQL, Redis, the simulator) and every task and trigger
    log of the session: no password, SK or IAM token."""
    files = [
        p for root in (cluster.logs, cluster.home / "logs") for p in Path(root).rglob("*") if p.is_file()
    ]
    assert len(files) > len(cluster.services), files
    leaks = []
    for path in files:
        text = path.read_text(errors="replace")
        for secret in SECRETS:
            if secret in text:
                leaks.append(f"{path.name}: a credential")
        if TOKEN_RE.search(text):
            leaks.append(f"{path.name}: an IAM token")
    assert not leaks, leaks
    assert simulator.PASSWORD not in str(cluster.tap.report() if cluster.tap else "")
    cluster.observe("no_secret", files_scanned=len(files))
