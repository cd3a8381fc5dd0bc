"""The simulator's job bodies held against the SDK's response models, and every service end to end on it.

The simulator is what every other suite tests against, so a field it invents would hide a profile that
reads a field the cloud never sends. Here each body it renders (pending, running, succeeded, failed, with
sub-jobs) may only carry fields the SDK's response model has; and every built-in service's job is read
through the hook at its profile's path, on 127.0.0.1, to its end.
"""

from __future__ import annotations

from typing import Any

import pytest
from sdk_oracle import OBJECT, fields, list_item, model_class, resolve, response_model, sdk_module

from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook
from airflow_provider_cloudjobs.profiles import BUILTIN_PROFILES
from airflow_provider_cloudjobs.testing import sim_render
from airflow_provider_cloudjobs.testing.job_facts import JOB_FACTS
from airflow_provider_cloudjobs.testing.sim_state import SimState

SDK_SERVICES = sorted(key for key, facts in JOB_FACTS.items() if facts.sdk)
#: Global EIP: no console page whose address could be checked, so no link rather than a guessed one.
NO_CONSOLE_PAGE = ("geip",)


def unknown_keys(module: Any, model: Any, body: Any, job_model: Any, path: str = "") -> list[str]:
    """Keys of ``body`` that the SDK's ``model`` does not have, recursively (free objects accept all)."""
    if not isinstance(model, type) or not isinstance(body, dict):
        return []
    known = fields(model)
    found = []
    for key, value in body.items():
        field = known.get(key)
        where = f"{path}{key}"
        if field is None:
            found.append(where)
            continue
        nested = model_class(module, field.type_text)
        item = list_item(module, field.type_text)
        if nested is not None:
            found += unknown_keys(module, nested, value, job_model, where + ".")
        elif item is not None and isinstance(value, list):
            item_model = job_model if item == OBJECT else item
            for index, entry in enumerate(value):
                found += unknown_keys(module, item_model, entry, job_model, f"{where}.{index}.")
    return found


def rendered_bodies(service: str) -> list[dict]:
    """The simulator's body of one job at each step of its life: pending, running, then the outcome."""
    state = SimState()
    bodies = []
    for outcome in ("success", "fail"):
        job_id = state.create_job(service, outcome=outcome, polls_to_finish=3, sub_jobs=2)
        job = state.jobs[job_id]
        for step in range(3):
            snap = job.snapshot(job.created + step, advance=True)
            assert snap is not None
            bodies.append(sim_render.render_job(snap, "req-1"))
    return bodies


@pytest.mark.parametrize("service", SDK_SERVICES)
def test_simulator_bodies_carry_only_fields_of_the_sdk_model(service: str) -> None:
    facts, profile = JOB_FACTS[service], BUILTIN_PROFILES[service]
    module = sdk_module(facts)
    model = response_model(facts)
    job_model = resolve(module, model, profile.root)
    for body in rendered_bodies(service):
        assert unknown_keys(module, model, body, job_model) == [], f"{service} simulator body: {body}"


@pytest.mark.parametrize("service", sorted(BUILTIN_PROFILES))
def test_every_service_is_served_at_its_profile_path_to_the_end(cloud_simulator, cloudjobs_conn, service):
    hook = CloudJobsHook(cloudjobs_conn())
    profile = BUILTIN_PROFILES[service]
    # The further ids of the path (a DMS instance, a GES graph ...): the simulator answers only under them.
    ids = {name: f"{name}-of-the-job" for name in profile.path_params}
    for outcome, phase in (("success", "SUCCEEDED"), ("fail", "FAILED")):
        job_id = cloud_simulator.create_job(
            service, outcome=outcome, polls_to_finish=3, message="simulated quota exhausted", path_params=ids
        )
        seen = [hook.get_job(job_id, service, path_params=ids) for _ in range(3)]
        assert [job["is_terminal"] for job in seen] == [False, False, True], [j["status"] for j in seen]
        final = seen[-1]
        assert (final["service"], final["job_id"], final["phase"]) == (service, job_id, phase)
        if profile.ended_at:  # APIG's task has no times
            assert final["ended_at"] is not None
        if outcome == "fail" and profile.message:
            assert "simulated quota exhausted" in (final["message"] or "")


@pytest.mark.parametrize("service", sorted(BUILTIN_PROFILES))
def test_every_service_links_to_its_console_page(service: str) -> None:
    """The task's "Cloud console" link: a page of the service's console in the job's region."""
    from airflow_provider_cloudjobs.connection import CloudJobsSettings
    from airflow_provider_cloudjobs.job import normalize_job
    from airflow_provider_cloudjobs.links import console_url

    settings = CloudJobsSettings(conn_id="c", auth_type="token", region="eu-west-101", project_id="p")
    body = rendered_bodies(service)[2]  # the succeeded job
    job = normalize_job(body, BUILTIN_PROFILES[service])
    url = console_url(settings, BUILTIN_PROFILES[service], job)
    if service in NO_CONSOLE_PAGE:
        assert url == "", "a service without a known console page links nowhere, not to a guessed page"
        return
    assert url.startswith("https://console.myhuaweicloud.com/"), url
    assert "region=eu-west-101" in url
    if "{resource_id}" in BUILTIN_PROFILES[service].console_path:
        assert url.endswith(job["resource_id"])
