"""Analyst SQL: the DuckDB views (topics, joined company views, quarantine, usage, erasure audit), the
example queries, and the Athena DDL checked against real published Parquet from an in-process run."""

from __future__ import annotations

import json
import re
import shutil

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipeline_hub.analytics import athena
from pipeline_hub.analytics.query import connect, run_query
from pipeline_hub.cli import app
from pipeline_hub.config import include_dir
from pipeline_hub.governance.erasure import erase_subject
from pipeline_hub.prompts.registry import list_topics, load_topic
from pipeline_hub.stages.parquet import METRICS_SCHEMA, QUARANTINE_SCHEMA, published_schema
from pipeline_hub.stages.runner import run_pipeline

from conftest import DS, REPO, llm_conn

TOPIC_VIEWS = ["industry_classification", "use_case_extraction", "contact_extraction", "company_matching"]


def first_candidate(body: dict) -> dict | None:
    """company_matching answers with the top RapidFuzz candidate; other topics get the stub's default."""
    user = body["messages"][-1]["content"]
    if "Candidates:" in user:
        ids = re.findall(r"\[id (\w+)\]", user)
        return {"match_id": ids[0] if ids else None, "confidence": 0.9}
    return None


@pytest.fixture(scope="module")
def out(tmp_path_factory, stub_server):
    """All four topics published from the sample, plus: an S&P company that is also a patent applicant
    (Pfizer, so the joined view has a match), one use case without summary (quarantined), one erasure."""
    tmp = tmp_path_factory.mktemp("query")
    raw = tmp / "raw"
    for src in (REPO / "include" / "sample_data").iterdir():
        if src.is_dir():
            shutil.copytree(src, raw / src.name / DS, ignore=shutil.ignore_patterns("*.md", "LICENSE*"))
    with (raw / "companies" / DS / "companies.csv").open("a") as fh:
        fh.write('PFE,Pfizer Inc.,"New York City, New York"\n')
    (raw / "ai_use_cases" / DS / "more.jsonl").write_text(json.dumps({"id": "X-1", "agency": "A"}) + "\n")
    with pytest.MonkeyPatch.context() as mp:
        stub_server.reset()
        stub_server.responder = first_candidate
        mp.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(stub_server.base_url))
        mp.setenv("PIPELINE_HUB_LLM_CACHE", f"disk:{tmp / 'cache'}")
        result = run_pipeline(raw_root=str(raw), output_root=str(tmp / "out"), ds=DS)
        stub_server.reset()
    assert not result.failed and len(result.published) == 4
    erase_subject(str(tmp / "out"), ["Robert"], cache=False)  # an audit record for the erasure_audit view
    return tmp / "out"


def test_every_view_is_created_over_real_output(out):
    _, views = connect(str(out))
    assert views == [
        *TOPIC_VIEWS,
        "quarantine",
        "reference_companies",
        "company_matches",
        "companies",
        "llm_usage",
        "erasure_audit",
    ]
    cols, rows = run_query(str(out), "SELECT ds, count(*) FROM industry_classification GROUP BY ds")
    assert cols[0] == "ds" and str(rows[0][0]) == DS and rows[0][1] == 23


def test_views_of_unpublished_topics_and_their_joins_are_left_out(tmp_path):
    (tmp_path / "sanitized_data").mkdir()
    _, views = connect(str(tmp_path))
    assert views == ["reference_companies"]
    with pytest.raises(duckdb.CatalogException):
        run_query(str(tmp_path), "SELECT * FROM companies")


def test_companies_view_joins_classified_company_with_its_applicant_aliases(out):
    cols, rows = run_query(
        str(out),
        "SELECT company_id, name, sector, ref_id, reference_name, applicant_names FROM companies "
        "WHERE company_key = 'pfizer'",
    )
    assert len(rows) == 1
    pfizer = dict(zip(cols, rows[0], strict=True))
    assert pfizer["company_id"] == "PFE" and pfizer["name"] == "Pfizer Inc." and pfizer["sector"]
    assert pfizer["ref_id"] == "26795070" and pfizer["reference_name"] == "PFIZER LIMITED"
    assert pfizer["applicant_names"] == ["PFIZER"]
    # Every classified company and every matched reference company appears exactly once.
    _, counts = run_query(
        str(out),
        "SELECT count(company_id), count(DISTINCT company_id), count(ref_id), count(DISTINCT ref_id) FROM companies",
    )
    _, expected = run_query(
        str(out),
        "SELECT (SELECT count(*) FROM industry_classification), "
        "(SELECT count(DISTINCT ref_id) FROM company_matches WHERE ref_id IS NOT NULL)",
    )
    assert counts[0] == (expected[0][0], expected[0][0], expected[0][1], expected[0][1])


def test_company_key_normalises_legal_forms():
    con, _ = connect(str(include_dir()))  # any root: the macro needs no data
    names = ["Akzo Nobel N.V.", "AKZO NOBEL NV", "News Corp (Class B)", "THE GOODYEAR TIRE & RUBBER CO.", "BASF SE"]
    keys = [con.execute("SELECT company_key(?)", [n]).fetchone()[0] for n in names]
    assert keys == ["akzo nobel", "akzo nobel", "news", "goodyear tire rubber", "basf"]


def test_every_example_query_runs(out):
    con, _ = connect(str(out))
    statements = duckdb.extract_statements((include_dir() / "sql" / "examples.sql").read_text())
    assert len(statements) >= 10
    results = {}
    for st in statements:
        cur = con.execute(st.query)
        results[st.query.strip().splitlines()[-1]] = (cur.fetchall(), [d[0] for d in cur.description])
    by_reason = next(rows for q, (rows, cols) in results.items() if "topic" in cols and "reason" in cols)
    assert ("use_case_extraction", "missing_field", 1) in by_reason
    erasures = next(rows for q, (rows, cols) in results.items() if "erasure_id" in cols)
    assert len(erasures) == 1
    aliased = next(rows for q, (rows, cols) in results.items() if "applicant_names" in cols)
    assert [r[0] for r in aliased] == ["PFE"]


def test_cli_query_prints_json_rows(out):
    res = CliRunner().invoke(
        app, ["query", "--root", str(out), "--json", "SELECT company_id FROM companies WHERE ref_id = '26795070'"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == [{"company_id": "PFE"}]


# --- Athena DDL --------------------------------------------------------------------------------------


def ddl_tables() -> dict[str, dict]:
    return athena.parse_ddl(athena.ddl_path().read_text())


def hive_columns(schema) -> list[tuple[str, str]]:
    return [(f.name, athena.hive_type(f.type)) for f in schema]


def test_athena_ddl_columns_match_published_parquet(out):
    tables = ddl_tables()
    assert set(tables) == {*list_topics(), "quarantine", "llm_usage"}
    for topic in list_topics():
        t = tables[topic]
        files = list((out / "sanitized_data" / topic).glob("ds=*/part-*.parquet"))
        assert files, topic
        for f in files:
            assert t["columns"] == hive_columns(pq.read_schema(f)), f"{topic}: DDL drifted from {f.name}"
        assert t["partitions"] == [("ds", "string")]
        assert t["location"] == f"{{sanitized_root}}/sanitized_data/{topic}/"
    q_file = next((out / "quarantine").glob("*/ds=*/part-*.parquet"))
    assert tables["quarantine"]["columns"] == hive_columns(pq.read_schema(q_file))
    assert tables["quarantine"]["partitions"] == [("topic", "string"), ("ds", "string")]
    m_file = next((out / "metrics" / "llm_usage").glob("ds=*/*.parquet"))
    assert tables["llm_usage"]["columns"] == hive_columns(pq.read_schema(m_file))


def test_athena_ddl_matches_publish_schemas_of_every_topic_and_is_generated():
    tables = ddl_tables()
    for topic in list_topics():
        t = load_topic(topic)
        assert tables[topic]["columns"] == hive_columns(published_schema(t.prompt.output_schema, t.keep_fields))
    assert tables["quarantine"]["columns"] == hive_columns(QUARANTINE_SCHEMA)
    assert tables["llm_usage"]["columns"] == hive_columns(METRICS_SCHEMA)
    # Hand-written expectations, so the Arrow -> Hive mapping is not only checked against itself.
    contacts = dict(tables["contact_extraction"]["columns"])["contacts"]
    assert contacts == "array<struct<name:string,title:string,organisation:string,email:string,phone:string>>"
    assert dict(tables["use_case_extraction"]["columns"])["use_cases"] == (
        "array<struct<name:string,summary:string,techniques:array<string>>>"
    )
    assert dict(tables["llm_usage"]["columns"])["records_in"] == "bigint"
    assert athena.ddl_path().read_text() == athena.render_all(), "regenerate: pipeline-hub athena-ddl --write"


def test_athena_ddl_statements_are_complete_and_fillable():
    text = athena.fill(athena.ddl_path().read_text(), database="analytics", location="s3://my-bucket/")
    assert "{database}" not in text and "{sanitized_root}" not in text
    statements = [s for s in text.split(";") if "CREATE EXTERNAL TABLE" in s]
    assert len(statements) == len(list_topics()) + 2
    for s in statements:
        assert "STORED AS PARQUET" in s and "'projection.enabled' = 'true'" in s
        assert re.search(r"LOCATION 's3://my-bucket/[a-z_/]+/'", s)
        assert re.search(r"'storage.location.template' = 's3://my-bucket/[^']*ds=\$\{ds\}/'", s)
    res = CliRunner().invoke(app, ["athena-ddl", "--database", "analytics", "--location", "s3://my-bucket"])
    assert res.exit_code == 0 and res.output.strip() == text.strip()
