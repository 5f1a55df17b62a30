"""``PromptHubPlugin``: the Airflow 3 plugin of the Prompt Hub view (entry point ``airflow.plugins``).

- ``fastapi_apps``: :data:`pipeline_hub.orchestration.ui.api.app` under
  :data:`pipeline_hub.orchestration.links.HUB_PREFIX`, served by ``airflow api-server`` behind Airflow's auth;
- ``external_views``: "Prompt Hub" in the navigation (category Browse), shown in the UI's iframe at
  ``/plugin/prompt-hub``;
- ``operator_extra_links``: :class:`pipeline_hub.orchestration.links.PromptHubLink` (the PublishOperator's
  link to its topic's page).

The FastAPI app is imported only where the plugin manager asks for it, so the scheduler and workers loading
plugins do not import FastAPI routes.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from pipeline_hub.orchestration.links import HUB_PREFIX, PromptHubLink


def _apps() -> list[dict]:
    from pipeline_hub.orchestration.ui.api import app

    return [{"name": "prompt-hub", "app": app, "url_prefix": HUB_PREFIX}]


class PromptHubPlugin(AirflowPlugin):
    """The Prompt Hub view: a FastAPI app, its navigation entry and the publish task's extra link."""

    name = "pipeline_hub_prompt_hub"
    external_views = [
        {
            "name": "Prompt Hub",
            "href": f"{HUB_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "prompt-hub",
        }
    ]
    operator_extra_links = [PromptHubLink()]

    @property
    def fastapi_apps(self) -> list[dict]:  # type: ignore[override]
        """The app, imported on first use (the API server's plugin loading)."""
        return _apps()
