"""`deepsynth train`: fine-tune a DeepSeek-OCR-2 on rendered datasets.

    run(cfg, on_event) -> TrainReport

The loop itself is `training/loop.py` (setup -> train -> save -> cleanup); this service resolves the
environment, runs it, and with `push_to_hub` publishes the final model with a card (`training/hub.py`).
Progress arrives as events (`training/events.py`); nothing is printed here.
"""

from __future__ import annotations

from deepsynth_cli.settings import Settings, get_settings
from deepsynth_cli.training.config import TrainConfig
from deepsynth_cli.training.events import Event, EventSink, Notice, TrainReport


def run(cfg: TrainConfig, on_event: EventSink | None = None, settings: Settings | None = None) -> TrainReport:
    """Train as `cfg` says and return the report."""
    from deepsynth_cli.training.loop import train

    emit: EventSink = on_event or _ignore
    settings = settings or get_settings()
    repo_id = None
    if cfg.push_to_hub is not None:
        from deepsynth_cli.credentials import describe_token
        from deepsynth_cli.training.hub import resolve_repo_id

        emit(Notice(describe_token(settings)))  # where the push's token comes from, never the token
        repo_id = resolve_repo_id(cfg.push_to_hub, settings)  # before training: a bad name fails in seconds
    report = train(cfg, emit, settings)
    if repo_id is not None and report.process_index == 0 and report.final_model is not None:
        report.pushed_to = _push(cfg, report, settings, repo_id, emit)
    return report


def _push(cfg: TrainConfig, report: TrainReport, settings: Settings, repo_id: str, emit: EventSink) -> str:
    from deepsynth_cli.data.hub import HubTarget
    from deepsynth_cli.training.hub import model_card, push_model

    assert report.final_model is not None
    emit(Notice(f"pushing the final model to the Hub model repo {repo_id}"))
    url = push_model(
        report.final_model,
        HubTarget(repo_id, cfg.hub_private),
        model_card(cfg, report, settings, repo_id),
        settings,
        attempts=cfg.hub.attempts,
        backoff_s=cfg.hub.backoff_s,
        timeout_s=cfg.hub.timeout_s,
        notify=lambda message: emit(Notice(message)),
    )
    emit(Notice(f"pushed to {url}"))
    return url


def _ignore(event: Event) -> None:
    return None
