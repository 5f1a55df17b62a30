"""Airflow connections (JSON form) of the dev services, and the user overrides that keep a service
from being started: ``AIRFLOW_CONN_AWS_DEFAULT``, ``AIRFLOW_CONN_LLM_DEFAULT``, ``PIPELINE_HUB_LLM_ENDPOINT``."""

from __future__ import annotations

import contextlib
import json
import os
import urllib.parse
from typing import Any

from .config import REGION, ServicesConfig
from .llama import LLM_MODEL_ALIAS
from .state import running_port

LLM_API_KEY = "sk-local-no-key"
LLM_STRUCTURED_OUTPUT = "json_object_schema"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def aws_connection(endpoint_url: str, access_key: str, secret_key: str, region: str = REGION) -> dict[str, Any]:
    """Airflow ``aws`` connection (JSON form) for an S3-compatible endpoint."""
    return {
        "conn_type": "aws",
        "login": access_key,
        "password": secret_key,
        "extra": {"endpoint_url": endpoint_url, "region_name": region},
    }


def llm_connection(base_url: str, model: str = LLM_MODEL_ALIAS, api_key: str = LLM_API_KEY) -> dict[str, Any]:
    """Airflow ``openai`` connection (JSON form) for an OpenAI-compatible server at ``base_url``
    (including ``/v1``), as read by ``pipeline_hub.providers.hook.LLMHook``."""
    return {
        "conn_type": "openai",
        "host": base_url,
        "password": api_key,
        "extra": {"model": model, "structured_output": LLM_STRUCTURED_OUTPUT},
    }


def _conn_url(value: str, field: str) -> str | None:
    """The endpoint URL in an ``AIRFLOW_CONN_*`` value (JSON: extra.endpoint_url / host; URI: the
    ``endpoint_url`` query parameter), or None."""
    value = value.strip()
    if value.startswith("{"):
        with contextlib.suppress(ValueError, AttributeError):
            data = json.loads(value)
            extra = data.get("extra") or {}
            if isinstance(extra, str):
                extra = json.loads(extra)
            return (extra.get("endpoint_url") if field == "endpoint_url" else data.get("host")) or None
        return None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(value).query)
    return (query.get("endpoint_url") or [None])[0] if field == "endpoint_url" else None


def _is_embedded(url: str | None, port: int) -> bool:
    if not url:
        return False
    parts = urllib.parse.urlsplit(url)
    return parts.hostname in _LOOPBACK and parts.port == port


def s3_override(config: ServicesConfig) -> tuple[str, str | None] | None:
    """(variable, url) when S3 is configured elsewhere; None when the embedded server should be used.
    A value pointing at our own endpoint (e.g. from a sourced env.sh) is not an override."""
    value = os.environ.get("AIRFLOW_CONN_AWS_DEFAULT")
    if not value:
        return None
    url = _conn_url(value, "endpoint_url")
    if _is_embedded(url, running_port(config, "s3") or config.s3_port):
        return None
    return "AIRFLOW_CONN_AWS_DEFAULT", url


def llm_override(config: ServicesConfig) -> tuple[str, str | None] | None:
    """Like :func:`s3_override` for ``AIRFLOW_CONN_LLM_DEFAULT``, then ``PIPELINE_HUB_LLM_ENDPOINT``."""
    port = running_port(config, "llm") or config.llm_port
    if value := os.environ.get("AIRFLOW_CONN_LLM_DEFAULT"):
        url = _conn_url(value, "host")
        if not _is_embedded(url, port):
            return "AIRFLOW_CONN_LLM_DEFAULT", url
    if (url := os.environ.get("PIPELINE_HUB_LLM_ENDPOINT")) and not _is_embedded(url, port):
        return "PIPELINE_HUB_LLM_ENDPOINT", url
    return None
