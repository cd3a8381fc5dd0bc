"""Which cloud-job waits exist, read from Airflow's own records (no table of ours).

- In flight, deferred: task instances in state ``deferred`` whose trigger is :class:`CloudJobTrigger`;
  the trigger's kwargs (no secret in them) say which job, service, connection, project, further path ids
  (``path_params``) and deadline.
- In flight, not deferred: our tasks ``running`` or ``up_for_reschedule`` (poke and reschedule mode;
  also ``scheduled`` / ``queued`` again for their next poke);
  the job id, service, project and path ids come from their rendered template fields.
- Recently finished: our tasks that ended lately; a successful one's final job is its XCom
  ``return_value`` (nothing to ask the cloud).

Runs in the API server with its SQLAlchemy session; bounded queries only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from airflow_provider_cloudjobs.connection import DEFAULT_CONN_ID
from airflow_provider_cloudjobs.links import CONSOLE_URL_KEY

TRIGGER_CLASSPATH = "airflow_provider_cloudjobs.triggers.cloudjobs.CloudJobTrigger"
OPERATORS = ("CloudJobSensor", "CloudJobOperator", "CloudRequestOperator")
RUNNING_STATES = ("running", "up_for_reschedule")
# A sensor in reschedule mode goes up_for_reschedule -> scheduled -> queued -> running for every poke;
# once it has started (start_date set) it is still waiting while scheduled or queued.
REQUEUED_STATES = ("scheduled", "queued")
FINISHED_STATES = ("success", "failed", "skipped", "upstream_failed")
MAX_IN_FLIGHT = 1000
MAX_FINISHED = 25
FINISHED_WINDOW = timedelta(hours=24)


@dataclass
class WaitRecord:
    """One task's wait as Airflow knows it (plus, when finished, its final job)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    state: str | None
    try_number: int
    operator: str | None
    job_id: str | None = None
    service: str | None = None
    conn_id: str | None = None
    conn_known: bool = True  # False: not recorded by the task (poke mode); the default connection is used
    project_id: str | None = None
    path_params: dict[str, str] | None = None  # the further ids of the job's path (a DMS instance ...)
    deadline: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    profile: dict[str, Any] | None = None  # a service the trigger carries (not built in)
    final_job: dict[str, Any] | None = None
    console_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.dag_id, self.run_id, self.task_id, self.map_index)

    @property
    def deferred(self) -> bool:
        return self.state == "deferred"

    @property
    def lookup_key(self) -> tuple[str, str, str | None, str, str | None, str | None] | None:
        """What identifies the job in the cloud (the trigger's own service profile and the path ids as
        JSON), or None when the job id is not known."""
        if not self.job_id or not self.service or not self.conn_id:
            return None
        profile = json.dumps(self.profile, sort_keys=True, default=str) if self.profile else None
        params = json.dumps(self.path_params, sort_keys=True) if self.path_params else None
        return (self.conn_id, self.service, self.project_id, self.job_id, profile, params)


def _models() -> tuple[Any, Any, Any, Any]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel

    return TaskInstance, Trigger, RenderedTaskInstanceFields, XComModel


def _record(ti: Any) -> WaitRecord:
    return WaitRecord(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        map_index=int(ti.map_index),
        state=str(ti.state.value if hasattr(ti.state, "value") else ti.state) if ti.state else None,
        try_number=int(ti.try_number or 0),
        operator=ti.custom_operator_name or ti.operator,
        start_date=ti.start_date,
        end_date=ti.end_date,
    )


def _apply_trigger(record: WaitRecord, kwargs: Mapping[str, Any]) -> None:
    record.job_id = _text(kwargs.get("job_id"))
    record.service = _text(kwargs.get("service"))
    record.conn_id = _text(kwargs.get("cloudjobs_conn_id")) or DEFAULT_CONN_ID
    record.project_id = _text(kwargs.get("project_id"))
    profile = kwargs.get("profile")
    record.profile = dict(profile) if isinstance(profile, Mapping) else None
    record.path_params = _ids(kwargs.get("path_params"))
    end_time = kwargs.get("end_time")
    if isinstance(end_time, (int, float)) and end_time > 0:
        record.deadline = datetime.fromtimestamp(float(end_time), tz=timezone.utc)


def _apply_rendered(record: WaitRecord, fields: Mapping[str, Any] | None) -> None:
    fields = fields or {}
    record.job_id = record.job_id or _text(fields.get("job_id"))
    record.service = record.service or _text(fields.get("service")) or "cce"
    record.project_id = record.project_id or _text(fields.get("project_id"))
    record.path_params = record.path_params or _ids(fields.get("path_params"))
    if record.conn_id is None:
        # The connection is not a template field, so a task that never deferred did not record it.
        record.conn_id = _text(fields.get("cloudjobs_conn_id")) or DEFAULT_CONN_ID
        record.conn_known = "cloudjobs_conn_id" in fields


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text if text and text != "None" else None


def _ids(value: Any) -> dict[str, str] | None:
    """Path ids as recorded: a mapping (trigger kwargs, rendered fields), or its JSON text. The hook checks
    them again before any cloud call."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, Mapping) or not value:
        return None
    return {str(k): str(v) for k, v in list(value.items())[:16]}


def _trigger_kwargs(trigger: Any) -> dict[str, Any]:
    try:
        kwargs = trigger.kwargs
    except Exception:  # undecryptable (rotated Fernet key ...): show the wait without its job
        return {}
    return dict(kwargs) if isinstance(kwargs, Mapping) else {}


def _rendered(session: Session, records: Iterable[WaitRecord]) -> dict[tuple[str, str, str, int], Any]:
    _, _, rtif, _ = _models()
    wanted = {r.key for r in records}
    if not wanted:
        return {}
    rows = session.execute(
        select(rtif.dag_id, rtif.run_id, rtif.task_id, rtif.map_index, rtif.rendered_fields).where(
            rtif.dag_id.in_({k[0] for k in wanted}), rtif.run_id.in_({k[1] for k in wanted})
        )
    )
    return {(r[0], r[1], r[2], int(r[3])): r[4] for r in rows if (r[0], r[1], r[2], int(r[3])) in wanted}


def _xcoms(
    session: Session, records: Iterable[WaitRecord], keys: tuple[str, ...]
) -> dict[tuple[tuple[str, str, str, int], str], Any]:
    _, _, _, xcom = _models()
    wanted = {r.key for r in records}
    if not wanted:
        return {}
    rows = session.execute(
        select(xcom.dag_id, xcom.run_id, xcom.task_id, xcom.map_index, xcom.key, xcom.value).where(
            xcom.dag_id.in_({k[0] for k in wanted}),
            xcom.run_id.in_({k[1] for k in wanted}),
            xcom.task_id.in_({k[2] for k in wanted}),
            xcom.key.in_(keys),
        )
    )
    found = {}
    for dag_id, run_id, task_id, map_index, key, value in rows:
        ti_key = (dag_id, run_id, task_id, int(map_index))
        if ti_key in wanted:
            found[(ti_key, key)] = _xcom_value(value)
    return found


def _xcom_value(value: Any) -> Any:
    # XCom values are JSON in the metadata DB; some backends hand back the JSON text.
    if isinstance(value, (bytes, str)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _attach_xcoms(session: Session, records: list[WaitRecord]) -> None:
    values = _xcoms(session, records, ("return_value", CONSOLE_URL_KEY))
    for record in records:
        url = values.get((record.key, CONSOLE_URL_KEY))
        record.console_url = url if isinstance(url, str) else None
        job = values.get((record.key, "return_value"))
        if isinstance(job, dict) and job.get("job_id") and "phase" in job:
            record.final_job = job


def in_flight(session: Session, limit: int = MAX_IN_FLIGHT) -> list[WaitRecord]:
    """Every wait in flight, deferred first (newest trigger first), then poking sensors."""
    ti_model, trigger_model, _, _ = _models()
    records: list[WaitRecord] = []
    deferred = session.execute(
        select(ti_model, trigger_model)
        .join(trigger_model, ti_model.trigger_id == trigger_model.id)
        .where(ti_model.state == "deferred", trigger_model.classpath == TRIGGER_CLASSPATH)
        .order_by(ti_model.start_date.desc())
        .limit(limit)
    )
    for ti, trigger in deferred:
        record = _record(ti)
        _apply_trigger(record, _trigger_kwargs(trigger))
        records.append(record)
    running = [
        _record(ti)
        for ti in session.scalars(
            select(ti_model)
            .where(
                ti_model.operator.in_(OPERATORS),
                or_(
                    ti_model.state.in_(RUNNING_STATES),
                    and_(ti_model.state.in_(REQUEUED_STATES), ti_model.start_date.is_not(None)),
                ),
            )
            .order_by(ti_model.start_date.desc())
            .limit(max(0, limit - len(records)))
        )
    ]
    rendered = _rendered(session, running)
    for record in running:
        _apply_rendered(record, rendered.get(record.key))
    records.extend(running)
    _attach_xcoms(session, records)
    return records


def recently_finished(
    session: Session, now: datetime | None = None, limit: int = MAX_FINISHED
) -> list[WaitRecord]:
    """Our tasks that ended in the last 24 hours, newest first; no cloud call is needed for them."""
    ti_model, _, _, _ = _models()
    since = (now or datetime.now(timezone.utc)) - FINISHED_WINDOW
    records = [
        _record(ti)
        for ti in session.scalars(
            select(ti_model)
            .where(
                ti_model.state.in_(FINISHED_STATES),
                ti_model.operator.in_(OPERATORS),
                ti_model.end_date >= since,
            )
            .order_by(ti_model.end_date.desc())
            .limit(limit)
        )
    ]
    rendered = _rendered(session, records)
    for record in records:
        _apply_rendered(record, rendered.get(record.key))
    _attach_xcoms(session, records)
    for record in records:
        if record.final_job:
            record.job_id = str(record.final_job.get("job_id") or record.job_id or "") or None
            record.service = str(record.final_job.get("service") or record.service or "") or None
    return records


def one_task(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> WaitRecord | None:
    """The task instance's wait (in flight or finished), or None when the task instance does not exist."""
    ti_model, trigger_model, _, _ = _models()
    ti = session.scalar(
        select(ti_model).where(
            ti_model.dag_id == dag_id,
            ti_model.run_id == run_id,
            ti_model.task_id == task_id,
            ti_model.map_index == map_index,
        )
    )
    if ti is None:
        return None
    record = _record(ti)
    if ti.trigger_id is not None:
        trigger = session.get(trigger_model, ti.trigger_id)
        if trigger is not None and trigger.classpath == TRIGGER_CLASSPATH:
            _apply_trigger(record, _trigger_kwargs(trigger))
    if record.job_id is None and (record.operator in OPERATORS or ti.operator in OPERATORS):
        _apply_rendered(record, _rendered(session, [record]).get(record.key))
    _attach_xcoms(session, [record])
    if record.final_job and not record.job_id:
        record.job_id = str(record.final_job.get("job_id") or "") or None
        record.service = str(record.final_job.get("service") or "") or None
    return record
