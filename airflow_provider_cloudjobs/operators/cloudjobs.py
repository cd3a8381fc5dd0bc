"""CloudJobOperator: hand a cloud job to the next task as XCom, waiting for it first by default."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_cloudjobs._compat import AirflowFailException
from airflow_provider_cloudjobs.connection import DEFAULT_CONN_ID
from airflow_provider_cloudjobs.exceptions import CloudJobsInputError
from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook
from airflow_provider_cloudjobs.links import CloudConsoleLink
from airflow_provider_cloudjobs.task_support import (
    DEFAULT_NOT_FOUND_GRACE,
    CloudJobTaskMixin,
    default_deferrable,
)
from airflow_provider_cloudjobs.waiting import Finished

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_TIMEOUT = 7 * 24 * 3600.0


class CloudJobOperator(CloudJobTaskMixin, BaseOperator):
    """Return a cloud job, normalised, as XCom ``return_value``; by default once it has finished.

    :param job_id: the job id (templated).
    :param service: service key (templated).
    :param cloudjobs_conn_id: the ``cloudjobs`` connection.
    :param project_id: project override (templated).
    :param wait_for_completion: wait until the job is terminal; if False, return the job as it is now.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param poll_interval: seconds between polls.
    :param timeout: seconds to wait before failing with a clear message.
    :param fail_on_job_failure: fail (without retries) when the job FAILED; set False to return the
        failed job and let a downstream branch look at ``phase``.
    :param not_found_grace: seconds after the wait starts during which a 404 means "not visible yet".
    """

    # cloudjobs_conn_id too: its rendered value is how the Cloud jobs page knows the connection of a poking task
    template_fields: Sequence[str] = ("job_id", "service", "project_id", "cloudjobs_conn_id")
    operator_extra_links = (CloudConsoleLink(),)
    ui_color = "#e8f4ff"
    timeout_exception = AirflowFailException

    def __init__(
        self,
        *,
        job_id: str,
        service: str = "cce",
        cloudjobs_conn_id: str = DEFAULT_CONN_ID,
        project_id: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = 30.0,
        timeout: float = DEFAULT_TIMEOUT,
        fail_on_job_failure: bool = True,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if poll_interval <= 0 or timeout <= 0:
            raise CloudJobsInputError(
                f"poll_interval and timeout must be positive, got {poll_interval}, {timeout}"
            )
        self.job_id = job_id
        self.service = service
        self.cloudjobs_conn_id = cloudjobs_conn_id
        self.project_id = project_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        self.fail_on_job_failure = fail_on_job_failure
        self.not_found_grace = float(not_found_grace)

    def execute(self, context: Context) -> Any:
        profile = self.validated_profile()
        if not self.wait_for_completion:
            # A single look with the hook's own retries: nothing is waited on afterwards.
            job = CloudJobsHook(self.cloudjobs_conn_id).get_job(self.job_id, profile.key, self.project_id)
            self.push_console_url(context, profile, job)
            return job
        wait = self.new_wait(self.timeout)
        while True:
            outcome = wait.deadline_event() or self.poll(wait, profile, context)
            if isinstance(outcome, Finished):
                return self.finish(outcome, fail_on_job_failure=self.fail_on_job_failure)
            if self.deferrable:
                self.defer_wait(wait, profile, self.poll_interval)
            time.sleep(wait.sleep_for(self.poll_interval, outcome, self.log))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        job = event.get("job")
        if job:
            self.push_console_url(context, self.hook.profile(self.service, self.hook.get_conn()), job)
        return self.finish(event, fail_on_job_failure=self.fail_on_job_failure)
