"""Every built-in service profile held against Huawei Cloud's official Python SDK.

For each profile: the SDK operation of its job API has the profile's method and path; every field the
profile reads exists in the SDK's response model; every status value the SDK documents maps to a phase
on purpose (terminal ones terminal); and bodies built from the SDK's models normalise without losing the
sub-jobs, errors, progress, resource or times. Where the SDK documents no status values, the vocabulary
comes from the API reference page that ``job_facts`` names.
"""

from __future__ import annotations

import importlib
import itertools
import pkgutil
from datetime import datetime, timezone
from typing import Any

import pytest
from sdk_oracle import (
    OBJECT,
    client_class,
    documented_statuses,
    enum_values,
    fields,
    http_info,
    list_item,
    meaning_phase,
    model_class,
    resolve,
    response_model,
    sdk_module,
)

from airflow_provider_cloudjobs.connection import CloudJobsSettings
from airflow_provider_cloudjobs.job import normalize_job
from airflow_provider_cloudjobs.profiles import _PATH_FIELDS, BUILTIN_PROFILES, ServiceProfile, dig
from airflow_provider_cloudjobs.testing import sim_common as c
from airflow_provider_cloudjobs.testing.job_facts import JOB_FACTS, JobApiFacts

SDK_SERVICES = sorted(key for key, facts in JOB_FACTS.items() if facts.sdk)
PROJECT = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
DOMAIN = "d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f"
JOB_ID = "ff8080825ecc523f015ecd0a98f82f77"


def test_every_builtin_profile_has_facts_and_every_fact_a_profile():
    assert set(JOB_FACTS) == set(BUILTIN_PROFILES)
    for key, facts in JOB_FACTS.items():
        assert facts.time_format in c.TIME_FORMATS, key
        if facts.sdk is None or facts.statuses:
            assert facts.reference, f"{key}: a vocabulary not from the SDK must name its API reference page"


# -- 1. the request ------------------------------------------------------------------------------
@pytest.mark.parametrize("service", SDK_SERVICES)
def test_method_and_path_are_the_sdk_operations(service: str) -> None:
    facts, profile = JOB_FACTS[service], BUILTIN_PROFILES[service]
    # Each further id with a value of its own, so a swapped pair of placeholders shows.
    ids = {name: f"{name.replace('_', '-')}-{index}" for index, name in enumerate(profile.path_params)}
    info = http_info(facts, JOB_ID, ids)
    assert info["method"] == "GET"
    assert set(ids) <= set(info["path_params"]), (
        f"{service}: the SDK's path parameters are {info['path_params']}"
    )
    # The SDK fills {domain_id} from GlobalCredentials, not from the request: the connection's domain_id.
    sdk_path = info["resource_path"].format(project_id=PROJECT, domain_id=DOMAIN, **info["path_params"])
    query = [(key, value) for key, value in info["query_params"] if value is not None]
    if query:
        sdk_path += "?" + "&".join(f"{key}={value}" for key, value in query)
    assert profile.job_path(PROJECT, JOB_ID, ids, domain_id=DOMAIN) == sdk_path


@pytest.mark.parametrize("service", SDK_SERVICES)
def test_scope_is_the_sdks_credentials(service: str) -> None:
    """A profile is domain-scoped exactly when the SDK builds its client with GlobalCredentials (the account's
    id in X-Domain-Id and the path) rather than BasicCredentials (a project)."""
    facts, profile = JOB_FACTS[service], BUILTIN_PROFILES[service]
    client = client_class(sdk_module(facts), facts.operation)
    credentials = client.new_builder()._credential_type
    expected = "domain" if credentials == ["GlobalCredentials"] else "project"
    assert credentials in (["GlobalCredentials"], ["BasicCredentials"]), credentials
    assert profile.scope == expected, f"{service}: the SDK's client uses {credentials}"
    assert ("{domain_id}" in http_info(facts, JOB_ID)["resource_path"]) == (expected == "domain")


@pytest.mark.parametrize("service", SDK_SERVICES)
def test_host_is_the_sdk_endpoint_host(service: str) -> None:
    """The default base URL for a region (cn-north-4) is the SDK's endpoint there: ``https://{host}.{region}``
    for a regional service, the one region-less host of a global one (Global EIP)."""
    facts, profile = JOB_FACTS[service], BUILTIN_PROFILES[service]
    sdk_module(facts)
    region_package = importlib.import_module(f"{facts.sdk}.region")
    endpoints: set[str] = set()
    for info in pkgutil.iter_modules(region_package.__path__):
        region_module = importlib.import_module(f"{region_package.__name__}.{info.name}")
        for cls in vars(region_module).values():
            if isinstance(cls, type) and cls.__name__.endswith("Region"):
                region = getattr(cls, "CN_NORTH_4", None)
                endpoints.update(getattr(region, "endpoints", None) or [])
    assert endpoints, f"no cn-north-4 endpoint in {facts.sdk}.region"
    settings = CloudJobsSettings(conn_id="c", auth_type="token", region="cn-north-4")
    assert settings.base_url(profile) in endpoints
    assert profile.regional == all(".cn-north-4." in url for url in endpoints), endpoints


def test_global_eips_endpoint_is_region_less_in_every_region_of_the_sdk() -> None:
    """GeipRegion lists one host for its regions: the default must not put a region in it, wherever the
    connection's region is."""
    facts = JOB_FACTS["geip"]
    sdk_module(facts)
    from huaweicloudsdkgeip.v3.region.geip_region import GeipRegion

    hosts = {url for region in GeipRegion.static_fields.values() for url in region.endpoints}
    assert hosts == {"https://eip.myhuaweicloud.com"}
    for region in ("cn-north-4", "eu-west-101", ""):
        settings = CloudJobsSettings(conn_id="c", auth_type="token", region=region)
        assert settings.base_url(BUILTIN_PROFILES["geip"]) == "https://eip.myhuaweicloud.com"


def test_classic_elb_is_not_in_the_sdk_so_its_facts_cite_the_api_reference() -> None:
    """The v1.0 combined API was retired before the SDK; if the SDK ever gains it, check it like the rest."""
    pytest.importorskip(
        "huaweicloudsdkelb", reason="huaweicloudsdkelb (the conformance extra) is not installed"
    )
    import huaweicloudsdkelb.v2 as v2
    import huaweicloudsdkelb.v3 as v3

    paths = set()
    for module in (v2, v3):
        client = next(getattr(module, n) for n in dir(module) if n.endswith("Client") and "Async" not in n)
        for name in dir(client):
            if name.endswith("_http_info"):
                source = getattr(client, name).__func__.__code__.co_consts
                paths.update(const for const in source if isinstance(const, str) and const.startswith("/"))
    assert BUILTIN_PROFILES["elb"].path not in paths
    assert JOB_FACTS["elb"].reference


# -- 2. the fields the profile reads --------------------------------------------------------------
def _job_model(facts: JobApiFacts, profile: ServiceProfile) -> Any:
    module = sdk_module(facts)
    job = resolve(module, response_model(facts), profile.root)
    assert isinstance(job, type), f"{profile.key}: root {profile.root!r} is not a model in the SDK"
    return job


def _sub_job_model(facts: JobApiFacts, profile: ServiceProfile, job_model: Any) -> Any:
    if not profile.sub_jobs:
        return None
    module = sdk_module(facts)
    item = list_item(module, resolve(module, job_model, profile.sub_jobs))
    assert item is not None, f"{profile.key}: sub_jobs {profile.sub_jobs!r} is not a list in the SDK model"
    return job_model if item == OBJECT else item  # "same shape as the job" (EIP)


def _profile_paths(profile: ServiceProfile) -> list[tuple[str, str]]:
    paths = [("status", profile.status)]
    for name in _PATH_FIELDS:
        paths += [(name, path) for path in getattr(profile, name)]
    if profile.entities:
        paths.append(("entities", profile.entities))
    return paths


@pytest.mark.parametrize("service", SDK_SERVICES)
def test_every_field_the_profile_reads_is_in_the_sdk_model(service: str) -> None:
    facts, profile = JOB_FACTS[service], BUILTIN_PROFILES[service]
    module = sdk_module(facts)
    job_model = _job_model(facts, profile)
    sub_model = _sub_job_model(facts, profile, job_model)
    missing = [
        f"{name}: {path}"
        for name, path in _profile_paths(profile)
        if resolve(module, job_model, path) is None
        and (sub_model is None or resolve(module, sub_model, path) is None)
    ]
    assert not missing, f"{service} reads fields its SDK response model does not have: {missing}"
    if sub_model is not None:
        assert resolve(module, sub_model, profile.status) is not None, f"{service}: sub-jobs have no status"


# -- 3. documented status values -----------------------------------------------------------------
def _status_doc(module: Any, model: Any, path: str) -> str | list[str]:
    """The status field's docstring, or the values of the enum model it is typed with."""
    *parents, last = path.split(".")
    owner = resolve(module, model, ".".join(parents)) if parents else model
    assert isinstance(owner, type)
    field = fields(owner)[last]
    return enum_values(model_class(module, field.type_text)) or field.doc


def vocabulary(service: str) -> tuple[dict[str, str], str]:
    facts, profile = JOB_FACTS[service], BUILTIN_PROFILES[service]
    if facts.sdk is None:
        return {value: "" for value in facts.statuses}, f"API reference ({facts.reference})"
    module = sdk_module(facts)
    job_model = _job_model(facts, profile)
    values, where = documented_statuses(facts, _status_doc(module, job_model, profile.status))
    sub_model = _sub_job_model(facts, profile, job_model)
    if sub_model is not None and sub_model is not job_model and not facts.vocabulary:
        sub_values, _ = documented_statuses(facts, _status_doc(module, sub_model, profile.status))
        values = {**sub_values, **values}
    return values, where


@pytest.mark.parametrize("service", sorted(JOB_FACTS))
def test_every_documented_status_maps_to_a_phase_on_purpose(service: str) -> None:
    facts, profile = JOB_FACTS[service], BUILTIN_PROFILES[service]
    values, where = vocabulary(service)
    assert values, f"{service}: no documented status values found ({where}); name the API reference page"
    if facts.statuses and facts.sdk is not None:
        # The facts claim the SDK documents nothing; if a newer SDK does, use it instead.
        assert where.startswith("API reference"), f"{service}: the SDK now documents {sorted(values)}"
    for value, meaning in values.items():
        phase = profile.phase_of(value).value
        assert phase != "UNKNOWN", f"{service}: documented status {value!r} ({where}) is not mapped"
        terminal = None if value in facts.not_terminal else meaning_phase(value, meaning)
        if terminal is None:
            assert phase in ("PENDING", "RUNNING"), (
                f"{service}: {value!r} ({meaning.strip()}) is not terminal"
            )
        else:
            assert phase == terminal, f"{service}: {value!r} ({meaning.strip()}) should be {terminal}"
    documented = {value.upper() for value in values}
    invented = {raw for raw in profile.phases if raw not in documented} - {
        raw.upper() for raw in facts.undocumented
    }
    assert not invented, f"{service} maps statuses nothing documents: {sorted(invented)}"


def test_dws_stop_waiting_and_delay_scheduled_no_longer_wait_as_unknown() -> None:
    dws = BUILTIN_PROFILES["dws"]
    assert dws.phase_of("STOP").value == "FAILED"
    assert dws.phase_of("WAITING").value == "PENDING"
    assert dws.phase_of("DELAY_SCHEDULED").value == "PENDING"


# -- 4. bodies built from the SDK's models -------------------------------------------------------
# Whole seconds: every documented format (some have no fraction) can carry them exactly.
T_START, T_UPDATE, T_END = 1_700_000_000, 1_700_000_600, 1_700_001_200
START_KEYS = {"begin_time", "start_time", "created", "created_time", "creationTimestamp", "created_at"}
UPDATE_KEYS = {"updateTimestamp", "updated_at"}
END_KEYS = {"end_time", "ended", "ended_at"}
ERROR_CODE_KEYS = {"error_code", "failed_code", "errorCode"}
MESSAGE_KEYS = {
    *("fail_reason", "failed_detail", "error_msg", "error_message", "reason", "errorcode_message", "error"),
}
PROGRESS_KEYS = {"progress", "process", "process_percent"}
SUB_JOB_KEYS = {"sub_jobs", "subJobs", "sub_jobs_result"}
RESOURCE_ID_KEYS = {
    *("resource_id", "resourceID", "server_id", "volume_id", "image_id", "elb_id", "instance_id"),
    *("server_group_id", "protected_instance_id", "replication_pair_id"),
}
RESOURCE_NAME_KEYS = {"resource_name", "resourceName", "image_name"}
JOB_TYPE_KEYS = {"job_type", "job_name"}
STATUS_KEYS = {"status", "phase", "task_status"}


def iso(ts: float) -> str:
    """The instant as the normalised job writes it (ISO-8601 UTC, microseconds, Z)."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Builder:
    """Builds a job body from the SDK's models: every field filled, its role known from its name."""

    def __init__(self, facts: JobApiFacts, profile: ServiceProfile, status_for: dict[str, str]) -> None:
        self.facts, self.profile, self.status_for = facts, profile, status_for
        self.module = sdk_module(facts)
        self.fmt = c.TIME_FORMATS[facts.time_format]
        self.counter = itertools.count()
        self.roles: dict[str, list[str]] = {}
        self.in_sub_job = False
        self.job_model: Any = None

    def _value(self, key: str, type_text: str, scenario: str, top: bool) -> Any:
        if key in STATUS_KEYS and type_text in ("str", "int") and top:
            status = self.status_for[scenario]
            return int(status) if type_text == "int" else status
        if key in START_KEYS:
            return self.fmt(T_START) if top else "2020-01-01T00:00:00Z"
        if key in END_KEYS or key in self.facts.end_time_keys:
            return self.fmt(T_END) if scenario != "running" else ""
        if key in UPDATE_KEYS:
            return self.fmt(T_UPDATE)
        if key in END_KEYS:
            return self.fmt(T_END) if scenario != "running" else ""
        if key in PROGRESS_KEYS:
            if type_text == "float":
                return 0.6
            if type_text == "int":
                return 60
            return "60%"
        if type_text in ("str", "date", "datetime"):
            return f"{key}-{next(self.counter)}"
        return {"int": 2, "float": 0.5, "bool": True}.get(type_text)

    def build(self, model: type, scenario: str, path: str = "", top: bool = True, depth: int = 0) -> dict:
        """A body dict (JSON keys) for ``model``; ``top``: the job object itself or its entities."""
        body: dict[str, Any] = {}
        for field in fields(model).values():
            if field.key in self.facts.not_job_fields and path == "":
                continue
            where = f"{path}.{field.key}" if path else field.key
            item = list_item(self.module, field.type_text)
            nested = model_class(self.module, field.type_text)
            enum = enum_values(nested)
            if enum:  # a string from an enum model (WorkspaceApp's status and job type)
                nested = None
                value = self.status_for[scenario] if field.key in STATUS_KEYS and top else enum[0]
                body[field.key] = value
                if top:
                    self.roles.setdefault(field.key, []).append(value)
            elif field.key in SUB_JOB_KEYS and item is not None:
                body[field.key] = self._sub_jobs(item, depth)
            elif nested is not None:
                if depth < 3:
                    inner_top = top and field.key in (
                        "entities",
                        "instance",
                        "error_info",
                        "metadata",
                        "spec",
                        "status",
                    )
                    body[field.key] = self.build(nested, scenario, where, inner_top, depth + 1)
            elif item is not None:
                if isinstance(item, type):
                    body[field.key] = (
                        [self.build(item, scenario, where, False, depth + 1)] if depth < 3 else []
                    )
                else:
                    body[field.key] = [f"{field.key}-{next(self.counter)}"]
            elif field.type_text.startswith("dict("):
                body[field.key] = {"k": "v"}
            else:
                value = self._value(field.key, field.type_text, scenario, top)
                body[field.key] = value
                if top:
                    self.roles.setdefault(field.key, []).append(value)
        return body

    def _sub_jobs(self, item: Any, depth: int) -> list:
        """Two sub-jobs, the first succeeded and the second failed (none inside a sub-job)."""
        if self.in_sub_job:
            return []
        model = self.job_model if item == OBJECT else item  # "same shape as the job" (EIP)
        sub = Builder(self.facts, self.profile, self.status_for)
        sub.counter, sub.in_sub_job, sub.job_model = self.counter, True, self.job_model
        subs = [
            sub.build(model, "success", "", True, depth + 1),
            sub.build(model, "failed", "", True, depth + 1),
        ]
        self.sub_roles = sub.roles
        return subs


#: The status a "running" body carries where no document names an in-progress word (Global EIP).
NO_RUNNING_WORD = "A_WORD_NO_DOCUMENT_NAMES"


def _statuses_by_phase(service: str) -> dict[str, str]:
    values, _ = vocabulary(service)
    profile = BUILTIN_PROFILES[service]
    chosen: dict[str, str] = {}
    for value in [*values, *JOB_FACTS[service].undocumented]:
        phase = profile.phase_of(value).value
        scenario = {"SUCCEEDED": "success", "FAILED": "failed", "RUNNING": "running"}.get(phase)
        if scenario:
            chosen.setdefault(scenario, value)
    chosen.setdefault("running", NO_RUNNING_WORD)
    return chosen


def _wrap(root: str, job: dict, response: dict) -> dict:
    if not root:
        return job
    head, _, rest = root.partition(".")
    return {**response, head: [job] if rest == "0" else job}


def _body(service: str, scenario: str) -> tuple[dict, Builder]:
    facts, profile = JOB_FACTS[service], BUILTIN_PROFILES[service]
    builder = Builder(facts, profile, _statuses_by_phase(service))
    job_model = _job_model(facts, profile)
    builder.job_model = job_model
    job = builder.build(job_model, scenario)
    return _wrap(profile.root, job, {}), builder


def _has(model_keys: set[str], wanted: set[str]) -> bool:
    return bool(model_keys & wanted)


@pytest.mark.parametrize("service", SDK_SERVICES)
@pytest.mark.parametrize("scenario", ["running", "success", "failed"])
def test_a_body_built_from_the_sdk_model_loses_nothing(service: str, scenario: str) -> None:
    body, built = _body(service, scenario)
    job = normalize_job(body, BUILTIN_PROFILES[service], job_id="fallback")
    roles = built.roles
    expected_phase = {"running": "RUNNING", "success": "SUCCEEDED", "failed": "FAILED"}[scenario]
    if job["status"] == NO_RUNNING_WORD:  # an unknown word: the wait goes on, the fields are still read
        expected_phase = "UNKNOWN"
    assert job["phase"] == expected_phase, job["status"]

    def values(keys: set[str]) -> list[Any]:
        return [value for key in keys for value in roles.get(key, [])]

    if scenario == "failed" and values(ERROR_CODE_KEYS):
        assert job["error_code"] in values(ERROR_CODE_KEYS), f"{service}: error code lost"
    if scenario == "failed" and values(MESSAGE_KEYS):
        assert job["message"] in values(MESSAGE_KEYS), f"{service}: failure message lost"
    if scenario == "running" and values(PROGRESS_KEYS):
        assert job["progress"] == 60.0, f"{service}: progress lost"
    job_object = dig(body, BUILTIN_PROFILES[service].root) if BUILTIN_PROFILES[service].root else body
    instance = job_object.get("instance") if isinstance(job_object, dict) else None  # the database services
    if values(RESOURCE_ID_KEYS) or instance:
        assert job["resource_id"] is not None, f"{service}: resource id lost"
    if values(RESOURCE_NAME_KEYS) or instance:
        assert job["resource_name"] is not None, f"{service}: resource name lost"
    if values(JOB_TYPE_KEYS):
        assert job["job_type"] in values(JOB_TYPE_KEYS), f"{service}: job type lost"
    if values(START_KEYS):
        assert iso(T_START) in (job["created_at"], job["started_at"]), f"{service}: start time lost"
    end_time_keys = set(JOB_FACTS[service].end_time_keys)
    if values(UPDATE_KEYS - end_time_keys):
        assert job["updated_at"] == iso(T_UPDATE), f"{service}: update time lost"
    if values(END_KEYS | end_time_keys) and scenario != "running":
        assert job["ended_at"] == iso(T_END), f"{service}: end time lost"
    assert job["job_id"] != "fallback", f"{service}: the job's own id lost"

    sub_roles = getattr(built, "sub_roles", None)
    if sub_roles is not None:
        subs = job["sub_jobs"]
        assert [sub["phase"] for sub in subs] == ["SUCCEEDED", "FAILED"], f"{service}: sub-jobs lost"
        failed = subs[1]
        codes = [v for key in ERROR_CODE_KEYS for v in sub_roles.get(key, [])]
        messages = [v for key in MESSAGE_KEYS for v in sub_roles.get(key, [])]
        if codes:
            assert failed["error_code"] in codes, f"{service}: the failed sub-job's error code lost"
        if messages:
            assert failed["message"] in messages, f"{service}: the failed sub-job's message lost"
        assert all(sub["job_id"] not in (None, "fallback") for sub in subs)


# -- 5. where CloudRequestOperator finds the job id in the answer to the creating call ----------------
def _answer_models(module: Any) -> dict[str, type]:
    return {
        name[: -len("Response")]: cls
        for name, cls in vars(module).items()
        if name.endswith("Response") and isinstance(cls, type) and hasattr(cls, "openapi_types")
    }


@pytest.mark.parametrize("service", SDK_SERVICES)
def test_answer_job_id_is_where_the_sdks_answers_keep_the_job_id(service: str) -> None:
    """Every place ``answer_job_id`` names is a field of some answer of the service's SDK, and each answer
    the facts name (the create, resize, delete calls whose job this service's job API reads) has one."""
    facts, profile = JOB_FACTS[service], BUILTIN_PROFILES[service]
    module = sdk_module(facts)
    answers = _answer_models(module)
    nowhere = [
        path for path in profile.answer_job_id if not any(resolve(module, m, path) for m in answers.values())
    ]
    assert not nowhere, f"{service}: answer_job_id {nowhere} is in no response model of {facts.sdk}"
    for name in facts.answer_models:
        assert name in answers, f"{service}: {facts.sdk} has no {name}Response"
        found = [
            path for path in profile.answer_job_id if resolve(module, answers[name], path) in ("str", "int")
        ]
        assert found, (
            f"{service}: {name}Response keeps its job id in none of {list(profile.answer_job_id)}: "
            f"it has {sorted(fields(answers[name]))}"
        )
    for name in facts.no_answer_models:
        assert name in answers, f"{service}: {facts.sdk} has no {name}Response"
        found = [path for path in profile.answer_job_id if resolve(module, answers[name], path)]
        assert not found, f"{service}: {name}Response now answers a job id at {found}"
