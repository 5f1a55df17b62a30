"""Errors of the dev services; all derive from :class:`pipeline_hub.exceptions.PipelineHubError`."""

from __future__ import annotations

from pathlib import Path

from pipeline_hub.exceptions import PipelineHubError


class ServiceError(PipelineHubError, RuntimeError):
    """A local service could not be started, reached or stopped (also a RuntimeError, as before)."""


class ServiceStartError(ServiceError):
    """The service process exited early or was not ready in time; ``log_path`` holds its output."""

    def __init__(self, message: str, log_path: Path | None = None):
        super().__init__(message)
        self.log_path = log_path


class PortInUseError(ServiceError):
    """A port the service needs is already bound by another process."""


class ModelAssemblyError(ServiceError):
    """The GGUF model file could not be produced from the model package."""
