"""CloudJobTrigger: waits on a cloud job inside the triggerer, without holding a worker slot.

Fully async: the connection comes from ``aget_connection`` (once per connection for the whole loop, and
again after IAM refused it, so a rotated password is picked up), HTTP goes through the loop's shared
aiohttp session and the process-wide token cache. Its kwargs are plain data with no secret; the
deadline and the 404 grace window are absolute epoch seconds, so a triggerer that restarts (or a
second one that takes the trigger over) resumes the same wait instead of starting a new one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_cloudjobs.connection import DEFAULT_CONN_ID
from airflow_provider_cloudjobs.exceptions import CloudJobsError
from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook
from airflow_provider_cloudjobs.links import console_url
from airflow_provider_cloudjobs.loop_state import LoopState
from airflow_provider_cloudjobs.profiles import ServiceProfile
from airflow_provider_cloudjobs.waiting import Finished, JobWait, PollOutcome


class CloudJobTrigger(BaseTrigger):
    """Poll one job until it is terminal, the deadline passes, or the wait cannot go on.

    :param job_id: the cloud's job id.
    :param service: service key (``cce``, ``dws``, ``elb``, ``ecs`` ...).
    :param cloudjobs_conn_id: connection looked up inside the triggerer (never passed in kwargs).
    :param project_id: project override; the connection's project when None.
    :param poll_interval: seconds between polls (jittered by 10% so many waits spread out).
    :param end_time: absolute deadline, epoch seconds.
    :param not_found_until: until when (epoch seconds) a 404 means "not visible yet".
    :param job_seen: the job was already seen before deferring, so a 404 means it vanished.
    :param profile: plain-data service profile, for services the triggerer process does not know.
    :param path_params: the further ids of the job's path (``{"instance_id": "..."}``); ids, no secret.
    """

    def __init__(
        self,
        job_id: str,
        service: str = "cce",
        cloudjobs_conn_id: str = DEFAULT_CONN_ID,
        project_id: str | None = None,
        poll_interval: float = 30.0,
        end_time: float = 0.0,
        not_found_until: float = 0.0,
        job_seen: bool = False,
        profile: dict[str, Any] | None = None,
        path_params: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.service = service
        self.cloudjobs_conn_id = cloudjobs_conn_id
        self.project_id = project_id
        self.poll_interval = float(poll_interval)
        self.end_time = float(end_time)
        self.not_found_until = float(not_found_until)
        self.job_seen = bool(job_seen)
        self.profile = profile
        self.path_params = dict(path_params) if path_params else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "service": self.service,
                "cloudjobs_conn_id": self.cloudjobs_conn_id,
                "project_id": self.project_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "not_found_until": self.not_found_until,
                "job_seen": self.job_seen,
                "profile": self.profile,
                "path_params": self.path_params,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = CloudJobsHook(self.cloudjobs_conn_id, max_retries=0)
        profile = ServiceProfile.from_dict(self.service, self.profile) if self.profile else None
        wait = JobWait(self.job_id, self.service, self.end_time, self.not_found_until, seen=self.job_seen)
        # The loop's scheduler decides when this wait polls (see poll_scheduler: one timer for all waits,
        # a bounded number of polls at once); the last wait out closes the loop's HTTP session.
        state = LoopState.enter()
        try:
            delay = 0.0
            while True:
                turn = state.scheduler.turn(delay)
                try:
                    await turn
                    outcome = wait.deadline_event() or await self._poll(hook, profile, wait)
                finally:
                    state.scheduler.done(turn)
                if isinstance(outcome, Finished):
                    yield TriggerEvent(outcome.event)
                    return
                delay = wait.sleep_for(self.poll_interval, outcome, type(self).logger(), time.time())
        finally:
            await state.leave()

    async def _poll(self, hook: CloudJobsHook, profile: ServiceProfile | None, wait: JobWait) -> PollOutcome:
        """One poll: finished, or poll again (after the interval, or a backoff).

        A method of its own so the job it fetched is freed when it returns, not held in ``run()``'s frame
        through the sleep: with thousands of waits, what they hold is what each full GC pass walks while
        the event loop stands still. For the same reason every trigger logs through one class logger (the
        triggerer routes a line to its task's log by the context it binds around ``run()``).
        """
        log = type(self).logger()
        try:
            job = await hook.aget_job(
                self.job_id, self.service, self.project_id, profile=profile, path_params=self.path_params
            )
        except CloudJobsError as exc:
            return wait.on_error(exc, log)
        if not wait.seen:
            settings = await hook.aget_conn()
            url = console_url(
                settings, profile or hook.profile(self.service, settings), job, self.path_params
            )
            wait.announce(job, log, self.poll_interval, url)
        return wait.on_job(job, log)
