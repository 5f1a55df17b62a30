"""GDPR erasure of analysts' feedback (``feedback/<topic>/*.parquet``, :mod:`pipeline_hub.prompts.feedback`).

A feedback row is removed when any of its string leaves holds one of the subject's pseudonyms (the
note is scrubbed before it is stored, so an e-mail, phone or name in it is a keyed pseudonym; an id
holding PII is published, and referenced, as a pseudonym), or when its ``record_id`` is one the same
erasure removed from that topic's published or quarantined rows (the feedback is about the subject's
record even if it names nobody). Files are rewritten atomically like the partitions
(:func:`pipeline_hub.governance.erasure.erase_file`); feedback has no manifest, the audit record lists
each rewritten object with zone ``feedback`` and an empty ``ds``.

Called by :func:`pipeline_hub.governance.erasure.erase_subject`; imports ``governance.erasure``,
``prompts.feedback`` and ``stages.parquet``.
"""

from __future__ import annotations

import io

from pipeline_hub import storage
from pipeline_hub.governance.erasure import ErasedObject, matching_rows

ZONE = "feedback"


def erase_feedback(
    sanitized_root: str, pattern: str, erased_ids: dict[str, set[str]], *, dry_run: bool = False
) -> tuple[int, list[ErasedObject]]:
    """Remove the subject's feedback rows; returns ``(objects scanned, objects rewritten)``.

    ``pattern`` is the RE2 pattern of the subject's pseudonyms
    (:func:`pipeline_hub.governance.register.pseudonym_pattern`), ``erased_ids`` maps a topic to the
    ``record_id`` values the erasure removed from it. ``dry_run`` counts and writes nothing.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipeline_hub.prompts.feedback import feedback_files
    from pipeline_hub.stages.parquet import parquet_bytes

    scanned, rewritten = 0, []
    for topic, path in feedback_files(sanitized_root):
        scanned += 1
        table = pq.read_table(io.BytesIO(path.read_bytes()))
        mask = matching_rows(table, pattern)
        ids = sorted(erased_ids.get(topic, ()))
        if ids and "record_id" in table.column_names:
            hit = pc.is_in(table.column("record_id"), value_set=pa.array(ids, pa.string()))
            mask |= hit.fill_null(False).to_numpy(zero_copy_only=False)
        removed = int(mask.sum())
        if not removed:
            continue
        if not dry_run:
            meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
            previous = int(meta.get("pipeline_hub.erased_rows", "0"))
            kept = table.filter(pa.array(~mask))
            storage.write_bytes_atomic(path, parquet_bytes(kept, {"pipeline_hub.erased_rows": str(previous + removed)}))
        rewritten.append(ErasedObject(storage.public_uri(path), ZONE, topic, "", removed))
    return scanned, rewritten
