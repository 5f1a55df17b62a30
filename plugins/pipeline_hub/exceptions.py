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
    """Base of every error the project raises on purpose; its message is one line naming what to fix.

    ``exit_code`` is the CLI's exit status for it (``pipeline-hub`` prints ``error: <message>``).
    """

    exit_code = 1


class QualityError(PipelineHubError):
    """A quality gate or an invariant of the published data failed."""

    exit_code = 1


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


class ConfigError(PipelineHubError, ValueError):
    """A setting (``PIPELINE_HUB_*`` variable, CLI option, include dir, config file) is missing or invalid.

    Also a ``ValueError``, as the ad hoc checks it replaces were.
    """

    exit_code = 2


class InputError(PipelineHubError, ValueError):
    """A file or value given by the user cannot be used (wrong format, missing column, bad subject)."""

    exit_code = 2


class ProviderError(PipelineHubError, RuntimeError):
    """The provider refused in a way retrying cannot fix (401, 403, 404), is unreachable or misconfigured.

    The message names the Airflow connection, never the request content. Subclasses live in
    :mod:`pipeline_hub.providers.hook` (``ProviderUnavailable``, ``CallFailed``, ``BudgetExhausted``).
    """

    exit_code = 4


class PromptError(PipelineHubError):
    """The prompt registry, its validation, scoring or promotion refused or failed (names the file/topic)."""

    exit_code = 2


class PiiError(PipelineHubError):
    """The PII scrubber cannot run: its configuration or the pseudonymisation key is missing or invalid."""

    exit_code = 2


class GovernanceError(PipelineHubError):
    """An erasure or retention request cannot be carried out as given."""

    exit_code = 2
