"""What one waiting job costs a triggerer: CloudJobTrigger against the plain HttpSensorTrigger.

A triggerer runs every deferred task's trigger in one event loop. This benchmark starts N waits at
once in one loop, the way the triggerer does, and measures the client side only: the cloud simulator
and the baseline's endpoint run in processes of their own, and each side runs in a fresh process, so
CPU time, resident memory and event-loop lag are that side's alone.

The path of each wait is the real deferral path. On the "worker" (this parent process, not measured)
a ``CloudJobSensor(deferrable=True)`` (baseline: ``HttpSensor(deferrable=True)``) runs ``execute()``
and raises ``TaskDeferred``; its check before deferring is stood in for (it saw the job still running:
the worker's request is not the triggerer's cost); the trigger it hands to Airflow is ``serialize()``d
-> ``airflow.sdk.serde`` -> JSON, the stored form. In the measured process (the "triggerer") each one
is decoded (``serde.deserialize`` + ``smart_decode_trigger_kwargs``), inflated from its classpath and
run in its own asyncio task iterating ``run()`` until its first event.

    python3 dev.py bench                  # N=5000 waits, K=2, polls 10 s apart (about 3 minutes)
    python3 dev.py bench --series         # N = 100, 1000, 5000, and how client CPU grows with N
    python3 dev.py bench --interval 30    # the operator's default pace (about 6 minutes)
    python3 dev.py bench -n 1000 -k 5 --interval 2 --sides ours
    python3 dev.py bench --gc freeze      # diagnostic: the loop lag if the triggerer froze its heap
    python3 dev.py bench --gc off         # diagnostic: the loop lag without cyclic-GC pauses
    python3 dev.py bench -- --help        # this text and every flag

Each side runs in a fresh process after a one-job warm-up (modules imported, connection looked up,
token cached: a long-running triggerer's steady state); a second, smaller pass per side under
tracemalloc measures the Python heap and the GC-tracked objects per waiting trigger.

Sides:
  ours      ``CloudJobTrigger`` (service ``cce``, password auth, IAM and job API on the simulator),
            its connection from ``AIRFLOW_CONN_BENCH_CLOUDJOBS`` (JSON).
  baseline  what a user would write without the provider: ``HttpSensorTrigger`` from
            apache-airflow-providers-http against an endpoint that answers 404 until the job is done,
            with a static ``X-Auth-Token`` header kept in the ``http`` connection's extra
            (``AIRFLOW_CONN_BENCH_HTTP``), i.e. no IAM, no refresh, no job status, no failure detection.

Each job needs K polls after the trigger's first (immediate) one: it is done K poll intervals after the
wait starts, so K+1 requests is the minimum and K x interval the ideal wall time (simulator:
``polls_to_finish=K+1``; baseline: 404 for GETs 1..K, 200 on the (K+1)-th).
Figures are explained in benchmarks/README.md. This file needs only what ``pip install -e .[dev]``
installs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import resource
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLOUDJOBS_CONN_ID = "bench_cloudjobs"
HTTP_CONN_ID = "bench_http"
PROBE_PERIOD = 0.05  # the lag probe sleeps 50 ms and records how late it wakes
SERIES = (100, 1000, 5000)
DEFAULT_INTERVAL = 10.0  # 500 polls/s at N=5000; the operator's default 30 s is the realistic pace
SIDES = ("ours", "baseline")
TARGET_N = 5000
TARGET_LAG_MS = 100.0
TARGET_CPU_RATIO = 0.5
TARGET_MEM_KB = 50.0


# ================================================================== shared helpers
def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss() -> int:
    """Current resident set size in bytes (Linux /proc; psutil elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except OSError:
        import psutil

        return int(psutil.Process().memory_info().rss)


# ================================================================== child: one side, one N
async def _child_async(spec: dict[str, Any]) -> dict[str, Any]:
    import importlib

    from airflow.sdk import BaseHook

    side, job_ids = spec["side"], spec["job_ids"]
    n, k, interval = len(job_ids), spec["k"], spec["interval"]
    trace = spec.get("tracemalloc", False)
    result: dict[str, Any] = {"side": side, "n": n, "k": k, "interval": interval}

    # The connection must come from the env var through the secrets backends, outside any task.
    conn_id = CLOUDJOBS_CONN_ID if side == "ours" else HTTP_CONN_ID
    conn = await BaseHook.aget_connection(conn_id)
    result["connection"] = {"conn_id": conn_id, "conn_type": conn.conn_type, "found_by": "aget_connection"}
    expected_type = "cloudjobs" if side == "ours" else "http"
    if conn.conn_type != expected_type:
        raise SystemExit(f"aget_connection({conn_id!r}) gave conn_type {conn.conn_type!r}")

    try:  # Airflow 3.2+: the triggerer decodes the stored kwargs with airflow.sdk.serde
        from airflow.sdk.serde import deserialize as serde_deserialize
        from airflow.serialization.decoders import smart_decode_trigger_kwargs
    except ImportError:  # pragma: no cover - Airflow 3.1: plain JSON
        serde_deserialize = None  # type: ignore[assignment]
        smart_decode_trigger_kwargs = None  # type: ignore[assignment]

    # The triggers as the sensors handed them to Airflow (built by the parent, the "worker"): classpath
    # and the stored kwargs, as the trigger table holds them.
    wires: dict[str, tuple[str, str]] = {
        job_id: (classpath, wire) for job_id, classpath, wire in spec["wires"]
    }

    def inflate(job_id: str) -> Any:
        """What TriggerRunner.create_triggers does with a stored trigger: decode the kwargs, build it."""
        classpath, wire = wires[job_id]
        stored = json.loads(wire)
        if serde_deserialize is None:
            return trigger_class(classpath)(**stored)
        decoded = serde_deserialize(stored)  # Trigger._decrypt_kwargs
        return trigger_class(classpath)(**{key: smart_decode_trigger_kwargs(v) for key, v in decoded.items()})

    classes: dict[str, type] = {}  # the triggerer caches classes by classpath too

    def trigger_class(classpath: str) -> type:
        cls = classes.get(classpath)
        if cls is None:
            module, _, name = classpath.rpartition(".")
            cls = classes[classpath] = getattr(importlib.import_module(module), name)
        return cls

    def verdict(job_id: str, payload: Any) -> str | None:
        """None when the event is the one this wait must end with, else what is wrong with it."""
        if side == "ours":
            job = payload.get("job") if isinstance(payload, dict) else None
            ok = (
                isinstance(job, dict)
                and payload.get("status") == "success"
                and payload.get("job_id") == job_id
                and job.get("phase") == "SUCCEEDED"
                and job.get("job_id") == job_id
            )
        else:
            ok = payload is True
        return None if ok else str(payload)[:200]

    # job id -> (seconds since t0, verdict). The payload is checked on arrival and dropped, as the
    # triggerer hands it to its supervisor and drops it: keeping 5000 job trees alive would only add
    # GC work that no triggerer does.
    events: dict[str, tuple[float, str | None]] = {}
    extra_events = 0
    t0 = 0.0

    async def run_trigger(trigger: Any, job_id: str) -> None:
        """Like TriggerRunner.run_trigger: iterate run() until the first event, then stop it."""
        nonlocal extra_events
        agen = trigger.run()
        try:
            async for event in agen:
                if job_id in events:
                    extra_events += 1
                else:
                    events[job_id] = (time.perf_counter() - t0, verdict(job_id, event.payload))
                break
        finally:
            await agen.aclose()
            await trigger.cleanup()

    # Lag probe and memory sampler: one task, waking every 50 ms.
    lags: list[float] = []
    lag_times: list[float] = []
    samples: list[tuple[float, int, int]] = []  # (seconds since t0, rss, tracemalloc current)
    stop = asyncio.Event()

    objects_waiting: int | None = None
    objects_at: list[float] = []
    created_after = 0.0

    async def probe(ticks: int | None = None) -> None:
        import tracemalloc

        nonlocal objects_waiting

        while not stop.is_set() and (ticks is None or len(lags) < ticks):
            before = time.perf_counter()
            await asyncio.sleep(PROBE_PERIOD)
            after = time.perf_counter()
            lags.append(after - before - PROBE_PERIOD)
            lag_times.append(after - t0)
            traced = tracemalloc.get_traced_memory()[0] if trace else 0
            samples.append((after - t0, _rss(), traced))
            if (
                trace
                and objects_waiting is None
                and created_after
                and after - t0 > created_after + 0.4 * interval
            ):
                # once, while every trigger waits (memory pass only: walking the heap stalls the loop)
                objects_waiting = len(gc.get_objects())
                objects_at.append(after - t0)

    import tracemalloc

    # Warm-up: one short wait through the same path, so the figures are a long-running triggerer's
    # steady state (modules imported, IAM token cached), not this process's first steps.
    warm_started = time.perf_counter()
    for job_id in spec["warmup_ids"]:
        await asyncio.wait_for(run_trigger(inflate(job_id), job_id), spec["timeout"])
    result["warmup_s"] = time.perf_counter() - warm_started
    warm_ok = all(job_id in events for job_id in spec["warmup_ids"])
    for job_id in spec["warmup_ids"]:
        events.pop(job_id, None)
    if not warm_ok:
        raise SystemExit("the warm-up wait gave no event")

    # The floor of the loop lag: one full (gen2) pass over this process's heap before any trigger
    # exists (Airflow's modules, classes and functions). Any gen2 pass during the run costs at least this.
    gc.collect()
    result["heap_objects_before"] = len(gc.get_objects())
    floor_started = time.perf_counter()
    gc.collect()
    result["gc_full_pass_before_ms"] = 1000 * (time.perf_counter() - floor_started)
    # Cyclic-GC pauses, timed (two clock reads per collection): they are most of the loop lag.
    gc_pauses: list[tuple[int, float, float]] = []  # (generation, seconds since t0 at its end, pause)
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            ended = time.perf_counter()
            gc_pauses.append((info["generation"], ended - t0, ended - gc_started[0]))

    gc.callbacks.append(on_gc)
    if spec.get("gc") == "freeze":
        gc.freeze()  # what a triggerer that froze its start-up heap would see (Airflow's does not)
    elif spec.get("gc") == "off":
        gc.disable()  # diagnostic only: the lag with no cyclic-GC pause at all
    objects0 = len(gc.get_objects()) if trace else 0
    if trace:
        tracemalloc.start()
    rss0 = _rss()
    traced0 = tracemalloc.get_traced_memory()[0] if trace else 0
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    # The probe's own CPU (a wake-up and a /proc read every 50 ms), measured alone before any trigger
    # exists, so that CPU per wait leaves the instrument out (it would dominate at small N).
    calibration_ticks = 20
    cpu0 = time.process_time()
    await probe(calibration_ticks)
    probe_cpu_per_tick = (time.process_time() - cpu0) / calibration_ticks
    del lags[:], lag_times[:], samples[:]

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    probe_task = asyncio.create_task(probe())

    tasks = []
    for job_id in job_ids:  # TriggerRunner.create_triggers: inflate, start a task, yield
        trigger = inflate(job_id)
        tasks.append(asyncio.create_task(run_trigger(trigger, job_id), name=f"trigger {job_id}"))
        await asyncio.sleep(0)
    created_after = time.perf_counter() - t0
    cpu_created = time.process_time() - cpu0

    done, pending = await asyncio.wait(tasks, timeout=spec["timeout"])
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    gc.callbacks.remove(on_gc)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await probe_task
    crashed = [repr(task.exception()) for task in done if not task.cancelled() and task.exception()]

    if side == "ours":
        from airflow_provider_cloudjobs.hooks.cloudjobs import close_shared_session

        await close_shared_session()

    # Correctness of every event.
    wrong: list[str] = []
    for job_id in job_ids:
        if job_id not in events:
            wrong.append(f"{job_id}: no event")
            continue
        problem = events[job_id][1]
        if problem is not None:
            wrong.append(f"{job_id}: {problem}")

    # Memory while every trigger waits: samples after all were created and before the first event.
    first_event = min((t for t, _ in events.values()), default=wall)
    window = [s for s in samples if created_after <= s[0] < first_event]
    if not window:  # very short runs: anything before the first event
        window = [s for s in samples if s[0] < first_event] or samples[:1]
    peak_rss = max((s[1] for s in window), default=rss0)
    result.update(
        {
            "events_ok": n - len(wrong),
            "wrong": wrong[:5],
            "wrong_count": len(wrong),
            "extra_events": extra_events,
            "crashed": crashed[:5],
            "timed_out": len(pending),
            "wall_s": wall,
            "last_event_s": max((t for t, _ in events.values()), default=float("nan")),
            "mean_event_s": statistics.fmean(t for t, _ in events.values()) if events else float("nan"),
            "created_after_s": created_after,
            "cpu_s": cpu,
            "probe_cpu_s": probe_cpu_per_tick * len(lags),
            "cpu_waits_s": cpu - probe_cpu_per_tick * len(lags),
            "cpu_create_s": cpu_created,
            "cpu_user_s": usage1.ru_utime - usage0.ru_utime,
            "cpu_sys_s": usage1.ru_stime - usage0.ru_stime,
            "lag_max_ms": 1000 * max(lags, default=0.0),
            "lag_p99_ms": 1000 * (sorted(lags)[int(0.99 * (len(lags) - 1))] if lags else 0.0),
            "lag_over_100ms": sum(1 for lag in lags if lag > 0.1),
            "lag_max_at_s": lag_times[lags.index(max(lags))] if lags else 0.0,
            # the start-up burst (every trigger's first poll) against the steady state after it
            "lag_max_startup_ms": 1000
            * max(
                (lag for lag, at in zip(lags, lag_times, strict=True) if at <= created_after + 1.0),
                default=0.0,
            ),
            "lag_max_steady_ms": 1000
            * max(
                (lag for lag, at in zip(lags, lag_times, strict=True) if at > created_after + 1.0),
                default=0.0,
            ),
            "probe_ticks": len(lags),
            "gc_mode": spec.get("gc", "default"),
            "gc_collections": [sum(1 for g, _, _ in gc_pauses if g == gen) for gen in (0, 1, 2)],
            "gc_max_pause_ms": [
                1000 * max((d for g, _, d in gc_pauses if g == gen), default=0.0) for gen in (0, 1, 2)
            ],
            "gc_total_pause_ms": 1000 * sum(d for _, _, d in gc_pauses),
            "gc_gen2_passes": [(round(at, 2), round(1000 * d, 1)) for g, at, d in gc_pauses if g == 2],
            "first_event_s": first_event if events else float("nan"),
            "rss0_mb": rss0 / 2**20,
            "rss_peak_waiting_mb": peak_rss / 2**20,
            "rss_per_trigger_kb": (peak_rss - rss0) / n / 1024,
            "memory_window_samples": len(window),
            "max_rss_mb": usage1.ru_maxrss / 1024,
        }
    )
    if trace:
        peak_traced = max((s[2] for s in window), default=traced0)
        result["traced_per_trigger_kb"] = (peak_traced - traced0) / n / 1024
        if objects_waiting is not None and objects_at and objects_at[0] < first_event:
            result["gc_objects_per_trigger"] = (objects_waiting - objects0) / n
        tracemalloc.stop()
    return result


def child_main(spec_path: str) -> int:
    _raise_fd_limit()
    spec = json.loads(Path(spec_path).read_text())
    started = time.perf_counter()
    import airflow.sdk

    if spec["side"] == "ours":
        import airflow_provider_cloudjobs.triggers.cloudjobs  # noqa: F401
    else:
        import airflow.providers.http.triggers.http  # noqa: F401
    imported = time.perf_counter() - started
    result = asyncio.run(_child_async(spec))
    result["import_s"] = imported
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


# ================================================================== parent: servers, sides, report
class Servers:
    """The cloud simulator (ours) and the 404-until-done endpoint (baseline), each in its own process."""

    def __init__(self) -> None:
        self.sim: Any = None
        self.sim_proc: subprocess.Popen[str] | None = None
        self.bl_proc: subprocess.Popen[str] | None = None
        self.bl_url = ""
        self._http: Any = None

    def start(self, sides: list[str]) -> Servers:
        import requests

        self._http = requests.Session()
        if "ours" in sides:
            from airflow_provider_cloudjobs.testing.simulator import start_in_subprocess

            self.sim, self.sim_proc = start_in_subprocess()
        if "baseline" in sides:
            self.bl_proc = subprocess.Popen(
                [sys.executable, str(HERE / "baseline_server.py")],
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
            )
            assert self.bl_proc.stdout is not None
            line = ""
            with selectors.DefaultSelector() as selector:  # one JSON line once listening; 30 s at most
                selector.register(self.bl_proc.stdout, selectors.EVENT_READ)
                if selector.select(30):
                    line = self.bl_proc.stdout.readline()
            if not line:
                raise RuntimeError("the baseline server did not start")
            self.bl_url = json.loads(line)["url"]
        return self

    def stop(self) -> None:
        if self.sim_proc is not None:
            from airflow_provider_cloudjobs.testing.simulator import stop_subprocess

            stop_subprocess(self.sim_proc)
        if self.bl_proc is not None:
            self.bl_proc.terminate()
            try:
                self.bl_proc.wait(15)
            except subprocess.TimeoutExpired:
                self.bl_proc.kill()
                self.bl_proc.wait(15)
            if self.bl_proc.stdout is not None:
                self.bl_proc.stdout.close()

    # -- per side
    def prepare(self, side: str, n: int, k: int) -> tuple[list[str], list[str]]:
        """Fresh counters; one warm-up job (done at its first poll) and N jobs done at their (K+1)-th GET."""
        if side == "ours":
            self.sim.reset()
            return [self.sim.create_job("cce", polls_to_finish=1)], self.sim.create_jobs(
                "cce", n, polls_to_finish=k + 1
            )
        self._http.post(f"{self.bl_url}/_ctl/reset", timeout=30).raise_for_status()
        ids = []
        for count, polls in ((1, 1), (n, k + 1)):
            reply = self._http.post(
                f"{self.bl_url}/_ctl/jobs", json={"count": count, "polls_to_finish": polls}, timeout=60
            )
            reply.raise_for_status()
            ids.append(list(reply.json()["job_ids"]))
        return ids[0], ids[1]

    def stats(self, side: str) -> dict[str, Any]:
        if side == "ours":
            return self.sim.stats()
        reply = self._http.get(f"{self.bl_url}/_ctl/stats", timeout=30)
        reply.raise_for_status()
        return dict(reply.json())

    def env(self) -> dict[str, str]:
        """The measured process's environment: ours plus the two connections."""
        return {**os.environ, **self.conn_env()}

    def conn_env(self) -> dict[str, str]:
        """``AIRFLOW_CONN_*`` for the two sides' connections (JSON, as a deployment would set them)."""
        env: dict[str, str] = {}
        if self.sim is not None:
            from airflow_provider_cloudjobs.testing import simulator as s

            env["AIRFLOW_CONN_" + CLOUDJOBS_CONN_ID.upper()] = json.dumps(
                {
                    "conn_type": "cloudjobs",
                    "login": s.USER_NAME,
                    "password": s.PASSWORD,
                    "extra": {
                        "auth_type": "password",
                        "domain_name": s.DOMAIN_NAME,
                        "region": s.REGION,
                        "project_id": s.PROJECT_ID,
                        "iam_endpoint": self.sim.url,
                        "endpoints": {"*": self.sim.url},
                        "verify": False,
                    },
                }
            )
        if self.bl_url:
            if str(HERE) not in sys.path:
                sys.path.insert(0, str(HERE))
            from baseline_server import TOKEN

            host, port = self.bl_url.removeprefix("http://").rsplit(":", 1)
            env["AIRFLOW_CONN_" + HTTP_CONN_ID.upper()] = json.dumps(
                {
                    "conn_type": "http",
                    "host": host,
                    "port": int(port),
                    "schema": "http",
                    "extra": {"X-Auth-Token": TOKEN},
                }
            )
        return env


def deferred_triggers(
    side: str, job_ids: list[str], interval: float, timeout: float
) -> tuple[list[list[str]], dict[str, Any]]:
    """The worker's half of the deferral path: what each sensor hands to Airflow, in its stored form.

    A real ``CloudJobSensor`` / ``HttpSensor`` (``deferrable=True``) runs ``execute()`` as the task runner
    calls it and raises ``TaskDeferred``; only its check before deferring is stood in for (the check saw
    the job still running), since that request is the worker's, not the triggerer's. The trigger is then
    stored as Airflow stores it: ``serialize()`` -> ``airflow.sdk.serde`` -> JSON. Every stored form is
    checked to hold no secret and to decode back to the very kwargs (what the triggerer will build from).
    Returns ``[job_id, classpath, stored JSON]`` per job and a description of the deferral.
    """
    from airflow.sdk.bases.operator import ExecutorSafeguard

    try:  # Airflow 3.2+
        from airflow.sdk.exceptions import TaskDeferred
    except ImportError:  # pragma: no cover - Airflow 3.1
        from airflow.exceptions import TaskDeferred  # type: ignore[no-redef,attr-defined]
    try:  # Airflow 3.2+: kwargs go through airflow.sdk.serde on the worker, back in the triggerer
        from airflow.sdk.serde import deserialize as serde_deserialize
        from airflow.sdk.serde import serialize as serde_serialize
        from airflow.serialization.decoders import smart_decode_trigger_kwargs

        serde = "airflow.sdk.serde + smart_decode_trigger_kwargs"
    except ImportError:  # pragma: no cover - Airflow 3.1: plain JSON
        serde_serialize = serde_deserialize = smart_decode_trigger_kwargs = None  # type: ignore[assignment]
        serde = "json only (no airflow.sdk.serde)"

    if side == "ours":
        from airflow_provider_cloudjobs.sensors.cloudjobs import CloudJobSensor
        from airflow_provider_cloudjobs.testing.simulator import PASSWORD as secret

        class CheckedCloudJobSensor(CloudJobSensor):
            def poll(self, wait: Any, profile: Any, context: Any) -> None:
                wait.seen = True  # the check before deferring saw the job, still running
                return None

        def sensor(task_id: str, job_id: str) -> Any:
            return CheckedCloudJobSensor(
                task_id=task_id,
                job_id=job_id,
                service="cce",
                cloudjobs_conn_id=CLOUDJOBS_CONN_ID,
                poke_interval=interval,
                timeout=timeout,
                deferrable=True,
            )
    else:
        from airflow.providers.http.sensors.http import HttpSensor
        from baseline_server import TOKEN as secret

        class CheckedHttpSensor(HttpSensor):
            def poke(self, context: Any) -> bool:
                return False  # the check before deferring got a 404: not done yet

        def sensor(task_id: str, job_id: str) -> Any:
            return CheckedHttpSensor(
                task_id=task_id,
                endpoint=f"jobs/{job_id}",
                http_conn_id=HTTP_CONN_ID,
                method="GET",
                poke_interval=interval,
                timeout=timeout,
                deferrable=True,
            )

    stored: list[list[str]] = []
    about: dict[str, Any] = {"serde": serde}
    for index, job_id in enumerate(job_ids):
        task = sensor(f"wait_{index}", job_id)
        try:  # as the task runner calls execute(): with its sentinel, so no "outside a task" warning
            task.execute({}, **{f"{type(task).__name__}__sentinel": ExecutorSafeguard.sentinel_value})
        except TaskDeferred as deferred:
            trigger, method_name, deferral_timeout = deferred.trigger, deferred.method_name, deferred.timeout
        else:
            raise SystemExit(f"{type(task).__name__}.execute() did not defer")
        classpath, kwargs = trigger.serialize()
        if serde_serialize is None:
            wire = json.dumps(kwargs)
            back = json.loads(wire)
        else:
            wire = json.dumps(serde_serialize(kwargs))  # task runner -> API server -> trigger table
            decoded = serde_deserialize(json.loads(wire))
            back = {key: smart_decode_trigger_kwargs(value) for key, value in decoded.items()}
        if secret in wire:
            raise SystemExit(f"{classpath}: the trigger's stored kwargs hold the connection's secret")
        if back != kwargs:
            raise SystemExit(f"{classpath} kwargs changed in the serde round trip: {kwargs!r} -> {back!r}")
        stored.append([job_id, classpath, wire])
        if index == 0:
            about.update(
                {
                    "sensor": f"{type(task).__mro__[1].__module__}.{type(task).__mro__[1].__name__}",
                    "classpath": classpath,
                    "method_name": method_name,
                    "deferral_timeout_s": deferral_timeout.total_seconds() if deferral_timeout else None,
                    "kwargs": sorted(kwargs),
                }
            )
    return stored, about


def run_side(
    servers: Servers, side: str, n: int, args: argparse.Namespace, workdir: Path, *, trace: bool = False
) -> dict[str, Any]:
    warmup_ids, job_ids = servers.prepare(side, n, args.k)
    # The memory pass needs a window where every trigger exists and none has finished: >= 10 s polls.
    interval = max(args.interval, 10.0) if trace else args.interval
    ideal = args.k * interval
    timeout = ideal * 1.5 + 60 + n / 50
    os.environ.update(servers.conn_env())  # the sensors look their connection up as a worker does
    wires, deferral = deferred_triggers(side, warmup_ids + job_ids, interval, ideal * 3 + 600)
    tag = f"{side}-{n}{'-tracemalloc' if trace else ''}"
    spec_path, result_path, log_path = (
        workdir / f"{tag}.{ext}" for ext in ("spec.json", "result.json", "log")
    )
    spec_path.write_text(
        json.dumps(
            {
                "side": side,
                "job_ids": job_ids,
                "warmup_ids": warmup_ids,
                "wires": wires,
                "k": args.k,
                "interval": interval,
                "timeout": timeout,
                "tracemalloc": trace,
                "gc": args.gc,
                "result": str(result_path),
            }
        )
    )
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)]
    if side == "ours" and args.profile_cmd and not trace:
        command = args.profile_cmd.split() + command
    with open(log_path, "w") as log:
        proc = subprocess.run(
            command,
            env=servers.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=timeout + 120,
            check=False,
        )
    if proc.returncode != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{tag}: the child failed (exit {proc.returncode}); last log lines:\n{tail}")
    result = json.loads(result_path.read_text())
    stats = servers.stats(side)
    polls = [stats["job_polls"].get(job_id, 0) for job_id in job_ids]
    with open(log_path, "rb") as fh:
        log_lines = sum(1 for _ in fh)
    warmup_polls = sum(stats["job_polls"].get(job_id, 0) for job_id in warmup_ids)
    result.update(
        {
            "job_requests": sum(polls),
            "requests_per_wait": sum(polls) / n,
            "polls_min": min(polls),
            "polls_max": max(polls),
            "wasted_requests": sum(polls) - n * (args.k + 1),
            "other_job_requests": stats["job_requests"] - sum(polls) - warmup_polls,
            "iam_token_calls": stats.get("iam_token_calls", 0),
            "iam_project_calls": stats.get("iam_project_calls", 0),
            "max_open_connections": stats.get("max_open_connections"),
            "responses_by_status": stats.get("responses_by_status"),
            "log_lines_per_wait": log_lines / n,
            "log": str(log_path),
            "ideal_s": ideal,
            "deferral": deferral,
            "serde": deferral["serde"],
        }
    )
    return result


def _ratio(ours: float | None, base: float | None) -> str:
    if ours is None or base is None or not base or math.isnan(ours) or math.isnan(base):
        return "-"
    return f"{ours / base:.2f}"


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:,.{digits}f}"
    return str(value)


def print_table(n: int, args: argparse.Namespace, res: dict[str, dict[str, Any]]) -> None:
    ideal = args.k * args.interval
    print(
        f"\n=== N = {n} concurrent waits, each done K = {args.k} poll intervals after it starts "
        f"(minimum K+1 = {args.k + 1} requests), poll interval {args.interval:g} s "
        f"(ideal wall K x interval = {ideal:g} s){'' if args.gc == 'default' else ', GC ' + args.gc} ==="
    )
    ours, base = res.get("ours"), res.get("baseline")
    rows: list[tuple[str, str, int, bool]] = [
        # (label, key, digits, ratio?)
        (f"job requests per wait (min K+1 = {args.k + 1})", "requests_per_wait", 3, True),
        ("  polls per job, min..max", "_polls", 0, False),
        ("  wasted requests (total - N x (K+1))", "wasted_requests", 0, False),
        ("  other job GETs (not warm-up, not measured)", "other_job_requests", 0, False),
        ("IAM token calls (whole process, 1 connection)", "iam_token_calls", 0, False),
        ("client CPU ms per wait (probe excluded)", "_cpu_ms", 3, True),
        ("  client CPU s total (user + sys)", "cpu_s", 2, True),
        ("  of which the 50 ms probe (measured idle)", "probe_cpu_s", 2, False),
        ("  of which until the last trigger started", "cpu_create_s", 2, False),
        ("max event-loop lag ms (50 ms probe)", "lag_max_ms", 1, True),
        ("  p99 lag ms / ticks over 100 ms", "_lag", 0, False),
        ("  max lag ms: start-up burst / steady", "_lag2", 0, False),
        ("  GC: gen2 passes / longest gen2 pause ms", "_gc2", 0, False),
        ("  GC: all pauses ms total / longest gen0-1", "_gc01", 0, False),
        ("  GC: one full pass, heap before triggers ms", "gc_full_pass_before_ms", 0, False),
        ("  GC-tracked objects before the triggers", "heap_objects_before", 0, False),
        ("wall s to the last event", "last_event_s", 2, True),
        ("  wall / ideal", "_wall_ratio", 3, False),
        ("  mean s to an event", "mean_event_s", 2, False),
        ("RSS KB per waiting trigger", "rss_per_trigger_kb", 1, True),
        ("  RSS MB before -> peak while waiting", "_rss", 0, False),
        ("log lines per wait", "log_lines_per_wait", 2, True),
        ("max open connections (server side)", "max_open_connections", 0, False),
        ("events correct", "_events", 0, False),
    ]
    width = 44
    print(f"{'':{width}} {'ours':>18} {'baseline':>18} {'ours/baseline':>14}")

    def value(r: dict[str, Any] | None, key: str, digits: int) -> tuple[str, float | None]:
        if r is None:
            return "-", None
        if key == "_polls":
            return f"{r['polls_min']}..{r['polls_max']}", None
        if key == "_cpu_ms":
            v = 1000 * r["cpu_waits_s"] / r["n"]
            return _fmt(v, digits), v
        if key == "_lag":
            return f"{r['lag_p99_ms']:.1f} / {r['lag_over_100ms']}", None
        if key == "_lag2":
            return f"{r['lag_max_startup_ms']:.0f} / {r['lag_max_steady_ms']:.0f}", None
        if key == "_gc2":
            return f"{r['gc_collections'][2]} / {r['gc_max_pause_ms'][2]:.0f}", None
        if key == "_gc01":
            return f"{r['gc_total_pause_ms']:.0f} / {max(r['gc_max_pause_ms'][:2]):.0f}", None
        if key == "_wall_ratio":
            return (_fmt(r["last_event_s"] / ideal, digits) if ideal else "-"), None
        if key == "_rss":
            return f"{r['rss0_mb']:.0f} -> {r['rss_peak_waiting_mb']:.0f}", None
        if key == "_events":
            return f"{r['events_ok']}/{r['n']}", None
        v = r.get(key)
        return _fmt(v, digits), (float(v) if isinstance(v, (int, float)) else None)

    for label, key, digits, ratio in rows:
        a, av = value(ours, key, digits)
        b, bv = value(base, key, digits)
        print(f"{label:{width}} {a:>18} {b:>18} {(_ratio(av, bv) if ratio else ''):>14}")
    for side, r in res.items():
        # When the full collections fell: during start-up (triggers created until created_after_s) or
        # once per poll round (every interval), and what each cost the loop.
        gen2 = r.get("gc_gen2_passes", [])
        passes = ", ".join(f"{at:.1f} s ({ms:.0f} ms)" for at, ms in gen2[:12])
        more = len(gen2) - 12
        print(
            f"  {side} gen2 passes at (last trigger started {r['created_after_s']:.1f} s): "
            f"{passes or 'none'}{f' and {more} more' if more > 0 else ''}"
        )
    for side, r in res.items():
        if r.get("wrong_count") or r.get("crashed") or r.get("timed_out") or r.get("extra_events"):
            print(
                f"  !! {side}: {r['wrong_count']} wrong events {r['wrong']}, crashed {r['crashed']}, "
                f"timed out {r['timed_out']}, extra events {r['extra_events']}"
            )


def check_targets(
    res: dict[str, dict[str, Any]],
    args: argparse.Namespace,
    series: dict[int, dict[str, dict[str, Any]]] | None,
) -> list[tuple[str, bool | None, str]]:
    ours, base = res.get("ours"), res.get("baseline")
    checks: list[tuple[str, bool | None, str]] = []
    if ours is None:
        return checks
    n = ours["n"]
    note = "" if n >= TARGET_N else f" (measured at N={n}; the target is stated for N={TARGET_N})"
    floor = ours.get("gc_full_pass_before_ms")
    checks.append(
        (
            f"max loop lag < {TARGET_LAG_MS:g} ms",
            ours["lag_max_ms"] < TARGET_LAG_MS,
            f"{ours['lag_max_ms']:.1f} ms (start-up {ours['lag_max_startup_ms']:.0f} / steady "
            f"{ours['lag_max_steady_ms']:.0f}; {ours['gc_collections'][2]} gen2 GC passes, longest "
            f"{ours['gc_max_pause_ms'][2]:.0f} ms"
            + (f"; a full pass of the heap before any trigger: {floor:.0f} ms" if floor is not None else "")
            + f"){note}",
        )
    )
    good = ours["events_ok"] == n and not ours["extra_events"] and not ours["timed_out"]
    checks.append(("every wait ends correctly (success, right job id)", good, f"{ours['events_ok']}/{n}"))
    exact = (
        ours["polls_min"] == ours["polls_max"] == args.k + 1
        and ours["wasted_requests"] == 0
        and ours["other_job_requests"] == 0
    )
    checks.append(
        (
            "requests per wait = polls needed (K+1), none wasted",
            exact,
            f"{ours['requests_per_wait']:.3f} per wait (K+1 = {args.k + 1}), polls "
            f"{ours['polls_min']}..{ours['polls_max']}, wasted {ours['wasted_requests']}",
        )
    )
    checks.append(
        (
            "exactly one IAM token call per connection",
            ours["iam_token_calls"] == 1,
            f"{ours['iam_token_calls']} call(s)",
        )
    )
    if base is not None:
        ratio = ours["cpu_waits_s"] / base["cpu_waits_s"] if base["cpu_waits_s"] else float("inf")
        checks.append(
            (
                f"client CPU per wait <= {TARGET_CPU_RATIO:g} x baseline",
                ratio <= TARGET_CPU_RATIO,
                f"{1000 * ours['cpu_waits_s'] / n:.3f} ms vs {1000 * base['cpu_waits_s'] / n:.3f} ms = "
                f"{ratio:.2f}x",
            )
        )
    checks.append(
        (
            f"memory per waiting trigger < {TARGET_MEM_KB:g} KB",
            ours["rss_per_trigger_kb"] < TARGET_MEM_KB,
            f"RSS {ours['rss_per_trigger_kb']:.1f} KB"
            + (
                f", tracemalloc {ours['traced_per_trigger_kb']:.1f} KB"
                if "traced_per_trigger_kb" in ours
                else ""
            ),
        )
    )
    if series and len(series) >= 3:
        slope, intercept, r2, per_wait = linear_fit(series, "ours")
        ns = sorted(series)
        growth = per_wait[ns[-1]] / per_wait[ns[-2]] if per_wait[ns[-2]] else float("inf")
        linear = r2 >= 0.99 and growth <= 1.3
        checks.append(
            (
                "CPU grows linearly with N",
                linear,
                f"fit {1000 * slope:.3f} ms/wait + {1000 * intercept:.0f} ms, R^2 {r2:.4f}; "
                f"CPU per wait N={ns[-2]}->{ns[-1]}: x{growth:.2f}",
            )
        )
    else:
        checks.append(("CPU grows linearly with N", None, "run with --series"))
    return checks


def linear_fit(
    series: dict[int, dict[str, dict[str, Any]]], side: str
) -> tuple[float, float, float, dict[int, float]]:
    points = [(n, r[side]["cpu_waits_s"]) for n, r in sorted(series.items()) if side in r]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in points)
    r2 = 1 - ss_res / ss_tot if ss_tot else 1.0
    return slope, intercept, r2, {n: cpu / n for n, cpu in points}


def print_series(series: dict[int, dict[str, dict[str, Any]]]) -> None:
    print("\n=== scaling: client CPU, lag and memory against N ===")
    print(
        f"{'N':>6} | {'ours CPU ms/wait':>16} {'lag max ms':>10} {'RSS KB/trig':>11} | "
        f"{'base CPU ms/wait':>16} {'lag max ms':>10} {'RSS KB/trig':>11} | {'CPU ratio':>9}"
    )
    for n, res in sorted(series.items()):
        cells = []
        for side in SIDES:
            r = res.get(side)
            cells.append(
                f"{1000 * r['cpu_waits_s'] / n:16.3f} {r['lag_max_ms']:10.1f} {r['rss_per_trigger_kb']:11.1f}"
                if r
                else f"{'-':>16} {'-':>10} {'-':>11}"
            )
        ratio = _ratio(res["ours"]["cpu_waits_s"], res["baseline"]["cpu_waits_s"]) if len(res) == 2 else "-"
        print(f"{n:>6} | {cells[0]} | {cells[1]} | {ratio:>9}")
    for side in SIDES:
        if all(side in res for res in series.values()):
            slope, intercept, r2, _ = linear_fit(series, side)
            print(
                f"  {side:8} CPU = {1000 * intercept:7.0f} ms + {1000 * slope:.3f} ms x N   (R^2 = {r2:.4f})"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--n", type=int, default=TARGET_N, help="concurrent waits (default 5000)")
    parser.add_argument(
        "-k",
        "--k",
        type=int,
        default=2,
        help="polls each job needs after the first: it is done K intervals after the wait starts, so K+1 "
        "requests is the minimum and K x interval the ideal wall time (default 2)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL,
        help=f"poll interval in seconds (default {DEFAULT_INTERVAL:g}; the operator's default is 30)",
    )
    parser.add_argument("--series", action="store_true", help=f"run N = {', '.join(map(str, SERIES))}")
    parser.add_argument("--sides", default="ours,baseline", help="comma list of: ours, baseline")
    parser.add_argument(
        "--tracemalloc-n",
        type=int,
        default=1000,
        help="waits in the extra tracemalloc pass per side (0: skip; default 1000)",
    )
    parser.add_argument(
        "--profile-cmd",
        default="",
        help="prefix for our side's process, e.g. 'py-spy record -o ours.svg --' (not installed "
        "by the dev extras)",
    )
    parser.add_argument(
        "--gc",
        choices=("default", "freeze", "off"),
        default="default",
        help="cyclic GC in the measured process: default (as a triggerer runs), freeze (gc.freeze() after "
        "warm-up: Airflow's start-up heap is no longer walked), off (gc.disable(): lag without GC pauses; "
        "diagnostic only)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (specs, results, logs)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child)

    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not sides or any(s not in SIDES for s in sides):
        parser.error(f"--sides takes a comma list of {', '.join(SIDES)}")
    if not (1 <= args.n <= 20000 and 1 <= args.k <= 100 and 0.5 <= args.interval <= 600):
        parser.error("need 1 <= n <= 20000, 1 <= k <= 100, 0.5 <= interval <= 600")
    ns = list(SERIES) if args.series else [args.n]

    _raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="bench_waits_"))
    print(
        f"bench_waits: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, sides {', '.join(sides)}, "
        f"N {', '.join(map(str, ns))}, K {args.k}, interval {args.interval:g} s; work dir {workdir}",
        flush=True,
    )
    try:
        from importlib.metadata import version

        import airflow  # noqa: F401  (only for the version line; children import what they measure)

        print(
            f"apache-airflow {version('apache-airflow')}, apache-airflow-providers-http "
            f"{version('apache-airflow-providers-http')}, airflow-provider-cloudjobs "
            f"{version('airflow-provider-cloudjobs')}",
            flush=True,
        )
    except Exception as exc:  # pragma: no cover - informational only
        print(f"(versions unknown: {exc})")

    servers = Servers()
    series: dict[int, dict[str, dict[str, Any]]] = {}
    failed = False
    try:
        servers.start(sides)
        for n in ns:
            res: dict[str, dict[str, Any]] = {}
            for side in sides:
                started = time.perf_counter()
                res[side] = run_side(servers, side, n, args, workdir)
                print(
                    f"  ran {side:8} N={n:<5} in {time.perf_counter() - started:5.1f} s "
                    f"(child imports {res[side]['import_s']:.1f} s, not measured)",
                    flush=True,
                )
            if args.tracemalloc_n and n == max(ns):
                tm_n = min(args.tracemalloc_n, n)
                for side in sides:
                    traced = run_side(servers, side, tm_n, args, workdir, trace=True)
                    res[side]["traced_per_trigger_kb"] = traced["traced_per_trigger_kb"]
                    res[side]["traced_n"] = tm_n
                    res[side]["gc_objects_per_trigger"] = traced.get("gc_objects_per_trigger")
                    print(
                        f"  tracemalloc pass {side:8} N={tm_n}: {traced['traced_per_trigger_kb']:.1f} KB "
                        f"of Python heap per waiting trigger",
                        flush=True,
                    )
            series[n] = res
            print_table(n, args, res)
            if any("traced_per_trigger_kb" in r for r in res.values()):
                a = res.get("ours", {}).get("traced_per_trigger_kb")
                b = res.get("baseline", {}).get("traced_per_trigger_kb")
                tm_n = next(r["traced_n"] for r in res.values() if "traced_n" in r)
                print(
                    f"{'tracemalloc KB per waiting trigger (N=' + str(tm_n) + ')':44} {_fmt(a, 1):>18} "
                    f"{_fmt(b, 1):>18} {_ratio(a, b):>14}"
                )
                a = res.get("ours", {}).get("gc_objects_per_trigger")
                b = res.get("baseline", {}).get("gc_objects_per_trigger")
                print(
                    f"{'  GC-tracked objects per waiting trigger':44} {_fmt(a, 0):>18} {_fmt(b, 0):>18} "
                    f"{_ratio(a, b):>14}"
                )
            failed |= any(r["wrong_count"] or r["timed_out"] or r["crashed"] for r in res.values())
        if len(series) > 1:
            print_series(series)
        final = series[max(series)]
        print()
        for side, r in final.items():
            d = r["deferral"]
            print(
                f"{side:8} deferral path: {d['sensor']}(deferrable=True).execute() -> TaskDeferred("
                f"{d['classpath'].rsplit('.', 1)[1]}, method_name={d['method_name']!r}, timeout "
                f"{_fmt(d['deferral_timeout_s'], 0)} s); kwargs {', '.join(d['kwargs'])} stored via {d['serde']}, "
                f"no secret; connection {r['connection']['conn_id']!r} (conn_type "
                f"{r['connection']['conn_type']!r}) found by BaseHook.aget_connection from its AIRFLOW_CONN_ "
                f"env var outside a task"
            )
        if "ours" in final:
            ours = final["ours"]
            print(f"\n=== targets (N = {ours['n']}) ===")
            for label, ok, detail in check_targets(final, args, series if len(series) >= 3 else None):
                mark = "n/a " if ok is None else ("MET " if ok else "MISS")
                failed |= bool(args.strict and ok is False)
                print(f"  [{mark}] {label}: {detail}")
        if args.json:
            Path(args.json).write_text(json.dumps({str(n): r for n, r in series.items()}, indent=2))
    finally:
        servers.stop()
        if args.keep:
            print(f"(kept {workdir})")
        else:
            for path in workdir.iterdir():
                path.unlink()
            workdir.rmdir()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
