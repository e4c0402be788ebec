"""The rows `eval` scores: read from a rendered split (a fixed seeded subset) or from a file of predictions.

A rendered split is read in two passes so that memory never holds its pages: first every column but `pages`
(ids, texts, references), then the pages of a few rows at a time, by row index, for generation and the gallery.

**Predictions file** (`deepsynth eval --predictions FILE.jsonl`): JSON Lines, one object per row.

    {"id": "P19-1001", "prediction": "We propose ...", "reference": "...", "language": "en"}   # self-contained
    {"id": "P19-1001", "prediction": "We propose ..."}                 # with --datasets NAME [--split test]

- `id` (string, required, unique per dataset) and `prediction` (string; `null` or "" is an empty prediction,
  scored 0 and kept in every mean).
- Self-contained lines also need `reference` and `language` (BCP-47); `source` (the document text) is optional
  and enables the Lead-k baselines and novel n-grams; `dataset` optionally groups rows (default "predictions").
- With `--datasets`, references, languages and source texts come from the rendered split, joined on its
  `source_id`; with several datasets each line names its `dataset`. The `predictions.jsonl` that `eval`
  writes has exactly these fields, so it can be rescored this way.
Unknown ids, duplicate ids, missing fields and bad JSON are errors that name the ids or line numbers.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from deepsynth_cli import hints
from deepsynth_cli.config import MAX_TEXT_CHARS
from deepsynth_cli.data import rendered
from deepsynth_cli.data.store import DatasetLocation, require_columns
from deepsynth_cli.errors import DatasetError
from deepsynth_cli.settings import Settings

if TYPE_CHECKING:
    from deepsynth_cli.data.hub_read import HubDataset

Row = Mapping[str, Any]
REQUIRED_COLUMNS = ("pages", "summary", "language")
META_COLUMNS = ("source_id", "text", "summary", "language", "text_tokens", "num_pages")
_SHOWN_IDS = 10


@dataclass
class EvalRow:
    """One document to score: its reference, its source, and (once generated or read) the prediction."""

    dataset: str
    id: str
    language: str
    reference: str
    source: str | None = None  # the document text: Lead-k baselines and novel n-grams need it
    text_tokens: int | None = None
    index: int | None = None  # position in the split: where its pages are read from
    num_pages: int | None = None
    prediction: str = ""
    error: str | None = None  # the model failed on this row; the prediction is empty
    pages_shown: int | None = None
    vision_tokens: int | None = None
    new_tokens: int | None = None
    finished: bool | None = None
    logprob: float | None = None


def sample_indices(total: int, max_samples: int | None, seed: int) -> list[int]:
    """Row positions to evaluate, in file order: all of them, or `max_samples` drawn without replacement by a
    generator seeded with `seed` (the same rows every run while the split is unchanged)."""
    if max_samples is None or max_samples >= total:
        return list(range(total))
    chosen = np.random.default_rng(seed).choice(total, size=max_samples, replace=False)
    return sorted(int(index) for index in chosen)


class SplitReader:
    """One split of a rendered dataset, read by row position, one Parquet row group at a time, from a local folder
    or a Hub repo. On the Hub nothing is downloaded whole: the shards are counted from the repo's part files, and a
    shard is opened (its footer read by range) only when a row in it is read; then only the columns asked for of
    the row groups that hold the rows (16 rows each) are fetched: the metadata columns first, the pages later."""

    def __init__(self, location: DatasetLocation, split: str, settings: Settings) -> None:
        self.location = location
        self.split = split
        self.columns: list[str] = []
        self._hub: HubDataset | None = None
        self._shards: list[str] = []  # a local file path, or a path in the Hub repo
        self._starts: list[int] = []  # first row position of each shard
        self._groups: dict[int, list[int]] = {}  # shard -> first row (within it) of each row group, once opened
        self._files: dict[int, rendered.Shard] = {}  # Hub shards opened
        self._cached: tuple[tuple[int, int, tuple[str, ...]], list[dict[str, Any]]] | None = None
        if location.kind == "local":
            assert location.path is not None
            local = rendered.local_shards(location.path)
            present = set(local)
            self._shards = [str(path) for path in local.get(split, [])]
            counts = [self._open(index).num_rows for index in range(len(self._shards))]
        else:
            from deepsynth_cli.data.hub_read import list_hub_dataset

            try:
                self._hub = list_hub_dataset(location, settings)
            except Exception as error:  # the Hub client's errors: not found, 401, offline
                raise DatasetError(
                    f"cannot list {location} ({type(error).__name__})",
                    hint="check the network and HF_TOKEN, and that the repo holds a rendered dataset",
                ) from error
            by_split = self._hub.shards()
            present = set(by_split)
            self._shards = by_split.get(split, [])
            counts = [self._declared_rows(index) for index in range(len(self._shards))]
        if not self._shards:
            raise DatasetError(
                f"{location} has no {split!r} split (it has: {', '.join(sorted(present)) or 'no shards'})",
                hint=hints.missing_split(split, present),
            )
        self._total = 0
        for count in counts:
            self._starts.append(self._total)
            self._total += count

    def _declared_rows(self, shard: int) -> int:
        """A Hub shard's rows from the part files, or from its footer when no part file describes it."""
        assert self._hub is not None
        name = PurePosixPath(self._shards[shard]).name
        if name in self._hub.declared:
            return self._hub.declared[name]
        return self._open(shard).num_rows

    def _open(self, shard: int) -> rendered.Shard:
        """The shard's Parquet file with its footer read (nothing else), its schema checked. Hub files are kept
        (reopening costs requests); local ones are reopened per row group (no descriptor per shard held)."""
        if shard in self._files:
            return self._files[shard]
        path = self._shards[shard]
        file = rendered.open_shard(path, self._hub)
        if shard not in self._groups:
            self._check(file.columns)
            firsts, rows = [], 0
            for count in file.group_rows():
                firsts.append(rows)
                rows += count
            declared = self._hub.declared.get(PurePosixPath(path).name) if self._hub is not None else None
            if declared is not None and declared != file.num_rows:
                raise DatasetError(
                    f"{self.location}: {PurePosixPath(path).name} holds {file.num_rows} rows, its part file says "
                    f"{declared}: rows cannot be found by position",
                    hint="rerun `deepsynth generate` with the same settings to rewrite the part files",
                )
            self._groups[shard] = firsts
        if self._hub is not None:
            self._files[shard] = file
        return file

    def _check(self, columns: Sequence[str]) -> None:
        require_columns(
            columns, REQUIRED_COLUMNS, self.location, self.split, "evaluate on what `deepsynth generate` writes"
        )
        self.columns = list(columns)

    def __len__(self) -> int:
        return self._total

    def read(self, indices: Sequence[int], columns: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
        """(position, row) for each position in `indices` (ascending), with only `columns` (those present)."""
        for index in indices:
            shard = bisect.bisect_right(self._starts, index) - 1
            if shard < 0 or index >= self._total:
                raise IndexError(f"row {index} is outside {self.location} ({self.split}, {self._total} rows)")
            if shard not in self._groups:
                self._open(shard)  # checks its schema: a shard holding no row asked for is never opened
            wanted = tuple(name for name in columns if name in self.columns)
            offset, firsts = index - self._starts[shard], self._groups[shard]
            group = bisect.bisect_right(firsts, offset) - 1
            yield index, dict(self._group_rows(shard, group, wanted)[offset - firsts[group]])

    def _group_rows(self, shard: int, group: int, columns: tuple[str, ...]) -> list[dict[str, Any]]:
        """The rows of one row group with `columns`; the last group read is kept (rows are read in order)."""
        key = (shard, group, columns)
        if self._cached is None or self._cached[0] != key:
            rows = self._open(shard).read_group(group, columns)
            self._cached = (key, rows)
        return self._cached[1]


def dataset_rows(reader: SplitReader, name: str, indices: Sequence[int]) -> list[EvalRow]:
    """The rows at `indices` without their pages."""
    rows = []
    for index, row in reader.read(indices, META_COLUMNS):
        source_id = row.get("source_id")
        tokens = row.get("text_tokens")
        rows.append(
            EvalRow(
                dataset=name,
                id=str(source_id) if source_id not in (None, "") else str(index),
                language=str(row.get("language") or ""),
                reference=str(row.get("summary") or ""),
                source=row.get("text"),
                text_tokens=int(tokens) if tokens is not None else None,
                index=index,
                num_pages=row.get("num_pages"),
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Predictions files


@dataclass(frozen=True)
class PredictionLine:
    line: int
    id: str
    prediction: str
    fields: dict[str, Any]


def read_predictions(path: Path, self_contained: bool = False) -> list[PredictionLine]:
    """Every line of a predictions file, checked: JSON objects with an `id` and a `prediction` each (and, when
    `self_contained`, a `reference` and a `language`). Every problem of the file is in the one error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise DatasetError(
            f"predictions file not found: {path}", hint="check the path given to --predictions"
        ) from error
    except UnicodeDecodeError as error:
        raise DatasetError(f"predictions file {path} is not UTF-8", hint="save it as UTF-8 JSON Lines") from error
    lines: list[PredictionLine] = []
    bad: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            bad.append(f"line {number}: not JSON")
            continue
        if not isinstance(item, dict):
            bad.append(f"line {number}: not a JSON object")
            continue
        identifier, prediction = item.get("id"), item.get("prediction", ...)
        if identifier is None or str(identifier) == "":
            bad.append(f"line {number}: no id")
        elif prediction is ...:
            bad.append(f"line {number} (id {identifier}): no prediction field")
        elif prediction is not None and not isinstance(prediction, str):
            bad.append(f"line {number} (id {identifier}): prediction is not a string")
        elif oversized := _oversized_fields(item):
            bad.append(f"line {number} (id {identifier}): {oversized}")
        else:
            lines.append(PredictionLine(number, str(identifier), prediction or "", item))
    if self_contained:
        bad.extend(f"line {line.line} (id {line.id}): no reference or language" for line in _unreferenced(lines))
    duplicates = _duplicate_lines(lines)  # reported with the other problems: the user fixes the file once
    if duplicates:
        bad.append(f"duplicate ids {_listed(duplicates)}")
    if bad:
        hint = "give each row one prediction" if duplicates and len(bad) == 1 else _FORMAT_HINT
        raise DatasetError(f"{path}: {_listed(bad)}", hint=hint)
    if not lines:
        raise DatasetError(f"{path} holds no predictions", hint=_FORMAT_HINT)
    return lines


def _oversized_fields(item: Mapping[str, Any]) -> str:
    """`source has 2,000,000 characters, over the limit of 1,000,000` for each text field over `generate`'s
    per-document limit, or "": a 50 MB source or prediction would cost gigabytes in ROUGE and the baselines."""
    over = [
        f"{name} has {len(value):,} characters, over the limit of {MAX_TEXT_CHARS:,}"
        for name in _TEXT_FIELDS
        if isinstance(value := item.get(name), str) and len(value) > MAX_TEXT_CHARS
    ]
    return "; ".join(over)


_TEXT_FIELDS = ("prediction", "reference", "source")


def _unreferenced(lines: Sequence[PredictionLine]) -> list[PredictionLine]:
    return [
        line
        for line in lines
        if not isinstance(line.fields.get("reference"), str) or not isinstance(line.fields.get("language"), str)
    ]


def _duplicate_lines(lines: Sequence[PredictionLine]) -> list[str]:
    """`a (lines 1, 5)` for each (dataset, id) given more than once."""
    where: dict[tuple[str, str], list[int]] = {}
    for line in lines:
        where.setdefault((str(line.fields.get("dataset", "")), line.id), []).append(line.line)
    return [
        f"{dataset}/{identifier} (lines {', '.join(map(str, numbers))})"
        if dataset
        else f"{identifier} (lines {', '.join(map(str, numbers))})"
        for (dataset, identifier), numbers in where.items()
        if len(numbers) > 1
    ]


_FORMAT_HINT = (
    'one JSON object a line: {"id": ..., "prediction": ..., "reference": ..., "language": ...}, or id and prediction '
    "only with --datasets to join the references (see `deepsynth eval --help`)"
)


def self_contained_rows(lines: Sequence[PredictionLine]) -> list[EvalRow]:
    """Rows whose reference and language are in the file itself."""
    missing = _unreferenced(lines)
    if missing:
        numbers = _listed([str(line.line) for line in missing])
        raise DatasetError(
            f"no reference or language for ids {_listed([line.id for line in missing])} (lines {numbers})",
            hint="add reference and language to each line, or give --datasets (and --split) to join the references",
        )
    rows = []
    for line in lines:
        source, tokens = line.fields.get("source"), line.fields.get("text_tokens")
        rows.append(
            EvalRow(
                dataset=str(line.fields.get("dataset") or "predictions"),
                id=line.id,
                language=str(line.fields["language"]),
                reference=str(line.fields["reference"]),
                source=source if isinstance(source, str) else None,
                text_tokens=tokens if isinstance(tokens, int) else None,
                prediction=line.prediction,
            )
        )
        _carry(rows[-1], line)
    return rows


def joined_rows(lines: Sequence[PredictionLine], readers: Mapping[str, SplitReader]) -> list[EvalRow]:
    """Rows whose references come from rendered splits, matched on `source_id`; unknown ids are an error."""
    names = list(readers)
    by_dataset: dict[str, list[PredictionLine]] = {name: [] for name in names}
    unnamed, unknown_dataset = [], []
    for line in lines:
        name = line.fields.get("dataset")
        if name is None and len(names) == 1:
            name = names[0]
        if name is None:
            unnamed.append(line.id)
        elif str(name) not in by_dataset:
            unknown_dataset.append(f"{line.id} ({name})")
        else:
            by_dataset[str(name)].append(line)
    if unnamed:
        raise DatasetError(
            f"{len(names)} datasets given but no dataset field for ids {_listed(unnamed)}",
            hint=f'add "dataset": one of {", ".join(names)} to each line, or evaluate one dataset at a time',
        )
    if unknown_dataset:
        raise DatasetError(
            f"lines name datasets that were not given: ids {_listed(unknown_dataset)}",
            hint=f"the datasets given are: {', '.join(names)}",
        )
    rows: list[EvalRow] = []
    for name, wanted in by_dataset.items():
        if not wanted:
            continue
        reader = readers[name]
        known = {row.id: row for row in dataset_rows(reader, name, range(len(reader)))}
        unknown = [line.id for line in wanted if line.id not in known]
        if unknown:
            raise DatasetError(
                f"{len(unknown)} of {len(wanted)} prediction ids are not in {reader.location} ({reader.split}): "
                f"{_listed(unknown)}",
                hint="the ids must be the split's source_id values; check --datasets and --split",
            )
        for line in sorted(wanted, key=lambda item: known[item.id].index or 0):
            row = known[line.id]
            row.prediction = line.prediction
            _carry(row, line)
            rows.append(row)
    return rows


def _carry(row: EvalRow, line: PredictionLine) -> None:
    """What a predictions file written by `eval` also records: the model's failure and the vision tokens it saw
    (so a rescored file keeps its error count and compression)."""
    error, vision = line.fields.get("error"), line.fields.get("vision_tokens")
    row.error = error if isinstance(error, str) else None
    row.vision_tokens = vision if isinstance(vision, int) and vision > 0 else None


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN_IDS])
    return shown + (f" and {len(items) - _SHOWN_IDS} more" if len(items) > _SHOWN_IDS else "")
