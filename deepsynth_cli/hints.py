"""Hints shared by several commands, so each situation is explained once and the same way everywhere."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from deepsynth_cli.errors import DatasetError


def missing_split(split: str, present: Collection[str], pick: str = "pick one with --split, or ") -> str:
    """What to do when a rendered dataset lacks `split`.

    A dataset holding only `train` was most likely rendered from one local file, which becomes `train`:
    `generate --split test` cannot help there, so say how to give it the other splits instead.
    """
    if set(present) == {"train"}:
        return (
            f"{pick}carve validation and test out of the one file: `deepsynth generate FILE --holdout 0.05,0.05` "
            "into another --out (or give a folder holding train.jsonl, validation.jsonl and test.jsonl)"
        )
    return f"{pick}render it with `deepsynth generate --split {split}`"


def rows_beyond_max_samples(where: str, rows: int, max_samples: int | None) -> str | None:
    """A notice when finished shards of an earlier, larger run hold more rows than `--max-samples` asks for.

    They are kept (resuming never throws finished work away), so the report counts them; say so instead of
    silently reporting more rows than asked.
    """
    if max_samples is None or rows <= max_samples:
        return None
    return (
        f"{where}: {rows} rows, more than --max-samples {max_samples}: an earlier run left them and they are kept "
        f"(use another --out for exactly {max_samples})"
    )


def nothing_rendered(dataset: str, splits: Mapping[str, Any]) -> DatasetError | None:
    """The error for a run that produced no row at all (an empty file, or every row skipped), or None.

    An exit code of 0 would let `generate && train` go on to fail later with a puzzling "no rows"; the cause is
    here, so it is reported here. Splits that did produce rows are kept whatever happens.
    """
    if any(split.rows for split in splits.values()):
        return None
    skipped: dict[str, int] = {}
    for split in splits.values():
        for reason, count in split.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + count
    if not skipped:
        return DatasetError(
            f"{dataset}: the source holds no rows (an empty file?)",
            hint="give a file with one document a line (JSON Lines: text and summary), or check the path",
        )
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(skipped.items()))
    hint = "check --text-column / --summary-column, or lower --min-text-words / --min-summary-words"
    if "text_too_long" in skipped:
        hint += ", or raise --max-text-chars"
    return DatasetError(
        f"{dataset}: all {sum(skipped.values())} rows were skipped ({reasons}), nothing rendered", hint=hint
    )


def settings_changed(recorded: Mapping[str, Any] | None, current: Mapping[str, Any]) -> str:
    """`: render.font_size was 12, now 11; rows_per_shard was 20, now 10` (nested keys flattened), or "" when the
    earlier settings were not recorded (a run killed before it wrote its manifest, or an older deepsynth)."""
    if not recorded:
        return ""
    before, after = _flat(recorded), _flat(current)
    changes = [
        f"{key} was {before.get(key, '(unset)')}, now {after.get(key, '(unset)')}"
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    ]
    return ": " + "; ".join(changes) if changes else ""


def _flat(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
