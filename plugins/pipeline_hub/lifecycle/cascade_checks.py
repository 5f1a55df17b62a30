"""``pipeline-hub validate``'s check of a version's ``cascade`` block: what loading the topic would refuse.

The metadata schema (``include/prompts/metadata.schema.json``) checks the block's shape; this adds what it
cannot say, the same checks :func:`pipeline_hub.prompts.registry.load_topic` makes before a run:
:class:`~pipeline_hub.cascade.spec.CascadeSpec` (``lower <= upper``; ``lower == 0`` for a model proxy) and
:func:`~pipeline_hub.prompts.registry.cascade_problem` (the oracle route is configured in ``provider``; a
model proxy's confidence field is a property of the output schema).
"""

from __future__ import annotations

from typing import Any

from pipeline_hub.cascade.spec import CascadeError, from_metadata
from pipeline_hub.prompts.registry import cascade_problem
from pipeline_hub.providers.routing import ProviderSpec, RoutingError


def cascade_block_problem(
    meta: dict[str, Any], topic: str, version_spec: dict[str, Any], schema: dict[str, Any] | None
) -> str | None:
    """One line on what is wrong with a version's cascade, or None (also without a block).

    ``meta``: the parsed ``metadata.yaml``; ``version_spec``: its ``versions.<v>`` mapping; ``schema``: that
    version's parsed output schema, None when it could not be read (then only the block itself is checked).
    A malformed ``provider`` section is left to the metadata schema.
    """
    try:
        cascade = from_metadata(version_spec, topic)
        provider = ProviderSpec.parse(meta.get("provider"), "metadata.yaml")
    except CascadeError as exc:
        return str(exc)
    except RoutingError:
        return None
    if cascade is None or schema is None:
        return None
    quality = meta.get("quality") if isinstance(meta.get("quality"), dict) else {}
    return cascade_problem(cascade, provider, schema, quality)
