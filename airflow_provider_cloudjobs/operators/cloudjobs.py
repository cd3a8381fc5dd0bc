"""CloudJobOperator: hand a cloud job to the next task as XCom, waiting for it first by default.

CloudRequestOperator: make the call that starts a job, then do the same; crash-safe on Airflow 3.3+.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_cloudjobs._compat import AirflowException, AirflowFailException
from airflow_provider_cloudjobs.connection import DEFAULT_CONN_ID
from airflow_provider_cloudjobs.exceptions import CloudJobsAPIError, CloudJobsAuthError, CloudJobsInputError
from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook
from airflow_provider_cloudjobs.links import CloudConsoleLink
from airflow_provider_cloudjobs.profiles import ServiceProfile, dig, first_value
from airflow_provider_cloudjobs.task_support import (
    DEFAULT_NOT_FOUND_GRACE,
    CloudJobTaskMixin,
    default_deferrable,
)
from airflow_provider_cloudjobs.validation import (
    validate_job_id,
    validate_path_params,
    validate_project_id,
    validate_request_path,
)
from airflow_provider_cloudjobs.waiting import FAILED, Finished

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_TIMEOUT = 7 * 24 * 3600.0


class CloudJobOperator(CloudJobTaskMixin, BaseOperator):
    """Return a cloud job, normalised, as XCom ``return_value``; by default once it has finished.

    :param job_id: the job id (templated).
    :param service: service key (templated).
    :param cloudjobs_conn_id: the ``cloudjobs`` connection.
    :param project_id: project override (templated).
    :param path_params: the further ids the service's job path needs (templated), e.g.
        ``{"instance_id": "..."}`` for a DMS Kafka task.
    :param wait_for_completion: wait until the job is terminal; if False, return the job as it is now.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param poll_interval: seconds between polls.
    :param timeout: seconds to wait before failing with a clear message.
    :param fail_on_job_failure: fail (without retries) when the job FAILED; set False to return the
        failed job and let a downstream branch look at ``phase``.
    :param not_found_grace: seconds after the wait starts during which a 404 means "not visible yet".
    """

    # cloudjobs_conn_id too: its rendered value is how the Cloud jobs page knows the connection of a poking task
    template_fields: Sequence[str] = ("job_id", "service", "project_id", "cloudjobs_conn_id", "path_params")
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
        path_params: dict[str, str] | None = None,
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
        self.path_params = path_params
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
            job = CloudJobsHook(self.cloudjobs_conn_id).get_job(
                self.job_id, profile.key, self.project_id, path_params=self.path_params
            )
            self.push_console_url(context, profile, job)
            return job
        wait = self.new_wait(self.timeout)
        while True:
            outcome = wait.deadline_event() or self.poll(wait, profile, context, self.poll_interval)
            if isinstance(outcome, Finished):
                return self.finish(outcome, fail_on_job_failure=self.fail_on_job_failure)
            if self.deferrable:
                self.defer_wait(wait, profile, self.poll_interval)
            time.sleep(wait.sleep_for(self.poll_interval, outcome, self.log))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        return self.complete(context, event, fail_on_job_failure=self.fail_on_job_failure)


#: The task state store key holding the job a CloudRequestOperator started (Airflow 3.3+). Renaming it
#: would make in-flight retries of deployed tasks send their request again.
STATE_KEY = "cloudjobs_job"
METHODS = ("POST", "PUT", "PATCH", "DELETE", "GET")
#: Methods the cloud may have acted on although no answer came back: sent at most once per try.
NOT_IDEMPOTENT = frozenset({"POST", "PATCH"})
_SHAPE_MAX_CHARS = 600


def answer_shape(value: Any, depth: int = 0) -> str:
    """The shape of a decoded answer, keys and types only: never a value (an answer may echo a password)."""
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        if depth >= 4:
            return "{…}"
        keys = list(value)
        parts = [f"{str(key)[:40]}: {answer_shape(value[key], depth + 1)}" for key in keys[:20]]
        if len(keys) > 20:
            parts.append(f"… {len(keys) - 20} more keys")
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        more = f", … {len(value)} items" if len(value) > 1 else ""
        return f"[{answer_shape(value[0], depth + 1)}{more}]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


def _clip(text: str, limit: int = _SHAPE_MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class CloudRequestOperator(CloudJobOperator):
    """Make the call that starts a cloud job (create a cluster, servers, a load balancer ...) and wait for it.

    :param service: service key (templated): where the request goes and how its job is read.
    :param method: HTTP method. POST and PATCH are sent at most once per try: no automatic retry on a
        time-out, a 5xx or an odd body, since the cloud may already have accepted the request.
    :param path: the API path (templated), may hold ``{project_id}``, e.g.
        ``/api/v3/projects/{project_id}/clusters``.
    :param json: the request body (templated). Never logged.
    :param project_id: project override (templated).
    :param path_params: the further ids the service's job path needs (templated), e.g. the instance of a
        DMS Kafka task: ``{"instance_id": "..."}``; checked before the request is sent.
    :param job_id_path: dotted path of the job id in the answer; by default where the service puts it
        (CCE ``status.jobID``; ECS, EVS, IMS, BMS, classic ELB, DWS, DCS, RDS ``job_id``).
    :param wait_for_completion, deferrable, poll_interval, timeout, fail_on_job_failure, not_found_grace:
        as :class:`CloudJobOperator`.

    XCom ``return_value`` is the normalised job (final when it waits), XCom ``response`` the decoded answer.
    On Airflow 3.3+ the job id goes to the task state store as soon as the answer arrives: a later try of
    the same task instance (a retry after a crash, a cleared task) reconnects to that job instead of
    sending the request again. Older Airflow has no task state store: crash recovery is off there.
    """

    template_fields: Sequence[str] = (
        *("path", "json", "service", "project_id", "cloudjobs_conn_id", "path_params"),
    )
    template_fields_renderers = {"json": "json"}
    ui_color = "#dcefff"

    def __init__(
        self,
        *,
        service: str,
        path: str,
        method: str = "POST",
        json: Any = None,
        project_id: str | None = None,
        cloudjobs_conn_id: str = DEFAULT_CONN_ID,
        job_id_path: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = 30.0,
        timeout: float = DEFAULT_TIMEOUT,
        fail_on_job_failure: bool = True,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
        path_params: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            job_id="",
            path_params=path_params,
            service=service,
            cloudjobs_conn_id=cloudjobs_conn_id,
            project_id=project_id,
            wait_for_completion=wait_for_completion,
            deferrable=deferrable,
            poll_interval=poll_interval,
            timeout=timeout,
            fail_on_job_failure=fail_on_job_failure,
            not_found_grace=not_found_grace,
            **kwargs,
        )
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise CloudJobsInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if job_id_path is not None and (not isinstance(job_id_path, str) or not job_id_path.strip()):
            raise CloudJobsInputError(
                f"job_id_path must be a dotted path such as 'status.jobID', got {job_id_path!r}"
            )
        self.method = method.upper()
        self.path = path
        self.json = json
        self.job_id_path = job_id_path
        self._ti: Any = None
        self._has_store = False

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> Any:
        self._ti = context["ti"]
        profile = self._checked_request_profile()
        store = context.get("task_state_store")
        self._has_store = store is not None
        try_number = getattr(context["ti"], "try_number", None)
        if store is None:
            self.log.warning(
                "This Airflow has no task state store (Airflow 3.3+): crash recovery is off. If this try "
                "dies after the cloud accepted %s %s, a retry sends it again.",
                self.method,
                self.path,
            )
            stored = None
        else:
            stored = self._stored_job(store, context)
        if stored is not None:
            return self._reconnect(stored, context, try_number)

        answer = self._send(profile)
        job_id = self._job_id_from(answer, profile)
        self.job_id = job_id
        self.log.info("%s accepted %s %s: job %s", profile.label, self.method, self.path, job_id)
        if store is not None:
            self._remember(store, job_id, profile, answer, try_number)
        context["ti"].xcom_push(key="response", value=answer)
        return self._wait_or_look(context, reconnected=False)

    def _checked_request_profile(self) -> ServiceProfile:
        """The rendered inputs checked before any request; a bad one fails without retries."""
        try:
            validate_request_path(self.path)
            validate_project_id(self.project_id)
            validate_path_params(self.path_params)
        except CloudJobsInputError as exc:
            raise AirflowFailException(str(exc)) from exc
        return self.service_profile()

    # ------------------------------------------------------------------ the request
    def _send(self, profile: ServiceProfile) -> Any:
        # POST/PATCH: the hook without per-call retries (self.hook has max_retries=0), so the request
        # goes out at most once in this try; idempotent methods keep the hook's retries.
        once = self.method in NOT_IDEMPOTENT
        hook = self.hook if once else CloudJobsHook(self.cloudjobs_conn_id)
        self.log.info(
            "Sending %s %s to %s%s",
            self.method,
            self.path,
            profile.label,
            " (once: not repeated within this try)" if once else "",
        )
        try:
            return hook.request(
                self.method, profile.key, self.path, json=self.json, project_id=self.project_id
            )
        except CloudJobsAuthError as exc:
            raise AirflowFailException(f"Not authorised to send {self.method} {self.path}: {exc}") from exc
        except CloudJobsInputError as exc:
            raise AirflowFailException(str(exc)) from exc
        except CloudJobsAPIError as exc:
            if exc.status == 429:
                raise AirflowException(
                    f"{self.method} {self.path} was throttled (HTTP 429): the cloud did not take it; "
                    f"a retry of this task sends it again. {exc}"
                ) from exc
            # A transport error, a 5xx or a 2xx whose body could not be read: the cloud may have acted.
            maybe_accepted = exc.retryable or exc.status is None or not 400 <= exc.status < 500
            if once and maybe_accepted:
                raise AirflowException(
                    f"{self.method} {self.path} got no usable answer: {exc}. It was sent once and not "
                    f"repeated in this try, because {profile.label} may have accepted it anyway: check for "
                    "a resource it created before a retry of this task sends the request again."
                ) from exc
            raise

    def _job_id_from(self, answer: Any, profile: ServiceProfile) -> str:
        if self.job_id_path:
            where, value = f"'{self.job_id_path}' (job_id_path)", dig(answer, self.job_id_path)
        else:
            paths = profile.answer_job_id
            where = " or ".join(f"'{p}'" for p in paths) + f", where {profile.label} puts it"
            value = first_value(answer, paths)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        problem = ""
        if value in (None, ""):
            problem = f"has no job id at {where}"
        elif not isinstance(value, str):
            problem = f"has a {answer_shape(value)} at {where}, not a job id"
        else:
            try:
                validate_job_id(value)
            except CloudJobsInputError:
                problem = f"has a value at {where} that is not a job id ({len(value)} characters)"
        if not problem:
            return str(value)
        # The cloud answered 2xx, so it probably started something: a retry would send the request again.
        raise AirflowFailException(
            f"The answer to {self.method} {self.path} {problem}; pass job_id_path= if this API keeps it "
            f"elsewhere. Not retried: {profile.label} probably accepted the request. The answer's shape: "
            + _clip(answer_shape(answer))
        )

    # ------------------------------------------------------------------ the task state store
    def _remember(
        self, store: Any, job_id: str, profile: ServiceProfile, answer: Any, try_number: int | None
    ) -> None:
        record = {
            "job_id": job_id,
            "service": profile.key,
            "project_id": self.project_id,
            "path_params": dict(self.path_params) if self.path_params else None,
            "method": self.method,
            "path": self.path,
            "try_number": try_number,
            "response": answer,
        }
        try:
            store.set(STATE_KEY, record)
        except Exception as exc:  # the job runs anyway: failing here would make a retry send it again
            self.log.error(
                "Could not store job %s in the task state store (%s): if this try dies, a retry sends "
                "%s %s again",
                job_id,
                type(exc).__name__,
                self.method,
                self.path,
            )
            return
        self.log.info(
            "Job %s stored in the task state store (key %r): a later try of this task instance reconnects "
            "to it instead of sending the request again",
            job_id,
            STATE_KEY,
        )

    def _stored_job(self, store: Any, context: Context) -> dict[str, Any] | None:
        record = store.get(STATE_KEY)
        if record is None:
            return None
        if isinstance(record, Mapping) and isinstance(record.get("job_id"), str) and record.get("service"):
            return dict(record)
        raise AirflowFailException(
            f"The task state store holds {answer_shape(record)} under {STATE_KEY!r}, not a job this operator "
            f"stored; nothing was sent. {self._forget_hint(context['ti'])}"
        )

    @staticmethod
    def _forget_hint(ti: Any) -> str:
        map_index = getattr(ti, "map_index", -1)
        query = f"?map_index={map_index}" if map_index is not None and map_index >= 0 else ""
        return (
            f"To send the request afresh, delete the task state key {STATE_KEY!r} of this task instance "
            f"(REST API: DELETE /api/v2/dags/{ti.dag_id}/dagRuns/{ti.run_id}/taskInstances/{ti.task_id}"
            f"/state-store/{STATE_KEY}{query}) and clear the task."
        )

    def _reconnect(self, stored: dict[str, Any], context: Context, try_number: int | None) -> Any:
        self.job_id = stored["job_id"]
        self.service = stored["service"]
        self.project_id = stored.get("project_id")
        self.path_params = stored.get("path_params")  # absent from records stored before path_params
        self.log.info(
            "Try %s: reconnecting to %s job %s, started by try %s with %s %s; not sending the request again",
            try_number,
            self.service.upper(),
            self.job_id,
            stored.get("try_number"),
            stored.get("method"),
            stored.get("path"),
        )
        if "response" in stored:
            context["ti"].xcom_push(key="response", value=stored["response"])
        return self._wait_or_look(context, reconnected=True)

    # ------------------------------------------------------------------ the wait
    def _wait_or_look(self, context: Context, *, reconnected: bool) -> Any:
        if self.wait_for_completion or not reconnected:
            return super().execute(context)
        # Reconnected without waiting: the job as it is now, but a job that already ended is judged as
        # the end of a wait would be (a failed one fails with its reason).
        profile = self.validated_profile()
        job = CloudJobsHook(self.cloudjobs_conn_id).get_job(
            self.job_id, profile.key, self.project_id, path_params=self.path_params
        )
        self.push_console_url(context, profile, job)
        if not job["is_terminal"]:
            return job
        outcome = self.new_wait(self.timeout).on_job(job, self.log)
        assert isinstance(outcome, Finished)
        return self.finish(outcome, fail_on_job_failure=self.fail_on_job_failure)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        self._ti = context["ti"]
        self._has_store = context.get("task_state_store") is not None
        return super().execute_complete(context, event)

    def finish(self, event: dict[str, Any] | Finished, *, fail_on_job_failure: bool = True) -> dict[str, Any]:
        try:
            return super().finish(event, fail_on_job_failure=fail_on_job_failure)
        except AirflowFailException:
            status = (event.event if isinstance(event, Finished) else event).get("status")
            if status == FAILED and self._ti is not None and self._has_store:
                # A cleared or retried try would reconnect to this failed job and fail the same way.
                self.log.warning("%s", self._forget_hint(self._ti))
            raise
