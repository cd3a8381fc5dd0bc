"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

The connection form is declared here the Airflow 3.2+ way (``conn-fields`` + ``ui-field-behaviour``),
read by the API server without importing the hook. The UI stores each field as a plain key of the
connection's ``extra``, which is exactly what older Airflow 3.x users write by hand.
"""

from __future__ import annotations

from typing import Any

PACKAGE_NAME = "airflow-provider-cloudjobs"
_MODULES = "airflow_provider_cloudjobs"

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["host", "port", "schema"],
    "relabeling": {"login": "User name or Access Key (AK)", "password": "Password or Secret Key (SK)"},
    "placeholders": {
        "login": "IAM user name (auth_type password) or AK (auth_type aksk)",
        "password": "IAM password or SK; leave empty for auth_type token",
        "extra": '{"services": {"mysvc": {"extends": "ecs", "host": "mysvc"}}}',
    },
}

CONN_FIELDS: dict[str, Any] = {
    "auth_type": {
        "label": "Authentication",
        "description": "password: IAM user + password; aksk: Access Key / Secret Key signing; "
        "token: a pre-issued IAM token.",
        "schema": {"type": "string", "enum": ["password", "aksk", "token"], "default": "password"},
    },
    "domain_name": {
        "label": "Account (domain) name",
        "description": "The account the IAM user belongs to (password auth).",
        "schema": {"type": ["string", "null"], "examples": ["my-account"]},
    },
    "region": {
        "label": "Region",
        "description": "Region of the jobs, e.g. cn-north-4 or eu-de; builds the default endpoints.",
        "schema": {"type": ["string", "null"], "examples": ["cn-north-4"]},
    },
    "project_id": {
        "label": "Project ID",
        "description": "Default project for job URLs and the token scope; looked up from the region if empty.",
        "schema": {"type": ["string", "null"]},
    },
    "domain_id": {
        "label": "Account (domain) ID",
        "description": "For global services whose jobs live under the account (Global EIP, service geip).",
        "schema": {"type": ["string", "null"]},
    },
    "token": {
        "label": "Pre-issued token",
        "description": "Only for auth_type token: an X-Auth-Token issued outside Airflow.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "endpoint_domain": {
        "label": "Endpoint domain",
        "description": "myhuaweicloud.com for Huawei Cloud, otc.t-systems.com for Open Telekom Cloud.",
        "schema": {"type": ["string", "null"], "default": "myhuaweicloud.com"},
    },
    "iam_endpoint": {
        "label": "IAM endpoint",
        "description": "Overrides https://iam.{region}.{endpoint_domain}.",
        "schema": {"type": ["string", "null"], "format": "uri"},
    },
    "endpoints": {
        "label": "Service endpoints (JSON)",
        "description": 'Per-service base URLs, e.g. {"cce": "https://cce.eu-de.otc.t-systems.com"}; '
        'the key "*" applies to every service.',
        "schema": {"type": ["object", "string", "null"]},
    },
    "console_url": {
        "label": "Console base URL",
        "description": "For the 'Cloud console' link; default https://console.{endpoint_domain}.",
        "schema": {"type": ["string", "null"], "format": "uri"},
    },
    "verify": {
        "label": "Verify TLS",
        "description": "true, false, or the path of a CA bundle.",
        "schema": {"type": ["boolean", "string", "null"], "default": True},
    },
    "timeout": {
        "label": "Request timeout (s)",
        "description": "Seconds allowed for each HTTP request.",
        "schema": {"type": ["number", "null"], "default": 30},
    },
}


def get_provider_info() -> dict[str, Any]:
    from airflow_provider_cloudjobs import __version__

    return {
        "package-name": PACKAGE_NAME,
        "name": "Cloud Jobs (Huawei Cloud and compatible clouds)",
        "description": "Wait on the asynchronous jobs of Huawei Cloud, Open Telekom Cloud and compatible "
        "clouds (CCE, CCE Autopilot, DWS, ELB, ECS, EVS, IMS, BMS, DCS, RDS).",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Cloud Jobs",
                "external-doc-url": "https://support.huaweicloud.com/intl/en-us/api-cce/cce_02_0247.html",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Cloud Jobs", "python-modules": [f"{_MODULES}.hooks.cloudjobs"]}],
        "triggers": [
            {"integration-name": "Cloud Jobs", "python-modules": [f"{_MODULES}.triggers.cloudjobs"]}
        ],
        "sensors": [{"integration-name": "Cloud Jobs", "python-modules": [f"{_MODULES}.sensors.cloudjobs"]}],
        "operators": [
            {"integration-name": "Cloud Jobs", "python-modules": [f"{_MODULES}.operators.cloudjobs"]}
        ],
        "extra-links": [f"{_MODULES}.links.CloudConsoleLink"],
        # The UI plugin; also under the `airflow.plugins` entry point (see pyproject.toml), which is what
        # loads it with Airflow's default lazy provider discovery.
        "plugins": [{"name": "cloudjobs", "plugin-class": f"{_MODULES}.plugins.CloudJobsPlugin"}],
        "connection-types": [
            {
                "hook-class-name": f"{_MODULES}.hooks.cloudjobs.CloudJobsHook",
                "hook-name": "Huawei Cloud Jobs",
                "connection-type": "cloudjobs",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
