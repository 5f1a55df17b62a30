"""``pipeline-hub report --html``: a self-contained page with plots of a partition, figures and names only."""

from __future__ import annotations

import csv
import json
import re
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipeline_hub.analytics import report_html
from pipeline_hub.analytics.query import run_query
from pipeline_hub.cli import app
from pipeline_hub.stages.runner import run_pipeline

from conftest import DS, REPO, llm_conn

TOPICS = ["industry_classification", "use_case_extraction"]


def sample_company_name() -> str:
    """A company name of the bundled sample (include/sample_data/companies/companies.csv): record text."""
    with (REPO / "include" / "sample_data" / "companies" / "companies.csv").open(newline="") as fh:
        return next(csv.DictReader(fh))["name"]


@pytest.fixture(scope="module")
def published(tmp_path_factory, stub_server):
    """A sanitized root with ``DS`` published for two topics, two records quarantined as unparseable and one
    as missing_field (run in-process against the stub LLM)."""
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("report")
    mp.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(stub_server.base_url))
    mp.setenv("PIPELINE_HUB_LLM_CACHE", f"disk:{tmp / 'cache'}")
    mp.setenv("PIPELINE_HUB_STATE_DIR", str(tmp / "state"))
    raw = tmp / "raw"
    for source in ("companies", "ai_use_cases"):
        dest = raw / source / DS
        dest.mkdir(parents=True)
        for f in (REPO / "include" / "sample_data" / source).iterdir():
            if f.suffix in (".csv", ".jsonl"):
                shutil.copy(f, dest / f.name)
    bad = ["{not json", '"a string"', json.dumps({"id": "X-1", "agency": "A"})]
    (raw / "ai_use_cases" / DS / "more.jsonl").write_text("\n".join(bad) + "\n")
    out = tmp / "out"
    stub_server.reset()
    result = run_pipeline(raw_root=str(raw), output_root=str(out), ds=DS, topics=TOPICS)
    assert not result.failed and sorted(p["topic"] for p in result.published) == TOPICS
    yield out
    mp.undo()


def manifest_counts(out, topic: str) -> dict:
    return json.loads((out / "sanitized_data" / topic / f"ds={DS}" / "_manifest.json").read_text())["counts"]


def test_html_report_has_plots_topics_and_counts_and_no_record_text(published, tmp_path):
    name = sample_company_name()
    _, rows = run_query(str(published), "SELECT name FROM industry_classification")
    assert name in {r[0] for r in rows}  # the value is published: the page must still not show it

    page = tmp_path / "report.html"
    proc = CliRunner().invoke(app, ["report", "--ds", DS, "--root", str(published), "--html", str(page)])
    assert proc.exit_code == 0, proc.output
    html = page.read_text()
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', html)) >= 3
    assert "<script" not in html and "http://" not in html and "https://" not in html  # self-contained
    for topic in TOPICS:
        c = manifest_counts(published, topic)
        row = re.search(rf'<td class="name">{topic}</td>.*?</tr>', html, re.S).group(0)
        cells = re.findall(r"<td>([^<]*)</td>", row)
        assert cells[:3] == [str(c["in"]), str(c["published"]), str(c["quarantined_total"])], cells
    assert manifest_counts(published, "use_case_extraction")["quarantined"] == {"unparseable": 2, "missing_field": 1}
    assert re.search(r'<td class="name">use_case_extraction</td><td class="name">unparseable</td><td>2</td>', html)
    assert name not in html and name.lower() not in html.lower()
    assert "metrics/drift/ does not exist" in html  # no drift metrics yet: a note instead of the plot


def test_html_report_reads_usage_metrics_and_drift_through_duckdb(published, tmp_path):
    drift = published / "metrics" / "drift" / f"ds={DS}" / "industry_classification.parquet"
    drift.parent.mkdir(parents=True)
    row = {"topic": "industry_classification", "status": "drift", "psi_threshold": 0.2, "label_psi": 0.31}
    row |= {"confidence_psi": 0.05, "input_length_psi": 0.01, "label_chi2_p": 0.003, "notes": ["free text"]}
    pq.write_table(pa.Table.from_pylist([row]), drift)
    try:
        data = report_html.collect(str(published), DS)
        html = report_html.render_html(data)
    finally:
        shutil.rmtree(published / "metrics" / "drift")  # the other tests see a root without drift
    assert data.drift == [{k: v for k, v in row.items() if k != "notes"}]
    usage = {t["topic"]: t for t in data.topics}
    assert all(usage[t]["llm_calls"] > 0 and usage[t]["latency_p50_s"] is not None for t in TOPICS)
    assert len(re.findall(r"<img ", html)) == 5  # counts, reasons, cost, latency, drift
    assert 'id="drift"' in html and "0.31" in html and "free text" not in html


def test_report_sql_takes_ds_as_a_parameter():
    for sql in (report_html.USAGE_SQL, report_html.DRIFT_VIEW_SQL, report_html.DRIFT_FILES_SQL):
        assert "$ds" in sql and DS not in sql and "{" not in sql


def test_report_of_a_ds_with_nothing_published_exits_1_without_a_page(published, tmp_path):
    page = tmp_path / "empty.html"
    proc = CliRunner().invoke(app, ["report", "--ds", "2025-01-16", "--root", str(published), "--html", str(page)])
    assert proc.exit_code == 1
    assert "nothing published" in proc.output and "ds=2025-01-16" in proc.output
    assert not page.exists()
