"""The demo: example DAG (a) end to end through Airflow, against the local cloud simulator.

``python3 dev.py demo`` runs this. It starts the simulator in its own process, makes a throwaway
AIRFLOW_HOME on SQLite with a ``cloudjobs_default`` connection pointing at the simulator, runs
``airflow dags test example_cloudjobs_cce`` (the sensor defers and its trigger runs in-process),
shows the progress lines as the job moves, and prints the final normalised job from XCom.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from airflow_provider_cloudjobs.testing import simulator

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "example_cloudjobs_cce"
_SHOWN = ("CCE job", "Cluster ", "succeeded", "failed", "Timed out", "ERROR", "Traceback", "Task instance in")


def connection_json(url: str) -> str:
    return json.dumps(
        {
            "conn_type": "cloudjobs",
            "login": simulator.USER_NAME,
            "password": simulator.PASSWORD,
            "extra": {
                "auth_type": "password",
                "domain_name": simulator.DOMAIN_NAME,
                "region": simulator.REGION,
                "project_id": simulator.PROJECT_ID,
                "iam_endpoint": url,
                "endpoints": {"*": url},
                "console_url": "https://console.example.test",
                "verify": False,
                "timeout": 10,
            },
        }
    )


def final_job(home: Path) -> dict | None:
    """The sensor's XCom return_value, read from the demo's own SQLite database."""
    with sqlite3.connect(home / "airflow.db") as db:
        row = db.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = 'wait_for_cluster' AND key = 'return_value' "
            "ORDER BY timestamp DESC LIMIT 1",
            (DAG_ID,),
        ).fetchone()
    if row is None:
        return None
    value = json.loads(row[0]) if isinstance(row[0], (str, bytes)) else row[0]
    return json.loads(value) if isinstance(value, str) else value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--polls", type=int, default=6, help="polls the simulated job needs to finish")
    parser.add_argument("--interval", type=float, default=1.0, help="sensor poll interval, seconds")
    parser.add_argument(
        "--cluster-name", default="demo-cluster", help="a name containing 'fail' fails the job"
    )
    parser.add_argument("--keep-home", action="store_true", help="keep the throwaway AIRFLOW_HOME")
    args = parser.parse_args()

    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="cloudjobs-demo-"))
    client, process = simulator.start_in_subprocess()
    try:
        client.configure(default_polls_to_finish=args.polls)
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_CLOUDJOBS_DEFAULT": connection_json(client.url),
            "CLOUDJOBS_EXAMPLE_POLL_INTERVAL": str(args.interval),
            "CLOUDJOBS_EXAMPLE_TIMEOUT": "300",
        }
        print(f"Cloud simulator at {client.url}; AIRFLOW_HOME={home}", flush=True)
        subprocess.run(["airflow", "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        command = ["airflow", "dags", "test", DAG_ID, "-c", json.dumps({"cluster_name": args.cluster_name})]
        print("+", " ".join(command), flush=True)
        run = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert run.stdout is not None
        for line in run.stdout:
            if any(marker in line for marker in _SHOWN):
                print("  " + line.rstrip()[-220:], flush=True)
        code = run.wait()
        job = final_job(home)
        print("\nFinal normalised job (XCom return_value of wait_for_cluster):")
        # The whole job is in XCom; here its raw bodies are left out so the fields read at a glance.
        shown = {k: v for k, v in (job or {}).items() if k != "raw"}
        shown["sub_jobs"] = [
            {k: v for k, v in sub.items() if k != "raw"} for sub in shown.get("sub_jobs", [])
        ]
        print(json.dumps(shown, indent=2) if job else "  (none: the sensor did not succeed)")
        print(
            f"\nairflow dags test exited {code}; simulator stats: {json.dumps(client.stats().get('iam_token_calls'))} "
            f"IAM call(s); demo wall time {time.monotonic() - started:.1f}s"
        )
        return 0 if code == 0 and job and job.get("phase") == "SUCCEEDED" else 1
    finally:
        process.terminate()
        process.wait(timeout=10)
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
