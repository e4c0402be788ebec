"""Hints shared by several commands, so each situation is explained once and the same way everywhere."""

from __future__ import annotations

from collections.abc import Collection


def missing_split(split: str, present: Collection[str], pick: str = "pick one with --split, or ") -> str:
    """What to do when a rendered dataset lacks `split`.

    A dataset holding only `train` was most likely rendered from one local file, which always becomes `train`:
    `generate --split test` cannot help there, so say how to give it the other splits instead.
    """
    if set(present) == {"train"}:
        return (
            f"{pick}give the source one file per split: a folder holding train.jsonl, validation.jsonl and "
            f"test.jsonl (one local file renders as train only), then `deepsynth generate FOLDER`"
        )
    return f"{pick}render it with `deepsynth generate --split {split}`"
