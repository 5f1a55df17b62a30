"""`pipeline-hub scrub`: JSONL, CSV and Parquet files scrubbed into the same format, chosen columns only."""

from __future__ import annotations

import csv
import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipeline_hub.cli import app
from pipeline_hub.pii.scrub_file import ScrubFileError, scrub_file
from pipeline_hub.pii.scrubber import Scrubber

NOTE = "Call Maria Gonzalez on +44 20 7946 0958 or mail maria.gonzalez@acme.co.uk"


@pytest.fixture(scope="module")
def scrubber():
    with Scrubber(key=bytes.fromhex("22" * 32)) as s:
        yield s


def test_csv_keeps_header_other_columns_and_numbers(tmp_path, scrubber):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(f'id,name,note,amount\n1,Maria Gonzalez,"{NOTE}",12.50\n2,Acme Widgets,no pii,3\n')
    result = scrub_file(src, dst, ["note"], scrubber=scrubber)
    rows = list(csv.DictReader(dst.open()))
    assert [r["id"] for r in rows] == ["1", "2"] and rows[0]["amount"] == "12.50"
    assert rows[0]["name"] == "Maria Gonzalez"  # not a chosen column
    assert "Gonzalez" not in rows[0]["note"] and "7946" not in rows[0]["note"] and "psn_" in rows[0]["note"]
    assert result == {"rows": 2, "values": 2, "pii_found": {"EMAIL_ADDRESS": 1, "PERSON": 1, "PHONE_NUMBER": 1}}


def test_gzipped_jsonl_scrubs_nested_strings_and_skips_non_text(tmp_path, scrubber):
    src, dst = tmp_path / "in.jsonl.gz", tmp_path / "out.jsonl.gz"
    record = {"id": 7, "contact": {"note": NOTE, "tags": ["vip", "Maria Gonzalez"]}, "ok": True, "n": None}
    src.write_bytes(gzip.compress((json.dumps(record) + "\n").encode()))
    result = scrub_file(src, dst, policy="redact", scrubber=scrubber)
    out = json.loads(gzip.decompress(dst.read_bytes()))
    assert out["id"] == 7 and out["ok"] is True and out["n"] is None and out["contact"]["tags"][0] == "vip"
    assert out["contact"]["tags"][1] == "<PERSON>" and "<EMAIL_ADDRESS>" in out["contact"]["note"]
    assert result["rows"] == 1 and result["pii_found"]["PERSON"] == 2


def test_parquet_keeps_schema_metadata_and_non_text_columns(tmp_path, scrubber):
    src, dst = tmp_path / "in.parquet", tmp_path / "out.parquet"
    table = pa.table(
        {"note": [NOTE, None], "score": [0.5, 0.7], "tags": [["Maria Gonzalez"], []]}
    ).replace_schema_metadata({b"origin": b"test"})
    pq.write_table(table, src)
    scrub_file(src, dst, scrubber=scrubber)
    out = pq.read_table(dst)
    assert out.schema.equals(table.schema) and out.schema.metadata[b"origin"] == b"test"
    assert out.column("score").to_pylist() == [0.5, 0.7] and out.column("note").to_pylist()[1] is None
    assert "Gonzalez" not in str(out.to_pylist())


def test_bad_requests_name_the_file(tmp_path, scrubber):
    src = tmp_path / "in.jsonl"
    src.write_text('{"a": "x"}\n{broken\n')
    with pytest.raises(ScrubFileError, match=r"in.jsonl line 2: not valid JSON"):
        scrub_file(src, tmp_path / "o.jsonl", scrubber=scrubber)
    src.write_text('{"a": "x"}\n')
    with pytest.raises(ScrubFileError, match=r"in.jsonl: no column\(s\) \['b'\]"):
        scrub_file(src, tmp_path / "o.jsonl", ["b"], scrubber=scrubber)
    with pytest.raises(ScrubFileError, match="output must have the input's format"):
        scrub_file(src, tmp_path / "o.csv", scrubber=scrubber)
    with pytest.raises(ScrubFileError, match="must not overwrite the input"):
        scrub_file(src, src, scrubber=scrubber)


def test_cli_scrub_prints_counts_and_fails_cleanly(tmp_path):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(f'id,note\n1,"{NOTE}"\n')
    runner = CliRunner()
    ok = runner.invoke(app, ["scrub", "--input", str(src), "--output", str(dst), "--columns", "note"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output[ok.output.index("{") :])["pii_found"]["EMAIL_ADDRESS"] == 1
    bad = runner.invoke(app, ["scrub", "--input", str(src), "--output", str(dst), "--columns", "nope"])
    assert bad.exit_code == 2 and "no column(s) ['nope']" in bad.output
