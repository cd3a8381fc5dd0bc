#!/usr/bin/env python3
"""The wheel as users get it: built from the checkout, installed with only Airflow and what it declares.

    python3 tests/packaging/check_wheel.py [--airflow 3.3.2]

Builds the wheel, installs it into a fresh virtual environment (``.venv-wheel-check``) next to
``apache-airflow==<version>`` and nothing else, then checks, from outside the checkout so that nothing is
imported from the source tree: ``airflow providers list`` shows the provider with its version, every
example DAG parses, the package is typed (``py.typed``) and carries its licence. Exits non-zero on the
first failure, saying what it was. CI runs it after the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "airflow-provider-cloudjobs"
EXAMPLE_DAGS = {"example_cloudjobs_cce", "example_cloudjobs_dws_elb", "example_cloudjobs_ecs_mapped"}

PARSE_DAGS = """
import inspect, json, sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow < 3.2
    from airflow.models.dagbag import DagBag
kwargs = {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False, **kwargs)
print(json.dumps({"dags": sorted(bag.dag_ids), "errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()}}))
"""

INSPECT_PACKAGE = """
import json
from importlib import metadata, resources
import airflow_provider_cloudjobs as package
dist = metadata.distribution("airflow-provider-cloudjobs")
print(json.dumps({
    "file": package.__file__,
    "version": package.__version__,
    "dist_version": dist.version,
    "typed": resources.files("airflow_provider_cloudjobs").joinpath("py.typed").is_file(),
    "licence": any(str(f).endswith("LICENSE") for f in dist.files or []),
    "requires": dist.requires,
}))
"""


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, text=True, **kwargs)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--airflow", default="3.3.2")
    args = parser.parse_args()

    env_dir = ROOT / ".venv-wheel-check"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python, uv = env_dir / "bin" / "python", env_dir / "bin" / "uv"
    run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "uv"])
    with tempfile.TemporaryDirectory(prefix="cloudjobs-wheel-") as scratch:
        out = Path(scratch) / "dist"
        # sdist first, then the wheel from it in a clean directory: no stale build/ tree leaks into it
        run([str(uv), "build", "--out-dir", str(out), str(ROOT)])
        (wheel,) = out.glob("*.whl")
        run(
            [
                str(uv),
                "pip",
                "install",
                "--quiet",
                "--python",
                str(python),
                f"apache-airflow=={args.airflow}",
                str(wheel),
            ]
        )

        home = Path(scratch) / "airflow-home"
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        env.pop("PYTHONPATH", None)
        here = {"cwd": scratch, "env": env, "capture_output": True}

        facts = json.loads(run([str(python), "-c", INSPECT_PACKAGE], **here).stdout)
        problems = []
        if not facts["file"].startswith(str(env_dir)):
            problems.append(f"the package was imported from {facts['file']}, not from the installed wheel")
        if not (facts["typed"] and facts["licence"]):
            problems.append(
                f"py.typed present: {facts['typed']}, LICENSE in the dist-info: {facts['licence']}"
            )
        if facts["version"] != facts["dist_version"]:
            problems.append(f"__version__ {facts['version']} != distribution version {facts['dist_version']}")

        airflow = str(env_dir / "bin" / "airflow")
        providers = json.loads(run([airflow, "providers", "list", "-o", "json"], **here).stdout)
        ours = [p for p in providers if p.get("package_name") == DISTRIBUTION]
        if not ours or ours[0].get("version") != facts["version"]:
            problems.append(
                f"`airflow providers list` does not show {DISTRIBUTION} {facts['version']}: {ours}"
            )

        parsed = json.loads(
            run([str(python), "-c", PARSE_DAGS, str(ROOT / "example_dags")], **here).stdout.splitlines()[-1]
        )
        if parsed["errors"] or not set(parsed["dags"]) >= EXAMPLE_DAGS:
            problems.append(f"example DAGs did not all parse: {parsed}")

    for problem in problems:
        print(f"FAILED: {problem}", flush=True)
    if not problems:
        print(
            f"wheel check passed: {wheel.name} with apache-airflow=={args.airflow} only; "
            f"providers list shows {DISTRIBUTION} {facts['version']}; {len(parsed['dags'])} example DAGs parse; "
            f"requires {facts['requires']}"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
