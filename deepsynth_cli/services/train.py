"""`deepsynth train`: fine-tune a DeepSeek-OCR-2 on rendered datasets.

    run(cfg, on_event) -> TrainReport

The loop itself is `training/loop.py` (setup -> train -> save -> cleanup); this service resolves the
environment and runs it (publishing to the Hub is still to come). Progress arrives as events
(`training/events.py`); nothing is printed here.
"""

from __future__ import annotations

from deepsynth_cli.settings import Settings, get_settings
from deepsynth_cli.training.config import TrainConfig
from deepsynth_cli.training.events import Event, EventSink, TrainReport


def run(cfg: TrainConfig, on_event: EventSink | None = None, settings: Settings | None = None) -> TrainReport:
    """Train as `cfg` says and return the report."""
    from deepsynth_cli.training.loop import train

    emit: EventSink = on_event or _ignore
    settings = settings or get_settings()
    return train(cfg, emit, settings)


def _ignore(event: Event) -> None:
    return None
