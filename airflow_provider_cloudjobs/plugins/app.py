"""The FastAPI app behind the Cloud jobs page and the Cloud job tab (mounted at ``/cloudjobs``).

Every data route (``/api/...``) needs a user Airflow's auth manager accepts (the UI's ``_token`` cookie
on Airflow 3.2+, or a bearer token): none gets 401, a bad token 403. The page shells and their static
files hold no data and are served to anyone: Airflow 3.1's UI keeps its token in the browser's storage,
not in a cookie, so the request that loads an iframe cannot carry it; the page's script sends it with each
data request instead. Rows are only shown for DAGs whose task instances the user may read (the auth
manager's DAG permissions). The JSON holds no credential: the job as normalised (without its raw body),
the connection id, and Airflow's records. The pages render every value as text (never as HTML), and are
served with a strict CSP.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from airflow_provider_cloudjobs.plugins import records
from airflow_provider_cloudjobs.plugins.live import JobLookups, Lookup, page_job

LIST_BUDGET = 24  # new cloud calls one refresh of the Cloud jobs page may start (the rest: next refresh)
STATIC = {
    "cloudjobs.js": "text/javascript; charset=utf-8",
    "cloudjobs.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

_lookups: JobLookups | None = None


def lookups() -> JobLookups:
    global _lookups
    if _lookups is None:
        _lookups = JobLookups()
    return _lookups


def _current_user() -> Any:
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


UserDep = Annotated[Any, Depends(_current_user())]


def _readable_dags(user: Any, dag_ids: Iterable[str]) -> set[str]:
    """The DAGs whose task instances ``user`` may read."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    manager = get_auth_manager()
    return {
        dag_id
        for dag_id in set(dag_ids)
        if manager.is_authorized_dag(
            method="GET",
            access_entity=DagAccessEntity.TASK_INSTANCE,
            details=DagDetails(id=dag_id),
            user=user,
        )
    }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def _row(record: records.WaitRecord, lookup: Lookup | None, now: float) -> dict[str, Any]:
    job = page_job(record.final_job) if record.final_job else (lookup.job if lookup else None)
    return {
        "dag_id": record.dag_id,
        "run_id": record.run_id,
        "task_id": record.task_id,
        "map_index": record.map_index,
        "state": record.state,
        "try_number": record.try_number,
        "operator": record.operator,
        "job_id": record.job_id,
        "service": record.service,
        "conn_id": record.conn_id,
        "conn_known": record.conn_known,
        "project_id": record.project_id,
        "path_params": record.path_params,
        "deadline": _iso(record.deadline),
        "start_date": _iso(record.start_date),
        "end_date": _iso(record.end_date),
        "console_url": record.console_url or (lookup.console_url if lookup else None),
        "job": job,
        "job_source": "xcom" if record.final_job else ("cloud" if lookup and lookup.job else None),
        "checked_seconds_ago": round(now - lookup.fetched_at, 1) if lookup and not record.final_job else None,
        "error": lookup.error if lookup and not record.final_job else None,
    }


def _page(request: Request, view: str) -> HTMLResponse:
    """The page shell; its script fetches the data. ``root_path`` is where Airflow mounted this app."""
    root = html.escape(str(request.scope.get("root_path") or "").rstrip("/"), quote=True)
    text = resources.files(__package__).joinpath("static/page.html").read_text(encoding="utf-8")
    return HTMLResponse(text.replace("{{VIEW}}", view).replace("{{ROOT}}", root), headers=SECURITY_HEADERS)


def _json(body: Any) -> JSONResponse:
    return JSONResponse(body, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


def _map_index(value: str) -> int:
    try:
        return int(value)
    except ValueError:  # "{MAP_INDEX}" stays literal on an unmapped task instance
        return -1


def create_app() -> FastAPI:
    import time

    from airflow.utils.session import create_session

    app = FastAPI(
        title="Cloud jobs",
        description="Cloud jobs waited on by airflow-provider-cloudjobs",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    # The shells and static files: the same bytes for everyone, no data (see the module docstring).
    @app.get("/", include_in_schema=False)
    def list_page(request: Request) -> HTMLResponse:
        return _page(request, "list")

    @app.get("/ti/{dag_id}/{run_id}/{task_id}/{map_index}", include_in_schema=False)
    def task_page(request: Request, dag_id: str, run_id: str, task_id: str, map_index: str) -> HTMLResponse:
        return _page(request, "ti")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, "Not found")
        body = resources.files(__package__).joinpath(f"static/{name}").read_bytes()
        return Response(
            body, media_type=STATIC[name], headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"}
        )

    @app.get("/api/waits")
    def waits(user: UserDep) -> JSONResponse:
        with create_session() as session:
            flying = records.in_flight(session)
            finished = records.recently_finished(session)
        allowed = _readable_dags(user, [r.dag_id for r in (*flying, *finished)])
        flying = [r for r in flying if r.dag_id in allowed]
        finished = [r for r in finished if r.dag_id in allowed]
        cache = lookups()
        calls_before = cache.calls
        # Waits in flight first, then finished tasks without a final job in XCom (failed ones): the
        # budget goes to them in that order, and a finished job is cached for long.
        keys = [r.lookup_key for r in (*flying, *finished) if r.lookup_key and not r.final_job]
        found = cache.get_many([k for k in keys if k], budget=LIST_BUDGET)
        now = time.monotonic()

        def row(record: records.WaitRecord) -> dict[str, Any]:
            key = record.lookup_key
            return _row(record, found.get(key) if key else None, now)

        return _json(
            {
                "in_flight": [row(r) for r in flying],
                "finished": [row(r) for r in finished],
                "cloud_calls": cache.calls - calls_before,
                "generated_at": _iso(datetime.now(timezone.utc)),
            }
        )

    @app.get("/api/ti/{dag_id}/{run_id}/{task_id}/{map_index}")
    def task_job(dag_id: str, run_id: str, task_id: str, map_index: str, user: UserDep) -> JSONResponse:
        if dag_id not in _readable_dags(user, [dag_id]):
            raise HTTPException(403, "Forbidden")
        with create_session() as session:
            record = records.one_task(session, dag_id, run_id, task_id, _map_index(map_index))
        if record is None:
            raise HTTPException(404, "No such task instance")
        key = None if record.final_job else record.lookup_key
        lookup = lookups().get_many([key], budget=1).get(key) if key else None
        return _json(
            {"task": _row(record, lookup, time.monotonic()), "generated_at": _iso(datetime.now(timezone.utc))}
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=SECURITY_HEADERS)

    return app
