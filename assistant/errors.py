"""One exception root for every failure the assistant knows how to explain.

A known failure is an :class:`AssistantError`: the CLI prints ``str(error)`` as one line
and exits with ``error.exit_code``. Anything else is a bug and shows a traceback only
under ``--debug``.
"""

from __future__ import annotations

__all__ = [
    "EX_CANTCREAT",
    "EX_CONFIG",
    "EX_DATAERR",
    "EX_NOPERM",
    "EX_SOFTWARE",
    "EX_TEMPFAIL",
    "EX_UNAVAILABLE",
    "EX_USAGE",
    "AssistantError",
    "ConfigError",
    "DownloadError",
    "GenerationError",
    "ModelError",
    "PromptTooLong",
]

#: sysexits.h codes (the table for every command: docs/cli.md). systemd's
#: RestartPreventExitStatus=78 stops restart loops on bad config.
EX_USAGE = 64  # the command line or the question itself is wrong
EX_DATAERR = 65  # the input does not fit (a prompt longer than the context window)
EX_UNAVAILABLE = 69  # the service or the model cannot be reached
EX_SOFTWARE = 70
EX_CANTCREAT = 73  # an output file cannot be written
EX_TEMPFAIL = 75  # busy or too hot: try again later
EX_NOPERM = 77  # wrong API key
EX_CONFIG = 78


class AssistantError(Exception):
    """Root of every known failure; the message is one line a user can act on."""

    exit_code: int = 1

    def __init__(self, *args: object, exit_code: int | None = None) -> None:
        super().__init__(*args)
        if exit_code is not None:
            self.exit_code = exit_code


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

    exit_code = EX_DATAERR
