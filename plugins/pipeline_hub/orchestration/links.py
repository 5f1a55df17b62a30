"""The task instance's extra link to the topic's page in the Prompt Hub view (``orchestration/ui``).

Airflow 3 evaluates an operator's links on the worker when the task ends and stores each URL in XCom
(``_link_PromptHubLink``); the UI shows it as a button on the task instance. The URL is
``<[api] base_url><HUB_PREFIX>/topics/<topic>`` (relative when ``base_url`` is not set): only the topic name.
"""

from __future__ import annotations

from airflow.sdk import BaseOperatorLink

HUB_PREFIX = "/pipeline-hub"
"""Where ``airflow api-server`` mounts the Prompt Hub app (the plugin's ``fastapi_apps`` ``url_prefix``)."""


def topic_url(topic: str) -> str:
    """URL of ``topic``'s Prompt Hub page, below ``[api] base_url`` when that is set."""
    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}{HUB_PREFIX}/topics/{topic}"


class PromptHubLink(BaseOperatorLink):
    """ "Prompt Hub" button of an operator with a ``topic`` attribute (``PublishOperator``)."""

    name = "Prompt Hub"

    def get_link(self, operator, *, ti_key) -> str:
        """The topic's page (:func:`topic_url`); "" when the operator has no ``topic``."""
        topic = getattr(operator, "topic", None)
        return topic_url(topic) if topic else ""
