"""Lineage of a publication: Airflow Assets for downstream DAGs and OpenLineage datasets for catalogues.

**Assets.** Each topic's published dataset is one Airflow Asset whose URI is the sanitized partition
root, ``<sanitized root>/sanitized_data/<topic>`` without the connection id (e.g.
``s3://sanitized/sanitized_data/industry_classification``; :func:`topic_asset`). The ``publish`` task
declares the asset alias :data:`PUBLISHED_ALIAS` as its outlet and, for each topic it publishes, adds
that topic's Asset to it with an event ``extra`` of identifiers and counts only (:func:`asset_extra`),
never record data; ``answers_first_paid_in`` is the ``ds`` whose run first paid the LLM for this
batch's answers (this one, an earlier partition holding the same bytes, or None when unknown; see
:mod:`pipeline_hub.stages.pubindex`); ``cascade`` counts the records per route (``proxy`` / ``oracle``)
with the calls and cost saved (:func:`pipeline_hub.stages.cascade_usage.run_routes`). An alias is needed
because ``publish`` is mapped over the run's pending topics: static outlets would emit an event for every
topic from every mapped instance. A downstream DAG schedules on a topic with
``schedule=[topic_asset("industry_classification")]``.

**OpenLineage.** The ``publish`` operator (:class:`pipeline_hub.orchestration.operators.PublishOperator`) returns,
through the OpenLineage provider's ``get_openlineage_facets_on_complete``/``_on_failure`` methods,
inputs = the raw objects of the topic's source (each with its SHA-256 as dataset version) and
outputs = the published dataset (with its schema and row count) and, when records were quarantined,
the quarantine dataset ``quarantine/<topic>`` (:func:`publish_lineage`). Dataset names follow the
OpenLineage naming spec (https://openlineage.io/docs/spec/naming/): S3 → namespace ``s3://<bucket>``,
name = key; local files → namespace ``file``, name = absolute path. Hook-level lineage (every
``ObjectStoragePath`` read and write, i.e. staging objects under connection-qualified URIs) is
switched off for the DAG so the events name exactly these datasets.

Events go where the provider's transport sends them (``[openlineage] transport``); ``make demo`` and
``make airflow`` default to the file transport under ``.local/openlineage/`` (one JSON file per
event), read back with :func:`read_events`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PUBLISHED_ALIAS = "pipeline_hub_published"
ASSET_EXTRA_KEYS = (
    "topic",
    "ds",
    "status",
    "batch_hash",
    "run_id",
    "prompt_version",
    "model",
    "in",
    "published",
    "quarantined_total",
    "answers_first_paid_in",
    "manifest",
    "cascade",  # records per route (proxy / oracle), calls saved, cost saved (USD)
)


def dataset_uri(topic: str, sanitized_root: str | None = None) -> str:
    """Public URI of ``topic``'s sanitized partition root (``PIPELINE_HUB_SANITIZED_URI`` by default)."""
    from pipeline_hub import storage
    from pipeline_hub.config import Settings

    root = sanitized_root or Settings.from_env().sanitized_root
    return storage.public_uri(storage.join(root, "sanitized_data", topic))


def topic_asset(topic: str, sanitized_root: str | None = None):
    """The Airflow ``Asset`` of ``topic``'s published dataset (URI from :func:`dataset_uri`)."""
    from airflow.sdk import Asset

    return Asset(uri=dataset_uri(topic, sanitized_root))


def asset_extra(summary: dict[str, Any]) -> dict[str, Any]:
    """The asset event ``extra`` of a publish summary: identifiers and counts (:data:`ASSET_EXTRA_KEYS`)."""
    extra = {k: summary.get(k) for k in ASSET_EXTRA_KEYS}
    extra["quarantined"] = dict(summary.get("quarantined") or {})
    return extra


def ol_name(uri: str) -> tuple[str, str]:
    """``(namespace, name)`` of an object or prefix URI (``s3://b/k``, ``file:///p``, a local path).

    S3 and other object stores: namespace ``<scheme>://<bucket>``, name = key; local files: namespace
    ``file``, name = absolute path (OpenLineage naming spec; the same as the Airflow providers'
    Asset-to-OpenLineage conversions).
    """
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        return "file", parts.path or uri
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")


def dataset_key(namespace: str, name: str) -> str:
    """A dataset's OpenLineage ``(namespace, name)`` as one URI-like string (``s3://b/k``, ``file:///p``)."""
    if namespace == "file":
        return "file://" + ("/" + name.lstrip("/"))
    return f"{namespace.rstrip('/')}/{name.lstrip('/')}"


def dataset_id(uri: str) -> str:
    """:func:`dataset_key` of the dataset :func:`ol_name` names for ``uri``, as :func:`event_datasets` returns."""
    return dataset_key(*ol_name(uri))


def _schema_facet(topic_name: str, prompt_version: str | None):
    from openlineage.client.facet_v2 import schema_dataset

    from pipeline_hub.prompts.registry import load_topic
    from pipeline_hub.stages.parquet import published_schema

    topic = load_topic(topic_name, version=prompt_version)
    schema = published_schema(topic.prompt.output_schema, topic.keep_fields)
    return schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name=f.name, type=str(f.type)) for f in schema]
    )


def publish_lineage(manifest: dict[str, Any]):
    """``OperatorLineage`` of one topic's publish: raw objects in, published/quarantine datasets out.

    ``manifest`` is the topic's ``_manifest.json`` (inputs with ``public_uri``/``sha256``, outputs,
    counts). The datasets are the partition roots ``…/sanitized_data/<topic>`` and
    ``…/quarantine/<topic>`` of the written objects (the Asset URIs). Output facets: ``schema`` (the
    published Arrow schema) and ``outputStatistics`` (rows) on the published dataset, when rows were
    published; ``outputStatistics`` (quarantined records) on the quarantine dataset.
    """
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import dataset_version_dataset, output_statistics_output_dataset

    OutputStatistics = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet

    inputs = [
        InputDataset(
            *ol_name(i["public_uri"]),
            facets={"version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=i["sha256"])},
        )
        for i in manifest["inputs"]
    ]
    counts = manifest["counts"]
    outputs = []
    if manifest["outputs"].get("data"):
        outputs.append(
            OutputDataset(
                *ol_name(manifest["outputs"]["data"].rsplit("/", 2)[0]),  # …/sanitized_data/<topic>
                facets={"schema": _schema_facet(manifest["topic"], manifest["prompt"]["version"])},
                outputFacets={"outputStatistics": OutputStatistics(rowCount=counts["published"])},
            )
        )
    if manifest["outputs"].get("quarantine"):
        q_uri = manifest["outputs"]["quarantine"].rsplit("/", 2)[0]  # …/quarantine/<topic>
        outputs.append(
            OutputDataset(
                *ol_name(q_uri),
                outputFacets={"outputStatistics": OutputStatistics(rowCount=counts["quarantined_total"])},
            )
        )
    return OperatorLineage(inputs=inputs, outputs=outputs)


def read_events(location: str | Path) -> list[dict[str, Any]]:
    """OpenLineage events written by the file transport under ``location`` (a directory or file prefix).

    Reads every ``*.json`` file (one event each, ``append: false``) and ``*.jsonl`` file (one event a
    line, ``append: true``) whose path starts with ``location``; returns them sorted by ``eventTime``.
    """
    base = Path(location)
    if base.is_dir():
        files = [p for p in base.rglob("*") if p.is_file()]
    else:
        files = [p for p in base.parent.glob(base.name + "*") if p.is_file()]
    events = []
    for path in files:
        text = path.read_text()
        if path.suffix == ".jsonl":
            events += [json.loads(line) for line in text.splitlines() if line.strip()]
        elif path.suffix == ".json":
            events.append(json.loads(text))
    return sorted(events, key=lambda e: e.get("eventTime", ""))


def event_datasets(events: list[dict[str, Any]]) -> dict[str, set[str]]:
    """``{"inputs": {...}, "outputs": {...}}``: the :func:`dataset_key` of every dataset ``events`` name."""
    out: dict[str, set[str]] = {"inputs": set(), "outputs": set()}
    for e in events:
        for side in out:
            out[side] |= {dataset_key(d["namespace"], d["name"]) for d in e.get(side) or []}
    return out


def describe_events(events: list[dict[str, Any]]) -> list[str]:
    """One line per finished job run that named datasets: ``<state> <job>: <inputs> -> <outputs>``."""
    lines = []
    for e in events:
        if e.get("eventType") in ("COMPLETE", "FAIL") and (e.get("inputs") or e.get("outputs")):
            ins = ", ".join(dataset_key(d["namespace"], d["name"]) for d in e.get("inputs") or [])
            outs = ", ".join(dataset_key(d["namespace"], d["name"]) for d in e.get("outputs") or [])
            lines.append(f"{e['eventTime']} {e['eventType']:8} {e['job']['name']}: {ins or '-'} -> {outs or '-'}")
    return lines
