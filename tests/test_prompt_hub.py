"""The Prompt Hub view (``pipeline_hub.orchestration.ui``): the plugin as Airflow loads it, and the pages
rendered through FastAPI's TestClient over a partition published by the in-process pipeline.

The browser test against a real ``airflow api-server`` is tests/test_prompt_hub_browser.py.
"""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from pipeline_hub.stages.runner import run_pipeline

from conftest import DS

TOPIC = "industry_classification"


@pytest.fixture
def published(stub, raw_zone, tmp_path, monkeypatch):
    """A sanitized root with ``TOPIC`` published for ``DS``; returns (root, manifest)."""
    out = tmp_path / "out"
    result = run_pipeline(raw_root=str(raw_zone), output_root=str(out), ds=DS, topics=[TOPIC])
    assert not result.failed
    monkeypatch.setenv("PIPELINE_HUB_SANITIZED_URI", str(out))
    manifest = json.loads((out / "sanitized_data" / TOPIC / f"ds={DS}" / "_manifest.json").read_text())
    return out, manifest


ANALYST = "ana.lyst"


@pytest.fixture
def client():
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from pipeline_hub.orchestration.ui import api

    api.app.dependency_overrides[api.AUTH] = lambda: None  # Airflow's auth is tested in the browser test
    api.app.dependency_overrides[api.get_user] = lambda: SimpleAuthManagerUser(username=ANALYST, role="viewer")
    try:
        yield TestClient(api.app)
    finally:
        api.app.dependency_overrides.clear()


def test_the_entry_point_registers_the_plugin_with_app_view_and_link():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="airflow.plugins") if e.value.startswith("pipeline_hub.")]
    plugin = ep.load()()
    (app,) = plugin.fastapi_apps
    assert app["url_prefix"] == "/pipeline-hub" and app["app"].title == "Prompt Hub"
    (view,) = plugin.external_views
    assert view["href"] == "/pipeline-hub/" and view["url_route"] == "prompt-hub" and view["destination"] == "nav"
    assert [link.name for link in plugin.operator_extra_links] == ["Prompt Hub"]


def test_publish_operator_links_to_its_topic_page():
    from pipeline_hub.orchestration.operators import PublishOperator

    op = PublishOperator(task_id="publish", plan_uri="file:///x/plan.json", topic=TOPIC)
    (link,) = op.operator_extra_links
    assert link.get_link(op, ti_key=None).endswith(f"/pipeline-hub/topics/{TOPIC}")


def test_routes_require_airflow_auth(published):
    from pipeline_hub.orchestration.ui import api

    assert TestClient(api.app).get("/").status_code in (401, 403)


def test_topic_page_shows_versions_labels_and_the_run_numbers(published, client):
    out, m = published
    page = client.get(f"/topics/{TOPIC}")
    assert page.status_code == 200, page.text
    html = page.text
    row = re.search(rf'<tr data-ds="{DS}">(.*?)</tr>', html, re.S).group(1)
    cell = lambda cls: re.search(rf'class="num {cls}">(\d+)', row).group(1)  # noqa: E731
    assert int(cell("published")) == m["counts"]["published"]
    assert int(cell("records-in")) == m["counts"]["in"]
    assert int(cell("llm-calls")) == m["usage"]["llm_calls"]
    assert "passed" in row and "Data Docs" in row and all(f"{k}: {n}" in row for k, n in m["pii_found"].items())
    assert '<span class="label prod">prod</span>' in html and '<img id="counts-chart"' in html
    # Never record text: no company name from the published Parquet appears on the page.
    import pyarrow.parquet as pq

    names = pq.read_table(out / "sanitized_data" / TOPIC / f"ds={DS}" / "part-00000.parquet").column("name")
    assert not [n for n in names.to_pylist() if n and n in html]


def test_index_json_chart_and_data_docs(published, client):
    _, m = published
    index = client.get("/")
    assert index.status_code == 200 and f'href="/pipeline-hub/topics/{TOPIC}"' in index.text
    view = client.get(f"/api/topics/{TOPIC}").json()
    assert view["runs"][0]["published"] == m["counts"]["published"] and view["registry"]["labels"]["prod"] == "v1"
    png = client.get(f"/topics/{TOPIC}/counts.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    docs = client.get(f"/topics/{TOPIC}/ds/{DS}/data-docs/index.html")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    assert client.get(f"/topics/{TOPIC}/ds/{DS}/data-docs/../../x").status_code == 404
    assert client.get("/topics/no_such_topic").status_code == 404
    # A topic with no run yet renders, saying so.
    assert "No run published yet" in client.get("/topics/contact_extraction").text


def test_topic_page_shows_labels_changelog_and_who_promoted_when(client, tmp_path, monkeypatch):
    from lifecycle_helpers import copy_registry

    include = copy_registry(tmp_path)
    monkeypatch.setenv("PIPELINE_HUB_INCLUDE_DIR", str(include))
    monkeypatch.setenv("PIPELINE_HUB_SANITIZED_URI", str(tmp_path / "empty-root"))
    prompts = include / "prompts"
    meta = prompts / TOPIC / "metadata.yaml"
    meta.write_text(meta.read_text() + "labels: {canary: v1}\n")  # a named label (the registry-labels slice)
    entry = {"at": "2026-11-30T09:00:00+00:00", "actor": "ana.lyst", "action": "promote", "topic": TOPIC}
    (prompts / "_audit.jsonl").write_text(json.dumps({**entry, "from": "v0", "to": "v1"}) + "\n")
    (prompts / TOPIC / "CHANGELOG.md").write_text("# changelog\n\n- 2026-11-30 prod v0 -> v1 (ana.lyst)\n")
    html = client.get(f"/topics/{TOPIC}").text
    audit = re.search(r'<table id="audit">(.*?)</table>', html, re.S).group(1)
    assert all(v in audit for v in ("2026-11-30T09:00:00+00:00", "ana.lyst", "promote", "v0", "v1"))
    assert "prod v0 -&gt; v1" in html and '<span class="label canary">canary</span>' in html
    assert "No run published yet" in html


def test_a_quarantine_shows_its_reasons_and_failed_expectations(published, client):
    out, m = published
    path = out / "sanitized_data" / TOPIC / f"ds={DS}" / "_manifest.json"
    m["counts"]["quarantined"] = {"missing_field": 1, "unparseable": 2}
    m["quality"]["success"] = False
    m["quality"]["expectations"][0] |= {"success": False, "unexpected_count": 3}
    path.write_text(json.dumps(m))
    row = re.search(rf'<tr data-ds="{DS}">(.*?)</tr>', client.get(f"/topics/{TOPIC}").text, re.S).group(1)
    assert "unparseable: 2" in row and "missing_field: 1" in row and "failed" in row
    assert f"{m['quality']['expectations'][0]['check']}: 3" in row


def test_the_dag_serializes_the_prompt_hub_link_of_the_publish_task():
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    from conftest import REPO

    dag = DagBag(dag_folder=str(REPO / "dags" / "prompt_pipeline.py")).dags["prompt_pipeline"]
    data = DagSerialization.to_dict(dag)
    tasks = {t["__var"]["task_id"]: t["__var"] for t in data["dag"]["tasks"]}
    assert tasks["publish"]["_operator_extra_links"] == {"Prompt Hub": "_link_PromptHubLink"}


def _published_rows(out) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(out / "sanitized_data" / TOPIC / f"ds={DS}" / "part-00000.parquet").to_pylist()


def test_versions_show_their_gate_scores(published, client, tmp_path, monkeypatch):
    from pipeline_hub import storage
    from pipeline_hub.lifecycle.scoring import score_paths

    monkeypatch.setenv("PIPELINE_HUB_ARTIFACTS_URI", str(tmp_path / "artifacts"))
    score = {
        "version": "v1", "gate_metric": "macro_f1", "gate_value": 0.8125, "invalid": {"rate": 0.05},
        "usage": {"cost_usd": 0.0123}, "model": "gemma-3-270m", "examples_sha256": "e" * 64,
        "template_sha256": "t" * 64, "scored_at": "2026-12-01T10:00:00+00:00",
    }  # fmt: skip
    path = score_paths(str(tmp_path / "artifacts"), TOPIC, "v1")["json"]
    path.parent.mkdir(parents=True, exist_ok=True)
    storage.write_json(path, score)
    html = client.get(f"/topics/{TOPIC}").text
    row = re.search(r'<tr data-version="v1">(.*?)</tr>', html, re.S).group(1)
    assert "macro_f1 0.812" in row and "5.0%" in row and "gemma-3-270m" in row
    assert client.get(f"/api/topics/{TOPIC}").json()["registry"]["versions"][0]["score"]["value"] == 0.8125
    # A truncated score file does not break the page; it says what to run.
    path.write_text("{")
    row = re.search(r'<tr data-version="v1">(.*?)</tr>', client.get(f"/topics/{TOPIC}").text, re.S).group(1)
    assert "score file unreadable" in row and f"pipeline-hub score --topic {TOPIC} --version v1" in row


def test_a_run_shows_its_drift_and_the_label_distribution_chart(published, client):
    from pipeline_hub.analytics.drift_store import write_drift

    out, _ = published
    labels = [{"label": "Energy", "current": 3, "baseline": 10}, {"label": "Financials", "current": 7, "baseline": 2}]
    write_drift(str(out), DS, {
        "topic": TOPIC, "status": "drift", "psi_threshold": 0.2, "drifted": ["label"], "label_field": "sector",
        "label_psi": 0.731, "label_chi2_p": 0.004, "labels": labels, "confidence_shift": -0.12,
    })  # fmt: skip
    html = client.get(f"/topics/{TOPIC}").text
    cell = re.search(rf'<tr data-ds="{DS}">.*?<td class="drift">(.*?)</td>', html, re.S).group(1)
    assert "drift" in cell and "label PSI 0.731" in cell and "p 0.004" in cell and "-0.120" in cell
    assert "over 0.2: label" in cell
    assert '<img id="labels-chart"' in html and '<img id="cost-chart"' in html
    assert client.get(f"/api/topics/{TOPIC}").json()["runs"][0]["drift"]["labels"] == labels


def test_the_feedback_form_records_the_authenticated_user_and_never_shows_the_note(published, client):
    out, _ = published
    record = _published_rows(out)[0]
    right = "Energy" if record["sector"] != "Energy" else "Financials"
    note = "wrong sector, ask jane.doe@example.com"
    form = {"record_id": record["record_id"], "label": right.lower(), "note": note, "author": "mallory"}
    answer = client.post(f"/topics/{TOPIC}/feedback", data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/pipeline-hub/topics/{TOPIC}?feedback=recorded#feedback"
    from pipeline_hub.prompts.feedback import read_feedback

    (stored,) = read_feedback(str(out), TOPIC)
    assert stored["author"] == ANALYST and stored["label"] == right and "jane.doe@example.com" not in stored["note"]
    html = client.get(f"/topics/{TOPIC}?feedback=recorded").text  # the TestClient is not under the prefix
    assert 'id="notice"' in html
    by_version = re.search(r'<table id="feedback-by-version">(.*?)</table>', html, re.S).group(1)
    assert 'class="num feedback-count">1<' in by_version and 'class="num corrections">1<' in by_version
    latest = re.search(r'<table id="feedback-latest">(.*?)</table>', html, re.S).group(1)
    assert ANALYST in latest and f'class="feedback-label">{right}<' in latest and "yes (not shown)" in latest
    assert stored["note"] not in html and "jane.doe" not in html
    assert client.get(f"/api/topics/{TOPIC}").json()["feedback"]["by_version"]["v1"]["corrections"] == 1


def test_a_refused_feedback_shows_one_line_and_stores_nothing(published, client):
    out, _ = published
    record = _published_rows(out)[0]
    bad_label = client.post(f"/topics/{TOPIC}/feedback", data={"record_id": record["record_id"], "label": "Bananas"})
    assert bad_label.status_code == 400
    error = re.search(r'<p id="feedback-error" class="bad">(.*?)</p>', bad_label.text, re.S).group(1)
    assert "not a valid &#39;sector&#39;" in error and "\n" not in error
    unknown = client.post(f"/topics/{TOPIC}/feedback", data={"record_id": "no-such-id-42", "label": "Energy"})
    assert unknown.status_code == 400 and "no-such-id-42" not in unknown.text
    assert "no published record with that record_id" in unknown.text
    assert client.post("/topics/no_such_topic/feedback", data={"record_id": "x", "label": "y"}).status_code == 404
    assert not (out / "feedback").exists()
