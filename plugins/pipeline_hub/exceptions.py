"""The project's error hierarchy: every error raised on purpose derives from :class:`PipelineHubError`."""


class PipelineHubError(Exception):
    """Base of every error the project raises on purpose."""


class ConfigError(PipelineHubError):
    """A setting, connection or file is missing or invalid; the message names it and what to do."""
