"""Jobs whose path carries a second id (a DMS instance, a GES graph, a CSE engine): ``path_params``."""

from __future__ import annotations

import pytest

from airflow_provider_cloudjobs import profiles
from airflow_provider_cloudjobs.exceptions import CloudJobNotFoundError, CloudJobsInputError
from airflow_provider_cloudjobs.hooks.cloudjobs import CloudJobsHook
from airflow_provider_cloudjobs.profiles import BUILTIN_PROFILES, ServiceProfile, register_service

INSTANCE = {"instance_id": "5b1a2c3d-0000-4e5f-8a9b-0c1d2e3f4a5b"}


def test_a_kafka_task_is_read_under_its_instance(cloud_simulator, cloudjobs_conn):
    hook = CloudJobsHook(cloudjobs_conn())
    job_id = cloud_simulator.create_job("kafka", polls_to_finish=2, path_params=INSTANCE)

    seen = [hook.get_job(job_id, "kafka", path_params=INSTANCE) for _ in range(2)]

    assert [job["phase"] for job in seen] == ["PENDING", "SUCCEEDED"]
    assert seen[-1]["job_id"] == job_id


def test_the_same_task_id_under_another_instance_is_not_that_task(cloud_simulator, cloudjobs_conn):
    hook = CloudJobsHook(cloudjobs_conn())
    job_id = cloud_simulator.create_job("kafka", path_params=INSTANCE)

    with pytest.raises(CloudJobNotFoundError):
        hook.get_job(job_id, "kafka", path_params={"instance_id": "another-instance"})


async def test_the_async_read_fills_the_path_too(cloud_simulator, cloudjobs_conn):
    from airflow_provider_cloudjobs.hooks.cloudjobs import close_shared_session

    hook = CloudJobsHook(cloudjobs_conn())
    job_id = cloud_simulator.create_job("ges", polls_to_finish=1, path_params={"graph_id": "graph-7"})
    try:
        job = await hook.aget_job(job_id, "ges", path_params={"graph_id": "graph-7"})
    finally:
        await close_shared_session()
    assert (job["job_id"], job["phase"]) == (job_id, "SUCCEEDED")


@pytest.mark.parametrize(
    ("path_params", "needle"),
    [
        (None, "pass path_params with ['instance_id']"),
        ({}, "pass path_params with ['instance_id']"),
        ({**INSTANCE, "graph_id": "g1"}, "['graph_id'] are not in DMS for Kafka's job path"),
        ({"instance_id": "../../v3/x"}, "path_params['instance_id'] '../../v3/x' contains '..'"),
        ({"instance_id": "a/b"}, "path_params['instance_id'] 'a/b' contains a '/'"),
        ({"instance_id": "a\nb"}, "path_params['instance_id'] 'a\\\\nb' contains whitespace"),
        ({"instance_id": "a\x00b"}, "path_params['instance_id'] .* has characters"),
        ({"instance_id": "x" * 256}, "path_params['instance_id'] .* at most 255"),
        ({"instance_id": ""}, "path_params['instance_id'] is empty"),
        ({"instance_id": 7}, "path_params['instance_id'] must be a string"),
        ({"Instance-Id": "x"}, "not a path parameter name"),
        ({"job_id": "x"}, "project_id and job_id have their own arguments"),
        ("instance_id=x", "path_params must be a mapping"),
        ({f"id_{n}": "x" for n in range(9)}, "at most 8"),
    ],
)
def test_bad_path_params_are_refused_before_any_request(cloud_simulator, cloudjobs_conn, path_params, needle):
    hook = CloudJobsHook(cloudjobs_conn())
    job_id = cloud_simulator.create_job("kafka", path_params=INSTANCE)

    with pytest.raises(CloudJobsInputError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        hook.get_job(job_id, "kafka", path_params=path_params)

    stats = cloud_simulator.stats()
    assert (stats["job_requests"], stats["iam_token_calls"]) == (0, 0)


def test_a_service_without_further_ids_refuses_path_params(cloud_simulator, cloudjobs_conn):
    hook = CloudJobsHook(cloudjobs_conn())
    job_id = cloud_simulator.create_job("ecs")
    with pytest.raises(
        CloudJobsInputError, match=r"\['instance_id'\] are not in ECS's job path .* takes none"
    ):
        hook.get_job(job_id, "ecs", path_params=INSTANCE)
    assert cloud_simulator.stats()["job_requests"] == 0


def test_values_are_percent_encoded_into_the_path():
    path = BUILTIN_PROFILES["kafka"].job_path("p1", "t:1", {"instance_id": "a:b@c+d"})
    assert path == "/v2/p1/instances/a%3Ab%40c%2Bd/tasks/t%3A1"


def test_an_encoded_id_reaches_the_cloud_as_the_same_id(cloud_simulator, cloudjobs_conn):
    ids = {"instance_id": "inst:1@a+b"}
    job_id = cloud_simulator.create_job("rabbitmq", polls_to_finish=1, path_params=ids)
    job = CloudJobsHook(cloudjobs_conn()).get_job(job_id, "rabbitmq", path_params=ids)
    assert job["phase"] == "SUCCEEDED"


def test_a_profile_from_the_connection_extra_uses_its_own_path_params(cloud_simulator, cloudjobs_conn):
    services = {
        "my-dms": {"extends": "kafka", "path": "/v2/{project_id}/instances/{instance_id}/tasks/{job_id}"}
    }
    hook = CloudJobsHook(cloudjobs_conn(services=services))
    job_id = cloud_simulator.create_job("kafka", polls_to_finish=1, path_params=INSTANCE)

    assert hook.get_job(job_id, "my-dms", path_params=INSTANCE)["phase"] == "SUCCEEDED"
    with pytest.raises(CloudJobsInputError, match=r"pass path_params with \['instance_id'\]"):
        hook.get_job(job_id, "my-dms")


def test_a_registered_profile_may_name_further_ids(cloud_simulator, cloudjobs_conn, monkeypatch):
    monkeypatch.setattr(profiles, "_user_profiles", {})  # registered for this test only
    register_service(
        ServiceProfile(
            key="graph-tasks",
            host="ges",
            path="/v2/{project_id}/graphs/{graph_id}/jobs/{job_id}/status",
            phases={"SUCCESS": "SUCCEEDED", "RUNNING": "RUNNING", "FAILED": "FAILED"},
        )
    )
    job_id = cloud_simulator.create_job("ges", polls_to_finish=1, path_params={"graph_id": "g-1"})
    job = CloudJobsHook(cloudjobs_conn()).get_job(job_id, "graph-tasks", path_params={"graph_id": "g-1"})
    assert job["phase"] == "SUCCEEDED"
    assert BUILTIN_PROFILES["ges"].path_params == ("graph_id",)
