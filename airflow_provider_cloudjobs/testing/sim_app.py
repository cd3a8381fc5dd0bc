"""The simulator's HTTP side: IAM, every service's job GET, the creation APIs of the example DAGs,
faults, control API.

One aiohttp application serves all services on one port (a connection's ``endpoints: {"*": url}``).
Per request the work is O(1): a dict lookup for the token or an HMAC for AK/SK, a dict lookup for
the job, one ``json.dumps``. Nothing sleeps except the "slow" fault, and nothing logs per request.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import socket
import struct
import uuid
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from airflow_provider_cloudjobs.testing import sim_common as c
from airflow_provider_cloudjobs.testing import sim_render as r
from airflow_provider_cloudjobs.testing.sim_state import Fault, SimState, TokenRecord

STATE_KEY: web.AppKey[SimState] = web.AppKey("state", SimState)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Per-request values live in context variables: each request runs in its own task.
_REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("sim_request_id", default="")
_PEEK: contextvars.ContextVar[bool] = contextvars.ContextVar("sim_peek", default=False)

# Job GET routes: (route name, path, services whose jobs live there). One port serves every service, so
# services whose job APIs share a path (on their own hosts in the cloud) share a route here; the job's
# own service decides how its body is rendered. A path without {job_id} takes it from ``?id=``.
JOB_ROUTES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("job:cce", "/api/v3/projects/{project_id}/jobs/{job_id}", ("cce",)),
    ("job:cce-autopilot", "/autopilot/v3/projects/{project_id}/jobs/{job_id}", ("cce-autopilot",)),
    ("job:dws", "/v1.0/{project_id}/job/{job_id}", ("dws",)),
    ("job:elb", "/v1.0/{project_id}/jobs/{job_id}", ("elb",)),
    ("job:v1", "/v1/{project_id}/jobs/{job_id}", c.V1_PATH_SERVICES),
    ("job:elbv3", "/v3/{project_id}/elb/jobs/{job_id}", ("elbv3",)),
    ("job:dcs", "/v2/{project_id}/jobs/{job_id}", ("dcs", "swr")),
    ("job:rds", "/v3/{project_id}/jobs", ("rds", "dds", "gaussdb", "gaussdb-opengauss", "gaussdb-nosql")),
    ("job:v3", "/v3/{project_id}/jobs/{job_id}", ("ddm", "cfw")),
    ("job:sfs-turbo", "/v1/{project_id}/sfs-turbo/jobs/{job_id}", ("sfs-turbo",)),
    ("job:cph", "/v1/{project_id}/cloud-phone/jobs/{job_id}", ("cph",)),
    ("job:workspace-app", "/v2/{project_id}/job/{job_id}", ("workspace-app",)),
    # Jobs under a second id (an instance, a graph, an engine): the job answers only under its own.
    ("job:dms", "/v2/{project_id}/instances/{instance_id}/tasks/{job_id}", ("kafka", "rabbitmq", "rocketmq")),
    ("job:apig", "/v2/{project_id}/apigw/instances/{instance_id}/async-tasks/{job_id}", ("apig",)),
    ("job:ges", "/v2/{project_id}/graphs/{graph_id}/jobs/{job_id}/status", ("ges",)),
    ("job:cse", "/v2/{project_id}/enginemgr/engines/{engine_id}/jobs/{job_id}", ("cse",)),
    ("job:cbr", "/v3/{project_id}/operation-logs/{job_id}", ("cbr",)),
    # A global service: the job lives under the account's domain id, not a project.
    ("job:geip", "/v3/{domain_id}/geip/jobs/{job_id}", ("geip",)),
)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


def _rid(request: web.Request) -> str:
    return _REQUEST_ID.get()


def _state(request: web.Request) -> SimState:
    return request.app[STATE_KEY]


def _target_job_id(request: web.Request) -> str | None:
    job_id = request.match_info.get("job_id")
    if job_id is None and (request.match_info.route.name or "").startswith("job:"):
        job_id = request.query.get("id")
    return job_id


# -- middleware: request id, counters, faults, unknown APIs -------------------------------------
@web.middleware
async def sim_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = uuid.uuid4().hex
    _REQUEST_ID.set(rid)
    _PEEK.set(False)
    if request.path.startswith("/_sim/"):
        response = await _call(request, handler)
        response.headers["X-Request-Id"] = rid
        return response
    state = _state(request)
    route = request.match_info.route.name or ""
    state.begin_request()
    status: int | None = None
    try:
        if route.startswith("job:"):
            state.count("job_requests")
        elif route.startswith("create:"):
            state.count("create_requests")
        fault = state.take_fault(route, request.path_qs, _target_job_id(request))
        if fault is not None:
            response = await _serve_fault(request, fault, route, handler)
        else:
            response = await _call(request, handler)
        status = response.status
        response.headers["X-Request-Id"] = rid
        return response
    finally:
        state.end_request(status)


async def _call(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _json(
            r.apigw_error(
                "APIGW.0101",
                "The API does not exist or has not been published in the environment.",
                _rid(request),
            ),
            404,
        )
    except web.HTTPMethodNotAllowed:
        return _json(r.apigw_error("APIGW.0101", "The API does not exist.", _rid(request)), 404)


async def _serve_fault(
    request: web.Request, fault: Fault, route: str, handler: Handler
) -> web.StreamResponse:
    rid = _rid(request)
    kind = fault.kind
    if kind == "429":
        headers = {} if fault.retry_after is None else {"Retry-After": _retry_after_text(fault.retry_after)}
        if fault.retry_after_text is not None:
            headers["Retry-After"] = fault.retry_after_text
        message = (
            "The throttling threshold has been reached: policy user over ratelimit,limit:100,time:1 minute"
        )
        return _json(r.apigw_error("APIGW.0308", message, rid), 429, headers)
    if kind == "500":
        return web.Response(status=500, text=r.HTML_500, content_type="text/html")
    if kind == "502":
        return _json(r.apigw_error("APIGW.0202", "Backend unavailable.", rid), 502)
    if kind == "503":
        return web.Response(status=503, text=r.HTML_503, content_type="text/html")
    if kind == "iam_500":
        return _json(
            r.keystone_error(
                500,
                "Internal Server Error",
                "An unexpected error prevented the server from fulfilling your request.",
            ),
            500,
        )
    if kind == "token_expired":
        return _json(r.apigw_error("APIGW.0307", "The token must be updated.", rid), 401)
    if kind == "reset":
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0: the close sends a TCP RST, like a load balancer dropping the connection.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        raise asyncio.CancelledError  # no response is written; aiohttp drops the request quietly
    if kind == "404":
        services = _route_services(route)
        return _json(
            r.service_error(
                services[0] if services else "ecs", 404, f"Job {_target_job_id(request) or ''} not found", rid
            ),
            404,
        )
    if kind == "slow":
        await asyncio.sleep(fault.delay or 0.0)
        _PEEK.set(True)  # answer normally, but the fault does not advance the job
        return await _call(request, handler)
    if kind == "malformed_json":
        _PEEK.set(True)
        full = await _call(request, handler)
        text = (
            full.text
            if isinstance(full, web.Response) and full.text
            else '{"status": "RUNNING", "job_id": "x"}'
        )
        return web.Response(status=200, text=text[: max(1, len(text) // 2)], content_type="application/json")
    if kind == "json_not_object":  # valid JSON, but no job: what a misconfigured gateway may send
        _PEEK.set(True)
        return web.Response(status=200, text="[]", content_type="application/json")
    if kind in HOSTILE_FAULTS:
        return await _serve_hostile(request, fault, handler)
    raise AssertionError(f"unhandled fault kind {kind}")


HOSTILE_FAULTS = ("redirect", "drip", "huge", "gzip_bomb", "deep_json", "garbage_html")


async def _serve_hostile(request: web.Request, fault: Fault, handler: Handler) -> web.StreamResponse:
    """Answers a hostile or broken endpoint gives: the client must neither leak, stall nor bloat on them."""
    kind, size = fault.kind, fault.size or 1_000_000
    if kind == "redirect":  # a 307 keeps method and body: a client that follows re-sends both
        return web.Response(status=307, headers={"Location": str(fault.location)})
    if kind == "huge":  # streamed without a Content-Length: the client only learns the size by reading
        return await _stream(request, b'{"pad":"', b"x" * 65536, size // 65536, b'"}', 0.0)
    if kind == "gzip_bomb":
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
        zeros = b"0" * (1 << 20)
        body = b"".join(packer.compress(zeros) for _ in range(max(1, size >> 20))) + packer.flush()
        return web.Response(
            status=200, body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )
    if kind == "deep_json":
        depth = size // 2
        return web.Response(status=200, body=b"[" * depth + b"]" * depth, content_type="application/json")
    if kind == "garbage_html":  # broken tags that make a backtracking regex scan the rest for each one
        return web.Response(
            status=503, body=(b"<title<a " * (size // 9 + 1))[:size], content_type="text/html"
        )
    # drip: the real answer, one byte at a time, so that no single read ever times out
    _PEEK.set(True)
    full = await _call(request, handler)
    body = full.body if isinstance(full, web.Response) and isinstance(full.body, bytes) else b"{}"
    return await _stream(request, b"", body, 1, b"", fault.delay or 0.0, bytewise=True)


async def _stream(
    request: web.Request,
    head: bytes,
    piece: bytes,
    repeat: int,
    tail: bytes,
    pause: float,
    *,
    bytewise: bool = False,
) -> web.StreamResponse:
    """Write ``head``, ``piece`` x ``repeat`` (byte by byte with ``pause`` after each if ``bytewise``),
    ``tail``; a client that hangs up early ends it quietly."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        await response.write(head)
        for _ in range(repeat):
            parts = [piece[i : i + 1] for i in range(len(piece))] if bytewise else [piece]
            for part in parts:
                await response.write(part)
                if pause:
                    await asyncio.sleep(pause)
        await response.write(tail)
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        pass
    return response


def _retry_after_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _route_services(route: str) -> tuple[str, ...]:
    for name, _path, services in JOB_ROUTES:
        if name == route:
            return services
    return ()


# -- authentication (API Gateway in front of every service) -------------------------------------
def _token_record(request: web.Request) -> TokenRecord | web.Response:
    """The record of the request's X-Auth-Token, or API Gateway's 401 for a missing, unknown or expired one."""
    state = _state(request)
    rid = _rid(request)
    token = request.headers.get("X-Auth-Token")
    if not token:
        state.count("auth_failures")
        return _json(
            r.apigw_error(
                "APIGW.0301", "Incorrect IAM authentication information: x-auth-token not found", rid
            ),
            401,
        )
    record = state.tokens.get(token)
    if record is None:
        state.count("auth_failures")
        return _json(
            r.apigw_error("APIGW.0301", "Incorrect IAM authentication information: decrypt token fail", rid),
            401,
        )
    if record.expires_at <= c.now():
        state.count("auth_failures")
        return _json(r.apigw_error("APIGW.0307", "The token must be updated.", rid), 401)
    return record


def _signature_failure(request: web.Request, failure: tuple[str, str]) -> web.Response:
    _state(request).count("auth_failures")
    code, detail = failure
    return _json(
        r.apigw_error(code, f"Incorrect IAM authentication information: {detail}", _rid(request)), 401
    )


async def authenticate(request: web.Request, project_id: str | None, service: str) -> web.Response | None:
    """None when the caller may act on ``project_id``; else the 401/403 API Gateway or the service sends."""
    state = _state(request)
    rid = _rid(request)
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("SDK-HMAC-SHA256"):
        failure = await _verify_aksk(request)
        if failure is not None:
            return _signature_failure(request, failure)
        allowed = project_id is None or project_id in state.account.projects
        header_project = request.headers.get("X-Project-Id")
        if header_project and project_id and header_project != project_id:
            allowed = False
    else:
        record = _token_record(request)
        if isinstance(record, web.Response):
            return record
        allowed = project_id is None or record.project_id == project_id
    if not allowed:
        state.count("auth_failures")
        if service == "iam":
            return _json(
                r.apigw_error("APIGW.0302", "The IAM user is not authorized to access the API.", rid), 403
            )
        return _json(
            r.service_error(
                service, 403, f"Forbidden: the credentials are not valid for project {project_id}", rid
            ),
            403,
        )
    return None


async def authenticate_account(request: web.Request, domain_id: str, service: str) -> web.Response | None:
    """A global service's call (Global EIP): None when it acts for this account, with an account-scoped token
    or an AK/SK signature that signs ``X-Domain-Id`` = the account (what the SDK's GlobalCredentials sends);
    a project-scoped token, or a signature without the header, gets the service's 403."""
    from airflow_provider_cloudjobs.auth.signer import parse_authorization

    state = _state(request)
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("SDK-HMAC-SHA256"):
        failure = await _verify_aksk(request)
        if failure is not None:
            return _signature_failure(request, failure)
        signed = parse_authorization(authorization).signed_headers
        header = request.headers.get("X-Domain-Id", "")
        allowed = "x-domain-id" in signed and header == domain_id == state.account.domain_id
        why = "an AK/SK request of a global service must sign X-Domain-Id with the account's id"
    else:
        record = _token_record(request)
        if isinstance(record, web.Response):
            return record
        allowed = bool(record.domain_id) and record.domain_id == domain_id
        why = "a global service needs a token scoped to the account (domain), not to a project"
    if allowed:
        return None
    state.count("auth_failures")
    return _json(r.service_error(service, 403, f"Forbidden: {why}", _rid(request)), 403)


async def _verify_aksk(request: web.Request) -> tuple[str, str] | None:
    """None when the SDK-HMAC-SHA256 signature checks out, else API Gateway's (code, reason)."""
    from airflow_provider_cloudjobs.auth.signer import SignatureError, verify_request

    raw_path, _, raw_query = request.raw_path.partition("?")
    body = await request.read()
    state = _state(request)
    try:
        verify_request(request.method, raw_path, raw_query, request.headers, body, state.secret_key_for)
    except SignatureError as exc:
        reason = getattr(exc, "reason", "")
        # API Gateway's wording: "ak <AK> not exist" for an unknown key, "verify aksk signature fail" for
        # a signature that does not match; other checks (date, skew, header) say what failed.
        if reason == "signature_mismatch":
            detail = "verify aksk signature fail"
        else:
            detail = getattr(exc, "message", "") or str(exc)
        return getattr(exc, "code", "") or "APIGW.0301", detail
    return None


# -- IAM -----------------------------------------------------------------------------------------
def _bad_request(message: str) -> web.Response:
    return _json(r.keystone_error(400, "Bad Request", message), 400)


async def iam_tokens(request: web.Request) -> web.Response:
    """``POST /v3/auth/tokens``, password method, project scope (by id or by name = region) or domain scope
    (by id or name: an account-scoped token, which only global services accept)."""
    state = _state(request)
    try:
        payload = json.loads(await request.read())
        auth = payload["auth"]
        identity = auth["identity"]
        methods = identity["methods"]
        user = identity["password"]["user"]
        name, password = str(user["name"]), str(user["password"])
        domain = str((user.get("domain") or {}).get("name", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        state.count_iam_call(None)
        return _bad_request(
            "The request body is invalid: expecting auth.identity.password.user with name, "
            "password and domain."
        )
    state.count_iam_call(name)
    if not isinstance(methods, list) or "password" not in methods:
        return _bad_request("Only the 'password' authentication method is supported here.")
    user_id = state.check_password(domain, name, password)
    if user_id is None:
        state.count("auth_failures")
        return _json(r.keystone_error(401, "Unauthorized", "The username or password is wrong."), 401)
    scope = (auth.get("scope") or {}) if isinstance(auth, dict) else {}
    domain_ref = {"name": state.account.domain_name, "id": state.account.domain_id}
    scoped_domain = scope.get("domain") if isinstance(scope, dict) else None
    if isinstance(scoped_domain, dict):  # an account-scoped token, for global services (Global EIP)
        wanted_id, wanted_name = scoped_domain.get("id"), scoped_domain.get("name")
        if wanted_id not in (None, state.account.domain_id) or wanted_name not in (
            None,
            state.account.domain_name,
        ):
            state.count("auth_failures")
            return _json(
                r.keystone_error(401, "Unauthorized", "The request you have made requires authentication."),
                401,
            )
        state.count("iam_domain_token_calls")
        value, record = state.issue_token(name, user_id, "", "", state.account.domain_id)
        scoped: dict[str, Any] = {"domain": domain_ref}
    else:
        project = scope.get("project") if isinstance(scope, dict) else None
        if not isinstance(project, dict) or not (project.get("id") or project.get("name")):
            return _bad_request(
                "A project scope ({'project': {'id'}} or {'project': {'name'}}) or a domain scope "
                "({'domain': {'id'}} or {'domain': {'name'}}) is required."
            )
        found = state.find_project(project.get("id"), project.get("name"))
        if found is None:
            state.count("auth_failures")
            return _json(
                r.keystone_error(401, "Unauthorized", "The request you have made requires authentication."),
                401,
            )
        project_id, project_name = found
        value, record = state.issue_token(name, user_id, project_id, project_name)
        scoped = {"project": {"id": project_id, "name": project_name, "domain": domain_ref}}
    body = {
        "token": {
            "expires_at": c.iam_time(record.expires_at),
            "issued_at": c.iam_time(record.issued_at),
            "methods": ["password"],
            **scoped,
            "user": {"id": user_id, "name": name, "domain": domain_ref, "password_expires_at": ""},
            "roles": [{"id": "0", "name": "te_admin"}, {"id": "0", "name": "op_gated_cce"}],
            "catalog": [],
        }
    }
    return _json(body, 201, {"X-Subject-Token": value})


async def iam_projects(request: web.Request) -> web.Response:
    """``GET /v3/projects[?name=region]`` for callers that know the region but not the project id."""
    state = _state(request)
    state.count("iam_project_calls")
    denied = await authenticate(request, None, "iam")
    if denied is not None:
        return denied
    name = request.query.get("name")
    base = str(request.url.origin())
    domain_id = state.account.domain_id
    projects = [
        {
            "id": pid,
            "name": pname,
            "domain_id": domain_id,
            "parent_id": domain_id,
            "is_domain": False,
            "enabled": True,
            "description": "",
            "links": {"self": f"{base}/v3/projects/{pid}"},
        }
        for pid, pname in state.account.projects.items()
        if name is None or pname == name
    ]
    return _json({"projects": projects, "links": {"self": str(request.url), "previous": None, "next": None}})


# -- job GETs ------------------------------------------------------------------------------------
def make_job_handler(services: tuple[str, ...]) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        if "domain_id" in request.match_info:  # a global service: the account's jobs
            project_id = request.match_info["domain_id"]
            denied = await authenticate_account(request, project_id, services[0])
        else:
            project_id = request.match_info["project_id"]
            denied = await authenticate(request, project_id, services[0])
        if denied is not None:
            return denied
        job_id = _target_job_id(request)
        rid = _rid(request)
        if not job_id:
            return _json(r.service_error(services[0], 400, "Query parameter 'id' is required.", rid), 400)
        ids = {k: v for k, v in request.match_info.items() if k not in ("project_id", "domain_id", "job_id")}
        snap = _state(request).job_snapshot(job_id, services, project_id, not _PEEK.get(), ids)
        if snap is None:
            return _json(r.service_error(services[0], 404, f"Job {job_id} not found", rid), 404)
        return _json(r.render_job(snap, rid))

    return handler


# -- creation APIs used by the example DAGs ------------------------------------------------------
async def _read_json(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"{}")
    except ValueError:
        return None


def _fails(*names: Any) -> str:
    return "fail" if any("fail" in str(name or "").lower() for name in names) else "success"


async def create_cce_cluster(request: web.Request) -> web.Response:
    service = "cce-autopilot" if request.path.startswith("/autopilot/") else "cce"
    project_id = request.match_info["project_id"]
    denied = await authenticate(request, project_id, service)
    if denied is not None:
        return denied
    body = await _read_json(request)
    metadata = body.get("metadata") if isinstance(body, dict) else None
    if not isinstance(metadata, dict) or not metadata.get("name"):
        return _json(r.service_error(service, 400, "metadata.name is required", _rid(request)), 400)
    name = str(metadata["name"])
    cluster_id = str(uuid.uuid4())
    job_id = _state(request).create_job(
        service,
        project_id=project_id,
        outcome=_fails(name),
        resource_name=name,
        resource_id=cluster_id,
        job_type="CreateCluster",
        extra={"cluster_uid": cluster_id},
    )
    stamp = c.go_time(c.now())
    reply = {
        "kind": "Cluster",
        "apiVersion": "v3",
        "metadata": {"name": name, "uid": cluster_id, "creationTimestamp": stamp, "updateTimestamp": stamp},
        "spec": body.get("spec") or {},
        "status": {"phase": "Creating", "jobID": job_id},
    }
    return _json(reply, 201)


async def create_cce_node(request: web.Request) -> web.Response:
    project_id = request.match_info["project_id"]
    cluster_id = request.match_info["cluster_id"]
    denied = await authenticate(request, project_id, "cce")
    if denied is not None:
        return denied
    body = await _read_json(request)
    metadata = (body.get("metadata") or {}) if isinstance(body, dict) else None
    if metadata is None:
        return _json(r.service_error("cce", 400, "request body must be a Node object", _rid(request)), 400)
    name = str(metadata.get("name") or f"node-{uuid.uuid4().hex[:5]}")
    node_id = str(uuid.uuid4())
    job_id = _state(request).create_job(
        "cce",
        project_id=project_id,
        outcome=_fails(name),
        resource_name=name,
        resource_id=node_id,
        job_type="CreateNode",
        extra={"cluster_uid": cluster_id, "sub_job_types": ["CreateNodeVM", "InstallNode"]},
    )
    stamp = c.go_time(c.now())
    reply = {
        "kind": "Node",
        "apiVersion": "v3",
        "metadata": {"name": name, "uid": node_id, "creationTimestamp": stamp, "updateTimestamp": stamp},
        "spec": body.get("spec") or {},
        "status": {"jobID": job_id},
    }
    return _json(reply, 201)


async def create_classic_elb(request: web.Request) -> web.Response:
    project_id = request.match_info["project_id"]
    denied = await authenticate(request, project_id, "elb")
    if denied is not None:
        return denied
    body = await _read_json(request)
    if not isinstance(body, dict) or not body.get("name"):
        return _json(r.service_error("elb", 400, "name is required", _rid(request)), 400)
    job_id = _state(request).create_job(
        "elb", project_id=project_id, outcome=_fails(body["name"]), resource_name=str(body["name"])
    )
    return _json({"uri": f"/v1.0/{project_id}/jobs/{job_id}", "job_id": job_id})


async def create_dws_cluster(request: web.Request) -> web.Response:
    """``POST /v1.0/{project_id}/clusters``: DWS answers with the new cluster's id only, and no job id
    (the SDK's ``CreateClusterResponse`` is ``{"cluster": {"id"}}``): progress is the cluster's status."""
    project_id = request.match_info["project_id"]
    denied = await authenticate(request, project_id, "dws")
    if denied is not None:
        return denied
    body = await _read_json(request)
    cluster = body.get("cluster") if isinstance(body, dict) else None
    if not isinstance(cluster, dict) or not cluster.get("name"):
        return _json(r.service_error("dws", 400, "cluster.name is required", _rid(request)), 400)
    return _json({"cluster": {"id": str(uuid.uuid4())}})


async def dws_associate_elb(request: web.Request) -> web.Response:
    project_id = request.match_info["project_id"]
    denied = await authenticate(request, project_id, "dws")
    if denied is not None:
        return denied
    cluster_id, elb_id = request.match_info["cluster_id"], request.match_info["elb_id"]
    job_id = _state(request).create_job(
        "dws",
        project_id=project_id,
        outcome=_fails(cluster_id, elb_id),
        resource_name=cluster_id,
        resource_id=elb_id,
    )
    return _json({"job_id": job_id})


async def create_ecs_servers(request: web.Request) -> web.Response:
    project_id = request.match_info["project_id"]
    denied = await authenticate(request, project_id, "ecs")
    if denied is not None:
        return denied
    body = await _read_json(request)
    server = body.get("server") if isinstance(body, dict) else None
    if not isinstance(server, dict) or not server.get("name"):
        return _json(r.service_error("ecs", 400, "request body is illegal.", _rid(request)), 400)
    try:
        count = max(1, min(int(server.get("count", 1)), 100))
    except (TypeError, ValueError):
        return _json(r.service_error("ecs", 400, "server.count must be an integer.", _rid(request)), 400)
    state = _state(request)
    job_id = state.create_job(
        "ecs",
        project_id=project_id,
        outcome=_fails(server["name"]),
        sub_jobs=count,
        resource_name=str(server["name"]),
    )
    with state.lock:
        server_ids = list(state.jobs[job_id].sub_resource_ids)
    return _json({"job_id": job_id, "serverIds": server_ids})


async def resize_kafka_instance(request: web.Request) -> web.Response:
    """Kafka's ResizeEngineInstance: the answer holds the background task's ``job_id``, which is read under
    the same instance (``path_params={"instance_id": ...}``)."""
    project_id, instance_id = request.match_info["project_id"], request.match_info["instance_id"]
    denied = await authenticate(request, project_id, "kafka")
    if denied is not None:
        return denied
    body = await _read_json(request)
    if not isinstance(body, dict) or not body.get("oper_type"):
        return _json(r.service_error("kafka", 400, "oper_type is required.", _rid(request)), 400)
    job_id = _state(request).create_job(
        "kafka",
        project_id=project_id,
        outcome=_fails(body.get("oper_type")),
        path_params={"instance_id": instance_id},
    )
    return _json({"job_id": job_id})


# -- control API (for a simulator in another process) ------------------------------------------
async def _control_body(request: web.Request) -> dict[str, Any]:
    body = await _read_json(request)
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}), content_type="application/json"
        )
    return body


def _control_error(exc: Exception) -> web.Response:
    return _json({"error": str(exc)}, 400)


async def ctl_create_job(request: web.Request) -> web.Response:
    body = await _control_body(request)
    try:
        service = body.pop("service")
        if "count" in body:  # bulk: {"service", "count", ...} -> {"job_ids": [...]}
            job_ids = _state(request).create_jobs(service, **body)
            return _json({"job_ids": job_ids}, 201)
        job_id = _state(request).create_job(service, **body)
    except (KeyError, TypeError, ValueError) as exc:
        return _control_error(exc)
    return _json({"job_id": job_id}, 201)


async def ctl_inject_fault(request: web.Request) -> web.Response:
    body = await _control_body(request)
    try:
        kind = body.pop("kind")
        _state(request).inject_fault(str(kind), **body)
    except (KeyError, TypeError, ValueError) as exc:
        return _control_error(exc)
    return _json({"ok": True}, 201)


async def ctl_expire_tokens(request: web.Request) -> web.Response:
    _state(request).expire_tokens()
    return _json({"ok": True})


async def ctl_stats(request: web.Request) -> web.Response:
    return _json(_state(request).stats())


async def ctl_reset(request: web.Request) -> web.Response:
    _state(request).reset()
    return _json({"ok": True})


async def ctl_job_state(request: web.Request) -> web.Response:
    try:
        return _json(_state(request).job_state(request.match_info["job_id"]))
    except KeyError:
        return _json({"error": f"no job {request.match_info['job_id']}"}, 404)


async def ctl_config(request: web.Request) -> web.Response:
    body = await _control_body(request)
    try:
        return _json(_state(request).configure(**body))
    except (TypeError, ValueError) as exc:
        return _control_error(exc)


def build_app(state: SimState) -> web.Application:
    app = web.Application(middlewares=[sim_middleware], client_max_size=1024**2)
    app[STATE_KEY] = state
    router = app.router
    router.add_post("/v3/auth/tokens", iam_tokens, name="iam:tokens")
    router.add_get("/v3/projects", iam_projects, name="iam:projects")
    for name, path, services in JOB_ROUTES:
        router.add_get(path, make_job_handler(services), name=name)
    router.add_post("/api/v3/projects/{project_id}/clusters", create_cce_cluster, name="create:cce-cluster")
    router.add_post(
        "/autopilot/v3/projects/{project_id}/clusters", create_cce_cluster, name="create:autopilot-cluster"
    )
    router.add_post(
        "/api/v3/projects/{project_id}/clusters/{cluster_id}/nodes", create_cce_node, name="create:cce-node"
    )
    router.add_post("/v1.0/{project_id}/elbaas/loadbalancers", create_classic_elb, name="create:elb")
    router.add_post("/v1.0/{project_id}/clusters", create_dws_cluster, name="create:dws-cluster")
    router.add_post(
        "/v1.0/{project_id}/clusters/{cluster_id}/elbs/{elb_id}", dws_associate_elb, name="create:dws-elb"
    )
    router.add_post("/v1/{project_id}/cloudservers", create_ecs_servers, name="create:ecs")
    router.add_post(
        "/v2/{engine}/{project_id}/instances/{instance_id}/extend",
        resize_kafka_instance,
        name="create:kafka-resize",
    )
    router.add_post("/_sim/jobs", ctl_create_job)
    router.add_get("/_sim/jobs/{job_id}", ctl_job_state)
    router.add_post("/_sim/faults", ctl_inject_fault)
    router.add_post("/_sim/tokens/expire", ctl_expire_tokens)
    router.add_get("/_sim/stats", ctl_stats)
    router.add_post("/_sim/reset", ctl_reset)
    router.add_post("/_sim/config", ctl_config)
    return app
