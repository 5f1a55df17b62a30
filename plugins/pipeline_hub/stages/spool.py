"""Bounded-memory line spool for the chunk stage: staged records and rejects go to an anonymous
temporary file as they are read, so a source of any size holds O(1) records in memory.

:class:`LineSpool` keeps lines (bytes ending in ``\\n``) in a :func:`tempfile.TemporaryFile` (no name
on Linux, mode 0600, removed on close) with a rollback mark: an object the readers reject whole after
some records (a truncated ``.gz``) is cut back to where it started (the rule of
:mod:`pipeline_hub.readers`). :func:`write_chunks` then cuts the spool into gzip JSON Lines chunks,
streaming, once the chunk size is known (it depends on the source's record count, ``max_chunks``).
Gzip per RFC 1952 (:mod:`gzip`, ``mtime`` 0 so equal records give equal bytes).
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Iterator
from typing import Any

from airflow.sdk import ObjectStoragePath

WRITE_BYTES = 1 << 20  # uncompressed bytes handed to the gzip writer at a time (its output goes to the store)


def local_dir(path: ObjectStoragePath) -> str:
    """Where the spool of a chunk staged at ``path`` lives: ``path`` itself (created) when it is on the
    local file system, else ``<state dir>/spool`` (:func:`pipeline_hub.config.spool_dir`, mode
    0700): raw record text never goes to the system temp dir (:mod:`pipeline_hub.stages.runner`)."""
    if path.protocol not in ("", "file", "local"):
        from pipeline_hub.config import spool_dir

        return str(spool_dir())
    path.mkdir(parents=True, exist_ok=True)
    return path.path


class LineSpool:
    """Lines in an anonymous temporary file; ``lines`` counts them; :meth:`mark`/:meth:`rollback` undo
    the lines written since a mark (file truncated). Iterating rewinds and yields every line (bytes)."""

    def __init__(self, directory: str) -> None:
        self._fh = tempfile.TemporaryFile(dir=directory)
        self.lines = 0

    def write(self, line: bytes) -> None:
        """Append one line (``line`` ends with ``\\n``)."""
        self._fh.write(line)
        self.lines += 1

    def mark(self) -> tuple[int, int]:
        """``(byte offset, line count)`` now, for :meth:`rollback`."""
        return self._fh.tell(), self.lines

    def rollback(self, mark: tuple[int, int]) -> None:
        """Drop every line written after ``mark``."""
        offset, self.lines = mark
        self._fh.seek(offset)
        self._fh.truncate()

    def __iter__(self) -> Iterator[bytes]:
        self._fh.flush()
        self._fh.seek(0)
        yield from self._fh
        self._fh.seek(0, 2)

    def close(self) -> None:
        """Remove the temporary file."""
        self._fh.close()

    def __enter__(self) -> LineSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_chunks(spool: LineSpool, out_dir: ObjectStoragePath, chunk_size: int) -> list[dict[str, Any]]:
    """Cut ``spool`` into ``out_dir/chunk-00000.jsonl.gz``, … of ``chunk_size`` lines each (the last may
    be shorter), each written through a streaming gzip compressor as it fills (in pieces of
    :data:`WRITE_BYTES`: memory holds at most that much of a chunk).

    Returns ``[{"uri", "index", "records"}]``; ``[]`` for an empty spool (no file written). Raises
    ``ValueError`` for ``chunk_size`` < 1 and the store's ``OSError``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    chunks: list[dict[str, Any]] = []
    raw = gz = None
    pending = bytearray()  # lines go to gzip in pieces of WRITE_BYTES: each store write has a cost

    def close() -> None:
        gz.write(pending)
        pending.clear()
        gz.close()
        raw.close()

    try:
        for n, line in enumerate(spool):
            if n % chunk_size == 0:
                if gz is not None:
                    close()
                index = len(chunks)
                path = out_dir / f"chunk-{index:05d}.jsonl.gz"
                path.parent.mkdir(parents=True, exist_ok=True)
                raw = path.open("wb")
                gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
                chunks.append({"uri": str(path), "index": index, "records": 0})
            pending += line
            if len(pending) >= WRITE_BYTES:
                gz.write(pending)
                pending.clear()
            chunks[-1]["records"] += 1
    finally:
        if gz is not None:
            close()
    return chunks
