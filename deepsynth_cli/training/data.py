"""Rows for training and evaluation, read shard by shard: memory holds a shuffle buffer, never a dataset.

Local dataset folders are read with pyarrow, one row group (at most 16 rows) at a time; Hub datasets stream
through `datasets`. (`datasets` 5 streaming sleeps 5 s each time a Parquet iterator closes, a workaround for an
Arrow threading bug: once per epoch, which would dominate small runs.)

The training stream mixes datasets deterministically in proportion to their weights (each next row comes from
the dataset furthest behind its share) and goes round each dataset epoch after epoch, reshuffled with
`seed + epoch`. Its position is a few integers per dataset (epoch, rows read this epoch, rows taken), so a
resumed run reopens each split, skips what was read and continues with exactly the rows it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from deepsynth_cli import hints
from deepsynth_cli.data import rendered
from deepsynth_cli.data.store import DatasetLocation, load_split, require_columns
from deepsynth_cli.errors import DatasetError
from deepsynth_cli.settings import Settings

Row = Mapping[str, Any]
REQUIRED_COLUMNS = ("pages", "summary")


@dataclass
class StreamPosition:
    """Where one dataset's stream is: enough to reopen it at the same row."""

    epoch: int = 0
    read: int = 0  # rows read in this epoch
    taken: int = 0  # rows taken over the whole run (what the mixing balances)


@dataclass
class DataPosition:
    streams: dict[str, StreamPosition] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {name: asdict(position) for name, position in self.streams.items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DataPosition:
        return cls({name: StreamPosition(**position) for name, position in values.items()})


def check_columns(columns: Sequence[str] | None, location: DatasetLocation, split: str) -> None:
    if columns is not None:
        hint = "train on what `deepsynth generate` writes (pages + summary per row)"
        require_columns(columns, REQUIRED_COLUMNS, location, split, hint)


def split_rows(location: DatasetLocation, split: str) -> int | None:
    """Rows of a split from the dataset's manifest, when it is a local folder that has one."""
    if location.kind != "local" or location.path is None:
        return None
    return rendered.manifest_rows(rendered.read_local_manifest(location.path)).get(split)


def _split_files(location: DatasetLocation, split: str) -> list[Any]:
    assert location.path is not None
    by_split = rendered.local_shards(location.path)
    files = by_split.get(split, [])
    if not files:
        present = sorted(by_split)
        raise DatasetError(
            f"{location} has no {split!r} split (it has: {', '.join(present) or 'no shards'})",
            hint=hints.missing_split(split, present, pick=""),
        )
    return files


def _local_rows(location: DatasetLocation, split: str, seed: int | None, skip: int) -> Iterator[Row]:
    """Rows of a local split. With a seed: row groups in a random order, rows shuffled within each; the first
    `skip` rows of that order are passed over by their counts in the metadata, without being read."""
    units: list[tuple[Any, int, int]] = []
    for path in _split_files(location, split):
        shard = rendered.open_shard(path)
        check_columns(shard.columns, location, split)
        units.extend((path, group, count) for group, count in enumerate(shard.group_rows()))
    rng = np.random.default_rng(seed) if seed is not None else None
    order = rng.permutation(len(units)) if rng is not None else np.arange(len(units))
    for unit in order:
        path, group, count = units[int(unit)]
        rows_order = rng.permutation(count) if rng is not None else np.arange(count)
        if skip >= count:
            skip -= count
            continue
        rows = rendered.open_shard(path).read_group(group)
        for index in rows_order[skip:]:
            yield rows[int(index)]
        skip = 0


class _SplitReader:
    """One dataset's training split, epoch after epoch, from a given position."""

    def __init__(
        self,
        location: DatasetLocation,
        split: str,
        settings: Settings,
        *,
        streaming: bool,
        seed: int,
        shuffle_buffer: int,
        position: StreamPosition,
    ) -> None:
        self.location = location
        self.split = split
        self.settings = settings
        self.streaming = streaming
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.position = position
        self._rows: Iterator[Row] | None = None
        self._dataset: Any = None

    def _open(self) -> Iterator[Row]:
        epoch_seed = self.seed + self.position.epoch
        if self.location.kind == "local":
            seed = epoch_seed if self.shuffle_buffer else None
            return _local_rows(self.location, self.split, seed, self.position.read)
        if self._dataset is None:  # resolving a split costs seconds: once per run, not per epoch
            self._dataset = load_split(self.location, self.split, self.settings, streaming=self.streaming)
            names = self._dataset.column_names
            check_columns(list(names) if names is not None else None, self.location, self.split)
        dataset = self._dataset
        if self.streaming:
            if self.shuffle_buffer:
                dataset = dataset.shuffle(seed=epoch_seed, buffer_size=self.shuffle_buffer)
            # skip() works below the decoding: the rows already read are not decoded again.
            return iter(dataset.skip(self.position.read))
        order = np.random.default_rng(epoch_seed).permutation(len(dataset))
        return (dataset[int(index)] for index in order[self.position.read :])

    def next(self) -> Row:
        for _ in range(2):
            if self._rows is None:
                self._rows = self._open()
            row = next(self._rows, None)
            if row is not None:
                check_columns(list(row), self.location, self.split)
                self.position.read += 1
                self.position.taken += 1
                return row
            if self.position.read == 0:
                break
            self.position.epoch += 1
            self.position.read = 0
            self._rows = None
        raise DatasetError(f"{self.location} has no rows in its {self.split} split", hint="rerun generate")


class TrainStream:
    """Rows of several datasets mixed by weight; `next_rows(n)` gives the next n of the whole run."""

    def __init__(
        self,
        locations: Sequence[DatasetLocation],
        settings: Settings,
        *,
        split: str,
        weights: Sequence[float] | None,
        streaming: bool,
        seed: int,
        shuffle_buffer: int,
        position: DataPosition | None = None,
    ) -> None:
        self.weights = list(weights) if weights else [1.0] * len(locations)
        self.position = position or DataPosition()
        self.names = [_key(location, index) for index, location in enumerate(locations)]
        self.readers = []
        for index, (location, name) in enumerate(zip(locations, self.names, strict=True)):
            stream_position = self.position.streams.setdefault(name, StreamPosition())
            self.readers.append(
                _SplitReader(
                    location,
                    split,
                    settings,
                    streaming=streaming,
                    seed=seed + 1000 * index,
                    shuffle_buffer=shuffle_buffer,
                    position=stream_position,
                )
            )

    def next_rows(self, count: int) -> list[Row]:
        rows = []
        for _ in range(count):
            # The dataset furthest behind its share goes next: exact proportions, no random state to save.
            shares = [reader.position.taken / weight for reader, weight in zip(self.readers, self.weights, strict=True)]
            rows.append(self.readers[int(np.argmin(shares))].next())
        return rows


def _key(location: DatasetLocation, index: int) -> str:
    return f"{index}:{location.name}"


def eval_rows(location: DatasetLocation, split: str, settings: Settings, count: int) -> list[Row]:
    """The first `count` rows of a split, in file order: the same fixed sample at every evaluation."""
    if location.kind == "local":
        rows = _local_rows(location, split, None, 0)
        return [row for _, row in zip(range(count), rows, strict=False)]
    dataset = load_split(location, split, settings, streaming=True)
    names = dataset.column_names
    check_columns(list(names) if names is not None else None, location, split)
    return list(dataset.take(count))
