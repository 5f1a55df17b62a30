"""Who answered, as every reader of a run shows it: a company_matching publication with a calibrated cascade
(RapidFuzz proxy, stub LLM over HTTP, as tests/test_cascade_stage.py) seen through the run metrics
(``metrics/llm_usage/`` row, publish summary, Asset extra), the Prompt Hub view (page and JSON) and
``pipeline-hub report`` (text, ``--json``, ``--html``). Each must show the records per route (proxy /
oracle), the calls saved and the cost saved of the manifest's ``usage.cascade``, and the view the version's
thresholds.
"""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pipeline_hub.stages.cascade_usage import ROUTE_FIGURES, run_routes
from pipeline_hub.stages.runner import run_pipeline

from conftest import DS

TOPIC = "company_matching"
THRESHOLDS = {
    "upper": 0.9, "lower": 0.5, "sample_size": 70, "calibrated_at": "2026-12-04",
    "achieved": {"precision": 0.99, "recall": 0.97, "oracle_share": 0.31},
}  # fmt: skip


@pytest.fixture
def published(stub, raw_zone, tmp_path, monkeypatch):
    """``(root, manifest, publish summary)``: company_matching published for ``DS`` with v1's cascade calibrated."""
    from lifecycle_helpers import copy_registry

    include = copy_registry(tmp_path)
    monkeypatch.setenv("PIPELINE_HUB_INCLUDE_DIR", str(include))
    meta_path = include / "prompts" / TOPIC / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta["versions"]["v1"]["cascade"] = {
        "proxy": "rapidfuzz", "target": {"precision": 0.95, "recall": 0.95}, "thresholds": THRESHOLDS,
    }  # fmt: skip
    meta_path.write_text(yaml.safe_dump(meta, sort_keys=False, default_flow_style=None))
    out = tmp_path / "out"
    result = run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS, topics=[TOPIC])
    assert not result.failed
    monkeypatch.setenv("PIPELINE_HUB_SANITIZED_URI", str(out))
    manifest = json.loads((out / "sanitized_data" / TOPIC / f"ds={DS}" / "_manifest.json").read_text())
    (summary,) = result.published
    routes = manifest["usage"]["cascade"]
    assert routes["proxy"] > 0 and routes["oracle"] > 0, "the sample has both sure and unsure names"
    return out, manifest, summary


@pytest.fixture
def client():
    from pipeline_hub.orchestration.ui import api

    api.app.dependency_overrides[api.AUTH] = lambda: None  # Airflow's auth: tests/test_prompt_hub_browser.py
    try:
        yield TestClient(api.app)
    finally:
        api.app.dependency_overrides.clear()


def test_run_metrics_count_the_records_per_route(published):
    from pipeline_hub.orchestration.lineage import asset_extra

    out, manifest, summary = published
    routes = manifest["usage"]["cascade"]
    (row,) = pq.read_table(out / "metrics" / "llm_usage" / f"ds={DS}" / f"{TOPIC}.parquet").to_pylist()
    assert (row["proxy_records"], row["oracle_records"]) == (routes["proxy"], routes["oracle"])
    assert row["calls_saved"] == routes["calls_saved"] == routes["proxy"]
    assert row["cost_saved_usd"] == routes["cost_saved_usd"]
    assert row["proxy_records"] + row["oracle_records"] == manifest["counts"]["published"]
    figures = {k: routes[k] for k in ROUTE_FIGURES}  # the manifest also has a model proxy's calls and cost
    assert summary["cascade"] == figures and asset_extra(summary)["cascade"] == figures  # XCom, Asset event


def test_run_routes_of_older_and_cascade_free_manifests():
    assert run_routes({}) is None and run_routes(None) is None  # written before routes were counted
    plain = run_routes({"records_by_route": {"primary": 5, "fallback": 1}, "cost_usd": 0.6})
    assert plain == {"proxy": 0, "oracle": 6, "calls_saved": 0, "cost_saved_usd": 0.0}


def test_prompt_hub_shows_routes_savings_and_thresholds(published, client):
    out, manifest, _ = published
    routes = {k: manifest["usage"]["cascade"][k] for k in ROUTE_FIGURES}
    html = client.get(f"/topics/{TOPIC}").text
    row = re.search(rf'<tr data-ds="{DS}">(.*?)</tr>', html, re.S).group(1)
    assert f'<span class="proxy">{routes["proxy"]}</span> / <span class="oracle">{routes["oracle"]}</span>' in row
    assert f'<span class="calls-saved">{routes["calls_saved"]}</span>' in row
    version = re.search(r'<tr data-version="v1">(.*?)</tr>', html, re.S).group(1)
    cell = re.search(r'<td class="cascade">(.*?)</td>', version, re.S).group(1)
    assert "rapidfuzz: upper 0.9 / lower 0.5" in cell and "n=70, calibrated 2026-12-04" in cell
    assert "precision 0.99, recall 0.97, to oracle 31%" in cell
    view = client.get(f"/api/topics/{TOPIC}").json()
    assert view["runs"][0]["cascade"] == routes
    assert view["registry"]["versions"][0]["cascade"]["thresholds"] == THRESHOLDS


def test_prompt_hub_reads_metrics_written_before_the_route_columns(published, client):
    """An older ``llm_usage`` file (no route columns) and manifest (no route counts) still render, with ``-``."""
    out, manifest, _ = published
    path = out / "metrics" / "llm_usage" / f"ds={DS}" / f"{TOPIC}.parquet"
    old = pq.read_table(path)
    pq.write_table(old.drop_columns(["proxy_records", "oracle_records", "calls_saved", "cost_saved_usd"]), path)
    m_path = out / "sanitized_data" / TOPIC / f"ds={DS}" / "_manifest.json"
    usage = {k: v for k, v in manifest["usage"].items() if k not in ("cascade", "records_by_route")}
    m_path.write_text(json.dumps({**manifest, "usage": usage}))
    page = client.get(f"/topics/{TOPIC}")
    assert page.status_code == 200, page.text
    row = re.search(rf'<tr data-ds="{DS}">(.*?)</tr>', page.text, re.S).group(1)
    assert '<td class="muted routes">-</td>' in row
    assert client.get(f"/api/topics/{TOPIC}").json()["runs"][0]["cascade"] is None
    report = CliRunner().invoke(_app(), ["report", "--ds", DS, "--root", str(out), "--json"])
    assert report.exit_code == 0 and json.loads(report.output)["topics"][0]["cascade"] is None


def _app():
    from pipeline_hub.cli import app

    return app


def test_report_shows_routes_and_savings_in_text_json_and_html(published, tmp_path):
    out, manifest, _ = published
    routes = {k: manifest["usage"]["cascade"][k] for k in ROUTE_FIGURES}
    runner = CliRunner()
    text = runner.invoke(_app(), ["report", "--ds", DS, "--root", str(out)])
    assert text.exit_code == 0, text.output
    header, _, line = text.output.splitlines()[1:4]
    assert "proxy/oracle" in header and "calls saved" in header and "cost saved (USD)" in header
    assert line.startswith(TOPIC) and f" {routes['proxy']}/{routes['oracle']} " in line
    as_json = runner.invoke(_app(), ["report", "--ds", DS, "--root", str(out), "--json"])
    assert as_json.exit_code == 0, as_json.output
    (topic,) = json.loads(as_json.output)["topics"]
    assert topic["topic"] == TOPIC and topic["cascade"] == routes
    page = tmp_path / "report.html"
    assert runner.invoke(_app(), ["report", "--ds", DS, "--root", str(out), "--html", str(page)]).exit_code == 0
    html = page.read_text()
    row = re.search(rf'<td class="name">{TOPIC}</td>.*?</tr>', html, re.S).group(0)
    assert f'<td class="routes">{routes["proxy"]} / {routes["oracle"]}</td>' in row
    assert f'<td class="calls-saved">{routes["calls_saved"]}</td>' in row
    assert "Cascade routes: records answered by the proxy" in html
