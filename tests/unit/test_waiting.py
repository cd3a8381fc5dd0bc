"""The wait rules with an injected clock, and the sensor's poke and reschedule modes acting on them."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from airflow_provider_cloudjobs.exceptions import (
    CloudJobNotFoundError,
    CloudJobsAPIError,
    CloudJobsAuthError,
)
from airflow_provider_cloudjobs.waiting import (
    AGAIN,
    ERROR,
    FAILED,
    SUCCESS,
    TIMEOUT,
    Finished,
    JobWait,
    PollAgain,
)

log = logging.getLogger("test_waiting")
T0 = 1_000_000.0


def wait(**kwargs) -> JobWait:
    return JobWait("job-1", "ecs", end_time=T0 + 600, not_found_until=T0 + 120, **kwargs)


def job(status: str, phase: str, terminal: bool) -> dict:
    return {"status": status, "phase": phase, "is_terminal": terminal, "sub_jobs": [], "progress": None}


def test_a_running_job_polls_again_at_the_interval_and_a_finished_one_ends():
    w = wait()
    assert w.on_job(job("RUNNING", "RUNNING", False), log) is AGAIN
    done = w.on_job(job("SUCCESS", "SUCCEEDED", True), log)
    assert isinstance(done, Finished)
    assert done.event["status"] == SUCCESS


def test_a_404_waits_through_the_grace_then_ends_and_a_seen_job_that_vanishes_ends_at_once():
    w = wait()
    missing = CloudJobNotFoundError("404")
    assert w.on_error(missing, log, now=T0 + 119) is AGAIN
    assert w.on_error(missing, log, now=T0 + 121).event["status"] == ERROR  # type: ignore[union-attr]
    seen = wait(seen=True)
    assert seen.on_error(missing, log, now=T0 + 1).event["fatal"] is True  # type: ignore[union-attr]


def test_retryable_errors_back_off_exponentially_and_a_success_resets_it(monkeypatch):
    from airflow_provider_cloudjobs import transport

    monkeypatch.setattr(transport, "BACKOFF_BASE", 1.0)
    w = wait()
    delays = [w.on_error(CloudJobsAPIError("503", retryable=True), log, now=T0).delay for _ in range(4)]  # type: ignore[union-attr]
    assert [d >= 2**i / 2 for i, d in enumerate(delays)] == [True] * 4
    w.on_job(job("RUNNING", "RUNNING", False), log)
    assert w.on_error(CloudJobsAPIError("503", retryable=True), log).delay <= 1.0  # type: ignore[union-attr]


def test_retry_after_is_a_floor_on_the_backoff():
    outcome = wait().on_error(CloudJobsAPIError("429", retryable=True, retry_after=45), log)
    assert isinstance(outcome, PollAgain)
    assert 45 <= outcome.delay <= 46.0


def test_refused_credentials_end_the_wait_as_fatal():
    outcome = wait().on_error(CloudJobsAuthError("IAM refused"), log)
    assert isinstance(outcome, Finished)
    assert outcome.event["fatal"] is True


def test_the_sleep_never_passes_the_deadline_and_a_backoff_is_logged_as_kept(caplog):
    w = wait()
    with caplog.at_level(logging.WARNING, logger="test_waiting"):
        assert w.sleep_for(30, PollAgain(500.0, "HTTP 503"), log, now=T0 + 590) == 10.0
    assert "retrying in 10.0s" in caplog.text
    assert 27 <= w.sleep_for(30, AGAIN, log, now=T0) <= 33
    assert w.deadline_event(now=T0 + 599) is None
    assert w.deadline_event(now=T0 + 600).event["status"] == TIMEOUT  # type: ignore[union-attr]


# -- the sensor's poke and reschedule modes use the backoff they log ----------------------------------
def poke_once(mode: str, error: Exception, monkeypatch, caplog) -> tuple[float, str]:
    from airflow_provider_cloudjobs.profiles import BUILTIN_PROFILES
    from airflow_provider_cloudjobs.sensors.cloudjobs import CloudJobSensor

    sensor = CloudJobSensor(
        task_id="t", job_id="job-1", service="ecs", mode=mode, poke_interval=60, deferrable=False
    )
    hook = SimpleNamespace(
        profile=lambda *_: BUILTIN_PROFILES["ecs"],
        get_conn=lambda: None,
        get_job=lambda *_args: (_ for _ in ()).throw(error),
    )
    monkeypatch.setitem(sensor.__dict__, "hook", hook)
    monkeypatch.setattr(CloudJobSensor, "log", log)  # the task logger, where caplog sees it
    context = {"ti": SimpleNamespace(start_date=None, xcom_push=lambda **_: None)}
    with caplog.at_level(logging.WARNING):
        assert sensor.poke(context) is False  # type: ignore[arg-type]
    return sensor._get_next_poke_interval(0.0, lambda: 1.0, 1), caplog.text


def test_poke_mode_waits_the_retry_after_it_logs(monkeypatch, caplog):
    interval, text = poke_once(
        "poke", CloudJobsAPIError("429", retryable=True, retry_after=300), monkeypatch, caplog
    )
    assert 300 <= interval <= 301
    assert f"retrying in {interval:.1f}s" in text


def test_poke_mode_retries_a_transient_error_sooner_than_the_poke_interval(monkeypatch, caplog):
    interval, text = poke_once("poke", CloudJobsAPIError("503", retryable=True), monkeypatch, caplog)
    assert interval <= 1.0
    assert f"retrying in {interval:.1f}s" in text


def test_reschedule_mode_never_comes_back_sooner_than_the_poke_interval(monkeypatch, caplog):
    interval, text = poke_once("reschedule", CloudJobsAPIError("503", retryable=True), monkeypatch, caplog)
    assert interval == 60
    assert "retrying in 60.0s" in text


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_after_a_normal_poke_airflow_keeps_its_own_interval(mode, monkeypatch):
    from airflow_provider_cloudjobs.sensors.cloudjobs import CloudJobSensor

    sensor = CloudJobSensor(task_id="t", job_id="job-1", mode=mode, poke_interval=42, deferrable=False)
    assert sensor._get_next_poke_interval(0.0, lambda: 1.0, 1) == 42


# -- what the log says ----------------------------------------------------------------------------------
def test_the_first_line_names_the_full_job_id_resource_interval_deadline_and_console(caplog):
    w = JobWait("0123456789abcdef0123456789abcdef", "cce", end_time=T0 + 3600, not_found_until=T0)
    seen = {**job("Running", "RUNNING", False), "job_type": "CreateCluster", "resource_id": "c-1"}
    with caplog.at_level(logging.INFO, logger="test_waiting"):
        w.announce(seen, log, 30, "https://console.example/cce/c-1")
    line = caplog.records[-1].getMessage()
    assert "CCE job 0123456789abcdef0123456789abcdef (CreateCluster, c-1)" in line
    assert "polling every 30s until 1970-01-12 14:46:40 UTC" in line
    assert "console: https://console.example/cce/c-1" in line


def test_a_job_that_stays_the_same_is_said_to_be_still_so_every_ten_minutes(caplog):
    w = wait()
    running = job("RUNNING", "RUNNING", False)
    with caplog.at_level(logging.INFO, logger="test_waiting"):
        for minute in range(0, 31):
            w.on_job(running, log, now=T0 + 60 * minute)
    lines = [record.getMessage() for record in caplog.records]
    still = [line for line in lines if "still" in line]
    assert len(lines) == 4
    assert len(still) == 3
    assert still[0] == "ECS job job-1 still RUNNING (last change 13:46 UTC)"


def test_the_timeout_says_the_deadline_and_that_the_cloud_job_goes_on():
    message = wait().deadline_event(now=T0 + 601).event["message"]  # type: ignore[union-attr]
    assert "the deadline 1970-01-12 13:56:40 UTC passed" in message
    assert "goes on in the cloud" in message


def test_a_failed_job_says_what_to_do_next():
    from airflow_provider_cloudjobs._compat import AirflowFailException
    from airflow_provider_cloudjobs.sensors.cloudjobs import CloudJobSensor

    sensor = CloudJobSensor(task_id="t", job_id="job-1", deferrable=False)
    failed = {"status": FAILED, "job": job("FAIL", "FAILED", True), "message": "ECS job job-1 failed: quota"}
    with pytest.raises(AirflowFailException) as info:
        sensor.finish(failed)
    assert str(info.value).startswith("ECS job job-1 failed: quota. Next: this task is not retried")
    assert "clear the task that started the job" in str(info.value)
