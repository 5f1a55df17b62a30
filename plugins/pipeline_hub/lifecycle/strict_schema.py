"""The subset of JSON Schema that OpenAI Structured Outputs accepts in strict mode (the hook sends
``strict: true``): :func:`strict_problems` lists where an output schema leaves it.

Source: OpenAI "Structured Outputs, supported schemas"
(platform.openai.com/docs/guides/structured-outputs#supported-schemas).
"""

from __future__ import annotations

from typing import Any

# OpenAI Structured Outputs, strict mode: the keywords it supports, by where they may appear.
STRICT_ANNOTATIONS = {"title", "description", "$comment"}
STRICT_ROOT_ONLY = {"$schema", "$id", "$defs", "definitions"}

STRICT_COMMON = {"type", "enum", "const", "anyOf", "$ref"}

STRICT_BY_TYPE = {
    "string": {"pattern", "format"},
    "number": {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"},
    "integer": {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"},
    "array": {"items", "minItems", "maxItems"},
    "object": {"properties", "required", "additionalProperties"},
    "boolean": set(),
    "null": set(),
}

STRICT_MAX_DEPTH = 10  # nested object levels

STRICT_MAX_PROPERTIES = 5000

STRICT_MAX_ENUM_VALUES = 1000


def _types(schema: dict[str, Any]) -> set[str]:
    t = schema.get("type")
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return {x for x in t if isinstance(x, str)}
    return set()


def strict_problems(schema: dict[str, Any]) -> list[tuple[list[str | int], str]]:
    """Where ``schema`` leaves OpenAI's strict structured-output subset: ``[(path in schema, message)]``.

    Rules (OpenAI "Structured Outputs, supported schemas"): the root is ``type: object`` and not
    ``anyOf``; every object has ``additionalProperties: false`` and lists every property in
    ``required`` (optional values are nullable types instead); only the keywords of
    :data:`STRICT_BY_TYPE` (plus ``type``, ``enum``, ``const``, ``anyOf``, ``$ref`` and annotations) are
    used; at most 10 nested object levels, 5 000 properties and 1 000 enum values.
    """
    found: list[tuple[list[str | int], str]] = []
    if schema.get("type") != "object":
        found.append(([], "strict structured output needs the root to be 'type: object'"))
    if "anyOf" in schema:
        found.append((["anyOf"], "strict structured output does not allow 'anyOf' at the root"))
    totals = {"properties": 0, "enum": 0}

    def walk(node: Any, path: list[str | int], depth: int, root: bool = False) -> None:
        if not isinstance(node, dict):
            return
        types = _types(node)
        allowed = STRICT_ANNOTATIONS | STRICT_COMMON | (STRICT_ROOT_ONLY if root else set())
        for t in types or set(STRICT_BY_TYPE):
            allowed |= STRICT_BY_TYPE.get(t, set())
        for key in node:
            if key not in allowed:
                where = f"for type {sorted(types)}" if types else "here"
                found.append(([*path, key], f"keyword '{key}' is not supported {where} by strict structured output"))
        if "enum" in node and isinstance(node["enum"], list):
            totals["enum"] += len(node["enum"])
        is_object = "object" in types or "properties" in node
        if is_object:
            depth += 1
            if depth > STRICT_MAX_DEPTH:
                found.append((path, f"objects nested deeper than {STRICT_MAX_DEPTH} levels"))
            props = node.get("properties") or {}
            totals["properties"] += len(props)
            if node.get("additionalProperties") is not False:
                found.append((path, "object must set 'additionalProperties: false' for strict structured output"))
            required = set(node.get("required") or [])
            for name in props:
                if name not in required:
                    found.append(
                        (
                            [*path, "properties", name],
                            f"property '{name}' must be listed in 'required' (strict mode: make it nullable instead)",
                        )
                    )
            for name, sub in props.items():
                walk(sub, [*path, "properties", name], depth)
        if isinstance(node.get("items"), dict):
            walk(node["items"], [*path, "items"], depth)
        for i, sub in enumerate(node.get("anyOf") or []):
            walk(sub, [*path, "anyOf", i], depth)
        if root:
            for defs in ("$defs", "definitions"):
                for name, sub in (node.get(defs) or {}).items():
                    walk(sub, [*path, defs, name], depth)

    walk(schema, [], 0, root=True)
    if totals["properties"] > STRICT_MAX_PROPERTIES:
        found.append(([], f"{totals['properties']} properties; strict mode allows {STRICT_MAX_PROPERTIES}"))
    if totals["enum"] > STRICT_MAX_ENUM_VALUES:
        found.append(([], f"{totals['enum']} enum values; strict mode allows {STRICT_MAX_ENUM_VALUES}"))
    return found
