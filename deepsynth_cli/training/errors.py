"""Training's domain error (candidate for `deepsynth_cli/errors.py`, which this change leaves alone)."""

from __future__ import annotations

from deepsynth_cli.errors import DeepsynthError


class TrainingError(DeepsynthError):
    """A run cannot go on as configured (out of memory, a model that cannot be trained); the hint says which knob."""
