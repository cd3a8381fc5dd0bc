"""CloudJobSensor: wait until a cloud job is terminal; poke, reschedule or deferrable."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_cloudjobs.connection import DEFAULT_CONN_ID
from airflow_provider_cloudjobs.links import CloudConsoleLink
from airflow_provider_cloudjobs.task_support import (
    DEFAULT_NOT_FOUND_GRACE,
    CloudJobTaskMixin,
    default_deferrable,
)
from airflow_provider_cloudjobs.waiting import Finished, JobWait, PollAgain

if TYPE_CHECKING:
    from airflow.sdk import Context


class CloudJobSensor(CloudJobTaskMixin, BaseSensorOperator):
    """Wait for a Huawei Cloud (or compatible) job to finish; XCom ``return_value`` is the final job.

    :param job_id: the job id the cloud returned (templated; usually an upstream XCom).
    :param service: service key, e.g. ``cce``, ``dws``, ``elb``, ``ecs`` (templated).
    :param cloudjobs_conn_id: the ``cloudjobs`` connection.
    :param project_id: project override (templated); the connection's project by default.
    :param path_params: the further ids the service's job path needs (templated), e.g.
        ``{"instance_id": "{{ ti.xcom_pull('create')['instance_id'] }}"}`` for ``service="kafka"``.
    :param not_found_grace: seconds after the wait starts during which a 404 means "not visible yet".
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``). The sensor
        checks once first and does not defer when the job is already finished.

    A FAILED job fails the task without retries (``AirflowFailException``); the timeout raises
    ``AirflowSensorTimeout``. With ``soft_fail=True`` both (and any other failure of the wait) skip it.
    """

    # cloudjobs_conn_id too: its rendered value is how the Cloud jobs page knows the connection of a poking task
    template_fields: Sequence[str] = ("job_id", "service", "project_id", "cloudjobs_conn_id", "path_params")
    operator_extra_links = (CloudConsoleLink(),)
    ui_color = "#e8f4ff"

    def __init__(
        self,
        *,
        job_id: str,
        service: str = "cce",
        cloudjobs_conn_id: str = DEFAULT_CONN_ID,
        project_id: str | None = None,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
        deferrable: bool | None = None,
        path_params: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.service = service
        self.cloudjobs_conn_id = cloudjobs_conn_id
        self.project_id = project_id
        self.path_params = path_params
        self.not_found_grace = float(not_found_grace)
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self._wait: JobWait | None = None
        self._backoff: float | None = None

    def execute(self, context: Context) -> Any:
        profile = self.validated_profile()
        if not self.deferrable:
            return super().execute(context)
        wait = self.new_wait(self.timeout)
        outcome = self.poll(wait, profile, context, self.poke_interval)
        if isinstance(outcome, Finished):
            return self.finish(outcome)
        self.defer_wait(wait, profile, self.poke_interval)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        profile = self.hook.profile(self.service, self.hook.get_conn())
        if self._wait is None:
            # The base class enforces `timeout`; the grace window starts with the task's first try.
            start = context["ti"].start_date
            self._wait = self.new_wait(float("inf"), start.timestamp() if start else time.time())
        outcome = self.poll(self._wait, profile, context, self.poke_interval)
        if isinstance(outcome, Finished):
            return PokeReturnValue(is_done=True, xcom_value=self.finish(outcome))
        if outcome.delay is not None:
            # A backoff (Retry-After included) replaces the next poke interval, below. In reschedule mode
            # the wait (and its count of failures) starts afresh with every try: never come back sooner
            # than poke_interval there.
            if self.reschedule:
                outcome = PollAgain(max(outcome.delay, self.poke_interval), outcome.reason)
            self._backoff = self._wait.sleep_for(self.poke_interval, outcome, self.log)
        return False

    def _get_next_poke_interval(self, started_at: Any, run_duration: Any, poke_count: int) -> float:
        """Airflow's next poke interval, unless the last poll asked to back off for longer or shorter:
        then exactly the backoff it logged."""
        backoff, self._backoff = self._backoff, None
        if backoff is not None:
            return backoff
        return float(super()._get_next_poke_interval(started_at, run_duration, poke_count))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        return self.complete(context, event)
