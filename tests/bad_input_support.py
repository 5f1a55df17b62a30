"""Assertions shared by the bad-input suites (``tests/test_bad_input_*.py``).

Each bad-input case runs the pipeline (in-process, or a reader directly) and then checks the three
promises of the trust issue: conservation (records in = published + quarantined; objects seen =
read + skipped + rejected), the bad input is quarantined or listed with its reason, and no raw value
appears in any output file, log line or returned summary.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq


def output_texts(root: Path) -> dict[str, str]:
    """Every file under ``root`` as text: Parquet rows (and key-value metadata) as JSON, gzip decompressed."""
    out: dict[str, str] = {}
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
            out[str(path)] = json.dumps([table.to_pylist(), meta], default=str, ensure_ascii=False)
            continue
        if path.suffix == ".gz":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError):
                pass
        out[str(path)] = data.decode("utf-8", "replace")
    return out


def assert_nothing_raw(root: Path, raw_values: list[str], *texts: Any) -> None:
    """No ``raw_values`` in any file under ``root`` nor in ``texts`` (log text, summaries: JSON-dumped)."""
    found = []
    for where, text in output_texts(root).items():
        found += [(where, v) for v in raw_values if v and v in text]
    for i, t in enumerate(texts):
        text = t if isinstance(t, str) else json.dumps(t, default=str, ensure_ascii=False)
        found += [(f"text #{i}", v) for v in raw_values if v and v in text]
    assert not found, f"raw values leaked: {found}"


def manifests(root: Path) -> list[dict[str, Any]]:
    """Every publication manifest (sanitized and quarantine zones) under ``root``."""
    root = Path(root)
    paths = [*root.glob("sanitized_data/*/ds=*/_manifest.json"), *root.glob("quarantine/*/ds=*/_manifest.json")]
    return [json.loads(p.read_text()) for p in sorted(paths)]


def assert_conservation(root: Path) -> list[dict[str, Any]]:
    """records in = published + quarantined, and objects seen = read + skipped + rejected, in every manifest."""
    found = manifests(root)
    assert found, f"no manifest under {root}"
    for m in found:
        c = m["counts"]
        assert c["in"] == c["published"] + c["quarantined_total"], (m["topic"], c)
        objects = c.get("objects")  # {"seen", "read", "skipped", "rejected"} (raw objects of the batch)
        if objects is not None:
            assert objects["seen"] == objects["read"] + objects["skipped"] + objects["rejected"], (m["topic"], objects)
    return found


def quarantine_rows(root: Path, topic: str, ds: str) -> list[dict[str, Any]]:
    """The quarantined records of ``topic`` for ``ds`` ([] when none)."""
    path = Path(root) / "quarantine" / topic / f"ds={ds}" / "part-00000.parquet"
    return pq.read_table(path).to_pylist() if path.exists() else []


def published_rows(root: Path, topic: str, ds: str) -> list[dict[str, Any]]:
    """The published rows of ``topic`` for ``ds`` ([] when none)."""
    path = Path(root) / "sanitized_data" / topic / f"ds={ds}" / "part-00000.parquet"
    return pq.read_table(path).to_pylist() if path.exists() else []
