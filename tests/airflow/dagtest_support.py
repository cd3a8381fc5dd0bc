"""Helpers of the DAG-run tests: a DAG written to the DB, what a run left behind, the waiting task."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any


def sync_dag_to_db(dag: Any) -> None:
    """Write a DAG built in a test to the DB, as the DAG processor would: dag.test() needs it serialized."""
    try:  # Airflow 3.2+
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag, sync_bag_to_db  # type: ignore[no-redef]

    bag = DagBag(dag_folder="/nonexistent-dag-folder", collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


@dataclass
class TaskResult:
    task_id: str
    map_index: int
    state: str | None
    try_number: int
    max_tries: int


@dataclass
class DagResult:
    """What a test looks at after ``dag.test()``: run and task states, XComs, the task log text."""

    dag_id: str
    run_id: str
    state: str
    tasks: dict[tuple[str, int], TaskResult]
    xcoms: dict[tuple[str, str, int], Any]
    log: str
    #: stdlib log records of this process during the run: (level, logger name, message)
    records: list[tuple[int, str, str]] = field(default_factory=list)

    def ti(self, task_id: str, map_index: int = -1) -> TaskResult:
        return self.tasks[(task_id, map_index)]

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        return self.xcoms.get((task_id, key, map_index))

    def has_xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> bool:
        return (task_id, key, map_index) in self.xcoms

    def log_lines(self, *needles: str) -> list[str]:
        return [line for line in self.log.splitlines() if all(n in line for n in needles)]

    @property
    def deferred(self) -> int:
        """How many times a task deferred and dag.test() ran its trigger."""
        return sum("[DAG TEST] running trigger in line" in message for _, _, message in self.records)

    def warnings(self, needle: str) -> list[str]:
        """stdlib WARNING records containing ``needle`` (each counted once, however it was printed)."""
        return [m for level, _, m in self.records if level == logging.WARNING and needle in m]


def read_back(dag_id: str, run_id: str) -> tuple[dict, dict]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        tasks = {
            (ti.task_id, ti.map_index): TaskResult(
                ti.task_id,
                ti.map_index,
                None if ti.state is None else str(ti.state.value if hasattr(ti.state, "value") else ti.state),
                ti.try_number,
                ti.max_tries,
            )
            for ti in session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id)
        }
        xcoms = {
            (x.task_id, x.key, x.map_index): x.value
            for x in session.query(XComModel).filter_by(dag_id=dag_id, run_id=run_id)
        }
    return tasks, xcoms


#: How a test can wait on a job: the sensor deferring or poking, the operator deferring or looping.
MODES = ("sensor-deferrable", "sensor-poke", "operator-deferrable", "operator-sync")


def wait_task(mode: str, job_id: str, service: str = "cce", *, timeout: float = 30.0, **kwargs: Any) -> Any:
    """A CloudJobSensor or CloudJobOperator (task id ``wait``) that waits on ``job_id`` quickly."""
    from airflow_provider_cloudjobs.operators.cloudjobs import CloudJobOperator
    from airflow_provider_cloudjobs.sensors.cloudjobs import CloudJobSensor

    kwargs.setdefault("task_id", "wait")
    if mode.startswith("sensor-"):
        kwargs.setdefault("poke_interval", 0.05)
        if mode == "sensor-poke":
            kwargs.setdefault("mode", "poke")
        return CloudJobSensor(
            job_id=job_id, service=service, deferrable=mode == "sensor-deferrable", timeout=timeout, **kwargs
        )
    kwargs.setdefault("poll_interval", 0.05)
    return CloudJobOperator(
        job_id=job_id, service=service, deferrable=mode == "operator-deferrable", timeout=timeout, **kwargs
    )
