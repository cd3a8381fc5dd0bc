#!/usr/bin/env python3
"""Bootstrap and run the project's everyday commands on a machine that has nothing but Python 3.10+.

    python3 dev.py demo                  # the example DAG end to end against the local cloud simulator
    python3 dev.py test                  # every test (unit, through Airflow, end-to-end), then ruff and mypy
    python3 dev.py test --airflow 3.1.0  # the same on the oldest Airflow we support
    python3 dev.py test --python 3.13    # ... on another interpreter (pyenv's, else python3.13 on PATH)
    python3 dev.py bench [args]          # the scale benchmark (not part of the test run)

Each command first makes (or reuses) a virtual environment ``.venv-airflow-<version>`` (with
``--python X.Y``: ``.venv-py<X.Y>-airflow-<version>``) holding this package in editable mode with its dev
extras, installed with uv (itself pip-installed into the venv). Extra arguments after ``test`` go to pytest.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
NEWEST_AIRFLOW = "3.3.2"
OLDEST_AIRFLOW = "3.1.0"
# An old Airflow is installed with the packages of its day, as its constraint files would pin them (those
# files live outside the package registries): e.g. structlog 26 removed a name Airflow 3.1.0 imports, and
# FastAPI 0.118 (2025-09-29) runs a request's session commit after the answer is sent, which Airflow 3.1.0's
# API did not expect (a task's final state could land after the executor's report: a spurious retry).
# 3.2.2 (published 2026-05-29) fails to start a task with pydantic 2.14 ("TITerminalStatePayload needs a
# discriminator field"), a pydantic released after it.
MIDDLE_AIRFLOW = "3.2.2"
RESOLVE_AS_OF = {OLDEST_AIRFLOW: "2025-09-26", MIDDLE_AIRFLOW: "2026-06-05"}


def _run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, **kwargs)


def find_python(version: str | None) -> str:
    """The interpreter for ``--python X.Y``: pyenv's (not its shim), else ``pythonX.Y`` on PATH; default:
    the one running dev.py."""
    if not version:
        return sys.executable
    installed = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}")))
    on_path = shutil.which(f"python{version}")
    found = installed[-1] if installed else (on_path if on_path and "/shims/" not in on_path else None)
    if not found:
        sys.exit(f"dev.py: no python{version} on PATH or under ~/.pyenv/versions")
    return found


def ensure_venv(airflow_version: str, python_version: str | None = None) -> Path:
    """Create or refresh the venv for one Airflow version; skipped when nothing it depends on changed."""
    prefix = f"py{python_version}-" if python_version else ""
    venv_dir = ROOT / f".venv-{prefix}airflow-{airflow_version}"
    python = venv_dir / "bin" / "python"
    stamp = venv_dir / ".installed"
    as_of = RESOLVE_AS_OF.get(airflow_version)
    # The SDK packages of the conformance suite are newer than an old Airflow's day: newest only. The
    # distributed e2e suite's packages (Celery, PostgreSQL drivers) go everywhere: the full suite runs on
    # the oldest Airflow too.
    extras = ".[dev,distributed]" if as_of else ".[dev,conformance,distributed]"
    pins = f"{airflow_version} as of {as_of} with {extras}".encode()
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + pins).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and python.exists():
        return python
    # A venv made for other pins starts clean (--clear): uv keeps what already satisfies a range.
    print(f"{'Rebuilding' if python.exists() else 'Creating'} {venv_dir.name} ...", flush=True)
    _run([find_python(python_version), "-m", "venv", "--clear", str(venv_dir)])
    _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "uv"])
    _run(
        [
            str(venv_dir / "bin" / "uv"),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            *(["--exclude-newer", as_of] if as_of else []),
            "-e",
            extras,
            f"apache-airflow=={airflow_version}",
        ]
    )
    stamp.write_text(digest)
    return python


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["demo", "test", "lint", "bench", "setup"])
    parser.add_argument("--airflow", default=NEWEST_AIRFLOW, help="Airflow version to install and run on")
    parser.add_argument(
        "--python", default=None, help="interpreter version X.Y (default: the one running dev.py)"
    )
    args, rest = parser.parse_known_args()

    python = ensure_venv(args.airflow, args.python)
    env = dict(os.environ)
    env.pop("AIRFLOW_HOME", None)  # each command makes its own throwaway home; never touch the user's
    bin_dir = str(python.parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")

    try:
        if args.command == "setup":
            return 0
        if args.command == "demo":
            _run([str(python), "-m", "airflow_provider_cloudjobs.testing.demo", *rest], env=env)
        elif args.command == "lint":
            lint(python, env)
        elif args.command == "bench":
            _run([str(python), "benchmarks/bench_waits.py", *rest], env=env)
        elif args.command == "test":
            _run([str(python), "-m", "pytest", *rest], env=env)
            if not rest:
                lint(python, env)
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    return 0


def lint(python: Path, env: dict[str, str]) -> None:
    bin_dir = python.parent
    _run([str(bin_dir / "ruff"), "check", "."], env=env)
    _run([str(bin_dir / "ruff"), "format", "--check", "."], env=env)
    _run([str(bin_dir / "mypy")], env=env)


if __name__ == "__main__":
    sys.exit(main())
