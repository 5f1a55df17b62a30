"""The project's exceptions: one base, :class:`PipelineHubError`, and a subclass per kind of failure.

Every error the project raises on purpose derives from :class:`PipelineHubError`, so the CLI can turn
any of them into one line and an exit code (tracebacks only with ``--debug``) and a DAG task fails with
that line. Bad *input* is not an exception: a bad record is quarantined and an unreadable object is
rejected with a reason code (:mod:`pipeline_hub.reasons`); these classes are for failures of a run.

This module imports nothing from the project: every layer may import it.
"""

from __future__ import annotations

from typing import Any


class PipelineHubError(Exception):
    """Base of every error the project raises on purpose; its message is one line naming what to fix."""


class QualityError(PipelineHubError):
    """A quality gate or an invariant of the published data failed."""


class QualityGateFailed(QualityError):
    """A topic failed a blocking expectation: its rows were quarantined, the run must end failed.

    ``summary`` is the publish summary of the quarantined topic (counts, URI of its manifest in the
    quarantine zone, no record values) and ``manifest`` that manifest, for lineage and callers.
    """

    def __init__(
        self, message: str, summary: dict[str, Any] | None = None, manifest: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.summary = summary or {}
        self.manifest = manifest or {}


class ConservationError(QualityError):
    """Records in != published + quarantined for a topic: a bug, never published over."""
