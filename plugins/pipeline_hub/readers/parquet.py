"""Reader for Parquet objects (pyarrow), streamed 1 024 rows at a time from a seekable binary file.

Rows become records with ``None`` values dropped; a row's size is that of its JSON text. The footer is
read first, then one record batch at a time (``ParquetFile.iter_batches``): memory holds one row group's
pages, not the object. Called by :func:`pipeline_hub.readers.iter_records`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import BinaryIO

from pipeline_hub import reasons
from pipeline_hub.readers.limits import Item, Limits, ObjectError, _checked, _oversize_record, _Progress


def _parquet(name: str, source: BinaryIO, limits: Limits, progress: _Progress) -> Iterator[Item]:
    """Parquet rows of the seekable binary file ``source`` (Parquet needs random access: the footer
    is at the end), ``None`` values dropped, read one 1 024-row batch at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = 0
    try:
        pf = pq.ParquetFile(source)
        for batch in pf.iter_batches(batch_size=1024, use_threads=False):  # one thread: no per-thread heaps
            for values in batch.to_pylist():
                row += 1
                progress.position = row
                where = {"obj": name, "row": row}
                record = {k: v for k, v in values.items() if v is not None}
                size = len(json.dumps(record, default=str, ensure_ascii=False).encode("utf-8", "replace"))
                if size > limits.max_record_bytes:
                    yield _oversize_record(row, "{obj} row {row}", where, limits)
                else:
                    yield _checked(row, record, "{obj} row {row}", where, limits)
    except (pa.ArrowException, ValueError, OSError) as exc:  # bad magic, thrift, pages, a short read
        yield ObjectError(
            reasons.UNREADABLE_PARQUET,
            reasons.detail("{obj}: not a readable Parquet file at row {row} ({err})", obj=name, row=row,
                           err=type(exc).__name__),
            row,
        )  # fmt: skip
