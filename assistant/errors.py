"""One exception root for every failure the assistant knows how to explain.

A known failure is an :class:`AssistantError`: the CLI prints ``str(error)`` as one line
and exits with ``error.exit_code``. Anything else is a bug and shows a traceback only
under ``--debug``.
"""

from __future__ import annotations

__all__ = [
    "EX_CONFIG",
    "EX_SOFTWARE",
    "EX_UNAVAILABLE",
    "AssistantError",
    "ConfigError",
    "DownloadError",
    "GenerationError",
    "ModelError",
    "PromptTooLong",
]

#: sysexits.h codes. systemd's RestartPreventExitStatus=78 stops restart loops on bad config.
EX_CONFIG = 78
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70


class AssistantError(Exception):
    """Root of every known failure; the message is one line a user can act on."""

    exit_code: int = 1


class ConfigError(AssistantError, ValueError):
    """The configuration file is unreadable or invalid.

    ``problems`` holds every problem found, each already formatted as
    ``FILE:LINE:COL: section.key: message``.
    """

    exit_code = EX_CONFIG

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ModelError(AssistantError, OSError):
    """A model file is missing, truncated, corrupt or of the wrong kind."""

    exit_code = EX_CONFIG


class DownloadError(AssistantError, OSError):
    """Fetching or verifying a model failed."""

    exit_code = EX_UNAVAILABLE


class GenerationError(AssistantError, RuntimeError):
    """The engine failed while generating."""

    exit_code = EX_SOFTWARE


class PromptTooLong(AssistantError, ValueError):
    """The newest message alone does not fit the context window."""

    exit_code = 1
