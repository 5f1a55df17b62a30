"""GDPR erasure: a subject seeded in the sample e-mails is published (pseudonymised), then erased from
the sanitized zone, quarantine and response cache, with manifests and an audit record that never
hold the value. Real pipeline output (in-process run against the stub over HTTP), real Parquet,
DuckDB, diskcache and SeaweedFS S3."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipeline_hub.analytics.query import run_query
from pipeline_hub.cli import app
from pipeline_hub.governance import erasure, register
from pipeline_hub.pii.pseudonym import load_key, pseudonymize
from pipeline_hub.providers.cache import DiskCache, ObjectStoreCache
from pipeline_hub.stages import parquet
from pipeline_hub.stages.runner import run_pipeline

from conftest import DS, REPO, llm_conn

EMAIL = "eronn@mail.utexas.edu"  # Ehud I. Ronn: one e-mail in the sample, and one invalid answer quoting it
NAME = "Vince J Kaminski"  # sender of two e-mails in the sample
X_FROM = re.compile(r'^X-From: "?([^"<\n]+?)"?\s*(?:<([^>\s]+@[^>\s]+)>.*)?$', re.M)
PHONE = re.compile(r"\(\d{3}\) ?\d{3}-\d{4}")


def contacts_from_headers(body: dict) -> str | dict | None:
    """contact_extraction answers with the X-From sender (name, e-mail) and the first phone number;
    Kay Mann's e-mail gets an answer that never validates (it quotes EMAIL), so it is quarantined."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")  # the record, also in repairs
    if "X-From:" not in user:
        return None
    m = X_FROM.search(user)
    if m and m.group(1).strip() == "Kay Mann":
        return json.dumps({"contacts": [{"email": EMAIL, "note": "forwarded by " + EMAIL}]})
    phone = PHONE.search(user)
    contact = {
        "name": m.group(1).strip() if m else None,
        "title": None,
        "organisation": None,
        "email": m.group(2) if m else None,
        "phone": phone.group(0) if phone else None,
    }
    return {"contacts": [contact]}


@pytest.fixture(scope="module")
def published(tmp_path_factory, stub_server):
    """contact_extraction and company_matching published from the sample; the run's response cache."""
    tmp = tmp_path_factory.mktemp("erasure")
    raw = tmp / "raw"
    for source in ("emails", "applicants"):
        src = REPO / "include" / "sample_data" / source
        shutil.copytree(src, raw / source / DS, ignore=shutil.ignore_patterns("*.md", "LICENSE*"))
    with pytest.MonkeyPatch.context() as mp:
        stub_server.reset()
        stub_server.responder = contacts_from_headers
        mp.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn(stub_server.base_url))
        mp.setenv("PIPELINE_HUB_LLM_CACHE", f"disk:{tmp / 'cache'}")
        result = run_pipeline(
            raw_root=str(raw), output_root=str(tmp / "out"), ds=DS, topics=["contact_extraction", "company_matching"]
        )
        stub_server.reset()
    assert not result.failed and len(result.published) == 2
    return tmp


@pytest.fixture
def zone(published, tmp_path):
    """A private copy of the published sanitized root and of the response cache."""
    shutil.copytree(published / "out", tmp_path / "out")
    shutil.copytree(published / "cache", tmp_path / "cache")
    return tmp_path / "out", DiskCache(str(tmp_path / "cache"))


def psn(value: str, kind: str) -> str:
    return pseudonymize(value, kind, load_key())


def contact_manifest(out: Path) -> dict:
    return json.loads((out / "sanitized_data" / "contact_extraction" / f"ds={DS}" / "_manifest.json").read_text())


def rows_mentioning(out: Path, pseudonym: str, view: str = "contact_extraction") -> list[str]:
    """record_ids of ``view`` whose row, cast to text by DuckDB, mentions ``pseudonym`` (independent of erasure)."""
    assert re.fullmatch(r"psn_[0-9a-f]{16}", pseudonym)
    _, rows = run_query(str(out), f"SELECT record_id FROM {view} AS t WHERE CAST(t AS VARCHAR) LIKE '%{pseudonym}%'")
    return sorted(r[0] for r in rows)


def tree_bytes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def cached_texts(cache: DiskCache) -> list[str]:
    return [json.dumps(cache.get(k)) for k in cache.keys()]


def test_erasing_an_email_removes_its_rows_everywhere_and_audits_without_the_value(zone, caplog):
    out, cache = zone
    target = psn(EMAIL, "EMAIL_ADDRESS")
    before = contact_manifest(out)
    published_before = run_query(str(out), "SELECT record_id FROM contact_extraction ORDER BY 1")[1]
    assert rows_mentioning(out, target) == ["kaminski-v_all_documents_4060"]  # seeded subject is published
    q_file = out / "quarantine" / "contact_extraction" / f"ds={DS}" / "part-00000.parquet"
    assert before["counts"]["quarantined"] == {"invalid_output": 1}
    assert target in pq.read_table(q_file).column("raw_answer")[0].as_py()  # scrubbed answer quoting it
    assert any(EMAIL in t for t in cached_texts(cache))  # the cache holds the unscrubbed answer
    entries_before = len(cached_texts(cache))

    with caplog.at_level(logging.DEBUG):
        result = erasure.erase_subject(str(out), [EMAIL], cache=cache)

    # Rows: gone from the published partition and from quarantine; every other row kept.
    assert result.rows_removed == 2
    assert {(o.zone, o.topic, o.rows_removed) for o in result.objects} == {
        ("sanitized_data", "contact_extraction", 1),
        ("quarantine", "contact_extraction", 1),
    }
    assert rows_mentioning(out, target) == []
    published_after = run_query(str(out), "SELECT record_id FROM contact_extraction ORDER BY 1")[1]
    assert published_after == [r for r in published_before if r[0] != "kaminski-v_all_documents_4060"]
    assert pq.read_table(q_file).num_rows == 0
    # The rewritten file keeps schema, zstd and lineage metadata, and says how many rows were erased.
    part = out / "sanitized_data" / "contact_extraction" / f"ds={DS}" / "part-00000.parquet"
    meta = pq.read_schema(part).metadata
    assert meta[b"pipeline_hub.batch_hash"].decode() == before["batch_hash"]
    assert meta[b"pipeline_hub.erased_rows"] == b"1"
    assert pq.ParquetFile(part).metadata.row_group(0).column(0).compression == "ZSTD"
    assert not list(part.parent.glob("_tmp-*"))
    # Manifest: counts describe the files, the erasure is recorded, conservation still holds.
    m = contact_manifest(out)
    c = m["counts"]
    assert c["published"] == before["counts"]["published"] - 1 == len(published_after)
    assert c["quarantined"] == {"invalid_output": 0} and c["quarantined_total"] == 0
    assert c["erased"] == 2 and c["in"] == c["published"] + c["quarantined_total"] + c["erased"]
    assert [(e["zone"], e["rows_removed"], e["erasure_id"]) for e in m["erasures"]] == [
        ("sanitized_data", 1, result.erasure_id),
        ("quarantine", 1, result.erasure_id),
    ]
    # Response cache: the entries quoting the value are purged, the others kept.
    assert result.cache_entries_purged >= 2  # the valid answer and the invalid one (and its repair)
    assert not any(EMAIL in t for t in cached_texts(cache))
    assert len(cached_texts(cache)) == entries_before - result.cache_entries_purged > 0
    # Audit: one immutable record with pseudonyms and counts, never the value.
    [record] = register.read_audit(str(out))
    assert record["erasure_id"] == result.erasure_id and record["rows_removed"] == 2
    assert {p["kind"]: p["pseudonym"] for p in record["pseudonyms"]} == {
        "PERSON": psn(EMAIL, "PERSON"),
        "EMAIL_ADDRESS": target,
    }
    assert len(record["objects_rewritten"]) == 2 and record["cache"]["entries_purged"] == result.cache_entries_purged
    assert result.audit_uri.startswith("file://") and "/_audit/erasure/" in result.audit_uri
    everything = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert EMAIL.encode() not in everything and b"eronn" not in everything
    assert "eronn" not in caplog.text


def test_an_erased_subject_is_not_published_again_from_raw_data_still_held(zone, published, stub, monkeypatch):
    """The raw zone keeps the subject until retention expires it: a re-run (backfill, new prompt version,
    lost index) quarantines the subject's rows as erased_subject instead of publishing them again."""
    out, _ = zone
    target = psn(EMAIL, "EMAIL_ADDRESS")
    erasure.erase_subject(str(out), [EMAIL], cache=False)
    shutil.rmtree(out / "_index" / "contact_extraction")  # forces the topic to run again
    stub.responder = contacts_from_headers
    monkeypatch.setenv("PIPELINE_HUB_LLM_CACHE", f"disk:{out.parent / 'cache'}")
    result = run_pipeline(raw_root=str(published / "raw"), output_root=str(out), ds=DS, topics=["contact_extraction"])
    assert [p["topic"] for p in result.published] == ["contact_extraction"]
    assert rows_mentioning(out, target) == []
    m = contact_manifest(out)
    c = m["counts"]
    assert c["quarantined"][register.ERASED_REASON] == 1 and c["in"] == c["published"] + c["quarantined_total"]
    q_file = out / "quarantine" / "contact_extraction" / f"ds={DS}" / "part-00000.parquet"
    quarantined = pq.read_table(q_file).to_pylist()
    assert {r["record_id"] for r in quarantined if r["reason"] == register.ERASED_REASON} == {
        "kaminski-v_all_documents_4060"
    }
    assert not any(target in (r["raw_answer"] or "") for r in quarantined)  # the invalid answer quoting it too


def test_erasing_a_name_matches_whole_values_and_free_text(zone):
    out, cache = zone
    assert len(rows_mentioning(out, psn(NAME, "PERSON"))) == 2
    result = erasure.erase_subject(str(out), [NAME], cache=cache)
    assert result.rows_removed == 2 and rows_mentioning(out, psn(NAME, "PERSON")) == []
    assert set(result.pseudonyms.values()) == {"PERSON"}  # no '@', no digits: a name only
    # Presidio pseudonymised the first name inside a free-text field (company_matching.name "BOSCH psn_…").
    robert = psn("Robert", "PERSON")
    assert rows_mentioning(out, robert, "company_matching") == ["3400399"]
    result = erasure.erase_subject(str(out), ["ROBERT"], cache=cache)
    assert [(o.topic, o.rows_removed) for o in result.objects] == [("company_matching", 1)]
    assert rows_mentioning(out, robert, "company_matching") == []


def test_dry_run_writes_nothing(zone):
    out, cache = zone
    files, entries = tree_bytes(out), cached_texts(cache)
    result = erasure.erase_subject(str(out), [EMAIL], cache=cache, dry_run=True)
    assert result.rows_removed == 2 and result.cache_entries_purged >= 2 and result.audit_uri is None
    assert tree_bytes(out) == files and cached_texts(cache) == entries


def test_absent_subject_rewrites_nothing_but_is_audited_and_erasure_is_idempotent(zone):
    out, cache = zone
    files = tree_bytes(out)
    result = erasure.erase_subject(str(out), ["nobody@example.org"], cache=cache)
    assert result.rows_removed == 0 and result.objects == [] and result.objects_scanned == 3
    after = tree_bytes(out)
    changed = {k for k in after if files.get(k) != after[k]}
    assert all(k.startswith("_audit/erasure/") for k in changed) and len(changed) == 1
    erasure.erase_subject(str(out), [EMAIL], cache=cache)
    again = erasure.erase_subject(str(out), [EMAIL], cache=cache)
    assert again.rows_removed == 0 and again.cache_entries_purged == 0
    assert len(contact_manifest(out)["erasures"]) == 2 and len(register.read_audit(str(out))) == 3


def test_cli_reads_the_subject_from_stdin_and_never_prints_it(zone):
    out, _ = zone
    res = CliRunner().invoke(
        app, ["erase", "--subject", "-", "--root", str(out), "--cache", "off"], input=f"{EMAIL}\n{NAME}\n"
    )
    assert res.exit_code == 0, res.output
    assert EMAIL not in res.output and "Kaminski" not in res.output
    report = json.loads(res.output)
    assert report["rows_removed"] == 4 and report["cache"]["backend"] == "none"
    assert report["audit"].endswith(".jsonl")
    res = CliRunner().invoke(app, ["erase", "--subject", "  ", "--root", str(out), "--cache", "off"])
    assert res.exit_code == 2 and "empty" in res.output


def test_every_row_of_a_partition_erased_leaves_a_readable_empty_file(tmp_path):
    """Nested list<struct> leaves are matched; a fully erased partition keeps its schema."""
    topic_schema = {
        "type": "object",
        "properties": {
            "contacts": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": ["string", "null"]}}},
            }
        },
    }
    schema = parquet.published_schema(topic_schema, [])
    target = psn("Jane Roe", "PERSON")
    lineage = {c: "x" for c in ("batch_hash", "prompt_name", "prompt_version", "template_sha256", "model", "run_id")}
    rows = [
        {"record_id": "1", **lineage, "contacts": [{"name": None}, {"name": target}]},
        {"record_id": "2", **lineage, "contacts": [{"name": f"cc {target}, psn_0123456789abcdef"}]},
    ]
    part = tmp_path / "sanitized_data" / "t" / "ds=2025-01-01" / "part-00000.parquet"
    parquet.write_table(parquet.storage.to_path(str(part)), rows, schema, {"pipeline_hub.topic": "t"})
    result = erasure.erase_subject(str(tmp_path), ["Jane Roe"], cache=False)
    assert result.rows_removed == 2
    table = pq.read_table(part)
    assert table.num_rows == 0 and table.schema.equals(schema)
    assert table.schema.metadata[b"pipeline_hub.topic"] == b"t"


def test_subject_pseudonyms_and_raw_value_matching():
    key = b"k" * 32
    assert set(erasure.subject_pseudonyms(["A.B@Example.org"], key).values()) == {"PERSON", "EMAIL_ADDRESS"}
    assert set(erasure.subject_pseudonyms(["+1 (512) 471-5853"], key).values()) == {"PERSON", "PHONE_NUMBER"}
    assert set(erasure.subject_pseudonyms(["ext. 5853"], key).values()) == {"PERSON"}  # too short for a phone
    assert erasure.subject_pseudonyms(["a.b@example.org"], key) == erasure.subject_pseudonyms(["A.B@EXAMPLE.ORG"], key)
    with pytest.raises(erasure.SubjectError, match="#1") as exc:
        erasure.subject_pseudonyms(["   "], key)
    assert "   " not in str(exc.value)
    matches = erasure.raw_value_matcher(["Ehud  Ronn", "(512) 471-5853"])
    assert matches('{"name": "ehud ronn"}') and matches("call 512.471.5853 now") and matches("+1 512 4715853")
    assert not matches("Ehud Ronnson") and not matches("call 25124715853")
    assert not erasure.raw_value_matcher(["Al"])("Alice and Albert")


# --- the same on S3 (SeaweedFS) with the shared object-store cache -----------------------------------


def test_erasure_on_s3_with_object_store_cache(published, seaweed, monkeypatch):
    s3 = seaweed
    # A connection id of its own: Airflow caches one file system per connection id per process.
    monkeypatch.setenv("AIRFLOW_CONN_AWS_ERASURE", json.dumps(s3.airflow_connection()))
    client = s3.client()
    out = published / "out"
    for f in out.rglob("*"):
        if f.is_file():
            client.put_object(Bucket="sanitized", Key=f"zone/{f.relative_to(out)}", Body=f.read_bytes())
    cache = ObjectStoreCache("s3://aws_erasure@raw/llm-cache")
    source = DiskCache(str(published / "cache"))
    for key in source.keys():
        cache.set(key, source.get(key))
    root = "s3://aws_erasure@sanitized/zone"
    target = psn(EMAIL, "EMAIL_ADDRESS")
    assert rows_mentioning(root, target) == ["kaminski-v_all_documents_4060"]

    result = erasure.erase_subject(root, [EMAIL], cache=cache)

    assert result.rows_removed == 2 and result.audit_uri.startswith("s3://sanitized/zone/_audit/erasure/")
    assert rows_mentioning(root, target) == []
    m = json.loads(
        client.get_object(Bucket="sanitized", Key=f"zone/sanitized_data/contact_extraction/ds={DS}/_manifest.json")[
            "Body"
        ].read()
    )
    assert m["counts"]["erased"] == 2 and len(m["erasures"]) == 2
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="sanitized", Prefix="zone/")["Contents"]]
    assert not [k for k in keys if "/_tmp-" in k]
    assert len(register.read_audit(root)) == 1
    assert result.cache_entries_purged >= 2 and not any(EMAIL in json.dumps(cache.get(k)) for k in cache.keys())
    assert len(list(cache.keys())) == len(list(source.keys())) - result.cache_entries_purged
