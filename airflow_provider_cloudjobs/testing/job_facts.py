"""Where each built-in service's job API is in Huawei Cloud's official Python SDK, and what it documents.

One entry per built-in profile. ``tests/conformance`` uses these facts to hold the profile against the
SDK (request path and method, response model fields, documented status values, time formats), and the
simulator renders its job bodies with the same facts, so neither can drift from the SDK unnoticed.
Plain data: nothing here imports the SDK (the provider never depends on it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class JobApiFacts:
    """The job API of one service as the official SDK (or, where it is silent, the API reference) has it.

    :param sdk: the SDK module holding the client and models, e.g. ``"huaweicloudsdkecs.v2"``; ``None``
        when the API is not in the SDK (then ``reference`` names the API reference page).
    :param operation: the client method of the job GET (``show_job``); its ``_<op>_http_info`` has the path.
    :param id_param: the request attribute that carries the job id (``job_id``, or ``id`` for ``?id=``).
    :param vocabulary: where the status values are documented when not on the status field itself:
        ``"ListJobsRequest.status"`` (another model of the same SDK) or ``""`` (on the field itself).
    :param reference: the API reference page the vocabulary comes from when the SDK lists none.
    :param statuses: the vocabulary from ``reference`` (only when the SDK documents none).
    :param undocumented: statuses the profile maps although no document lists them, each with its reason.
    :param not_job_fields: response fields that are not about the job (the query call's own error).
    :param time_format: name of the :mod:`sim_common` formatter that writes the documented time format.
    :param progress_style: how the body writes progress: ``"percent_text"`` (``"60%"``), ``"fraction"``.
    :param sub_job_only: profile fields that only sub-jobs carry (the job itself has no such field).
    :param end_time_keys: body keys that hold the job's end time although named otherwise (DMS's
        ``updated_at``, documented as the end time).
    :param not_terminal: documented statuses whose description reads like an end but is not one, each with
        its reason (DMS's CREATED, "created successfully": the task has not run yet).
    :param answer_models: response models of the service's create, resize or delete calls that carry the
        job id CloudRequestOperator reads (``profile.answer_job_id``); ``()``: the SDK has none to check.
    :param no_answer_models: response models of calls that start a job but answer no job id (the
        conformance suite holds that they really have none, so the README's word on them stays true).
    """

    service: str
    sdk: str | None
    operation: str
    time_format: str
    id_param: str = "job_id"
    vocabulary: str = ""
    reference: str = ""
    statuses: tuple[str, ...] = ()
    undocumented: Mapping[str, str] = field(default_factory=dict)
    not_job_fields: tuple[str, ...] = ()
    progress_style: str = "percent_text"
    sub_job_only: tuple[str, ...] = ()
    end_time_keys: tuple[str, ...] = ()
    not_terminal: Mapping[str, str] = field(default_factory=dict)
    answer_models: tuple[str, ...] = ()
    no_answer_models: tuple[str, ...] = ()


_PENDING_PAYMENT = (
    "the CONTRACT's word for an order waiting for payment: PENDING on purpose, a person can still "
    "complete the job"
)
_DMS_CREATED = "'the background task is created (successfully)': it has not run yet"
_API_ERROR = ("code", "message")  # "returned when the query itself fails", not the job's error

JOB_FACTS: dict[str, JobApiFacts] = {
    facts.service: facts
    for facts in (
        JobApiFacts("cce", "huaweicloudsdkcce.v3", "show_job", "go_time"),
        JobApiFacts("cce-autopilot", "huaweicloudsdkcce.v3", "show_autopilot_job", "go_time"),
        JobApiFacts("dws", "huaweicloudsdkdws.v2", "list_job_details", "naive"),
        JobApiFacts(
            "elb",
            None,
            "",
            "ms_z",
            reference="ELB API reference, Historical APIs: Asynchronous Job Query (Discarded), "
            "GET /v1.0/{project_id}/jobs/{job_id}",
            statuses=("SUCCESS", "FAIL", "RUNNING", "INIT"),
            undocumented={"PENDING_PAYMENT": _PENDING_PAYMENT},
        ),
        JobApiFacts(
            "ecs",
            "huaweicloudsdkecs.v2",
            "show_job",
            "ms_z",
            undocumented={"PENDING_PAYMENT": _PENDING_PAYMENT},
            not_job_fields=_API_ERROR,
        ),
        JobApiFacts(
            "evs",
            "huaweicloudsdkevs.v2",
            "show_job",
            "ms_z",
            undocumented={"PENDING_PAYMENT": _PENDING_PAYMENT},
        ),
        JobApiFacts(
            "ims",
            "huaweicloudsdkims.v2",
            "show_job",
            "ms_z",
            undocumented={"PENDING_PAYMENT": _PENDING_PAYMENT},
            progress_style="fraction",
        ),
        JobApiFacts(
            "bms",
            "huaweicloudsdkbms.v1",
            "show_job_infos",
            "ms_z",
            undocumented={"PENDING_PAYMENT": _PENDING_PAYMENT},
            not_job_fields=_API_ERROR,
        ),
        JobApiFacts(
            "sdrs",
            "huaweicloudsdksdrs.v1",
            "show_job_status",
            "ms_z",
            undocumented={"PENDING_PAYMENT": _PENDING_PAYMENT},
            answer_models=("CreateProtectionGroup", "CreateProtectedInstance", "DeleteProtectionGroup"),
        ),
        JobApiFacts(
            "eip",
            "huaweicloudsdkeip.v2",
            "show_resources_job_detail",
            "ms_z",
            reference="EIP API reference: Querying the Job Status (ShowResourcesJobDetail)",
            statuses=("SUCCESS", "RUNNING", "FAIL", "INIT"),
            undocumented={"PENDING_PAYMENT": _PENDING_PAYMENT},
            answer_models=("BatchCreatePublicips",),
        ),
        JobApiFacts(
            "elbv3", "huaweicloudsdkelb.v3", "show_job", "seconds_z", vocabulary="ListJobsRequest.status"
        ),
        JobApiFacts(
            "dcs",
            "huaweicloudsdkdcs.v2",
            "show_job_info",
            "epoch_ms",
            reference="DCS API reference: Querying the Job Execution Result of a Tenant (ShowJobInfo)",
            statuses=("INIT", "RUNNING", "SUCCESS", "FAIL"),
            undocumented={"PENDING_PAYMENT": _PENDING_PAYMENT},
        ),
        JobApiFacts(
            "rds",
            "huaweicloudsdkrds.v3",
            "list_job_info",
            "plus0000",
            id_param="id",
            undocumented={"PENDING": "TaurusDB's word, shared by the database services' profile"},
        ),
        JobApiFacts(
            "dds",
            "huaweicloudsdkdds.v3",
            "show_job_detail",
            "plus0000",
            id_param="id",
            vocabulary="ListTasksRequest.status",
            undocumented={"PENDING": "TaurusDB's word, shared by the database services' profile"},
            answer_models=("CreateInstance", "DeleteInstance", "ResizeInstance"),
        ),
        JobApiFacts(
            "gaussdb",
            "huaweicloudsdkgaussdb.v3",
            "show_gauss_my_sql_job_info",
            "plus0000",
            id_param="id",
            answer_models=("CreateGaussMySqlInstance", "DeleteGaussMySqlInstance"),
        ),
        JobApiFacts(
            "gaussdb-opengauss",
            "huaweicloudsdkgaussdbforopengauss.v3",
            "show_job_detail",
            "plus0000",
            id_param="id",
            reference="GaussDB API reference: Querying Task Details (ShowJobDetail)",
            statuses=("Running", "Completed", "Failed"),
            undocumented={"PENDING": "TaurusDB's word, shared by the database services' profile"},
            answer_models=("CreateInstance", "DeleteInstance"),
        ),
        JobApiFacts(
            "gaussdb-nosql",
            "huaweicloudsdkgaussdbfornosql.v3",
            "list_jobs",
            "plus0000",
            id_param="id",
            undocumented={"PENDING": "TaurusDB's word, shared by the database services' profile"},
            answer_models=("CreateInstance", "DeleteInstance", "ResizeInstance"),
        ),
        JobApiFacts(
            "ddm",
            "huaweicloudsdkddm.v1",
            "show_ddm_job_result",
            "plus0000",
            undocumented={"PENDING": "TaurusDB's word, shared by the database services' profile"},
            answer_models=("CreateInstance",),
        ),
        JobApiFacts(
            "sfs-turbo",
            "huaweicloudsdksfsturbo.v1",
            "show_job_detail",
            "space_seconds",
            answer_models=("DeleteActiveDirectoryDomain", "CreateLdapConfig"),
        ),
        JobApiFacts("cfw", "huaweicloudsdkcfw.v1", "list_job", "plus0000", answer_models=("CreateFirewall",)),
        JobApiFacts(
            "cph",
            "huaweicloudsdkcph.v1",
            "show_job",
            "seconds_z",
            answer_models=("ChangeCloudPhoneServer", "DeleteCloudPhoneServer"),
        ),
        JobApiFacts(
            "workspace-app",
            "huaweicloudsdkworkspaceapp.v1",
            "show_job_detail",
            "seconds_z",
            sub_job_only=("error_code", "message", "resource_id", "resource_name"),
            answer_models=("BatchDeleteServer",),
        ),
        JobApiFacts(
            "swr",
            "huaweicloudsdkswr.v2",
            "show_instance_job",
            "seconds_z",
            vocabulary="ListInstanceJobsRequest.status",
            answer_models=("CreateInstance",),
        ),
        JobApiFacts(
            "kafka",
            "huaweicloudsdkkafka.v2",
            "show_background_task",
            "ms_z",
            id_param="task_id",
            end_time_keys=("updated_at",),
            not_terminal={"CREATED": _DMS_CREATED},
            answer_models=("ResizeEngineInstance", "ModifyInstanceConfigs"),
        ),
        JobApiFacts(
            "rabbitmq",
            "huaweicloudsdkrabbitmq.v2",
            "show_background_task",
            "ms_z",
            id_param="task_id",
            end_time_keys=("updated_at",),
            not_terminal={"CREATED": _DMS_CREATED},
            answer_models=("ResizeEngineInstance", "UpdatePlugins"),
        ),
        JobApiFacts(
            "rocketmq",
            "huaweicloudsdkrocketmq.v2",
            "show_background_task",
            "ms_z",
            id_param="task_id",
            end_time_keys=("updated_at",),
            not_terminal={"CREATED": _DMS_CREATED},
            answer_models=("ResizeInstance", "ModifyInstanceSslConfig"),
        ),
        JobApiFacts(
            "apig",
            "huaweicloudsdkapig.v2",
            "show_async_task_result",
            "ms_z",
            id_param="task_id",
            answer_models=("ImportApiDefinitionsAsync", "ExportApiDefinitionsAsync"),
        ),
        JobApiFacts(
            "ges",
            "huaweicloudsdkges.v2",
            "show_job2",
            "naive",
            answer_models=("ImportGraph2", "ResizeGraph2", "ExpandGraph2", "DeleteGraph2"),
        ),
        JobApiFacts(
            "cse",
            "huaweicloudsdkcse.v1",
            "show_engine_job",
            "epoch_ms",
            reference="CSE API reference: Querying Details About a Microservice Engine Job (cse_06_0033), "
            "GET /v2/{project_id}/enginemgr/engines/{engine_id}/jobs/{job_id}",
            statuses=("Init", "Executing", "Error", "Timeout", "Finished"),
            answer_models=("CreateEngine", "DeleteEngine", "ResizeEngine"),
        ),
        JobApiFacts(
            "cbr",
            "huaweicloudsdkcbr.v1",
            "show_op_log",
            "seconds_z",
            id_param="operation_log_id",
            reference="CBR API reference: Querying a Single Task (ShowOpLog), "
            "GET /v3/{project_id}/operation-logs/{operation_log_id}",
            statuses=("success", "skipped", "failed", "running", "timeout", "waiting"),
            answer_models=("UpdateExpirationTime",),
        ),
        # Global EIP: ShowJob.status is documented as "状态" only. The API reference page's response
        # example answers FINISH_SUCC; FINISH_ROLLBACK_SUCC is what terraform-provider-huaweicloud's Global
        # EIP resources fail on. The times are "String" on the page, datetime in the SDK, with no example:
        # the simulator writes them like ELB v3's.
        JobApiFacts(
            "geip",
            "huaweicloudsdkgeip.v3",
            "show_jobs",
            "seconds_z",
            reference="EIP API reference, Global EIP: 查询Job详情 - ShowJobs "
            "(https://support.huaweicloud.com/api-eip/ShowJobs.html), GET /v3/{domain_id}/geip/jobs/{job_id}; "
            "its response example: FINISH_SUCC",
            statuses=("FINISH_SUCC",),
            undocumented={
                "FINISH_ROLLBACK_SUCC": "the job failed and was rolled back: terraform-provider-huaweicloud's "
                "Global EIP resources (huaweicloud/services/eip) fail on it; in no document"
            },
            answer_models=("CreateGlobalEip", "AssociateInstance", "DisassociateInstance"),
            no_answer_models=("DeleteGlobalEip",),
        ),
    )
}
