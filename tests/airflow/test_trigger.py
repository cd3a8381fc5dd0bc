"""CloudJobTrigger run for real (pytest-asyncio) against the simulator: every Outcomes row the trigger owns."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import airflow
import pytest
from packaging.version import Version

from airflow_provider_cloudjobs.hooks.cloudjobs import close_shared_session
from airflow_provider_cloudjobs.profiles import BUILTIN_PROFILES, ServiceProfile
from airflow_provider_cloudjobs.testing import simulator
from airflow_provider_cloudjobs.testing.contract import RETRYABLE_FAULTS
from airflow_provider_cloudjobs.triggers.cloudjobs import CloudJobTrigger

AIRFLOW_BEFORE_3_2 = Version(airflow.__version__) < Version("3.2")


def make_trigger(
    conn_id: str, job_id: str, service: str = "cce", *, timeout: float = 30.0, grace: float = 5.0, **kwargs
) -> CloudJobTrigger:
    now = time.time()
    return CloudJobTrigger(
        job_id=job_id,
        service=service,
        cloudjobs_conn_id=conn_id,
        poll_interval=0.05,
        end_time=now + timeout,
        not_found_until=now + grace,
        **kwargs,
    )


async def first_event(trigger: CloudJobTrigger, limit: float = 30.0) -> dict:
    async def first():
        async for event in trigger.run():
            return event.payload
        raise AssertionError("trigger ended without an event")

    try:
        return await asyncio.wait_for(first(), limit)
    finally:
        await close_shared_session()


@pytest.fixture
def conn(cloudjobs_conn):
    return cloudjobs_conn()


def logged_text(caplog, capsys) -> str:
    """Everything logged: stdlib records, and what Airflow's structlog (the trigger's ``self.log``) printed."""
    captured = capsys.readouterr()
    return "\n".join([caplog.text, captured.out, captured.err])


async def test_success_event_carries_the_final_job_and_logs_progress_changes(
    cloud_simulator, conn, caplog, capsys
):
    job_id = cloud_simulator.create_job("cce", polls_to_finish=4, sub_jobs=3)
    with caplog.at_level(logging.INFO):
        event = await first_event(make_trigger(conn, job_id))
    assert event["status"] == "success"
    assert event["job"]["job_id"] == job_id
    assert event["job"]["phase"] == "SUCCEEDED"
    assert f"CCE job {job_id} succeeded" in event["message"]
    text = logged_text(caplog, capsys)
    first = [line for line in text.splitlines() if f"Waiting for CCE job {job_id} (CreateCluster" in line]
    assert len(first) == 1, first  # the full id, once
    assert "polling every 0.05s until" in first[0], first
    progress_lines = [line for line in text.splitlines() if f"CCE job {job_id[:8]}…" in line]
    assert any("sub-jobs" in line and "%" in line for line in progress_lines), progress_lines
    assert len(progress_lines) <= 4  # one line per change, not per poll
    assert simulator.PASSWORD not in text
    assert cloud_simulator.stats()["job_polls"][job_id] == 4  # no wasted request


async def test_failed_job_event_names_code_message_and_sub_jobs(cloud_simulator, conn):
    job_id = cloud_simulator.create_job(
        "ecs", polls_to_finish=2, outcome="fail", error_code="Ecs.0036", message="Insufficient quota"
    )
    event = await first_event(make_trigger(conn, job_id, "ecs"))
    assert event["status"] == "failed"
    assert event["job"]["phase"] == "FAILED"
    for part in ("ECS job", job_id, "Ecs.0036", "Insufficient quota", "Failed sub-jobs"):
        assert part in event["message"]


async def test_absolute_deadline_gives_timeout_with_last_seen_job(cloud_simulator, conn):
    job_id = cloud_simulator.create_job("dws", polls_to_finish=10_000)
    event = await first_event(make_trigger(conn, job_id, "dws", timeout=0.5))
    assert event["status"] == "timeout"
    assert event["job"]["phase"] in ("PENDING", "RUNNING")
    assert "Timed out" in event["message"]
    assert job_id in event["message"]


async def test_restarted_trigger_past_its_deadline_times_out_without_polling(cloud_simulator, conn):
    job_id = cloud_simulator.create_job("cce", polls_to_finish=3)
    trigger = make_trigger(conn, job_id)
    _classpath, kwargs = trigger.serialize()
    kwargs["end_time"] = time.time() - 1  # the triggerer was down past the deadline
    event = await first_event(CloudJobTrigger(**kwargs))
    assert event["status"] == "timeout"
    assert cloud_simulator.stats()["job_requests"] == 0


async def test_deadline_passed_before_the_first_poll_of_a_seen_job_says_so(cloud_simulator, conn):
    job_id = cloud_simulator.create_job("cce", polls_to_finish=3)
    trigger = make_trigger(conn, job_id, timeout=-1, job_seen=True)  # seen by the task, then deferred
    event = await first_event(trigger)
    assert event["status"] == "timeout"
    assert "seen before deferring" in event["message"]
    assert "never seen" not in event["message"]
    assert cloud_simulator.stats()["job_requests"] == 0


async def test_restarted_trigger_resumes_the_same_wait(cloud_simulator, conn):
    job_id = cloud_simulator.create_job("cce", polls_to_finish=6)
    trigger = make_trigger(conn, job_id, timeout=60)
    runner = trigger.run()
    await asyncio.wait_for(asyncio.shield(asyncio.ensure_future(asyncio.sleep(0.15))), 1)
    task = asyncio.ensure_future(runner.__anext__())
    await asyncio.sleep(0)
    task.cancel()  # the triggerer dies mid-wait
    await asyncio.gather(task, return_exceptions=True)
    _, kwargs = trigger.serialize()
    resumed = CloudJobTrigger(**kwargs)
    assert resumed.end_time == trigger.end_time  # same absolute deadline, not a fresh one
    event = await first_event(resumed)
    assert event["status"] == "success"


@pytest.mark.parametrize(
    ("kind", "options"),
    RETRYABLE_FAULTS,
)
async def test_retryable_faults_do_not_end_the_wait(
    cloud_simulator, cloudjobs_conn, fast_backoff, kind, options
):
    conn_id = cloudjobs_conn(timeout=0.5)
    job_id = cloud_simulator.create_job("cce", polls_to_finish=2)
    cloud_simulator.inject_fault(kind, count=3, **options)
    event = await first_event(make_trigger(conn_id, job_id))
    assert event["status"] == "success"
    assert cloud_simulator.stats()["faults_served"] == 3


async def test_token_expiry_mid_wait_refreshes_once(cloud_simulator, conn):
    job_id = cloud_simulator.create_job("cce", polls_to_finish=3)
    cloud_simulator.inject_fault("token_expired", count=1)
    event = await first_event(make_trigger(conn, job_id))
    assert event["status"] == "success"
    assert cloud_simulator.stats()["iam_token_calls"] == 2


async def test_late_visible_job_is_waited_for(cloud_simulator, conn):
    job_id = cloud_simulator.create_job("ecs", polls_to_finish=2, visible_after_polls=3)
    event = await first_event(make_trigger(conn, job_id, "ecs", grace=30))
    assert event["status"] == "success"


async def test_never_visible_job_fails_after_grace(cloud_simulator, conn):
    event = await first_event(make_trigger(conn, "a1b2c3d4e5f6", "ecs", grace=0.3))
    assert event["status"] == "error"
    assert event["fatal"] is True
    assert "not found" in event["message"]
    assert "a1b2c3d4e5f6" in event["message"]


async def test_vanished_job_fails_clearly(cloud_simulator, conn):
    job_id = cloud_simulator.create_job("cce", polls_to_finish=50, vanish_after_polls=2)
    event = await first_event(make_trigger(conn, job_id, grace=60))
    assert event["status"] == "error"
    assert "vanished" in event["message"]
    assert event["job"]["job_id"] == job_id  # the last sight of it


async def test_unknown_status_keeps_waiting_and_warns_once(cloud_simulator, conn, caplog):
    job_id = cloud_simulator.create_job(
        "elb", raw_statuses=["RUNNING", "MIGRATING", "MIGRATING", "MIGRATING", "SUCCESS"]
    )
    with caplog.at_level(logging.WARNING):
        event = await first_event(make_trigger(conn, job_id, "elb"))
    assert event["status"] == "success"
    assert sum("MIGRATING" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records) == 1


async def test_wrong_password_fails_fast_without_secret(cloud_simulator, cloudjobs_conn, caplog, capsys):
    conn_id = cloudjobs_conn(password="Bad-Secret-42")
    job_id = cloud_simulator.create_job("cce")
    with caplog.at_level(logging.DEBUG):
        event = await first_event(make_trigger(conn_id, job_id), limit=10)
    assert event["status"] == "error"
    assert event["fatal"] is True
    assert "HTTP 401" in event["message"]
    assert "Bad-Secret-42" not in json.dumps(event)
    assert "Bad-Secret-42" not in logged_text(caplog, capsys)
    assert cloud_simulator.stats()["iam_token_calls"] == 1


async def test_bad_input_is_an_error_without_requests(cloud_simulator, conn):
    event = await first_event(make_trigger(conn, "../../etc"))
    assert event["status"] == "error"
    assert event["fatal"] is True
    assert "'..'" in event["message"]
    assert cloud_simulator.stats()["requests"] == 0


async def test_many_triggers_share_one_token_and_jitter_their_polls(cloud_simulator, conn):
    job_ids = [cloud_simulator.create_job("ecs", polls_to_finish=3) for _ in range(60)]
    try:
        events = await asyncio.wait_for(
            asyncio.gather(*(_collect(make_trigger(conn, job_id, "ecs")) for job_id in job_ids)), 30
        )
    finally:
        await close_shared_session()
    assert [event["job"]["job_id"] for event in events] == job_ids
    assert all(event["status"] == "success" for event in events)
    stats = cloud_simulator.stats()
    assert stats["iam_token_calls"] == 1
    assert stats["job_requests"] == 3 * len(job_ids)


async def _collect(trigger: CloudJobTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")


def test_serialize_round_trips_and_holds_no_secret(cloudjobs_conn):
    conn_id = cloudjobs_conn()
    custom = ServiceProfile.from_dict("natjobs", {"extends": "ecs", "host": "nat"})
    trigger = make_trigger(conn_id, "job-1", "natjobs", profile=custom.to_dict())
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_cloudjobs.triggers.cloudjobs.CloudJobTrigger"
    text = json.dumps(kwargs)  # plain data only
    assert simulator.PASSWORD not in text
    assert "token" not in text.lower()
    clone = CloudJobTrigger(**json.loads(text))
    assert clone.serialize() == (classpath, kwargs)
    assert ServiceProfile.from_dict("natjobs", clone.profile) == custom


def test_serialize_survives_airflow_serde():
    serde = pytest.importorskip("airflow.sdk.serde")
    trigger = make_trigger("cj", "job-1", "cce")
    _, kwargs = trigger.serialize()
    assert serde.deserialize(serde.serialize(kwargs)) == kwargs
    assert BUILTIN_PROFILES["cce"].key == kwargs["service"]
    assert kwargs["profile"] is None


@pytest.mark.skipif(
    AIRFLOW_BEFORE_3_2,
    reason="Airflow 3.1 asks the task supervisor for a connection no backend has; a test process has none",
)
async def test_undefined_connection_ends_the_wait_with_a_clear_error(cloud_simulator):
    event = await first_event(make_trigger("nope_conn", "job-1"), limit=10)
    assert event["status"] == "error"
    assert "Connection 'nope_conn' is not defined" in event["message"]
    assert event["fatal"] is False  # retries may help: the connection can be added meanwhile
    assert cloud_simulator.stats()["requests"] == 0


async def test_the_last_trigger_out_closes_the_shared_session(cloud_simulator, conn):
    from airflow_provider_cloudjobs import loop_state as loop_state_module

    loop = asyncio.get_running_loop()
    job_ids = [cloud_simulator.create_job("ecs", polls_to_finish=2 + i % 3) for i in range(6)]
    sessions = []
    triggers = [make_trigger(conn, job_id, "ecs") for job_id in job_ids]

    async def first(trigger: CloudJobTrigger) -> dict:
        async for event in trigger.run():
            # While a trigger is running, the loop's one session is open for it and the others.
            session = loop_state_module._states[loop].session()
            assert not session.closed
            sessions.append(session)
            return event.payload
        raise AssertionError("trigger ended without an event")

    events = await asyncio.gather(*(first(trigger) for trigger in triggers))
    assert {event["status"] for event in events} == {"success"}
    assert len({id(session) for session in sessions}) == 1  # one session for all six
    assert sessions[0].closed
    assert loop not in loop_state_module._states  # closed and forgotten: nothing holds the loop any more


async def test_many_waits_never_send_more_polls_at_once_than_the_scheduler_allows(
    cloud_simulator, conn, monkeypatch
):
    """Thousands of waits starting together (a triggerer restarting) must not hit the cloud in one burst."""
    from airflow_provider_cloudjobs.poll_scheduler import PollScheduler

    monkeypatch.setattr(PollScheduler, "max_in_flight", 4)
    job_ids = [cloud_simulator.create_job("ecs", polls_to_finish=2) for _ in range(24)]
    # slow answers (one per job; a slow answer does not advance its job), so that polls of waits let go
    # together would pile up at the server
    cloud_simulator.inject_fault("slow", delay=0.1, count=len(job_ids), path_contains="/jobs/")
    try:
        events = await asyncio.wait_for(
            asyncio.gather(*(_collect(make_trigger(conn, job_id, "ecs")) for job_id in job_ids)), 60
        )
    finally:
        await close_shared_session()
    assert [event["status"] for event in events] == ["success"] * len(job_ids)
    stats = cloud_simulator.stats()
    assert stats["job_requests"] == 3 * len(job_ids)
    assert stats["max_concurrent_requests"] <= 4


async def test_a_password_rotated_during_the_wait_is_picked_up(cloud_simulator, cloudjobs_conn, monkeypatch):
    """The admin rotates the IAM password and updates the connection while a wait is under way; then the
    wait's token expires. The trigger logs in with what it read at start, is refused, re-reads the
    connection and goes on with the new password instead of failing the task."""
    from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook

    conn_id = cloudjobs_conn()
    job_id = cloud_simulator.create_job("cce", polls_to_finish=3)
    real_send = CloudJobsHook._asend
    rotated: list[bool] = []

    async def send_then_rotate(self, request):
        response = await real_send(self, request)
        if "/jobs/" in request.url and not rotated:  # right after the wait's first poll
            rotated.append(True)
            cloud_simulator.add_user(simulator.USER_NAME, "Rotated-Pa55word")
            cloudjobs_conn(password="Rotated-Pa55word")
            cloud_simulator.expire_tokens()
        return response

    monkeypatch.setattr(CloudJobsHook, "_asend", send_then_rotate)
    event = await first_event(make_trigger(conn_id, job_id))
    assert event["status"] == "success", event["message"]
    stats = cloud_simulator.stats()
    assert stats["iam_token_calls"] == 3  # the first login, the refused old password, the new one
    assert stats["auth_failures"] >= 1


async def test_a_task_under_an_instance_is_waited_for_with_the_path_params_it_carries(cloud_simulator, conn):
    ids = {"instance_id": "inst-9"}
    job_id = cloud_simulator.create_job("rocketmq", polls_to_finish=2, path_params=ids)
    _, kwargs = make_trigger(conn, job_id, "rocketmq", path_params=ids).serialize()
    assert kwargs["path_params"] == ids  # ids only: what a restarted triggerer needs to resume

    event = await first_event(CloudJobTrigger(**json.loads(json.dumps(kwargs))))

    assert event["status"] == "success", event
    assert (event["job"]["job_id"], event["job"]["phase"]) == (job_id, "SUCCEEDED")
