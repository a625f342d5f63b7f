"""User-facing errors: one line, a named problem, a non-zero exit, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user gave us (a file, a config, an argument).

    Command-line entry points catch it, print ``error: <message>`` on one line and exit with
    ``exit_code``; library callers can catch it like any exception.
    """

    exit_code = 2


class ConfigError(UserError, ValueError):
    """A config key that is unknown, has the wrong type or an invalid value."""


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated, or does not match the model being resumed."""
