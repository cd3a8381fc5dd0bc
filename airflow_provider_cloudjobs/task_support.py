"""What the sensor and the operator share: input checks, the check before deferring, the deferral
itself, and turning a wait's final event into a result or the right Airflow exception."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_cloudjobs._compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)
from airflow_provider_cloudjobs.exceptions import CloudJobsError, CloudJobsInputError
from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook
from airflow_provider_cloudjobs.links import CONSOLE_URL_KEY, console_url
from airflow_provider_cloudjobs.profiles import ServiceProfile, is_builtin
from airflow_provider_cloudjobs.triggers.cloudjobs import CloudJobTrigger
from airflow_provider_cloudjobs.validation import validate_job_id, validate_path_params, validate_project_id
from airflow_provider_cloudjobs.waiting import ERROR, FAILED, SUCCESS, TIMEOUT, Finished, JobWait, PollOutcome

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_NOT_FOUND_GRACE = 120.0
# The trigger's own deadline fires first and says what the job was doing; Airflow's deferral
# timeout is only the safety net behind it.
DEFERRAL_TIMEOUT_MARGIN = 60.0
FAILED_NEXT_STEPS = (
    ". Next: this task is not retried (a failed cloud job does not heal); what the job was building may "
    "remain in the cloud (see the Cloud console link): fix the cause, delete or repair the resource, then "
    "clear the task that started the job (clearing only this task waits on the same failed job again)"
)


def default_deferrable() -> bool:
    try:  # Airflow 3.2+
        from airflow.sdk import conf
    except ImportError:  # Airflow 3.1: the Task SDK has no conf yet
        from airflow.configuration import conf  # type: ignore[assignment]

    return conf.getboolean("operators", "default_deferrable", fallback=False)


class CloudJobTaskMixin:
    """Mixed into :class:`CloudJobSensor` and :class:`CloudJobOperator`; expects BaseOperator's attributes."""

    job_id: str
    service: str
    cloudjobs_conn_id: str
    project_id: str | None
    path_params: dict[str, str] | None
    not_found_grace: float
    soft_fail: bool
    log: Any

    #: What a timeout raises: the sensor's AirflowSensorTimeout, the operator's AirflowFailException.
    timeout_exception: type[Exception] = AirflowSensorTimeout

    @cached_property
    def hook(self) -> CloudJobsHook:
        # Retries are the wait's business (JobWait backs off and keeps the deadline), not each call's.
        return CloudJobsHook(self.cloudjobs_conn_id, max_retries=0)

    def validated_profile(self) -> ServiceProfile:
        """Check the (rendered) inputs before any request; the error names what is wrong.

        A bad job id, project id or service fails the task without retries, as the trigger's fatal
        error does: a retry renders the same input again. (A bad connection stays retryable.)
        """
        try:
            validate_job_id(self.job_id)
            validate_project_id(self.project_id)
            validate_path_params(self.path_params)
            if self.not_found_grace < 0:
                raise CloudJobsInputError(f"not_found_grace must be >= 0 seconds, got {self.not_found_grace}")
        except CloudJobsInputError as exc:
            raise AirflowFailException(str(exc)) from exc
        return self.service_profile()

    def service_profile(self) -> ServiceProfile:
        """The profile of ``service``, with ``path_params`` checked against its job path; an unknown service
        or a missing or unknown path parameter fails without retries (a bad connection stays retryable)."""
        settings = self.hook.get_conn()
        try:
            profile = self.hook.profile(self.service, settings)
            profile.checked_path_params(self.path_params)
        except CloudJobsInputError as exc:
            raise AirflowFailException(str(exc)) from exc
        return profile

    def new_wait(self, timeout: float, started_at: float | None = None) -> JobWait:
        start = time.time() if started_at is None else started_at
        return JobWait(self.job_id, self.service.lower(), start + timeout, start + self.not_found_grace)

    def poll(self, wait: JobWait, profile: ServiceProfile, context: Context, interval: float) -> PollOutcome:
        """One sync poll: finished, or poll again (after ``interval``, or a backoff)."""
        try:
            job = self.hook.get_job(self.job_id, profile.key, self.project_id, profile, self.path_params)
        except CloudJobsError as exc:
            return wait.on_error(exc, self.log)
        if not wait.seen:
            url = self.push_console_url(context, profile, job)
            wait.announce(job, self.log, interval, url)
        return wait.on_job(job, self.log)

    def push_console_url(self, context: Context, profile: ServiceProfile, job: dict[str, Any]) -> str:
        url = console_url(self.hook.get_conn(), profile, job, self.path_params)
        if url:
            context["ti"].xcom_push(key=CONSOLE_URL_KEY, value=url)
        return url

    def defer_wait(self, wait: JobWait, profile: ServiceProfile, poll_interval: float) -> None:
        trigger = CloudJobTrigger(
            job_id=self.job_id,
            service=profile.key,
            cloudjobs_conn_id=self.cloudjobs_conn_id,
            project_id=self.project_id,
            poll_interval=poll_interval,
            end_time=wait.end_time,
            not_found_until=wait.not_found_until,
            job_seen=wait.seen,
            profile=None if is_builtin(profile) else profile.to_dict(),
            path_params=dict(self.path_params) if self.path_params else None,
        )
        remaining = max(0.0, wait.end_time - time.time())
        self.defer(  # type: ignore[attr-defined]
            trigger=trigger,
            method_name="execute_complete",
            timeout=timedelta(seconds=remaining + DEFERRAL_TIMEOUT_MARGIN),
        )

    def complete(self, context: Context, event: dict[str, Any], *, fail_on_job_failure: bool = True) -> Any:
        """``execute_complete`` of the sensor and the operators: the console link, then the result."""
        job = event.get("job")
        if job:
            self.push_console_url(context, self.hook.profile(self.service, self.hook.get_conn()), job)
        return self.finish(event, fail_on_job_failure=fail_on_job_failure)

    def finish(self, event: dict[str, Any] | Finished, *, fail_on_job_failure: bool = True) -> dict[str, Any]:
        """The job to return as XCom, or the exception the contract's Outcomes table names."""
        if isinstance(event, Finished):
            event = event.event
        status, message, job = event.get("status"), event.get("message", ""), event.get("job")
        if status == SUCCESS and job is not None:
            self.log.info("%s", message)
            return job
        if status == FAILED and job is not None:
            if not fail_on_job_failure:
                self.log.warning(
                    "%s (fail_on_job_failure=False: returning the job for downstream tasks)", message
                )
                return job
            self._skip_if_soft(message)
            raise AirflowFailException(message + FAILED_NEXT_STEPS)
        if status == TIMEOUT:
            self._skip_if_soft(message)
            raise self.timeout_exception(message)
        if status == ERROR:
            self._skip_if_soft(message)
            raise (AirflowFailException if event.get("fatal") else AirflowException)(message)
        raise AirflowException(f"Unexpected event from CloudJobTrigger: {event!r}")

    def _skip_if_soft(self, message: str) -> None:
        if getattr(self, "soft_fail", False):
            raise AirflowSkipException(f"soft_fail is set, skipping: {message}")
