"""Reading Huawei Cloud's official Python SDK as a test oracle: operations, response models, documented values.

Nothing of the SDK is copied: the tests import its packages (a dev dependency only) and introspect them.
Each service package has a client (``<Service>Client``) whose ``_<operation>_http_info(request)`` builds
the request (method, ``resource_path``, path and query parameters), and models with ``openapi_types``
(attribute -> type text such as ``"str"``, ``"list[SubJob]"``, ``"dict(str, str)"``), ``attribute_map``
(attribute -> JSON key) and property docstrings that document each field, status values included.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from airflow_provider_cloudjobs.testing.job_facts import JobApiFacts

_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\(str, (.+)\)$")


def sdk_module(facts: JobApiFacts) -> ModuleType:
    """The SDK module of a service; the test skips (saying why) when the SDK is not installed."""
    assert facts.sdk is not None
    package = facts.sdk.split(".")[0]
    pytest.importorskip(
        "huaweicloudsdkcore", reason="the official SDK (the conformance extra) is not installed"
    )
    pytest.importorskip(package, reason=f"{package} (the conformance extra) is not installed")
    return importlib.import_module(facts.sdk)


def camel(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


def client_class(module: ModuleType, operation: str) -> type:
    """The module's sync client that has the operation (a package may hold more than one client)."""
    names = [
        n
        for n in dir(module)
        if n.endswith("Client")
        and not n.endswith("AsyncClient")
        and hasattr(getattr(module, n), f"_{operation}_http_info")
    ]
    assert len(names) == 1, f"expected one sync client with {operation} in {module.__name__}, found {names}"
    return getattr(module, names[0])


def http_info(facts: JobApiFacts, job_id: str, path_params: dict[str, str] | None = None) -> dict[str, Any]:
    """What the SDK's client would send to read this job: method, resource_path, path and query params.

    ``path_params`` (an instance, a graph ...) go into the SDK's request under the same names the profile's
    path uses: a name the SDK's request does not have raises here.
    """
    module = sdk_module(facts)
    request_cls = getattr(module, camel(facts.operation) + "Request")
    request = request_cls(**{facts.id_param: job_id, **(path_params or {})})
    builder = getattr(client_class(module, facts.operation), f"_{facts.operation}_http_info")
    return builder(request)


def response_model(facts: JobApiFacts) -> type:
    module = sdk_module(facts)
    return getattr(module, http_info(facts, "x")["response_type"])


def model_class(module: ModuleType, type_text: str) -> type | None:
    candidate = getattr(module, type_text, None)
    return candidate if isinstance(candidate, type) and hasattr(candidate, "openapi_types") else None


@dataclass(frozen=True)
class Field:
    """One field of a model: its JSON key, SDK type text and docstring."""

    key: str
    attr: str
    type_text: str
    doc: str


def fields(model: type) -> dict[str, Field]:
    """The JSON keys of a model (header attributes such as ``X-request-id`` left out)."""
    found = {}
    for attr, type_text in model.openapi_types.items():
        key = model.attribute_map[attr]
        if key.lower().startswith("x-"):
            continue
        prop = getattr(model, attr, None)
        doc = (prop.__doc__ or "") if isinstance(prop, property) else ""
        found[key] = Field(key, attr, type_text, doc)
    return found


OBJECT = "object"


def resolve(module: ModuleType, model: type | str, path: str) -> str | type | None:
    """Follow a dotted path (numeric segments index lists) through the models.

    Returns the model class or type text at the end, ``"object"`` when the SDK types a value as a free
    object (anything may sit beneath), or None when a segment does not exist.
    """
    current: str | type = model
    for segment in path.split(".") if path else []:
        if current == OBJECT:
            return OBJECT
        if isinstance(current, str):
            match = _LIST.match(current)
            if match and segment.isdigit():
                current = model_class(module, match.group(1)) or match.group(1)
                continue
            match = _DICT.match(current)
            if match:
                current = model_class(module, match.group(1)) or match.group(1)
                continue
            return None
        field = fields(current).get(segment)
        if field is None:
            return None
        current = model_class(module, field.type_text) or field.type_text
    return current


def list_item(module: ModuleType, type_text: Any) -> type | str | None:
    if not isinstance(type_text, str):
        return None
    match = _LIST.match(type_text)
    if not match:
        return None
    return model_class(module, match.group(1)) or match.group(1)


# -- documented status values -------------------------------------------------------------------
_QUOTED = re.compile(r"\u201c([A-Za-z][A-Za-z_]*)\u201d([^\u201c]*)")
_PAIR = re.compile(r"(?<![A-Za-z_\d-])(-?\d+|[A-Za-z][A-Za-z_]*)\s*[\uff1a:]")
_LISTED = re.compile(r"[\uff1a:]\s*([A-Za-z][A-Za-z_]*(?:\s*[,\uff0c\u3001]\s*[A-Za-z][A-Za-z_]*)+)")


def documented_values(doc: str) -> dict[str, str]:
    """Status values a docstring documents, each with the text that explains it.

    The SDK writes them as ``VALUE<full-width colon>meaning`` pairs (with or without ``-`` bullets or any
    separator between them), as quoted values (``<left quote>Running<right quote>, meaning``), or as a
    plain list after a colon (``...<full-width colon>Creating,Initializing,Running``).
    """
    text = doc.split(":return:")[0].split(":param")[0]
    quoted = _QUOTED.findall(text)
    if quoted:
        return {value: meaning for value, meaning in quoted}
    pairs = list(_PAIR.finditer(text))
    if pairs:
        values = {}
        for index, match in enumerate(pairs):
            end = pairs[index + 1].start() if index + 1 < len(pairs) else len(text)
            values[match.group(1)] = text[match.end() : end]
        return values
    listed = _LISTED.search(text)
    if listed:
        return {value.strip(): "" for value in re.split(r"[,\uff0c\u3001]", listed.group(1))}
    return {}


def meaning_phase(value: str, meaning: str) -> str | None:
    """The terminal phase a documented value's own words imply (None: not terminal)."""
    text = f"{value} {meaning}".lower()
    if any(word in text for word in ("失败", "fail", "异常", "abnormal", "error", "timeout", "超时")):
        return "FAILED"
    # Ended without doing what was asked: cancelled, stopped, deleted, skipped.
    if any(word in text for word in ("取消", "cancel", "abort", "停止", "stop", "删除", "delet", "skip")):
        return "FAILED"
    if any(word in text for word in ("成功", "success", "完成", "complete", "finish")):
        return "SUCCEEDED"
    return None


def enum_values(model: Any) -> list[str]:
    """The values of an SDK enum model ("allowed enum values" as class constants, no fields), else []."""
    if not isinstance(model, type) or getattr(model, "openapi_types", None) != {}:
        return []
    return [v for k, v in vars(model).items() if k.isupper() and isinstance(v, str)]


def documented_statuses(facts: JobApiFacts, status_doc: str | list[str]) -> tuple[dict[str, str], str]:
    """(value -> meaning, where) of a service's documented status vocabulary.

    ``status_doc`` is the status field's docstring, or the values of the enum model it is typed with.
    """
    if isinstance(status_doc, list):
        return {value: "" for value in status_doc}, "SDK enum model"
    if facts.vocabulary:
        model_name, _, attr = facts.vocabulary.partition(".")
        model = getattr(sdk_module(facts), model_name)
        doc = getattr(model, attr).__doc__ or ""
        return documented_values(doc), f"SDK {model_name}.{attr}"
    values = documented_values(status_doc)
    if values:
        return values, "SDK response model"
    return {value: "" for value in facts.statuses}, f"API reference ({facts.reference})"


def sdk_version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
