"""The provider's Airflow plugin: a **Cloud jobs** page and a **Cloud job** tab on the task-instance page.

Loaded by every Airflow process that loads plugins, so this module stays light: the FastAPI app behind
the pages is built on its first request in the API server (:class:`~.asgi.LazyApp`), and only the API
server ever imports FastAPI routes, the hook or the metadata models for it.

Registered twice on purpose: under the ``airflow.plugins`` entry point (loaded with Airflow's default
``[core] lazy_discover_providers = True``) and in the provider info's ``plugins`` (loaded when provider
discovery is eager); Airflow keeps the first one and skips the duplicate by name.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_cloudjobs.plugins.asgi import LazyApp, TestConnectionBlankEndpoint

PLUGIN_NAME = "cloudjobs"
URL_PREFIX = "/cloudjobs"


def _base_path() -> str:
    """The path of ``[api] base_url`` ("" at the root), so the views' links work behind a sub-path."""
    try:
        from airflow.configuration import conf

        base_url = conf.get("api", "base_url", fallback="") or ""
    except Exception:  # a config that cannot be read must not stop the plugin from loading
        base_url = ""
    return urlsplit(base_url).path.rstrip("/")


_ROOT = _base_path() + URL_PREFIX


class CloudJobsPlugin(AirflowPlugin):
    """Cloud jobs page (nav), Cloud job tab (task instance), and the connection Test fix."""

    name = PLUGIN_NAME
    fastapi_apps = [
        {
            "app": LazyApp("airflow_provider_cloudjobs.plugins.app:create_app"),
            "url_prefix": URL_PREFIX,
            "name": "Cloud jobs",
        }
    ]
    external_views = [
        {
            "name": "Cloud jobs",
            "href": f"{_ROOT}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "cloud-jobs",
            "icon": f"{_ROOT}/static/icon.svg",
        },
        {
            "name": "Cloud job",
            "href": f"{_ROOT}/ti/{{DAG_ID}}/{{RUN_ID}}/{{TASK_ID}}/{{MAP_INDEX}}",
            "destination": "task_instance",
            "url_route": "cloud-job",
            "icon": f"{_ROOT}/static/icon.svg",
        },
    ]
    fastapi_root_middlewares = [
        {"middleware": TestConnectionBlankEndpoint, "args": [], "kwargs": {}, "name": "cloudjobs-test-fix"}
    ]
