"""Answers of the stub LLM: deterministic JSON instances of a structured-output schema.

Source: OpenAI API reference, "Create chat completion" (``response_format``); llama.cpp
``tools/server/README.md`` (``response_format`` with ``schema``).
"""

from __future__ import annotations

import hashlib
from typing import Any


def _pick(options: list[Any], key: str) -> Any:
    return options[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(options)]


def instance_for(schema: dict[str, Any], key: str = "", root: dict[str, Any] | None = None) -> Any:
    """A deterministic instance valid against ``schema`` (JSON Schema subset used by structured output).

    ``key`` (e.g. the last user message) varies ``enum`` choices between records, reproducibly.
    """
    root = root or schema
    if "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        return instance_for((root.get("$defs") or root.get("definitions") or {})[ref], key, root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return _pick([v for v in schema["enum"] if v is not None] or [None], key)
    for comb in ("anyOf", "oneOf"):
        if comb in schema:
            return instance_for(schema[comb][0], key, root)
    types = schema.get("type", "object")
    if isinstance(types, list):
        types = next((t for t in types if t != "null"), "null")
    if types == "object":
        props = schema.get("properties", {})
        return {name: instance_for(sub, f"{key}/{name}", root) for name, sub in props.items()}
    if types == "array":
        count = max(1, schema.get("minItems", 1))
        if "maxItems" in schema:
            count = min(count, schema["maxItems"])
        return [instance_for(schema.get("items", {"type": "string"}), f"{key}[{i}]", root) for i in range(count)]
    if types in ("number", "integer"):
        lo, hi = schema.get("minimum", 0), schema.get("maximum", 1 if types == "number" else 10)
        value = (lo + hi) / 2
        return int(value) if types == "integer" else round(value, 3)
    if types == "boolean":
        return True
    if types == "null":
        return None
    text = "stub"
    if schema.get("minLength", 0) > len(text):
        text = text * (schema["minLength"] // len(text) + 1)
    return text[: schema["maxLength"]] if "maxLength" in schema else text


def schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    """The output schema of a chat request in either structured-output dialect, or None."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema")
    if fmt.get("type") == "json_object":
        return fmt.get("schema")
    return None
