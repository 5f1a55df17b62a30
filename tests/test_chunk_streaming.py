"""The streamed chunk stage keeps the batch rules: an object rejected whole after some records leaves
nothing behind (no staged record, no reject row, no duplicate digest or id), and chunks are cut at the
size the source's record count fixes (``max_chunks``)."""

from __future__ import annotations

import gzip
import json

import pytest

from pipeline_hub import stages
from pipeline_hub.config import Settings
from pipeline_hub.stages.spool import LineSpool, write_chunks

from conftest import DS, llm_conn

TOPIC, SOURCE = "use_case_extraction", "ai_use_cases"


def use_case(i: int, **extra) -> str:
    return json.dumps({"id": f"UC-{i}", "agency": "A", "summary": f"case {i}", **extra}) + "\n"


def chunked(tmp_path, monkeypatch, chunk_size: int = 500, max_chunks: int = 100):
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", llm_conn("http://127.0.0.1:9/v1"))
    monkeypatch.setenv("PIPELINE_HUB_MAX_CHUNKS", str(max_chunks))
    settings = Settings.from_env(
        raw_root=str(tmp_path / "raw"),
        sanitized_root=str(tmp_path / "out"),
        staging_root=str(tmp_path / "staging"),
        chunk_size=chunk_size,
    )
    found = stages.run_discover(settings, DS, [TOPIC], None)
    planned = stages.run_hash(settings, found, run_id="stream", row_limit=None, llm_conn_id="llm_default")
    items = stages.run_chunk(planned["plan_uri"])
    out = tmp_path / "staging" / "stream" / "chunks" / SOURCE
    return items, out


def test_an_object_rejected_after_some_records_leaves_nothing_behind(tmp_path, monkeypatch):
    part = tmp_path / "raw" / SOURCE / DS
    part.mkdir(parents=True)
    # a-…: records 0-399 (and one unparseable line), then the gzip stream breaks: the object is void.
    body = "".join(use_case(i) for i in range(400)) + "{not json\n"
    data = gzip.compress(body.encode())
    (part / "a-broken.jsonl.gz").write_bytes(data[: len(data) * 3 // 4])
    # b-…: record 0 again (same content) and record 1 with other content under the same id.
    (part / "b-good.jsonl").write_text(use_case(0) + use_case(1, agency="B") + use_case(2))
    items, out = chunked(tmp_path, monkeypatch)
    counts = json.loads((out / "_counts.json").read_text())
    # Nothing of a-… was seen: b-…'s records are new, not duplicates, and no id repeats.
    assert counts["rows_read"] == counts["staged"] == 3
    assert counts["duplicates_dropped"] == 0 and counts["rejected"] == {}
    assert (out / "_rejects.jsonl").read_bytes() == b""
    listing = {o["public_uri"].rsplit("/", 1)[-1]: o for o in json.loads((out / "_objects.json").read_text())}
    broken = listing["a-broken.jsonl.gz"]
    assert broken["status"] == "rejected" and broken["reason"] == "unreadable_gzip" and broken["records"] > 0
    assert listing["b-good.jsonl"]["records"] == 3
    (item,) = items
    rows = [json.loads(line) for line in gzip.decompress((out / "chunk-00000.jsonl.gz").read_bytes()).splitlines()]
    assert [r["record_id"] for r in rows] == ["UC-0", "UC-1", "UC-2"] and item["chunk_records"] == 3
    assert all(r["source_uri"].endswith("b-good.jsonl") for r in rows)


def test_chunks_grow_to_stay_within_max_chunks_and_keep_record_order(tmp_path, monkeypatch):
    part = tmp_path / "raw" / SOURCE / DS
    part.mkdir(parents=True)
    (part / "cases.jsonl").write_text("".join(use_case(i) for i in range(23)) + use_case(0) + "[1]\n")
    items, out = chunked(tmp_path, monkeypatch, chunk_size=2, max_chunks=5)
    counts = json.loads((out / "_counts.json").read_text())
    assert counts["chunk_size"] == 5 and counts["staged"] == 23  # ceil(23 / 5)
    assert counts["duplicates_dropped"] == 1 and counts["rejected"] == {"unparseable": 1}
    assert [i["chunk_records"] for i in items] == [5, 5, 5, 5, 3]
    ids = []
    for i in items:
        ids += [
            json.loads(line)["record_id"] for line in gzip.decompress(open(i["chunk_uri"], "rb").read()).splitlines()
        ]
    assert ids == [f"UC-{i}" for i in range(23)]
    (reject,) = [json.loads(line) for line in (out / "_rejects.jsonl").read_text().splitlines()]
    assert reject["reason"] == "unparseable" and reject["position"] == 25


@pytest.mark.parametrize(
    ("max_map_length", "chunks", "size"),
    [(None, 100, 20), ("8", 8, 250)],  # 2 000 records, chunk_size 10: max_chunks 100, then max_map_length 8
)
def test_chunk_count_stays_within_max_chunks_and_airflow_max_map_length(
    tmp_path, monkeypatch, max_map_length, chunks, size
):
    if max_map_length:  # Airflow's [core] max_map_length, read from its configuration at chunk time
        monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", max_map_length)
    part = tmp_path / "raw" / SOURCE / DS
    part.mkdir(parents=True)
    (part / "cases.jsonl").write_text("".join(use_case(i) for i in range(2000)))
    items, out = chunked(tmp_path, monkeypatch, chunk_size=10, max_chunks=100)
    counts = json.loads((out / "_counts.json").read_text())
    assert counts["staged"] == 2000 and counts["chunk_size"] == size
    assert len(items) == chunks and {i["chunk_records"] for i in items} == {size}
    assert [i["chunk_index"] for i in items] == list(range(chunks))


def test_spool_rollback_and_empty_spool(tmp_path):
    from pipeline_hub import storage

    with LineSpool(str(tmp_path)) as spool:
        spool.write(b"1\n")
        mark = spool.mark()
        spool.write(b"2\n")
        spool.write(b"3\n")
        spool.rollback(mark)
        spool.write(b"4\n")
        assert list(spool) == [b"1\n", b"4\n"] and spool.lines == 2
        chunks = write_chunks(spool, storage.to_path(str(tmp_path / "c")), 1)
        assert [c["records"] for c in chunks] == [1, 1]
        assert gzip.decompress((tmp_path / "c" / "chunk-00001.jsonl.gz").read_bytes()) == b"4\n"
    with LineSpool(str(tmp_path)) as empty:
        assert write_chunks(empty, storage.to_path(str(tmp_path / "e")), 3) == []
        with pytest.raises(ValueError):
            write_chunks(empty, storage.to_path(str(tmp_path / "e")), 0)


def test_a_remote_staging_spools_in_the_private_state_dir_not_the_system_temp(tmp_path, monkeypatch):
    """Raw record text of a chunk staged on S3 is spooled under ``<state dir>/spool`` (mode 0700)."""
    import stat

    from airflow.sdk import ObjectStoragePath

    from pipeline_hub.config import get_settings
    from pipeline_hub.stages.spool import local_dir

    monkeypatch.setenv("PIPELINE_HUB_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    spool = local_dir(ObjectStoragePath("s3://staging/run/chunks/companies"))
    assert spool == str(tmp_path / "state" / "spool")
    assert stat.S_IMODE((tmp_path / "state" / "spool").stat().st_mode) == 0o700
    local = tmp_path / "staging" / "companies"
    assert local_dir(ObjectStoragePath(f"file://{local}")) == str(local) and local.is_dir()


def test_a_gzipped_parquet_object_is_read_from_the_private_spool_and_a_truncated_one_rejected(tmp_path, monkeypatch):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline_hub import readers
    from pipeline_hub.config import get_settings
    from pipeline_hub.readers import ObjectError, iter_records

    monkeypatch.setenv("PIPELINE_HUB_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    monkeypatch.setattr(readers, "SPOOL_BYTES", 16)  # spill to disk at once
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": [str(i) for i in range(3000)], "name": ["x"] * 3000}), buf)
    data = gzip.compress(buf.getvalue())
    items = list(iter_records("raw/companies.parquet.gz", data))
    assert [pos for pos, _ in items] == list(range(1, 3001)) and items[-1][1] == {"id": "2999", "name": "x"}
    assert (tmp_path / "state" / "spool").is_dir() and not list((tmp_path / "state" / "spool").iterdir())
    (error,) = [
        i for i in iter_records("raw/companies.parquet.gz", data[: len(data) // 2]) if isinstance(i, ObjectError)
    ]
    assert "companies.parquet.gz" in error.detail
