"""The Prompt Hub FastAPI app: server-rendered pages (Jinja2) over :mod:`pipeline_hub.orchestration.ui.data`.

Mounted by ``airflow api-server`` under :data:`pipeline_hub.orchestration.links.HUB_PREFIX` (the plugin's
``fastapi_apps``). Every route depends on :data:`AUTH`, Airflow's own ``requires_access_dag`` (GET on DAG
runs): the request carries the UI's JWT cookie (the page is shown in the UI's iframe, same origin) or an
``Authorization: Bearer`` token; without one the API server answers 401, without the permission 403.

Routes (HTML unless said):

- ``/`` every topic: labels, latest run's counts;
- ``/topics/{topic}`` versions with labels, cascade thresholds and gate scores, changelog, audit, the last
  ``runs`` runs (default 10) with records per route (proxy / oracle), calls and cost saved, and drift;
  charts (counts and cost/tokens over time, label distribution against the drift baseline), feedback per
  prompt version and the latest corrections, and the feedback form;
- ``POST /topics/{topic}/feedback`` the form's target (fields ``record_id``, ``label``, optional ``ds`` and
  ``note``): stores the correction with the authenticated Airflow user as author
  (:func:`pipeline_hub.prompts.feedback.add_feedback`, note scrubbed by
  :func:`pipeline_hub.governance.feedback_notes.note_scrubber`), then redirects (303) to the topic page; a
  refused correction renders the page again with the one-line reason (400);
- ``/topics/{topic}/counts.png`` the counts chart alone (PNG);
- ``/topics/{topic}/ds/{ds}/data-docs/{path}`` the GX Data Docs site of that partition;
- ``/api/topics/{topic}`` the same data as the topic page as JSON (without the charts).

Nothing shown is record text: counts, versions, labels of the output schema, published record ids,
identifiers and timestamps. Feedback needs the same read access as the pages (analysts give it); the
author is the user the auth manager resolves from the request, never a form field.
"""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import get_user, requires_access_dag
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from pipeline_hub.orchestration.links import HUB_PREFIX
from pipeline_hub.orchestration.ui import charts, data

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
AUTH = requires_access_dag(method="GET", access_entity=DagAccessEntity.RUN)
"""The dependency every route has (Airflow's auth manager); tests override it in ``app.dependency_overrides``."""

app = FastAPI(
    title="Prompt Hub", description="Prompt versions, labels and runs per topic.", dependencies=[Depends(AUTH)]
)


def _topic(topic: str) -> str:
    if topic not in data.topics():
        raise HTTPException(status_code=404, detail=f"unknown topic {topic!r}")
    return topic


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode()


def topic_view(topic: str, limit: int) -> dict[str, Any]:
    """Everything the topic page shows: ``{"topic", "registry", "runs", "feedback", "charts"}``.

    ``charts`` maps ``counts``, ``cost`` and ``labels`` to a base64 PNG (:mod:`charts`); a chart without
    data is absent (no runs; no drift row with labels among the shown runs).
    """
    root = data.sanitized_root()
    runs = data.runs(root, topic, limit)
    shown: dict[str, str] = {}
    if runs:
        shown = {"counts": _b64(charts.counts_png(runs)), "cost": _b64(charts.cost_png(runs))}
        latest = next((r["drift"] for r in runs if r["drift"] and r["drift"].get("labels")), None)
        if latest:
            shown["labels"] = _b64(charts.labels_png(latest))
    return {
        "topic": topic,
        "registry": data.registry(topic),
        "runs": runs,
        "feedback": data.feedback(root, topic),
        "charts": shown,
    }


def _page(request: Request, topic: str, runs: int, status_code: int = 200, **extra: Any) -> HTMLResponse:
    view = topic_view(topic, runs)
    context = {**view, "prefix": HUB_PREFIX, **extra}
    return TEMPLATES.TemplateResponse(request, "topic.html", context, status_code=status_code)


@app.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    """Every topic with its labels and latest run."""
    root = data.sanitized_root()
    topics = [{"topic": t, "registry": data.registry(t), "runs": data.runs(root, t, 1)} for t in data.topics()]
    return TEMPLATES.TemplateResponse(request, "index.html", {"topics": topics, "root": root, "prefix": HUB_PREFIX})


@app.get("/topics/{topic}", response_class=HTMLResponse)
def topic_page(
    request: Request, topic: str, runs: int = Query(10, ge=1, le=200), feedback: str | None = None
) -> HTMLResponse:
    """One topic: versions, labels, scores, changelog, audit, its last ``runs`` runs, drift and feedback.

    ``feedback=recorded`` (the form's redirect) shows that the correction was stored.
    """
    return _page(request, _topic(topic), runs, notice="Feedback recorded." if feedback == "recorded" else None)


@app.post("/topics/{topic}/feedback", response_class=HTMLResponse)
def feedback_form(
    request: Request,
    topic: str,
    user: Annotated[BaseUser, Depends(get_user)],
    record_id: Annotated[str, Form(max_length=200)],
    label: Annotated[str, Form(max_length=200)],
    ds: Annotated[str, Form(max_length=10)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Store an analyst's correction (module docstring); 303 to the topic page, or the page with the reason (400).

    The reason is the one line of :class:`~pipeline_hub.prompts.feedback.FeedbackError` (unknown record,
    invalid label, malformed ``ds``, a note naming an erased subject): it never echoes the record id or note.
    """
    from pipeline_hub.governance.feedback_notes import note_scrubber
    from pipeline_hub.prompts.feedback import FeedbackError, add_feedback

    root = data.sanitized_root()
    try:
        with note_scrubber(root) as scrub:
            add_feedback(
                root,
                _topic(topic),
                record_id.strip(),
                label,
                scrub=scrub,
                note=note or None,
                ds=ds.strip() or None,
                author=user.get_name(),
            )
    except FeedbackError as exc:
        return _page(request, topic, 10, status_code=400, feedback_error=str(exc))
    return RedirectResponse(f"{HUB_PREFIX}/topics/{topic}?feedback=recorded#feedback", status_code=303)


@app.get("/api/topics/{topic}")
def topic_json(topic: str, runs: int = Query(10, ge=1, le=200)) -> JSONResponse:
    """The topic page's data as JSON (without the charts)."""
    view = topic_view(_topic(topic), runs)
    view.pop("charts")
    return JSONResponse(view)


@app.get("/topics/{topic}/counts.png")
def topic_chart(topic: str, runs: int = Query(10, ge=1, le=200)) -> Response:
    """The counts chart of the topic's last ``runs`` runs; 404 when it has none."""
    rows = data.runs(data.sanitized_root(), _topic(topic), runs)
    if not rows:
        raise HTTPException(status_code=404, detail=f"{topic} has no runs")
    return Response(charts.counts_png(rows), media_type="image/png")


@app.get("/topics/{topic}/ds/{ds}/data-docs/{path:path}")
def data_docs(topic: str, ds: str, path: str = "index.html") -> Response:
    """A file of the GX Data Docs site of the partition (``index.html`` when ``path`` is empty)."""
    page = data.data_docs(data.sanitized_root(), _topic(topic), ds, path or "index.html")
    if page is None:
        raise HTTPException(status_code=404, detail=f"no Data Docs for {topic} ds={ds}")
    media = mimetypes.guess_type(page.name)[0] or "application/octet-stream"
    return Response(page.read_bytes(), media_type=media)
