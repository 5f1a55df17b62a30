"""Prompt registry: topics under ``include/prompts/<topic>/`` and their versioned Jinja2 templates.

Layout of one topic (see ``include/prompts/README.md``)::

    include/prompts/<topic>/metadata.yaml        versions, dev/prod pointers, named labels, inputs, output
    include/prompts/<topic>/prompts/<topic>_vN.j2 template with blocks ``system`` and ``user``
    include/prompts/<topic>/schemas/*.json        output JSON Schemas (Draft 2020-12)
    include/prompts/<topic>/examples/*.jsonl      labelled examples
    include/prompts/_shared/*.j2                  partials and macros shared by every topic

Labels (Langfuse/MLflow alias semantics): ``dev`` and ``prod`` are top-level keys, named labels a
top-level mapping ``labels: {canary: v2, eu: v1}`` (names :data:`LABEL_PATTERN`, never ``dev``/``prod``);
``load_topic(name, pointer=label)`` resolves any of them. They are moved by ``pipeline-hub promote``
(:mod:`pipeline_hub.lifecycle.promotion`), never by a run.

Templates render with ``StrictUndefined`` so a missing variable is an error, never an empty string.
``template_sha256`` covers the template and every partial it includes or imports, so any change to
what the model sees changes the hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import yaml

from pipeline_hub.cascade.spec import CascadeError, CascadeSpec, from_metadata
from pipeline_hub.config import include_dir
from pipeline_hub.exceptions import PromptError
from pipeline_hub.providers.routing import ProviderSpec, RoutingError


class RegistryError(PromptError, ValueError):
    """A topic's metadata, template or schema is missing or malformed (message names the file)."""


# A named label (``labels:`` in metadata.yaml): lowercase, starts with a letter, at most 40 characters.
LABEL_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
RESERVED_LABELS = ("dev", "prod")  # top-level keys of metadata.yaml, never inside ``labels:``


@dataclass(frozen=True)
class InputSpec:
    """One template variable: which record ``field`` feeds it and whether the record must have it."""

    name: str
    field: str
    required: bool = True


@dataclass
class PromptVersion:
    """One resolved version of a topic's prompt: template, output schema and generation params."""

    topic: str
    version: str
    template_path: str  # relative to the prompts directory, e.g. "industry_classification/prompts/x_v1.j2"
    output_schema: dict[str, Any]
    model_params: dict[str, Any]
    env: jinja2.Environment = field(repr=False)
    # The version's model cascade (``versions.<v>.cascade``), None without one (every record to the model).
    cascade: CascadeSpec | None = None
    cascade_block: dict[str, Any] | None = field(default=None, repr=False)  # as written, for the digest

    @cached_property
    def template(self) -> jinja2.Template:
        """The compiled Jinja2 template of this version (``StrictUndefined`` environment of the registry)."""
        return self.env.get_template(self.template_path)

    @cached_property
    def template_sha256(self) -> str:
        """SHA-256 (hex) over the template source and all partials it references, transitively."""
        digest = hashlib.sha256()
        for name in _referenced_templates(self.env, self.template_path):
            source, _, _ = self.env.loader.get_source(self.env, name)
            digest.update(name.encode() + b"\0" + source.encode() + b"\0")
        return digest.hexdigest()

    @cached_property
    def cascade_sha256(self) -> str | None:
        """SHA-256 (hex) of the cascade block as canonical JSON (sorted keys), None without a cascade.

        Part of a run's identity (:meth:`pipeline_hub.stages.plan.RunPlan.identity`): thresholds edited in
        place republish, as a changed template does.
        """
        if self.cascade_block is None:
            return None
        text = json.dumps(self.cascade_block, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def render(self, variables: dict[str, Any]) -> list[dict[str, str]]:
        """Render to chat messages ``[{"role": "system", …}, {"role": "user", …}]``.

        The ``system`` block holds static instructions and few-shot examples (identical for every
        record, so provider prefix caching applies); the ``user`` block holds the record last.
        Raises ``jinja2.UndefinedError`` when a variable the template uses is not supplied.
        """
        tmpl = self.template
        messages = []
        for role in ("system", "user"):
            if role not in tmpl.blocks:
                raise RegistryError(f"{self.template_path}: template has no '{{% block {role} %}}'")
            ctx = tmpl.new_context(dict(variables))
            text = "".join(tmpl.blocks[role](ctx)).strip()
            messages.append({"role": role, "content": text})
        return messages


@dataclass
class Topic:
    """A prompt topic loaded from ``metadata.yaml``; ``version`` is the one the pointer resolved to."""

    name: str
    description: str
    source: str
    inputs: list[InputSpec]
    context: dict[str, dict[str, Any]]
    output: dict[str, Any]
    quality: dict[str, Any]
    pointers: dict[str, str]  # every label -> version: dev, prod and the named labels
    prompt: PromptVersion
    metadata_path: Path
    provider: ProviderSpec = field(default_factory=ProviderSpec)
    label: str | None = None  # the label this topic was resolved through; None when a version was given

    @property
    def labels(self) -> dict[str, str]:
        """The named labels only (``labels:`` of metadata.yaml) -> version, without ``dev``/``prod``."""
        return {k: v for k, v in self.pointers.items() if k not in RESERVED_LABELS}

    @property
    def version(self) -> str:
        """The prompt version this topic was loaded at (e.g. ``1.2.0``)."""
        return self.prompt.version

    @property
    def keep_fields(self) -> list[str]:
        """Input record fields copied into the published row (after scrubbing)."""
        return list(self.output.get("keep_fields", []))

    def lineage(self) -> dict[str, str]:
        """``{"prompt_name", "prompt_version", "template_sha256"}`` for manifests and rows."""
        return {
            "prompt_name": self.name,
            "prompt_version": self.version,
            "template_sha256": self.prompt.template_sha256,
        }


def _referenced_templates(env: jinja2.Environment, name: str) -> list[str]:
    """``name`` plus every template it includes/imports/extends, transitively, in stable order."""
    seen: list[str] = []
    stack = [name]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.append(current)
        source, _, _ = env.loader.get_source(env, current)
        refs = jinja2.meta.find_referenced_templates(env.parse(source))
        for ref in refs:
            if ref is None:
                raise RegistryError(f"{current}: dynamic include/import cannot be hashed; use a literal name")
            stack.append(ref)
    return sorted(seen)


def make_env(prompts_dir: Path) -> jinja2.Environment:
    """Jinja2 environment over ``prompts_dir`` with ``StrictUndefined`` and no autoescaping (plain text).

    Templates are compiled once per environment (``auto_reload=False``): a loaded topic keeps rendering
    what it loaded, and a render does not ``stat`` every partial it includes (two file system calls a
    record in the prompt stage; Jinja2 API docs, ``auto_reload``: "For higher performance it's possible to
    disable that"). An edited template is seen by the next :func:`load_topic`, which makes a new environment.
    """
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(prompts_dir)),
        auto_reload=False,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def cascade_problem(
    cascade: CascadeSpec, provider: ProviderSpec, schema: dict[str, Any], quality: dict[str, Any]
) -> str | None:
    """What makes a version's cascade unusable with its topic's routes and output schema, or None.

    - ``cascade.oracle`` ``long_input`` or ``fallback`` needs that ``provider`` route: the oracle records
      would otherwise go somewhere the block does not say (refused rather than silently sent to primary);
    - an oracle other than ``primary`` with ``provider.mode: batch``: batch jobs answer on the primary route;
    - a ``model:`` proxy is scored by its answer's confidence field (``quality.confidence_field``, default
      ``confidence``), which the output ``schema`` must declare among its ``properties``.
    """
    oracle = cascade.oracle
    if oracle in ("long_input", "fallback") and getattr(provider, oracle) is None:
        return (
            f"cascade.oracle: {oracle} names provider.{oracle}, which this topic does not configure "
            f"(add provider.{oracle}, or use oracle: primary)"
        )
    if oracle != "primary" and provider.mode == "batch":
        return f"cascade.oracle: {oracle}: provider.mode batch answers on the primary route; use oracle: primary"
    if cascade.proxy.kind == "model":
        confidence = str(quality.get("confidence_field") or "confidence")
        if confidence not in (schema.get("properties") or {}):
            return (
                f"cascade.proxy: a model proxy is scored by its answer's '{confidence}' (quality.confidence_field), "
                "which the version's output schema does not declare among its properties"
            )
    return None


def list_topics(prompts_dir: Path | None = None) -> list[str]:
    """Names of the topic folders (those holding a ``metadata.yaml``), sorted."""
    root = prompts_dir or include_dir() / "prompts"
    return sorted(p.parent.name for p in root.glob("*/metadata.yaml") if not p.parent.name.startswith("_"))


def load_topic(name: str, prompts_dir: Path | None = None, pointer: str = "prod", version: str | None = None) -> Topic:
    """Load topic ``name`` and resolve ``version`` (or the ``pointer``, ``prod`` by default).

    ``pointer`` is ``dev``, ``prod`` or a named label of the ``labels:`` mapping. Raises
    :class:`RegistryError` naming ``metadata.yaml`` when the topic, pointer (message lists the known
    labels), version, template or output schema cannot be found or parsed.
    """
    root = (prompts_dir or include_dir() / "prompts").resolve()
    meta_path = root / name / "metadata.yaml"
    if not meta_path.is_file():
        raise RegistryError(f"{meta_path}: no such topic '{name}' (known: {', '.join(list_topics(root))})")
    try:
        meta = yaml.safe_load(meta_path.read_text())
    except yaml.YAMLError as exc:
        raise RegistryError(f"{meta_path}: invalid YAML: {exc}") from exc
    for key in ("source", "versions", "inputs"):
        if key not in meta:
            raise RegistryError(f"{meta_path}: missing key '{key}'")
    pointers = {p: str(meta[p]) for p in RESERVED_LABELS if meta.get(p) is not None}
    named = meta.get("labels") or {}
    if not isinstance(named, dict):
        raise RegistryError(f"{meta_path}: 'labels' must be a mapping label -> version")
    pointers |= {str(k): str(v) for k, v in named.items() if str(k) not in RESERVED_LABELS}
    chosen = version or pointers.get(pointer)
    if chosen is None:
        known = ", ".join(pointers) or "none"
        raise RegistryError(f"{meta_path}: label '{pointer}' is not set (known labels: {known})")
    if chosen not in meta["versions"]:
        raise RegistryError(f"{meta_path}: version '{chosen}' is not declared under 'versions'")
    spec = meta["versions"][chosen]
    schema_path = root / name / spec["output_schema"]
    try:
        schema = json.loads(schema_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{meta_path}: output schema {schema_path.name} of {chosen}: {exc}") from exc
    env = make_env(root)
    template_rel = f"{name}/{spec['template']}"
    if not (root / template_rel).is_file():
        raise RegistryError(f"{meta_path}: template {template_rel} of {chosen} does not exist")
    inputs = [InputSpec(var, cfg["field"], bool(cfg.get("required", True))) for var, cfg in meta["inputs"].items()]
    try:
        provider = ProviderSpec.parse(meta.get("provider"), str(meta_path))
    except RoutingError as exc:
        raise RegistryError(str(exc)) from None
    try:
        cascade = from_metadata(spec, name)
    except CascadeError as exc:
        raise RegistryError(f"{meta_path}: versions.{chosen}: {exc}") from None
    problem = None if cascade is None else cascade_problem(cascade, provider, schema, meta.get("quality") or {})
    if problem:
        raise RegistryError(f"{meta_path}: versions.{chosen}: {name}: {problem}")
    return Topic(
        name=name,
        description=meta.get("description", ""),
        source=meta["source"],
        inputs=inputs,
        context=meta.get("context") or {},
        output=meta.get("output") or {},
        quality=meta.get("quality") or {},
        pointers=pointers,
        prompt=PromptVersion(
            topic=name,
            version=chosen,
            template_path=template_rel,
            output_schema=schema,
            model_params=dict(spec.get("model_params") or {}),
            env=env,
            cascade=cascade,
            cascade_block=spec.get("cascade"),
        ),
        metadata_path=meta_path,
        provider=provider,
        label=None if version else pointer,
    )
