"""Structured-output dialects: how a request asks an OpenAI-compatible server for schema-constrained JSON.

The connection extra ``structured_output`` names the dialect (see :mod:`pipeline_hub.providers.hook`):

``json_schema``
    OpenAI Structured Outputs: ``{"type": "json_schema", "json_schema": {"name", "schema", "strict": true}}``.
``json_object_schema``
    llama.cpp server: ``{"type": "json_object", "schema": {...}}`` (it rejects the OpenAI form).
``json_object``
    JSON mode only; the schema is enforced by our own validation of the answer.

Sources: OpenAI Chat Completions API reference (``response_format``); llama.cpp server README
(``response_format`` with ``schema``).
"""

from __future__ import annotations

from typing import Any

DIALECTS = ("json_schema", "json_object_schema", "json_object")


def response_format(schema: dict[str, Any], name: str, dialect: str) -> dict[str, Any]:
    """The ``response_format`` request field asking for JSON matching ``schema`` in ``dialect`` (one of
    :data:`DIALECTS`; the caller validates it).

    Annotation keywords (``$schema``, ``title``) are dropped: they are not part of what Structured
    Outputs constrains and some servers reject them. ``name`` is the schema's name in the
    ``json_schema`` dialect (ignored by the others).
    """
    schema = {k: v for k, v in schema.items() if k not in ("$schema", "title")}
    if dialect == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
    if dialect == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_object"}
