"""Candidate blocking for company matching: top-k reference names per query with RapidFuzz.

The reference table (``include/reference/*.csv``) is a master list ``<id_column>, <name_column>``.
Blocking keeps the LLM prompt small: only the ``k`` most similar names (RapidFuzz ``WRatio`` over
``utils.default_process``-normalised strings: lower case, non-alphanumerics stripped) are offered.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rapidfuzz import fuzz, process, utils


@dataclass(frozen=True)
class ReferenceIndex:
    """An in-memory reference master list: parallel tuples of ids and names."""

    ids: tuple[str, ...]
    names: tuple[str, ...]

    @classmethod
    def from_csv(cls, path: Path, id_column: str = "ref_id", name_column: str = "name") -> ReferenceIndex:
        """Load ``path``; raises ``KeyError`` naming the file when a column is missing."""
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            for col in (id_column, name_column):
                if col not in (reader.fieldnames or []):
                    raise KeyError(f"{path}: reference table has no column '{col}'")
            rows = [(str(r[id_column]), r[name_column]) for r in reader]
        return cls(tuple(i for i, _ in rows), tuple(n for _, n in rows))

    def candidates(self, query: str, k: int = 5) -> list[dict[str, object]]:
        """Top-``k`` candidates for ``query`` as ``[{"id", "name", "score"}]`` (score 0–100), best first."""
        hits = process.extract(query, self.names, scorer=fuzz.WRatio, processor=utils.default_process, limit=k)
        return [{"id": self.ids[idx], "name": name, "score": round(score, 1)} for name, score, idx in hits]


@lru_cache(maxsize=8)
def load_reference(path: str, id_column: str, name_column: str) -> ReferenceIndex:
    """Cached :meth:`ReferenceIndex.from_csv` (one load per process)."""
    return ReferenceIndex.from_csv(Path(path), id_column, name_column)
