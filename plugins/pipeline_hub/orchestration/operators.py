"""``PublishOperator``: the DAG's ``publish`` task, with its Asset event and OpenLineage lineage.

The body is :func:`pipeline_hub.stages.publish.run_publish` (shared with the CLI and tests). What the operator
adds is what Airflow and the OpenLineage provider read from an operator:

* outlet = the asset alias :data:`pipeline_hub.orchestration.lineage.PUBLISHED_ALIAS`; a published topic adds its
  Asset (URI of its sanitized partition root) to it, with counts and identifiers as the event extra;
* ``get_openlineage_facets_on_complete`` / ``_on_failure`` (the provider's ``DefaultExtractor``
  protocol): inputs = the raw objects read, outputs = the published and quarantine datasets
  (:func:`pipeline_hub.orchestration.lineage.publish_lineage`);
* the extra link "Prompt Hub" (:class:`pipeline_hub.orchestration.links.PromptHubLink`) to the topic's page;
* a topic failing its quality gate fails the task with ``AirflowFailException`` (no retry: its
  records are already quarantined), so the DAG run ends failed while the other topics publish.

Only the publish summary (URIs, names, counts) goes to XCom.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import AssetAlias, BaseOperator

from pipeline_hub.orchestration.lineage import PUBLISHED_ALIAS
from pipeline_hub.orchestration.links import PromptHubLink


class PublishOperator(BaseOperator):
    """Publish one topic of a run: ``{"plan_uri", "topic"}`` (mapped with ``.expand_kwargs``).

    :param plan_uri: URI of the run's ``plan.json`` (from the ``hash`` task).
    :param topic: topic name.
    Other keyword arguments go to ``BaseOperator``; ``outlets`` defaults to the published-asset alias.
    Raises ``AirflowFailException`` when the topic failed its quality gate (records quarantined).
    """

    template_fields = ()  # plan_uri and topic come from XCom; nothing to render
    ui_color = "#d5f5e3"
    operator_extra_links = (PromptHubLink(),)  # the topic's page in the Prompt Hub view

    def __init__(self, *, plan_uri: str, topic: str, **kwargs: Any) -> None:
        kwargs.setdefault("outlets", [AssetAlias(PUBLISHED_ALIAS)])
        super().__init__(**kwargs)
        self.plan_uri = plan_uri
        self.topic = topic
        self.summary: dict[str, Any] = {}
        self.manifest: dict[str, Any] = {}

    def execute(self, context) -> dict[str, Any]:
        """Publish the topic (:func:`pipeline_hub.stages.publish.publish_topic`) and add its Asset to the
        published alias; raises ``AirflowFailException`` when the topic failed its quality gate."""
        from airflow.sdk import Asset
        from airflow.sdk.exceptions import AirflowFailException

        from pipeline_hub.orchestration.lineage import asset_extra
        from pipeline_hub.stages.publish import publish_topic
        from pipeline_hub.stages.validate import QualityGateFailed

        try:
            summary, self.manifest = publish_topic(self.plan_uri, self.topic)
        except QualityGateFailed as exc:  # quarantined already; fail visibly, retrying cannot help
            self.summary, self.manifest = exc.summary, exc.manifest
            raise AirflowFailException(str(exc)) from None
        self.summary = summary
        context["outlet_events"][AssetAlias(PUBLISHED_ALIAS)].add(
            Asset(uri=summary["dataset"]), extra=asset_extra(summary)
        )
        return summary

    def _lineage(self):
        from airflow.providers.openlineage.extractors import OperatorLineage

        from pipeline_hub.orchestration.lineage import publish_lineage

        if not self.manifest:  # failed before a manifest was written: nothing to report
            return OperatorLineage()
        return publish_lineage(self.manifest)

    def get_openlineage_facets_on_complete(self, task_instance):
        """OpenLineage provider hook: raw objects in, published (and quarantine) datasets out."""
        return self._lineage()

    def get_openlineage_facets_on_failure(self, task_instance):
        """OpenLineage provider hook on failure: a quarantined topic's raw inputs and quarantine dataset."""
        return self._lineage()
