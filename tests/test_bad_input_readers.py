"""Bad input at the edge (issue 12, items 1, 3, 5, 8): readers, object listing, ids, no_input, staging.

Every case runs the reader directly and/or the in-process pipeline against the stub LLM, and checks:
the good records are published, the bad record is quarantined (or the bad object listed) with its
fixed reason code and a detail naming object, position and field, conservation holds (records and
objects), and the bad record's text (a unique marker) appears in no output file, log line or result.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import stat
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline_hub import reasons
from pipeline_hub.readers import Limits, ObjectError, RecordError, iter_records
from pipeline_hub.stages.runner import run_pipeline, sweep_staging

from bad_input_support import assert_conservation, assert_nothing_raw, manifests, published_rows, quarantine_rows
from conftest import DS, llm_conn

MARKER = "QZV-RAWTEXT-8841"  # unique text inside every bad record: must never leave
UC = "use_case_extraction"  # reads ai_use_cases (JSON-ish objects)
IC = "industry_classification"  # reads companies (CSV)
DEEP = 100_000


def good_jsonl() -> bytes:
    rows = [
        {"id": "G-1", "agency": "Agency One", "summary": "Forecasts demand for road salt from weather data."},
        {"id": "G-2", "agency": "Agency Two", "summary": "Routes incoming letters to the right office."},
    ]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


GOOD_CSV = b"id,name,headquarters\nG-1,Acme Corp,Boston\nG-2,Beta Industries,Denver\n"


def deep_value(depth: int = DEEP) -> str:
    return "[" * depth + json.dumps(MARKER) + "]" * depth


def bad_line(**fields) -> str:
    return json.dumps({"id": "B-1", "agency": "Agency Bad", "summary": f"about {MARKER}", **fields})


def parquet_bytes(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def truncated_gzip() -> bytes:
    lines = "".join(bad_line(id=f"T-{i}") + "\n" for i in range(400)).encode()
    data = gzip.compress(lines)
    return data[: len(data) // 2]


@pytest.fixture
def state(tmp_path, monkeypatch):
    """Staging of in-process runs under a private state dir of this test (never the real ~/.local/state)."""
    path = tmp_path / "state"
    monkeypatch.setenv("PIPELINE_HUB_STATE_DIR", str(path))
    return path


def run_case(tmp_path, source: str, files: dict[str, bytes], topic: str, caplog, good: bool = True):
    """Raw zone with the good object (``good.*``) plus ``files`` under ``<source>/<DS>/``; one in-process run."""
    part = tmp_path / "raw" / source / DS
    part.mkdir(parents=True)
    if good:
        if source == "companies":
            (part / "good.csv").write_bytes(GOOD_CSV)
        else:
            (part / "good.jsonl").write_bytes(good_jsonl())
    for rel, data in files.items():
        (part / rel).parent.mkdir(parents=True, exist_ok=True)
        (part / rel).write_bytes(data)
    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG):
        result = run_pipeline(raw_root=str(tmp_path / "raw"), output_root=str(out), ds=DS, topics=[topic])
    return out, result


def check_run(out, result, caplog, topic):
    """Good records published, conservation, nothing raw; returns the topic's manifest."""
    assert not result.failed, result.failed
    published = {r["record_id"] for r in published_rows(out, topic, DS)}
    assert {"G-1", "G-2"} <= published
    (manifest,) = [m for m in assert_conservation(out) if m["topic"] == topic]
    objects = manifest["counts"]["objects"]
    assert objects["seen"] == len(manifest["objects"]) == objects["read"] + objects["skipped"] + objects["rejected"]
    assert_nothing_raw(out, [MARKER], caplog.text, asdict(result))
    return manifest


def listed(manifest: dict, name: str) -> dict:
    return next(o for o in manifest["objects"] if o["public_uri"].endswith("/" + name))


# --- record-level cases: the bad record is quarantined with its code, the good ones publish ------

RECORD_CASES = [
    # (case id, source, object name, bytes, topic, reason, position, field or None)
    (
        "csv_field_over_csv_module_limit",
        "companies",
        "big.csv",
        f'id,name,headquarters\nB-1,Big Corp,"{MARKER}{"x" * 140_000}"\n'.encode(),
        IC,
        reasons.OVERSIZE_FIELD,
        2,
        "headquarters",
    ),
    (
        "jsonl_nested_100000_deep",
        "ai_use_cases",
        "deep.jsonl",
        (bad_line()[:-1] + ', "extra": ' + deep_value() + "}\n").encode(),
        UC,
        reasons.TOO_DEEP,
        1,
        None,
    ),
    (
        "json_element_nested_100000_deep",
        "ai_use_cases",
        "deep.json",
        ("[" + bad_line(id="B-0", summary="fine") + ", " + deep_value() + "]").encode(),
        UC,
        reasons.TOO_DEEP,
        2,
        None,
    ),
    (
        "jsonl_invalid_utf8_line",
        "ai_use_cases",
        "latin1.jsonl",
        (bad_line(id="B-0", summary="fine") + "\n").encode() + bad_line().encode()[:-2] + b' \xe9t\xe9"}\n',
        UC,
        reasons.INVALID_ENCODING,
        2,
        None,
    ),
    (
        "csv_invalid_utf8_line",
        "companies",
        "latin1.csv",
        b"id,name,headquarters\nB-1,Caf\xe9 " + MARKER.encode() + b",Paris\n",
        IC,
        reasons.INVALID_ENCODING,
        2,
        None,
    ),
    (
        "jsonl_line_not_an_object",
        "ai_use_cases",
        "scalar.jsonl",
        f'["{MARKER}"]\n'.encode(),
        UC,
        reasons.UNPARSEABLE,
        1,
        None,
    ),
    (
        "jsonl_invalid_json_line",
        "ai_use_cases",
        "broken.jsonl",
        f'{{"id": "B-1", "summary": "{MARKER}"\n'.encode(),
        UC,
        reasons.UNPARSEABLE,
        1,
        None,
    ),
    (
        "csv_wrong_column_count",
        "companies",
        "extra.csv",
        f"id,name,headquarters\nB-1,Extra Corp,Austin,{MARKER}\n".encode(),
        IC,
        reasons.UNPARSEABLE,
        2,
        None,
    ),
    (
        "list_id",
        "ai_use_cases",
        "listid.jsonl",
        (bad_line(id=[MARKER]) + "\n").encode(),
        UC,
        reasons.INVALID_ID,
        1,
        "id",
    ),
    (
        "bool_id_in_parquet",
        "ai_use_cases",
        "boolid.parquet",
        parquet_bytes([{"id": True, "agency": "Agency Bad", "summary": f"about {MARKER}"}]),
        UC,
        reasons.INVALID_ID,
        1,
        "id",
    ),
]


@pytest.mark.parametrize(
    "source,name,data,topic,reason,position,field",
    [c[1:] for c in RECORD_CASES],
    ids=[c[0] for c in RECORD_CASES],
)
def test_bad_record_is_quarantined_with_code_position_and_field(
    stub, state, tmp_path, caplog, monkeypatch, source, name, data, topic, reason, position, field
):
    monkeypatch.setenv("PIPELINE_HUB_MAX_FIELD_CHARS", "100000")  # the CSV case's field is 140 000 chars
    out, result = run_case(tmp_path, source, {name: data}, topic, caplog)
    manifest = check_run(out, result, caplog, topic)
    bad = [q for q in quarantine_rows(out, topic, DS) if q["reason"] == reason]
    assert len(bad) == 1, quarantine_rows(out, topic, DS)
    (q,) = bad
    assert q["position"] == position and q["source_uri"].endswith("/" + name)
    detail = reasons.plain(q["detail"])
    assert name in detail and str(position) in detail
    if field:
        assert field in detail
    assert q["record_id"]  # never empty
    assert listed(manifest, name)["status"] == "read"


def test_csv_field_over_131072_chars_is_read_with_default_limits():
    """The csv module's own limit (131 072) no longer ends the run: the default field limit is 1 MiB."""
    big = "y" * 140_000
    items = list(iter_records("big.csv", f"id,text\n1,{big}\n2,ok\n".encode()))
    assert [i[1]["id"] for i in items] == ["1", "2"] and len(items[0][1]["text"]) == 140_000


@pytest.mark.parametrize(
    "name,data,limits,reason,position",
    [
        ("a.jsonl", b'{"id":1}\n{"id":2,"t":"' + b"z" * 500 + b'"}\n{"id":3}\n', Limits(max_record_bytes=100), reasons.OVERSIZE_RECORD, 2),  # noqa: E501
        ("a.json", b'[{"id":1},{"id":2,"t":"' + b"z" * 500 + b'"}]', Limits(max_record_bytes=100), reasons.OVERSIZE_RECORD, 2),  # noqa: E501
        ("a.jsonl", b'{"id":1}\n{"id":2,"a":[[[[1]]]]}\n', Limits(max_nesting_depth=4), reasons.TOO_DEEP, 2),
        ("a.jsonl", b'{"id":1}\n{"id":2,"t":"\\ud800"}\n', Limits(), reasons.INVALID_ENCODING, 2),
        ("a.csv", b'id,t\n1,a\n2,"' + b"q\n" * 200 + b'"\n3,c\n', Limits(max_record_bytes=100), reasons.OVERSIZE_RECORD, 3),  # noqa: E501
        ("a.parquet", parquet_bytes([{"id": 1, "t": "a"}, {"id": 2, "t": "b" * 50}]), Limits(max_field_chars=10), reasons.OVERSIZE_FIELD, 2),  # noqa: E501
    ],
    ids=["jsonl_oversize_record", "json_oversize_element", "depth_over_setting", "lone_surrogate", "csv_multiline_oversize", "parquet_oversize_field"],  # noqa: E501
)  # fmt: skip
def test_reader_limits_flag_one_record_and_read_on(name, data, limits, reason, position):
    items = list(iter_records(name, data, limits))
    errors = [i for i in items if isinstance(i, RecordError)]
    assert [(e.reason, e.position) for e in errors] == [(reason, position)]
    assert not any(isinstance(i, ObjectError) for i in items)
    good = [i[1]["id"] for i in items if isinstance(i, tuple)]
    assert len(good) == len(items) - 1 and name in errors[0].detail


def test_limits_are_settings_from_the_environment(monkeypatch):
    from pipeline_hub.config import Settings

    monkeypatch.setenv("PIPELINE_HUB_MAX_FIELD_CHARS", "10")
    monkeypatch.setenv("PIPELINE_HUB_MAX_RECORD_BYTES", "20")
    monkeypatch.setenv("PIPELINE_HUB_MAX_NESTING_DEPTH", "3")
    assert Settings.from_env().limits == {"max_field_chars": 10, "max_record_bytes": 20, "max_nesting_depth": 3}
    monkeypatch.setenv("PIPELINE_HUB_MAX_NESTING_DEPTH", "deep")
    with pytest.raises(ValueError, match="PIPELINE_HUB_MAX_NESTING_DEPTH"):
        Settings.from_env()


# --- object-level cases: rejected whole (none of its records counted) or skipped, always listed -----

OBJECT_CASES = [
    # (case id, object name, bytes, status, reason)
    ("truncated_gzip", "part.jsonl.gz", truncated_gzip(), "rejected", reasons.UNREADABLE_GZIP),
    ("corrupt_gzip", "junk.jsonl.gz", b"\x1f\x8b\x08\x00" + MARKER.encode() * 20, "rejected", reasons.UNREADABLE_GZIP),
    ("corrupt_parquet", "bad.parquet", b"PAR1" + MARKER.encode() * 50 + b"PAR1", "rejected", reasons.UNREADABLE_PARQUET),  # noqa: E501
    ("json_document_not_json", "doc.json", f'[{{"id": "B-1", "summary": "{MARKER}"}}, oops'.encode(), "rejected", reasons.UNPARSEABLE_OBJECT),  # noqa: E501
    ("json_document_scalar", "scalar.json", json.dumps(MARKER).encode(), "rejected", reasons.UNPARSEABLE_OBJECT),
    ("json_document_not_utf8", "latin1.json", f'[{{"id": "B-1", "summary": "{MARKER}"}}]'.encode() + b"\xff", "rejected", reasons.INVALID_ENCODING_OBJECT),  # noqa: E501
    ("empty_json", "empty.json", b"", "skipped", reasons.EMPTY_OBJECT),
    ("success_marker", "_SUCCESS", b"", "skipped", reasons.MARKER),
    ("marker_with_bytes", "_manifest.jsonl", (bad_line() + "\n").encode(), "skipped", reasons.MARKER),
    ("hidden_object", ".hidden.jsonl", (bad_line() + "\n").encode(), "skipped", reasons.HIDDEN),
    ("subfolder_object", "late/more.jsonl", (bad_line() + "\n").encode(), "skipped", reasons.SUBFOLDER),
    ("unsupported_extension", "notes.txt", MARKER.encode(), "skipped", reasons.UNSUPPORTED_FORMAT),
]  # fmt: skip


@pytest.mark.parametrize("name,data,status,reason", [c[1:] for c in OBJECT_CASES], ids=[c[0] for c in OBJECT_CASES])
def test_bad_object_is_listed_with_status_and_reason(stub, state, tmp_path, caplog, name, data, status, reason):
    out, result = run_case(tmp_path, "ai_use_cases", {name: data}, UC, caplog)
    manifest = check_run(out, result, caplog, UC)
    entry = listed(manifest, name)
    assert (entry["status"], entry["reason"]) == (status, reason)
    assert name.rsplit("/", 1)[-1] in entry["detail"]
    assert manifest["counts"]["objects"] == {
        "seen": 2,
        "read": 1,
        "skipped": int(status == "skipped"),
        "rejected": int(status == "rejected"),
    }
    # None of the object's records counts: in = the good object's records only.
    assert manifest["counts"]["in"] == manifest["counts"]["published"] + manifest["counts"]["quarantined_total"] == 2
    assert quarantine_rows(out, UC, DS) == []
    # The batch manifest lists it too, and the batch hash covers only the objects read.
    batch = json.loads((out / "_batches" / "ai_use_cases" / f"{manifest['batch_hash']}.json").read_text())
    assert [(o["status"], o["reason"]) for o in batch["objects"] if o["public_uri"] == entry["public_uri"]] == [
        (status, reason)
    ]
    assert batch["counts"]["objects"] == manifest["counts"]["objects"]


def test_records_read_before_an_object_fault_are_rejected_with_it():
    items = list(iter_records("part.jsonl.gz", truncated_gzip()))
    assert isinstance(items[-1], ObjectError) and items[-1].reason == reasons.UNREADABLE_GZIP
    assert len(items) > 1 and items[-1].position == len(items) - 1  # records before the fault: all void


def test_whitespace_only_objects_are_read_with_zero_records(stub, state, tmp_path, caplog):
    files = {"blank.jsonl": b"  \n\n \n", "blank.json": b" \n\t ", "blank.csv": b"\n \n"}
    out, result = run_case(tmp_path, "ai_use_cases", files, UC, caplog)
    manifest = check_run(out, result, caplog, UC)
    for name in ("blank.jsonl", "blank.json"):
        assert (listed(manifest, name)["status"], listed(manifest, name)["records"]) == ("read", 0)
    assert manifest["counts"]["in"] == 2
    assert [i for i in iter_records("blank.csv", b"\n \n") if not isinstance(i, tuple)] == []


def test_success_marker_does_not_change_the_batch_hash(stub, state, tmp_path, caplog):
    out, first = run_case(tmp_path, "ai_use_cases", {}, UC, caplog)
    (tmp_path / "raw" / "ai_use_cases" / DS / "_SUCCESS").write_bytes(b"")
    again = run_pipeline(raw_root=str(tmp_path / "raw"), output_root=str(out), ds=DS, topics=[UC])
    assert again.skipped == {UC: "skipped_published"}  # same batch hash: nothing new


# --- ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   ", None])
def test_blank_id_gets_the_content_hash_id(stub, state, tmp_path, caplog, blank):
    line = json.dumps({"id": blank, "agency": "Agency Blank", "summary": "Counts bicycles at crossings."})
    out, result = run_case(tmp_path, "ai_use_cases", {"blank_id.jsonl": (line + "\n").encode()}, UC, caplog)
    check_run(out, result, caplog, UC)
    ids = [r["record_id"] for r in published_rows(out, UC, DS) if r["agency"] == "Agency Blank"]
    assert len(ids) == 1 and len(ids[0]) == 32 and ids[0].strip() == ids[0]


# --- no_input ----------------------------------------------------------------------------------


def test_missing_prefix_is_no_input_and_the_cli_exits_3(stub, state, tmp_path, caplog):
    from typer.testing import CliRunner

    from pipeline_hub.cli import app

    raw = tmp_path / "raw"
    raw.mkdir()
    result = run_pipeline(raw_root=str(raw), output_root=str(tmp_path / "out"), ds=DS, topics=[UC])
    assert result.outcome == reasons.NO_INPUT and result.skipped == {UC: reasons.NO_INPUT}
    assert list(result.no_input) == ["ai_use_cases"] and result.no_input["ai_use_cases"].endswith(f"ai_use_cases/{DS}")
    cli = CliRunner().invoke(
        app, ["run", "--input", str(raw), "--output", str(tmp_path / "out"), "--ds", DS, "--topics", UC]
    )
    assert cli.exit_code == 3, cli.output
    lines = [line for line in cli.stderr.splitlines() if line.startswith("no_input")]
    assert len(lines) == 1 and f"ai_use_cases/{DS}" in lines[0]


def test_prefix_with_only_skipped_objects_is_no_input(stub, state, tmp_path, caplog):
    _, result = run_case(tmp_path, "ai_use_cases", {"_SUCCESS": b"", "notes.txt": b"x"}, UC, caplog, good=False)
    assert result.outcome == reasons.NO_INPUT and result.published == []


def test_sources_without_input_are_listed_while_the_others_run(stub, state, tmp_path, caplog):
    out, result = run_case(tmp_path, "ai_use_cases", {}, UC, caplog)
    again = run_pipeline(raw_root=str(tmp_path / "raw"), output_root=str(tmp_path / "o2"), ds=DS, topics=[UC, IC])
    assert [p["topic"] for p in again.published] == [UC] and again.outcome == "ok"
    assert list(again.no_input) == ["companies"] and again.skipped == {IC: reasons.NO_INPUT}


def test_cli_run_exit_code_3_in_a_subprocess_names_the_prefix(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    env = {**os.environ, "PIPELINE_HUB_STATE_DIR": str(tmp_path / "state")}
    env["AIRFLOW_CONN_LLM_DEFAULT"] = llm_conn("http://127.0.0.1:9")  # never called: nothing to read
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline_hub", "run", "--input", str(raw), "--output", str(tmp_path / "o")]
        + ["--ds", DS, "--topics", IC],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert f"companies/{DS}" in proc.stderr.splitlines()[-1]


def test_dag_hash_task_fails_without_retry_when_no_topic_has_input(stub, tmp_path, monkeypatch):
    """The scheduled run is not green: ``hash`` raises AirflowFailException naming the prefixes."""
    import importlib.util

    from airflow.sdk.exceptions import AirflowFailException

    from pipeline_hub.config import Settings
    from pipeline_hub.stages.discover import run_discover

    from conftest import REPO

    (tmp_path / "raw").mkdir()
    monkeypatch.setenv("PIPELINE_HUB_RAW_URI", str(tmp_path / "raw"))
    monkeypatch.setenv("PIPELINE_HUB_SANITIZED_URI", str(tmp_path / "out"))
    monkeypatch.setenv("PIPELINE_HUB_STAGING_URI", str(tmp_path / "staging"))
    spec = importlib.util.spec_from_file_location("prompt_pipeline_under_test", REPO / "dags" / "prompt_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    hash_fn = module.dag.get_task("hash").python_callable
    pushed = {}

    class TI:
        def xcom_push(self, key, value):
            pushed[key] = value

    ctx = {"run_id": "scheduled__x", "params": {"llm_conn_id": "llm_default"}, "ti": TI()}
    monkeypatch.setitem(hash_fn.__globals__, "get_current_context", lambda: ctx)
    discovered = run_discover(Settings.from_env(), DS, [UC, IC], None)
    with pytest.raises(AirflowFailException, match=f"no_input.*ai_use_cases/{DS}"):
        hash_fn(discovered)
    assert pushed["run_summary"]["outcome"] == reasons.NO_INPUT
    assert set(pushed["run_summary"]["no_input"]) == {"ai_use_cases", "companies"}
    # Input for one source only: the task returns its topic, the other is recorded.
    part = tmp_path / "raw" / "companies" / DS
    part.mkdir(parents=True)
    (part / "good.csv").write_bytes(GOOD_CSV)
    discovered = run_discover(Settings.from_env(), DS, [UC, IC], None)
    assert [i["topic"] for i in hash_fn(discovered)] == [IC]
    assert pushed["run_summary"]["no_input"].keys() == {"ai_use_cases"}


# --- staging -----------------------------------------------------------------------------------


def test_staging_is_private_removed_after_the_run_and_on_error(stub, state, tmp_path, caplog, monkeypatch):
    from pipeline_hub import stages

    seen = {}
    real = stages.run_chunk

    def spy(plan_uri):
        run_dir = Path(plan_uri).parent
        seen["mode"] = stat.S_IMODE(run_dir.stat().st_mode)
        seen["root_mode"] = stat.S_IMODE(run_dir.parent.stat().st_mode)
        seen["dir"] = run_dir
        return real(plan_uri)

    monkeypatch.setattr(stages, "run_chunk", spy)
    out, result = run_case(tmp_path, "ai_use_cases", {}, UC, caplog)
    assert seen["dir"].parent == state / "staging" and seen["mode"] == seen["root_mode"] == 0o700
    assert not seen["dir"].exists() and list((state / "staging").iterdir()) == []

    def boom(plan_uri):
        spy(plan_uri)
        raise RuntimeError("stage failed")

    monkeypatch.setattr(stages, "run_chunk", boom)
    with pytest.raises(RuntimeError):
        run_pipeline(raw_root=str(tmp_path / "raw"), output_root=str(tmp_path / "o2"), ds=DS, topics=[UC])
    assert not seen["dir"].exists() and list((state / "staging").iterdir()) == []


def test_next_run_sweeps_staging_left_by_a_crashed_run(tmp_path):
    root = tmp_path / "staging"
    crashed = subprocess.Popen([sys.executable, "-c", "import os; print(os.getpid())"], stdout=subprocess.PIPE)
    dead_pid = int(crashed.communicate()[0])
    (root / "crashed_run").mkdir(parents=True)
    (root / "crashed_run" / "chunk.jsonl").write_text(MARKER)
    (root / "crashed_run.pid").write_text(json.dumps({"pid": dead_pid, "host": os.uname().nodename, "started": 1.0}))
    (root / "live_run").mkdir()
    from pipeline_hub.stages.runner import _process_started

    me = {"pid": os.getpid(), "host": os.uname().nodename, "started": _process_started(os.getpid())}
    (root / "live_run.pid").write_text(json.dumps(me))
    (root / "not_a_run").mkdir()  # no pid file: not ours, left alone
    assert sweep_staging(root) == ["crashed_run"]
    assert sorted(p.name for p in root.iterdir()) == ["live_run", "live_run.pid", "not_a_run"]


def test_default_state_dir_follows_xdg(monkeypatch, tmp_path):
    from pipeline_hub.config import state_dir

    monkeypatch.delenv("PIPELINE_HUB_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "pipeline-hub"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir() == tmp_path / "home" / ".local" / "state" / "pipeline-hub"


def test_every_manifest_lists_its_objects(stub, state, tmp_path, caplog):
    out, result = run_case(tmp_path, "ai_use_cases", {"_SUCCESS": b"", "bad.parquet": b"PAR1xxPAR1"}, UC, caplog)
    for m in manifests(out):
        assert {o["status"] for o in m["objects"]} == {"read", "skipped", "rejected"}
        assert all(set(o) >= {"public_uri", "status", "reason", "detail", "size"} for o in m["objects"])
