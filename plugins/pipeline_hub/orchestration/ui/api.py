"""The Prompt Hub FastAPI app: server-rendered pages (Jinja2) over :mod:`pipeline_hub.orchestration.ui.data`.

Mounted by ``airflow api-server`` under :data:`pipeline_hub.orchestration.links.HUB_PREFIX` (the plugin's
``fastapi_apps``). Every route depends on :data:`AUTH`, Airflow's own ``requires_access_dag`` (GET on DAG
runs): the request carries the UI's JWT cookie (the page is shown in the UI's iframe, same origin) or an
``Authorization: Bearer`` token; without one the API server answers 401, without the permission 403.

Routes (HTML unless said):

- ``/`` every topic: labels, latest run's counts, a chart of the last runs;
- ``/topics/{topic}`` versions and labels, changelog, audit, the last ``runs`` runs (default 10);
- ``/topics/{topic}/counts.png`` the chart alone (PNG);
- ``/topics/{topic}/ds/{ds}/data-docs/{path}`` the GX Data Docs site of that partition;
- ``/api/topics/{topic}`` the same data as the topic page as JSON.

Nothing shown is record text: counts, versions, labels, identifiers and timestamps.
"""

from __future__ import annotations

import base64
import io
import mimetypes
from pathlib import Path
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates

from pipeline_hub.orchestration.links import HUB_PREFIX
from pipeline_hub.orchestration.ui import data

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


def counts_png(rows: list[dict[str, Any]]) -> bytes:
    """A PNG bar chart of published and quarantined records per ``ds`` (oldest left) of :func:`data.runs` rows."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rows = list(reversed(rows))
    fig = Figure(figsize=(6, 2.4), dpi=100)
    ax = fig.add_subplot()
    xs = range(len(rows))
    published = [r["published"] or 0 for r in rows]
    ax.bar(xs, published, width=0.6, color="#2e8b57", label="published")
    quarantined = [r["quarantined_total"] or 0 for r in rows]
    ax.bar(xs, quarantined, width=0.6, bottom=published, color="#d9534f", label="quarantined")
    ax.set_xlim(-0.75, max(len(rows), 6) - 0.25)  # a few runs stay narrow bars at the left
    ax.set_xticks(list(xs), [r["ds"] for r in rows], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("records")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def topic_view(topic: str, limit: int) -> dict[str, Any]:
    """Everything the topic page shows: ``{"topic", "registry", "runs", "chart"}`` (chart: base64 PNG or None)."""
    runs = data.runs(data.sanitized_root(), topic, limit)
    chart = base64.b64encode(counts_png(runs)).decode() if runs else None
    return {"topic": topic, "registry": data.registry(topic), "runs": runs, "chart": chart}


@app.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    """Every topic with its labels and latest run."""
    root = data.sanitized_root()
    topics = [{"topic": t, "registry": data.registry(t), "runs": data.runs(root, t, 1)} for t in data.topics()]
    return TEMPLATES.TemplateResponse(request, "index.html", {"topics": topics, "root": root, "prefix": HUB_PREFIX})


@app.get("/topics/{topic}", response_class=HTMLResponse)
def topic_page(request: Request, topic: str, runs: int = Query(10, ge=1, le=200)) -> HTMLResponse:
    """One topic: versions, labels, changelog, audit and its last ``runs`` runs."""
    view = topic_view(_topic(topic), runs)
    return TEMPLATES.TemplateResponse(request, "topic.html", {**view, "prefix": HUB_PREFIX})


@app.get("/api/topics/{topic}")
def topic_json(topic: str, runs: int = Query(10, ge=1, le=200)) -> JSONResponse:
    """The topic page's data as JSON (without the chart)."""
    view = topic_view(_topic(topic), runs)
    view.pop("chart")
    return JSONResponse(view)


@app.get("/topics/{topic}/counts.png")
def topic_chart(topic: str, runs: int = Query(10, ge=1, le=200)) -> Response:
    """The counts chart of the topic's last ``runs`` runs; 404 when it has none."""
    rows = data.runs(data.sanitized_root(), _topic(topic), runs)
    if not rows:
        raise HTTPException(status_code=404, detail=f"{topic} has no runs")
    return Response(counts_png(rows), media_type="image/png")


@app.get("/topics/{topic}/ds/{ds}/data-docs/{path:path}")
def data_docs(topic: str, ds: str, path: str = "index.html") -> Response:
    """A file of the GX Data Docs site of the partition (``index.html`` when ``path`` is empty)."""
    page = data.data_docs(data.sanitized_root(), _topic(topic), ds, path or "index.html")
    if page is None:
        raise HTTPException(status_code=404, detail=f"no Data Docs for {topic} ds={ds}")
    media = mimetypes.guess_type(page.name)[0] or "application/octet-stream"
    return Response(page.read_bytes(), media_type=media)
