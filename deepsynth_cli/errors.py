"""Domain errors. Each carries a one-line message and a hint that says what to do next.

`cli/app.py` is the one place that turns them into output and an exit code.
"""

from __future__ import annotations


class DeepsynthError(Exception):
    """An error the user can fix. `hint` tells them how."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(DeepsynthError):
    """A job config or setting is invalid (bad YAML, unknown field, value out of range)."""

    exit_code = 2


class DatasetError(DeepsynthError):
    """A dataset cannot be found, read or understood (unknown key, missing column, bad file)."""


class OutputError(DeepsynthError):
    """The output location cannot be used as asked (conflicting earlier run, not writable)."""


class RenderError(DeepsynthError):
    """Pages cannot be rendered (fonts missing, impossible geometry)."""
