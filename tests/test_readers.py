"""Raw object parsing: every supported format, gzip, and precise errors for bad records."""

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline_hub import reasons
from pipeline_hub.hashing import batch_hash
from pipeline_hub.readers import ObjectError, RecordError, detect_format, iter_records


def _parquet(rows):
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    "name,data",
    [
        ("a.jsonl", b'{"id": 1, "name": "x"}\n{"id": 2, "name": "y"}\n'),
        ("a.json", json.dumps([{"id": 1, "name": "x"}, {"id": 2, "name": "y"}]).encode()),
        ("a.csv", b"id,name\n1,x\n2,y\n"),
        ("a.parquet", _parquet([{"id": 1, "name": "x"}, {"id": 2, "name": "y"}])),
        ("a.jsonl.gz", gzip.compress(b'{"id": 1, "name": "x"}\n{"id": 2, "name": "y"}\n')),
        ("a.csv.gz", gzip.compress(b"id,name\n1,x\n2,y\n")),
    ],
)
def test_formats_yield_records(name, data):
    records = list(iter_records(name, data))
    assert [r[1]["name"] for r in records] == ["x", "y"]
    assert [str(r[1]["id"]) for r in records] == ["1", "2"]


def test_malformed_jsonl_line_is_reported_with_file_and_line_not_text():
    secret = "jane.doe@example.org"
    items = list(iter_records("raw/batch.jsonl", f'{{"id": 1}}\n{{"id": 2, "text": "{secret}"\n[1]\n'.encode()))
    errors = [i for i in items if isinstance(i, RecordError)]
    assert [e.position for e in errors] == [2, 3]
    assert all("raw/batch.jsonl" in e.detail and secret not in e.detail for e in errors)
    assert [e.reason for e in errors] == [reasons.UNPARSEABLE, reasons.UNPARSEABLE]


def test_csv_row_with_wrong_column_count_is_malformed():
    items = list(iter_records("x.csv", b"id,name\n1,a\n2,b,extra\n"))
    assert isinstance(items[1], RecordError) and items[1].position == 3
    assert items[1].reason == reasons.UNPARSEABLE and "expected 2 columns" in reasons.plain(items[1].detail)


def test_corrupt_gzip_and_parquet_are_unreadable_objects():
    (gz,) = iter_records("x.jsonl.gz", b"not gzip")
    (parquet,) = iter_records("x.parquet", b"PAR1garbage")
    assert isinstance(gz, ObjectError) and gz.reason == reasons.UNREADABLE_GZIP
    assert isinstance(parquet, ObjectError) and parquet.reason == reasons.UNREADABLE_PARQUET


def test_unsupported_extension_is_an_object_error_naming_file():
    assert detect_format("x.txt") == (None, False)
    (item,) = iter_records("x.txt", b"")
    assert isinstance(item, ObjectError) and item.reason == reasons.UNSUPPORTED_FORMAT and "x.txt" in item.detail


def test_batch_hash_ignores_order():
    assert batch_hash(["b", "a"]) == batch_hash(["a", "b"]) != batch_hash(["a"])
