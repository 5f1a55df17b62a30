"""What a prompt sends for a record: its template variables, and its inputs under the topic's ``input_pii``
policy.

:func:`build_variables` maps record fields to the declared template inputs and adds context (reference
candidates for matching); :func:`protect_inputs` replaces PII in the template inputs by ``<ENTITY>``
placeholders (``redact``) or keyed pseudonyms (``pseudonymize``) unless every provider a record may go
to (:func:`route_providers`) is allowed to see it (by default: a provider on 127.0.0.1).
"""

from __future__ import annotations

import copy
from typing import Any

from pipeline_hub.config import include_dir
from pipeline_hub.prompts.matching import load_reference
from pipeline_hub.prompts.registry import Topic


def build_variables(topic: Topic, record: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None, dict]:
    """Template variables for ``record`` as ``(variables, missing_field, extra)``.

    ``missing_field`` names the first required field the record lacks (variables is then None).
    Template inputs come from ``record["sent_fields"]`` when :func:`protect_inputs` set it; context
    lookups (reference candidates) always use the record's own fields, they never leave the process.
    ``extra`` may carry ``{"schema": …}``: the output schema narrowed for this record, e.g. the
    matching answer's ``constrain_field`` limited to the offered candidate ids (or null), so a
    structured-output server can only answer with an id it was shown.
    """
    fields = record["fields"]
    sent = record.get("sent_fields", fields)  # what the input_pii policy lets leave (protect_inputs)
    variables: dict[str, Any] = {}
    for spec in topic.inputs:
        value = fields.get(spec.field)
        if value is None or (isinstance(value, str) and not value.strip()):
            if spec.required:
                return None, spec.field, {}
            value = None
        variables[spec.name] = None if value is None else sent.get(spec.field, value)
    extra: dict[str, Any] = {}
    for var, ctx in topic.context.items():
        if ctx.get("kind") != "reference_candidates":
            raise ValueError(f"{topic.metadata_path}: context '{var}' has unknown kind '{ctx.get('kind')}'")
        index = load_reference(
            str(include_dir() / ctx["reference"]),
            ctx.get("id_column", "ref_id"),
            ctx.get("name_column", "name"),
        )
        query = fields.get(ctx.get("query_field", "name"))
        if query is None:
            return None, ctx.get("query_field", "name"), {}
        cands = index.candidates(str(query), int(ctx.get("k", 5)))
        variables[var] = cands
        if field_name := ctx.get("constrain_field"):
            schema = copy.deepcopy(topic.prompt.output_schema)
            schema["properties"][field_name]["enum"] = [*(c["id"] for c in cands), None]
            extra["schema"] = schema
    return variables, None, extra


def route_providers(hook, routes: dict[str, Any] | None) -> list[str]:
    """Where a record of this chunk may be sent: the primary hook's provider and every other route's
    (long input, fallback, and a cascade's model proxy)."""
    from pipeline_hub.providers.routing import PROXY_ROUTE, get_hook

    providers = [hook.provider]
    for name in ("long_input", "fallback", PROXY_ROUTE):
        route = (routes or {}).get(name)
        if route:
            providers.append(get_hook(route["conn_id"], route.get("model")).provider)
    return providers


def protect_inputs(topic: Topic, records: list[dict], providers: list[str]) -> tuple[list[dict], dict[str, Any]]:
    """Apply the topic's ``input_pii`` policy for ``providers``; return ``(records, report)``.

    With ``allow`` the records are returned unchanged. With ``redact`` or ``pseudonymize`` each record
    gets ``sent_fields``: its template-input fields with PII replaced (``<ENTITY>`` placeholders, or
    keyed ``psn_…`` pseudonyms equal to those the scrub stage publishes), which
    :func:`build_variables` renders instead of ``fields``. ``report`` is ``{"policy", "pii_found":
    {entity: count}}`` (counts only). Raises :class:`~pipeline_hub.pii.config.PiiConfigError` naming
    the topic's metadata.yaml when its policy is invalid.
    """
    from pipeline_hub.pii.config import TopicPii, input_policy

    policy = input_policy(TopicPii.from_topic(topic), providers)
    if policy == "allow" or not records:
        return records, {"policy": policy, "pii_found": {}}
    from pipeline_hub.pii.scrubber import Scrubber

    names = list(dict.fromkeys(spec.field for spec in topic.inputs))
    slots = [(i, f) for i, r in enumerate(records) for f in names if isinstance(r["fields"].get(f), str)]
    with Scrubber() as scrubber:
        texts, found = scrubber.scrub_texts([records[i]["fields"][f] for i, f in slots], policy=policy)
    out = [{**r, "sent_fields": dict(r["fields"])} for r in records]
    for (i, f), text in zip(slots, texts, strict=True):
        out[i]["sent_fields"][f] = text
    return out, {"policy": policy, "pii_found": dict(sorted(found.items()))}
