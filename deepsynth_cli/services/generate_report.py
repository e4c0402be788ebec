"""What `deepsynth generate` tells: the events it emits while it runs and the reports it returns.

The service reports, the CLI decides how to show it (cli/progress.py). Reports add up: a part's split reports
merge into the dataset's, so a run split over machines or Ray tasks reports the same totals as one process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deepsynth_cli.data import rendered
from deepsynth_cli.data.shards import ShardMeta

MISSING_NAMED = 5  # characters named in a missing-glyph warning


def merge_chars(known: str, more: str) -> str:
    """The first few distinct characters of `known` then `more` (the ones a missing-glyph warning names)."""
    return "".join(dict.fromkeys(known + more))[:MISSING_NAMED]


# Events: the service reports, the CLI decides how to show it.
@dataclass(frozen=True)
class SplitStarted:
    dataset: str
    split: str
    total: int | None  # source rows this part will go through, when known


@dataclass(frozen=True)
class Advanced:
    dataset: str
    split: str
    documents: int  # source rows handled since the last event (rendered or skipped)
    pages: int


@dataclass(frozen=True)
class ShardWritten:
    dataset: str
    split: str
    path: Path
    rows: int


@dataclass(frozen=True)
class Notice:
    message: str


@dataclass(frozen=True)
class PartsProgress:
    """Parts of one dataset running elsewhere (Ray tasks), summed on the driver since they started."""

    dataset: str
    parts: int
    parts_done: int
    documents: int  # source rows handled by every part so far (rendered or skipped)
    pages: int
    retries: int  # task attempts after the first (a worker died and Ray ran the part again)


Event = SplitStarted | Advanced | ShardWritten | Notice | PartsProgress
EventSink = Callable[[Event], None]


_SUMMED = (
    "rows", "pages", "truncated_rows", "dropped_chars", "text_tokens", "vision_tokens", "source_tokens",
    "missing_glyphs", "undetermined_rows",
)  # fmt: skip
"""The counts a shard footer and a split's report share: a split's figure is the sum of its shards'."""


@dataclass
class SplitReport:
    rows: int = 0
    pages: int = 0
    truncated_rows: int = 0
    dropped_chars: int = 0
    text_tokens: int = 0
    vision_tokens: int = 0
    source_tokens: int = 0
    missing_glyphs: int = 0
    missing_chars: str = ""  # a few of the characters no font could draw
    undetermined_rows: int = 0  # rows whose language is "und"
    skipped: dict[str, int] = field(default_factory=dict)
    shards: int = 0
    shards_written: int = 0
    shards_reused: int = 0

    def add(self, meta: ShardMeta) -> None:
        """Count one shard of this split (its footer)."""
        self._sum(meta)
        self.shards += 1

    def merge(self, other: SplitReport) -> None:
        """Add another part's report of the same split."""
        self._sum(other)
        self.shards += other.shards
        self.shards_written += other.shards_written
        self.shards_reused += other.shards_reused

    def _sum(self, other: ShardMeta | SplitReport) -> None:
        for name in _SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.missing_chars = merge_chars(self.missing_chars, other.missing_chars)
        for reason, count in other.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + count

    @property
    def compression(self) -> float | None:
        return rendered.compression(self.text_tokens, self.vision_tokens)

    @property
    def missing_glyph_warning(self) -> str | None:
        """One line naming a few characters with no glyph (shown as boxes), or None when every one was drawn."""
        if not self.missing_glyphs:
            return None
        named = ", ".join(f"{char!r} U+{ord(char):04X}" for char in self.missing_chars)
        return f"{self.missing_glyphs} drawn character(s) had no glyph in any font and show as boxes ({named})"


@dataclass
class PartReport:
    """What one part (`--shard-index`) did: its split reports and, with the Hub as the store, its uploads."""

    part: int
    parts: int
    splits: dict[str, SplitReport] = field(default_factory=dict)
    seconds: float = 0.0
    attempts: int = 1  # more than 1 when Ray ran the part again after its worker died
    committed: dict[str, ShardMeta] = field(default_factory=dict)  # this part's shards in the Hub repo
    uploaded_bytes: int = 0
    commits: int = 0

    def to_dict(self) -> dict[str, Any]:
        splits = self.splits.values()
        return {
            "part": self.part,
            "rows": sum(split.rows for split in splits),
            "pages": sum(split.pages for split in splits),
            "shards_written": sum(split.shards_written for split in splits),
            "shards_reused": sum(split.shards_reused for split in splits),
            "attempts": self.attempts,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class DatasetReport:
    dataset: str
    location: str
    splits: dict[str, SplitReport] = field(default_factory=dict)
    font_size: float | None = None
    target_compression: float | None = None  # asked for; each split's `compression` is what its rows achieve
    seconds: float = 0.0
    uploaded_bytes: int = 0
    commits: int = 0
    parts: list[PartReport] = field(default_factory=list)  # per part, when the parts ran as Ray tasks

    def add_part(self, part: PartReport) -> None:
        for name, split in part.splits.items():
            self.splits.setdefault(name, SplitReport()).merge(split)
        self.uploaded_bytes += part.uploaded_bytes
        self.commits += part.commits

    def to_dict(self) -> dict[str, Any]:
        splits = {
            name: {**asdict(split), "compression": split.compression, "warning": split.missing_glyph_warning}
            for name, split in self.splits.items()
        }
        skipped: dict[str, int] = {}
        for split in self.splits.values():
            for reason, count in split.skipped.items():
                skipped[reason] = skipped.get(reason, 0) + count
        return {
            "dataset": self.dataset,
            "location": self.location,
            "font_size": self.font_size,
            "target_compression": self.target_compression,
            "rows": {name: split.rows for name, split in self.splits.items()},
            "pages": sum(split.pages for split in self.splits.values()),
            "truncated_rows": sum(split.truncated_rows for split in self.splits.values()),
            "skipped": skipped,
            "splits": splits,
            **({"uploaded_bytes": self.uploaded_bytes, "commits": self.commits} if self.commits else {}),
            **({"parts": [part.to_dict() for part in self.parts]} if self.parts else {}),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class GenerateReport:
    datasets: list[DatasetReport] = field(default_factory=list)
    preview_files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings not tied to one split (preview, languages)
    seconds: float = 0.0

    def warnings(self) -> list[str]:
        """What the user should know before using the dataset: characters with no glyph, unknown languages."""
        found = list(self.notes)
        for dataset in self.datasets:
            for name, split in dataset.splits.items():
                if split.missing_glyph_warning:
                    found.append(f"{dataset.dataset}/{name}: {split.missing_glyph_warning}")
                if split.undetermined_rows:
                    found.append(
                        f"{dataset.dataset}/{name}: {split.undetermined_rows} row(s) have language 'und': fonts fall "
                        "back per character and `eval` cannot score them; pass --language or --language-column"
                    )
        return found

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"datasets": [report.to_dict() for report in self.datasets]}
        if self.preview_files:
            out["preview_files"] = [str(path) for path in self.preview_files]
        out["warnings"] = self.warnings()
        out["seconds"] = round(self.seconds, 3)
        return out
