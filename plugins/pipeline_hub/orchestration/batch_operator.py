"""``ChunkBatchOperator``: one chunk of a batch-mode topic through the common-ai ``LLMBatchOperator``.

A thin subclass: submitting, deferring, polling, re-attaching on retry and landing results are the
provider's (``apache-airflow-providers-common-ai``). What it adds is our data contract:

* it takes the work item (URIs only) instead of the prompts, and reads the rendered requests from
  staging (:func:`pipeline_hub.stages.prompt_batch.prepare`), so no record text goes through XCom or the
  rendered-template view;
* it accepts our LLM connection (type ``openai``: host = base URL, password = key) through the model
  prefix ``pipeline_hub_openai``, the provider's OpenAI batch adapter registered for ``openai``
  connections through the provider's adapter entry points
  (:class:`pipeline_hub.orchestration.batch_adapter.OpenAICompatibleBatchAdapter`);
* after landing, it folds the results into the chunk's answers (:func:`pipeline_hub.stages.prompt_batch.fold`),
  so scrub, validate and publish run as for streaming topics.

The XCom value is the chunk summary (counts, tokens, cost, records per route, and under ``batch`` the rows
by status and the records left out of the batch by reason), never the results.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.ai.operators.llm_batch import LLMBatchOperator

from pipeline_hub.orchestration.batch_adapter import ADAPTER


class ChunkBatchOperator(LLMBatchOperator):
    """Answer one ``{"plan_uri", "topic", "chunk_uri", "chunk_index", ...}`` work item with a batch job.

    :param item: a work item of the ``chunk`` task (mapped with ``.expand(item=...)``).
    :param poll_interval: seconds between status checks (the operator's minimum is 30).
    Other keyword arguments go to ``LLMBatchOperator`` (``timeout``, ``deferrable``, ...).
    """

    template_fields = ()  # the item holds URIs only; nothing to render

    def __init__(self, *, item: dict[str, Any], **kwargs: Any) -> None:
        kwargs.setdefault("deferrable", True)
        super().__init__(requests=[], result_path="", llm_conn_id="", **kwargs)
        self.item = item
        self.prepared: dict[str, Any] | None = None

    def _prepare(self, prepared: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write this chunk's requests (or take ``prepared``, already written) and point the operator at them."""
        from pipeline_hub.stages import prompt_batch as batch_mode

        prepared = prepared or batch_mode.prepare(self.item)
        self.item = {**self.item, "requests_uri": prepared["requests_uri"]}
        _, self.requests = batch_mode.load_requests(prepared["requests_uri"])
        self.result_path = prepared["result_path"]
        self.llm_conn_id = prepared["conn_id"]
        self.model_id = f"{ADAPTER}:{prepared['model']}"  # our openai-connection adapter (batch_adapter.py)
        self.max_tokens = prepared["max_tokens"]
        self.output_type = batch_mode.output_type(prepared["output_schema"])
        self.prepared = prepared
        return prepared

    def _fold(self, manifest: dict[str, Any] | None) -> dict[str, Any]:
        from pipeline_hub.stages import prompt_batch as batch_mode

        summary = batch_mode.fold(self.item, manifest, self.prepared["model"])
        summary["batch"]["left_out"] = dict(self.prepared["left_out"])  # e.g. proxy: answered without a call
        if manifest:
            summary["batch"].update({"batch_id": manifest.get("batch_id"), "counts": manifest.get("counts")})
        return summary

    def execute(self, context) -> dict[str, Any]:
        """Prepare the chunk's batch requests and submit them (then defer until the job ends); a chunk with
        nothing to submit (all cached, answered by the cascade's proxy, too long or over budget) is folded at
        once. Returns the chunk summary."""
        prepared = self._prepare()
        if not prepared["requests"]:  # all cached, proxy-answered, long or over budget
            self.log.info("chunk %s: no batch requests (%s)", self.item["chunk_index"], prepared["left_out"])
            return self._fold(None)
        return self._fold(super().execute(context))

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the deferral: fold the finished batch job's answers into the chunk summary."""
        from pipeline_hub.stages import prompt_batch as batch_mode

        # A fresh instance after deferral: point it at the requests that were submitted, as written.
        self._prepare(batch_mode.load_prepared(self.item))
        return self._fold(super().execute_complete(context, event))
