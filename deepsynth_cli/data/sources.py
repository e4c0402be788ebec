"""Stream (text, summary) documents out of a dataset, one split at a time.

`open_source(DATASET)` resolves what the user typed into a `Source`:

1. a registry key (`mlsum_fr`, `cnn_dailymail`, `aclsum`, ...; see `registry.py`);
2. an existing local file (`.jsonl`, `.json`, `.csv`, `.parquet`) or a directory of such files;
3. a Hub dataset id `owner/name`, streamed with `datasets` (text and summary columns must be given).

Every source streams: memory stays flat however large a split is (one line, one CSV row, one JSON array
element or one Parquet batch at a time), and `documents(split)` only ever reads that split, so train and
test never mix. `part(split, index, count, limit)` gives the rows of one of `count` machines' parts
(`--num-shards`): row ranges of Parquet files, byte ranges of JSON Lines files, round-robin otherwise (see
"Parts" below, the one home of that rule). Nothing here prints; problems the user can fix raise `DatasetError`
with a hint.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
import sys
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import quote

import ijson

from deepsynth_cli.data.holdout import SOURCE_SPLIT, Holdout
from deepsynth_cli.data.registry import PARQUET_EXPORT, DatasetSpec, get_spec, lookup_spec
from deepsynth_cli.errors import DatasetError

SUPPORTED_EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")
"""Local file formats `open_source` reads."""

SPLIT_NAMES = ("train", "validation", "val", "valid", "dev", "test")
"""File names (without extension) recognised as a split when a single file is given."""

UNDETERMINED_LANGUAGE = "und"
"""BCP-47 tag for "language not known": files and bare Hub ids without `language=`."""

DEFAULT_TEXT_COLUMN = "text"
DEFAULT_SUMMARY_COLUMN = "summary"
ID_COLUMN = "id"

_PARQUET_BATCH_ROWS = 256  # long documents (BillSum, arXiv) make a batch tens of MB; keep it small
_SHARD_SUFFIX = re.compile(r"[-_.]\d+(?:[-_.]of[-_.]\d+)?$")  # "train-00000-of-00003" -> "train"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_REENCODE_HINT = "re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`)"
_JSON_ARRAY_HINT = "a .json file must hold one JSON array of objects, or one JSON object per line"


@dataclass(frozen=True)
class Document:
    """One source document and its reference summary.

    `text`/`summary` are "" when the source has no value: the caller counts and skips empties. A cell
    holding a list is joined: text items with newlines, summary items with the dataset's summary joiner.
    """

    source_id: str
    text: str
    summary: str
    language: str


class Source(Protocol):
    """A dataset whose splits can be streamed as `Document`s."""

    name: str
    """Output dataset folder name: registry key, file stem, or Hub id with "/" -> "__"."""
    language: str
    spec: DatasetSpec | None

    def splits(self) -> list[str]:
        """Source split names available (and selected), in a stable order."""
        ...

    def documents(self, split: str) -> Iterator[Document]:
        """Stream the documents of one split, lazily and in a deterministic order."""
        ...

    def part(self, split: str, index: int, count: int, limit: int | None = None) -> SourcePart:
        """The rows of `split` that part `index` of `count` reads (see "Parts" below), among its first `limit`."""
        ...


def open_source(
    dataset: str,
    *,
    text_column: str | None = None,
    summary_column: str | None = None,
    language: str | None = None,
    splits: Sequence[str] | None = None,
    config: str | None = None,
    language_column: str | None = None,
    holdout: Holdout | None = None,
) -> Source:
    """Resolve DATASET (registry key, local file or directory, or Hub id `owner/name`) into a `Source`.

    `text_column`/`summary_column` override the registry defaults ("text"/"summary" for local files; both
    required for a bare Hub id). `language` overrides the registry language ("und" otherwise). `splits`
    selects source splits and must name existing ones. `config` picks a Hub config (registry default
    otherwise). `language_column` names a column with each row's language; local files and bare Hub ids without
    it use a `language` or `lang` column automatically unless `language` is given (registry entries know theirs).
    Local files are checked here (existence, format, columns of the first record); a Hub
    source makes no network call until `splits()` (bare ids only) or `documents()` is used. `holdout` carves
    validation and test out of a local source's lone train split (`data/holdout.py`).

    Raises DatasetError, with a hint, for anything the user can fix.
    """
    spec = lookup_spec(dataset)
    if spec is None:
        path = Path(dataset).expanduser()
        if path.exists():
            if config is not None:
                raise DatasetError(
                    f"--config applies to Hub datasets, not to the local path {dataset}",
                    hint="drop --config; a local dataset's splits come from its file names",
                )
            return _open_local(path, text_column, summary_column, language, splits, language_column, holdout)
        if _looks_like_path(dataset):
            raise DatasetError(
                f"file not found: {dataset}",
                hint=f"check the path; local datasets are files ({', '.join(SUPPORTED_EXTENSIONS)}) "
                "or a directory of them named by split",
            )
        if _HUB_ID.fullmatch(dataset) and holdout is not None:
            raise _holdout_refused(dataset, "is a Hub dataset, not a local file")
        if _HUB_ID.fullmatch(dataset):
            return _open_hub_id(dataset, text_column, summary_column, language, splits, config, language_column)
        spec = get_spec(dataset)  # neither a key, a file nor a Hub id: raises "unknown dataset" with matches
    if holdout is not None:
        raise _holdout_refused(dataset, "is not a local file, and has its own splits")
    return _open_registry(spec, text_column, summary_column, language, splits, config, language_column)


# --- Registry entries ------------------------------------------------------------------------------------


def _open_registry(
    spec: DatasetSpec,
    text_column: str | None,
    summary_column: str | None,
    language: str | None,
    splits: Sequence[str] | None,
    config: str | None,
    language_column: str | None = None,
) -> Source:
    selected = _select_splits(spec.splits, splits, spec.key)
    if spec.kind == "aclsum":
        if text_column or summary_column or config or language_column:
            raise DatasetError(
                "aclsum has a fixed layout: --text-column, --summary-column, --language-column and --config do "
                "not apply",
                hint="drop those options, or export the data to a .jsonl file and pass that instead",
            )
        return AclsumSource(spec, language=language or spec.language, splits=selected)
    assert spec.hub_id is not None  # guaranteed by DatasetSpec.__post_init__ for kind "hub"
    return HubSource(
        name=spec.key,
        hub_id=spec.hub_id,
        config=config or spec.config,
        revision=spec.revision,
        text_column=text_column or spec.text_column,
        summary_column=summary_column or spec.summary_column,
        language=language or spec.language,
        spec=spec,
        splits=selected,
        summary_joiner=spec.summary_joiner,
        language_column=language_column,
    )


def _select_splits(available: Sequence[str], requested: Sequence[str] | None, where: str) -> list[str]:
    if requested is None:
        return list(available)
    missing = [split for split in requested if split not in available]
    if missing:
        raise DatasetError(
            f"{where} has no split {', '.join(repr(split) for split in missing)}; "
            f"available splits: {', '.join(available)}",
            hint="pass only available splits (or none, to use them all)",
        )
    return list(dict.fromkeys(requested))  # keep the user's order, drop repeats


# --- Hub datasets ----------------------------------------------------------------------------------------


def _open_hub_id(
    hub_id: str,
    text_column: str | None,
    summary_column: str | None,
    language: str | None,
    splits: Sequence[str] | None,
    config: str | None,
    language_column: str | None = None,
) -> HubSource:
    # Checked before anything touches the network: a Hub id alone says nothing about its columns.
    missing = [
        option for option, value in (("--text-column", text_column), ("--summary-column", summary_column)) if not value
    ]
    if missing or text_column is None or summary_column is None:
        raise DatasetError(
            f"{hub_id!r} is not a known dataset key, so its text and summary columns must be given",
            hint=f"pass {' and '.join(missing)} (the Hub dataset's column names), "
            "or run `deepsynth generate --list` for the known datasets",
        )
    name = hub_id.replace("/", "__") + (f"__{config}" if config else "")
    return HubSource(
        name=name,
        hub_id=hub_id,
        config=config,
        revision=None,
        text_column=text_column,
        summary_column=summary_column,
        language=language or UNDETERMINED_LANGUAGE,
        spec=None,
        requested_splits=splits,
        language_column=language_column or (None if language else AUTO_LANGUAGE),
    )


def parquet_export_patterns(root: str, config: str, split: str) -> list[str]:
    """Glob patterns for one split of a dataset's Parquet export (`refs/convert/parquet`) under `root`.

    The export stores `{config}/{split}/0000.parquet, 0001.parquet, ...`, or `{config}/partial-{split}/...`
    when only the first ~5 GB of a split were converted. Exports made before late 2023 and never refreshed
    use `{config}/{name}-{split}.parquet` or `{config}/{name}-{split}-00000-of-00002.parquet`. Patterns that
    match nothing are skipped by `datasets`, so all layouts are listed.
    """
    base = f"{root.rstrip('/')}/{config}"
    return [
        f"{base}/{split}/*.parquet",
        f"{base}/partial-{split}/*.parquet",
        f"{base}/*-{split}.parquet",
        f"{base}/*-{split}-*-of-*.parquet",
    ]


class HubSource:
    """A dataset on the Hugging Face Hub, streamed with `datasets` (never downloaded whole)."""

    name: str
    language: str
    spec: DatasetSpec | None

    def __init__(
        self,
        *,
        name: str,
        hub_id: str,
        config: str | None,
        revision: str | None,
        text_column: str,
        summary_column: str,
        language: str,
        spec: DatasetSpec | None = None,
        splits: Sequence[str] | None = None,
        requested_splits: Sequence[str] | None = None,
        summary_joiner: str = " ",
        parquet_root: str | None = None,
        language_column: str | None = None,
    ) -> None:
        """`splits` are the known splits (registry); without them the Hub is asked, lazily, and
        `requested_splits` is checked against its answer. `parquet_root` replaces the Hub location of the
        Parquet export (`hf://datasets/{hub_id}@refs%2Fconvert%2Fparquet`), e.g. with a local mirror.
        `language_column` names the column holding each row's language ("auto": `language` or `lang` when
        present); rows without one get `language`."""
        self.name = name
        self.language = language
        self.spec = spec
        self.hub_id = hub_id
        self.config = config
        self.revision = revision
        self.text_column = text_column
        self.summary_column = summary_column
        self.summary_joiner = summary_joiner
        self.language_column = language_column
        self._splits = list(splits) if splits is not None else None
        self._pieces: dict[str, list[ParquetPiece] | None] = {}  # footers of a Parquet split, read once
        self._requested_splits = requested_splits
        self._parquet_root = parquet_root or f"hf://datasets/{hub_id}@{quote(PARQUET_EXPORT, safe='')}"

    @property
    def where(self) -> str:
        """Repo, config and revision, as error messages name them."""
        return f"{self.hub_id} (config {self.config or 'default'}, revision {self.revision or 'main'})"

    def splits(self) -> list[str]:
        if self._splits is None:
            available = self._hub_split_names()
            self._splits = _select_splits(available, self._requested_splits, self.where)
        return list(self._splits)

    def documents(self, split: str) -> Iterator[Document]:
        if split not in self.splits():
            raise _no_such_split(self.where, split, self.splits())
        return self._stream(split)

    def _stream(self, split: str) -> Iterator[Document]:
        rows = iter(self._load(split))
        index = 0
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except Exception as error:  # network drop, corrupt shard...: say where it happened
                raise self._error(
                    f"reading split {split!r} of {self.where} failed after {index} rows", error
                ) from error
            if index == 0:
                _require_columns(f"{self.where} split {split!r}", list(row), self._required())
            yield self._document(row, split, index)
            index += 1

    def part(self, split: str, index: int, count: int, limit: int | None = None) -> SourcePart:
        """A split stored as Parquet (the Parquet export, or a repo of Parquet files): row ranges, read by HTTP
        range (footers, then only the row groups of this part and only the columns used); otherwise round-robin
        over the `datasets` stream."""
        if split not in self.splits():
            raise _no_such_split(self.where, split, self.splits())
        pieces = self._parquet_pieces(split) if count > 1 else None
        if pieces is None:
            return round_robin_part(lambda: self.documents(split), index, count, limit)
        where = f"{self.where} split {split!r}"
        ranged = row_range_part(
            pieces, index, count, limit,
            lambda present, name: _parquet_columns(present, f"{where} ({name})", self._required()),
            lambda row, number: self._document(row, split, number),
        )  # fmt: skip
        return SourcePart(ranged.scheme, ranged.rows, lambda part: self._guarded(ranged, part, split))

    def _guarded(self, ranged: SourcePart, part: SourcePart, split: str) -> Iterator[Document]:
        done = 0
        try:
            for document in ranged:
                yield document
                done += 1
        except DatasetError:
            raise
        except Exception as error:  # network drop, corrupt file...: say where it happened
            raise self._error(f"reading split {split!r} of {self.where} failed after {done} rows", error) from error
        part.limited = ranged.limited

    def _parquet_pieces(self, split: str) -> list[ParquetPiece] | None:
        """The split's Parquet files with their footers, in the order `datasets` streams them; None when the
        split is stored in another format."""
        if split not in self._pieces:
            try:
                urls = self._parquet_urls(split)
                self._pieces[split] = None if urls is None else [_remote_piece(url) for url in urls]
            except DatasetError:
                raise
            except Exception as error:
                raise self._error(
                    f"could not list the Parquet files of split {split!r} of {self.where} (or read their footers)",
                    error,
                ) from error
        return self._pieces[split]

    def _parquet_urls(self, split: str) -> list[str] | None:
        if self.revision == PARQUET_EXPORT:
            from fsspec.core import url_to_fs

            urls: list[str] = []
            for pattern in parquet_export_patterns(self._parquet_root, self.config or "default", split):
                fs, path = url_to_fs(pattern)
                try:
                    found = sorted(fs.glob(path))
                except Exception:  # a layout the export does not use can be a missing folder: no match
                    found = []
                urls += [fs.unstrip_protocol(match) for match in found]
            # No file found: round-robin over `datasets`, whose error names the repo, revision and config.
            return list(dict.fromkeys(urls)) or None
        import datasets

        builder = datasets.load_dataset_builder(self.hub_id, self.config, revision=self.revision)
        data_files = builder.config.data_files
        if builder.name != "parquet" or not data_files or split not in data_files:
            return None
        return [str(url) for url in data_files[split]]

    def _required(self) -> tuple[str, ...]:
        explicit = self.language_column if self.language_column != AUTO_LANGUAGE else None
        return (self.text_column, self.summary_column, *([explicit] if explicit else []))

    def _document(self, row: Mapping[str, Any], split: str, index: int) -> Document:
        return Document(
            source_id=_source_id(row.get(ID_COLUMN), split, index),
            text=_as_text(row.get(self.text_column), "\n"),
            summary=_as_text(row.get(self.summary_column), self.summary_joiner),
            language=row_language(row, self.language_column, self.language),
        )

    def _load(self, split: str) -> Iterable[Mapping[str, Any]]:
        import datasets  # lazily: importing `datasets` costs ~1 s of CLI start-up

        rows: Iterable[Mapping[str, Any]]
        try:
            if self.revision == PARQUET_EXPORT:
                # Script-based repos: `datasets` >= 4 refuses the script, so read the Hub's Parquet copy
                # directly. The export's config names are the script's (e.g. `default` for `plain_text`).
                patterns = parquet_export_patterns(self._parquet_root, self.config or "default", split)
                rows = datasets.load_dataset("parquet", data_files={split: patterns}, split=split, streaming=True)
            else:
                rows = datasets.load_dataset(
                    self.hub_id, self.config, split=split, revision=self.revision, streaming=True
                )
        except Exception as error:
            raise self._error(f"could not load split {split!r} of {self.where}", error) from error
        return rows

    def _hub_split_names(self) -> list[str]:
        import datasets

        try:
            return list(datasets.get_dataset_split_names(self.hub_id, self.config, revision=self.revision))
        except Exception as error:
            raise self._error(f"could not list the splits of {self.where}", error) from error

    def _error(self, message: str, error: BaseException) -> DatasetError:
        detail = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        if "Dataset scripts are no longer supported" in str(error):
            hint = (
                f"{self.hub_id} still uses a loading script, which `datasets` >= 4 refuses; "
                f"its Parquet export lives on revision {PARQUET_EXPORT} (add a registry entry for it)"
            )
        elif self.revision == PARQUET_EXPORT:
            hint = (
                "check the network (or HF_ENDPOINT) and HF_TOKEN, and that the Parquet export has "
                f"{self.config or 'default'}/<split>/ (https://huggingface.co/datasets/{self.hub_id}"
                "/tree/refs%2Fconvert%2Fparquet)"
            )
        else:
            hint = (
                "check the network (or HF_ENDPOINT), HF_TOKEN for gated or private datasets, and the "
                f"config name (https://huggingface.co/datasets/{self.hub_id})"
            )
        return DatasetError(f"{message}: {type(error).__name__}: {detail}", hint=hint)


# --- ACLSum (installed package, offline) -----------------------------------------------------------------

_ACLSUM_SECTIONS = ("abstract", "introduction", "conclusion")
_ACLSUM_ASPECTS = ("challenge", "approach", "outcome")


class AclsumSource:
    """ACLSum, read from the data files shipped in the installed `aclsum` package (works offline)."""

    name: str
    language: str
    spec: DatasetSpec | None

    def __init__(self, spec: DatasetSpec, *, language: str, splits: Sequence[str]) -> None:
        self.name = spec.key
        self.language = language
        self.spec = spec
        self._splits = list(splits)

    def splits(self) -> list[str]:
        return list(self._splits)

    def documents(self, split: str) -> Iterator[Document]:
        if split not in self._splits:
            raise _no_such_split("aclsum", split, self._splits)
        return self._stream(split, aclsum_data_dir() / f"{split}.jsonl")

    def part(self, split: str, index: int, count: int, limit: int | None = None) -> SourcePart:
        """Round-robin: the package's files are small (250 papers in all)."""
        return round_robin_part(lambda: self.documents(split), index, count, limit)

    def _stream(self, split: str, path: Path) -> Iterator[Document]:
        for index, (_, paper) in enumerate(_jsonl_rows(path)):
            yield Document(
                source_id=_source_id(paper.get("id"), split, index),
                text=aclsum_text(paper.get("sentences") or {}),
                summary=" ".join(
                    str(paper.get("summary", {}).get(aspect, "")).strip() for aspect in _ACLSUM_ASPECTS
                ).strip(),
                language=self.language,
            )


def aclsum_data_dir() -> Path:
    """The `dataset/` folder of the installed `aclsum` package.

    Found without importing `aclsum`: its `__init__` imports `sienna`, which may not be installed (and
    `importlib.resources.files("aclsum")` would import it too).
    """
    spec = find_spec("aclsum")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("the `aclsum` package is not installed", hint="pip install aclsum")
    return Path(next(iter(spec.submodule_search_locations))) / "dataset"


def aclsum_text(sentences: Mapping[str, Sequence[str]]) -> str:
    """Abstract, introduction and conclusion as titled paragraphs separated by a blank line."""
    paragraphs = []
    for section in _ACLSUM_SECTIONS:
        section_sentences = [detokenize(sentence) for sentence in sentences.get(section) or ()]
        if section_sentences:
            paragraphs.append(section.capitalize() + "\n" + " ".join(section_sentences))
    return "\n\n".join(paragraphs)


_ATTACH_LEFT = frozenset({".", ",", ";", ":", "?", "!", "%", ")", "]", "}", "...", "…"})
_ATTACH_RIGHT = frozenset({"(", "[", "{"})
_CONTRACTIONS = frozenset({"'s", "'S", "n't", "'re", "'ve", "'ll", "'d", "'m"})
_QUOTES = frozenset({'"', "'"})


def detokenize(text: str) -> str:
    """Undo space tokenisation lightly: "word ." -> "word.", "( QA )" -> "(QA)", "model 's" -> "model's",
    '" quoted "' -> '"quoted"'. Anything else (hyphens, maths, numbers) is left alone."""
    out: list[str] = []
    glue_next = True  # no space before the first token
    open_quotes: set[str] = set()
    for token in text.split():
        if token in _QUOTES:
            # Quotes alternate: an opening one sticks to the next token, a closing one to the previous.
            if token in open_quotes:
                open_quotes.discard(token)
                out.append(token)
                glue_next = False
            else:
                open_quotes.add(token)
                out.append(token if glue_next else " " + token)
                glue_next = True
            continue
        if token in _ATTACH_LEFT or token in _CONTRACTIONS:
            out.append(token)
        else:
            out.append(token if glue_next else " " + token)
        glue_next = token in _ATTACH_RIGHT
    return "".join(out)


# --- Local files and directories -------------------------------------------------------------------------


LANGUAGE_COLUMNS = ("language", "lang")  # used per row when present, unless --language or --language-column says


def row_language(row: Mapping[str, Any], column: str | None, default: str) -> str:
    """A row's language: its `column` (or else a `language`/`lang` column when `column` is "auto"), else
    `default`. Empty values fall back to `default`."""
    names = LANGUAGE_COLUMNS if column == AUTO_LANGUAGE else ((column,) if column else ())
    for name in names:
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return default


AUTO_LANGUAGE = "auto"


class FileSource:
    """Local files: one split per file name (`train.jsonl`, `test.csv`, ...), shards of a split in order."""

    name: str
    language: str
    spec: DatasetSpec | None

    def __init__(
        self,
        name: str,
        files: Mapping[str, Sequence[Path]],
        *,
        text_column: str,
        summary_column: str,
        language: str,
        language_column: str | None = None,
        holdout: Holdout | None = None,
    ) -> None:
        """`language_column` names the column holding each row's language ("auto": `language` or `lang` when
        present); rows without one get `language`. With `holdout`, `files` holds one split, train, and the
        splits are the holdout's: each reads the train files and keeps the rows whose text falls in it."""
        self.name = name
        self.language = language
        self.language_column = language_column
        self.spec = None
        self.text_column = text_column
        self.summary_column = summary_column
        self._files = {split: list(paths) for split, paths in files.items()}
        self._pieces: dict[str, list[ParquetPiece]] = {}  # footers of a Parquet split, read once
        self.holdout = holdout
        self._splits = holdout.splits() if holdout is not None else list(self._files)

    def splits(self) -> list[str]:
        return list(self._splits)

    def select(self, splits: Sequence[str]) -> None:
        """Keep only `splits` (which must exist), in that order."""
        self._splits = _select_splits(self._splits, splits, self.name)

    def files(self, split: str) -> list[Path]:
        """The files a split is read from, in reading order (with a holdout, the train files for every split)."""
        if split not in self._splits:
            raise _no_such_split(self.name, split, self.splits())
        return list(self._files[SOURCE_SPLIT if self.holdout is not None else split])

    def documents(self, split: str) -> Iterator[Document]:
        if self.holdout is not None:
            # Fallback ids stay those of the train file's rows ("train-17"): stable whatever the fractions.
            return self.holdout.select(self._stream(SOURCE_SPLIT, self.files(split)), split)
        return self._stream(split, self.files(split))

    def part(self, split: str, index: int, count: int, limit: int | None = None) -> SourcePart:
        """Parquet files: row ranges; JSON Lines files: byte ranges; CSV, JSON arrays, a mix or a `holdout`:
        round-robin.
        Rows without an `id` in a byte-range part are named `{split}@{byte offset}` (their row number is not
        known without reading the bytes before the range)."""
        paths = self.files(split)
        if self.holdout is not None:  # a carved split is a hash-selected subset of train: no ranges to seek
            return round_robin_part(lambda: self.documents(split), index, count, limit)
        if count > 1 and all(path.suffix.lower() == ".parquet" for path in paths):
            return row_range_part(
                self._parquet_pieces(split), index, count, limit,
                lambda present, where: _parquet_columns(present, where, self._required()),
                lambda row, number: self._document(row, _source_id(row.get(ID_COLUMN), split, number)),
            )  # fmt: skip
        if count > 1 and all(_is_json_lines(path) for path in paths):
            return byte_range_part(
                paths, index, count, limit, self._required(),
                lambda row, offset: self._document(row, _source_id(row.get(ID_COLUMN), split, offset, "@")),
            )  # fmt: skip
        return round_robin_part(lambda: self.documents(split), index, count, limit)

    def _parquet_pieces(self, split: str) -> list[ParquetPiece]:
        import pyarrow as pa

        if split not in self._pieces:
            pieces = []
            for path in self.files(split):
                try:
                    pieces.append(parquet_piece(str(path), partial(str, path)))
                except (pa.ArrowException, OSError) as error:
                    raise DatasetError(
                        f"{path} is not a readable Parquet file ({error})", hint="re-export the file"
                    ) from None
            self._pieces[split] = pieces
        return self._pieces[split]

    def _required(self) -> tuple[str, ...]:
        explicit = self.language_column if self.language_column != AUTO_LANGUAGE else None
        return (self.text_column, self.summary_column, *([explicit] if explicit else []))

    def _document(self, row: Mapping[str, Any], source_id: str) -> Document:
        return Document(
            source_id=source_id,
            text=_as_text(row.get(self.text_column), "\n"),
            summary=_as_text(row.get(self.summary_column), " "),
            language=row_language(row, self.language_column, self.language),
        )

    def _stream(self, split: str, paths: list[Path]) -> Iterator[Document]:
        index = 0  # counts across the files of a split, so fallback ids stay unique
        for path in paths:
            explicit = self.language_column if self.language_column != AUTO_LANGUAGE else None
            for row in read_rows(path, self.text_column, self.summary_column, explicit):
                yield self._document(row, _source_id(row.get(ID_COLUMN), split, index))
                index += 1


def split_from_filename(path: Path) -> str | None:
    """The split a single file's name announces ("test.jsonl", "xsum_validation.csv",
    "train-00000-of-00002.parquet"), or None."""
    stem = _SHARD_SUFFIX.sub("", _stem(path)).lower()
    if stem in SPLIT_NAMES:
        return stem
    words = re.split(r"[-_.\s]+", stem)
    for candidate in (words[-1], words[0]):
        if candidate in SPLIT_NAMES:
            return candidate
    return None


def _open_local(
    path: Path,
    text_column: str | None,
    summary_column: str | None,
    language: str | None,
    splits: Sequence[str] | None,
    language_column: str | None = None,
    holdout: Holdout | None = None,
) -> FileSource:
    if path.is_dir():
        files = _directory_splits(path)
        name = path.resolve().name
    else:
        _check_extension(path)
        files = {split_from_filename(path) or "train": [path]}
        # "data/test.jsonl" -> "data": a bare split name would make a poor, colliding dataset name.
        name = path.resolve().parent.name if split_from_filename(path) == _stem(path).lower() else _stem(path)
    if holdout is not None and list(files) != [SOURCE_SPLIT]:
        why = f"already has split(s) {', '.join(files)}: --holdout carves validation and test out of train rows alone"
        raise _holdout_refused(str(path), why)
    selected = list(files) if holdout is not None else _select_splits(list(files), splits, str(path))
    source = FileSource(
        name or "dataset",
        {split: files[split] for split in selected},
        text_column=text_column or DEFAULT_TEXT_COLUMN,
        summary_column=summary_column or DEFAULT_SUMMARY_COLUMN,
        language=language or UNDETERMINED_LANGUAGE,
        language_column=language_column or (None if language else AUTO_LANGUAGE),
        holdout=holdout,
    )
    if holdout is not None and splits is not None:
        source.select(splits)
    # Fail now, not after an hour of rendering, if a file is malformed or lacks a column.
    for split in source.splits():
        for file in source.files(split):
            explicit = source.language_column if source.language_column != AUTO_LANGUAGE else None
            rows = read_rows(file, source.text_column, source.summary_column, explicit)
            try:
                next(rows, None)
            finally:
                rows.close()
    return source


def _holdout_refused(dataset: str, why: str) -> DatasetError:
    return DatasetError(
        f"--holdout cannot apply to {dataset}: it {why}",
        hint="drop --holdout and use the source's own splits, or give one local file of train rows",
    )


def _directory_splits(directory: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in SUPPORTED_EXTENSIONS:
            # In a directory every file names its split exactly (ca_test stays apart from test).
            found.setdefault(_SHARD_SUFFIX.sub("", _stem(path)).lower(), []).append(path)
    if not found:
        raise DatasetError(
            f"no {', '.join(SUPPORTED_EXTENSIONS)} files in directory {directory}",
            hint="put one file per split in it: train.jsonl, validation.jsonl, test.jsonl",
        )
    order = {split: rank for rank, split in enumerate(SPLIT_NAMES)}
    return dict(sorted(found.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def _check_extension(path: Path) -> None:
    if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise DatasetError(
            f"unsupported file type {path.suffix or '(none)'!r}: {path}",
            hint=f"supported formats: {', '.join(SUPPORTED_EXTENSIONS)}",
        )


def _looks_like_path(dataset: str) -> bool:
    if dataset.lower().endswith(SUPPORTED_EXTENSIONS) or dataset.startswith((".", "~", os.sep)):
        return True
    separators = [sep for sep in (os.sep, os.altsep) if sep]
    if not any(sep in dataset for sep in separators):
        return False
    # "owner/name" is a Hub id unless "owner" is a local directory (then it is a missing file in it).
    return not _HUB_ID.fullmatch(dataset) or Path(dataset).parent.is_dir()


def read_rows(
    path: Path, text_column: str, summary_column: str, language_column: str | None = None
) -> Generator[dict[str, Any], None, None]:
    """Stream the records of a local file as dicts, checking that both columns exist.

    Raises DatasetError naming the file for a missing column (listing the columns present), bytes that
    are not UTF-8 (with byte offset and line; for a JSON array the text around them), malformed JSON
    (with line; for a JSON array the text where parsing stopped) or an unreadable Parquet file.
    """
    _check_extension(path)
    suffix = path.suffix.lower()
    required = (text_column, summary_column, *([language_column] if language_column else []))
    if suffix == ".parquet":
        yield from _parquet_rows(path, required)
        return
    if suffix == ".csv":
        yield from _csv_rows(path, required)
        return
    if suffix == ".json" and _starts_with_bracket(path):
        rows, unit = _json_array_rows(path), "array element"
    else:
        rows, unit = _jsonl_rows(path), "line"
    try:
        first = next(rows, None)
        if first is None:
            return
        number, row = first
        # JSON has no header: the first record stands for the file's columns.
        _require_columns(f"{path} ({unit} {number})", list(row), required)
        yield row
        for _, row in rows:
            yield row
    finally:
        rows.close()


def _jsonl_rows(path: Path) -> Generator[tuple[int, dict[str, Any]], None, None]:
    """(line number, object) for each non-blank line of a JSON Lines file."""
    with path.open("rb") as handle:
        for line_number, line in _decoded_lines(path, handle):
            if not line.strip():
                continue
            yield line_number, _json_object(path, line, f"line {line_number}")


def _json_object(path: Path, line: str, where: str) -> dict[str, Any]:
    """One JSON Lines line as an object; `where` names the line in errors ("line 7", "the line at byte 4096")."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{path}: {where} is not valid JSON ({error.msg}, column {error.colno})",
            hint="each line must hold one JSON object; fix or remove that line "
            "(a .json file may also hold a single JSON array of objects)",
        ) from None
    if not isinstance(row, dict):
        raise DatasetError(
            f"{path}: {where} holds a JSON {type(row).__name__}, not an object",
            hint='each line must be an object such as {"text": "...", "summary": "..."}',
        )
    return row


def _decoded_lines(path: Path, handle: IO[bytes]) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line, with the exact byte offset of any bytes that are not UTF-8."""
    offset = 0
    for line_number, raw in enumerate(handle, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _not_utf8(path, offset + error.start, line_number) from None
        offset += len(raw)
        yield line_number, text.removeprefix("\ufeff") if line_number == 1 else text


def _not_utf8(path: Path, byte_offset: int, line_number: int) -> DatasetError:
    return DatasetError(
        f"{path} is not valid UTF-8: undecodable byte at offset {byte_offset} (line {line_number})",
        hint=_REENCODE_HINT,
    )


def _starts_with_bracket(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(4096).removeprefix(codecs.BOM_UTF8).lstrip()
        while not head:
            block = handle.read(1 << 16)
            if not block:
                return False
            head = block.lstrip()
    return head.startswith(b"[")


def _json_array_rows(path: Path) -> Generator[tuple[int, dict[str, Any]], None, None]:
    """(index, object) for each element of a top-level JSON array, parsed by ijson one element at a time.

    ijson reads the binary file in 64 KiB blocks, so memory is bounded by the largest element, not the file.
    With `use_float=True` ijson's C backend holds numbers in a C long long or double and rejects integers
    beyond 64 bits and floats beyond 1e308 as overflow (ICRAR/ijson#153), which `json.loads` accepts:
    such a file is read again with exact numbers (int, and Decimal for fractions), skipping what was yielded.
    """
    yielded = 0
    for use_float in (True, False):
        try:
            with path.open("rb") as handle:
                if handle.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
                    handle.seek(0)
                for index, value in enumerate(ijson.items(handle, "item", use_float=use_float)):
                    if index < yielded:
                        continue
                    if not isinstance(value, dict):
                        raise DatasetError(
                            f"{path}: element {index} of the JSON array (counting from 0) holds a JSON "
                            f"{type(value).__name__}, not an object",
                            hint=_JSON_ARRAY_HINT,
                        )
                    yield index, value
                    yielded = index + 1
            return
        except ijson.JSONError as error:
            problem, before, after = _ijson_error_parts(error)
            if use_float and "overflow" in problem:
                continue
            raise _json_array_error(path, problem, before, after) from None


def _ijson_error_parts(error: ijson.JSONError) -> tuple[str, str, str]:
    """(problem, text before, text after) where ijson stopped; it gives no line number or byte offset.

    yajl's message has three lines: the problem, up to 30 bytes either side of where it stopped, and a caret
    under that spot. Work in bytes: the context may hold bytes that are not UTF-8, which ijson leaves undecoded;
    those come out as \\xNN.
    """
    detail = error.args[0] if error.args else ""
    raw = detail if isinstance(detail, bytes) else str(detail).encode("utf-8")
    problem, _, rest = raw.partition(b"\n")
    context, _, caret = rest.partition(b"\n")
    column = caret.find(b"^")
    before, after = (context[:column], context[column:]) if column >= 0 else (context, b"")
    if isinstance(detail, UnicodeDecodeError):  # ijson's pure-Python backend
        problem = b"invalid UTF8"
    return _text(problem), _text(before.lstrip()), _text(after.rstrip())


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def _json_array_error(path: Path, problem: str, before: str, after: str) -> DatasetError:
    problem = problem.rstrip(".")
    if "UTF8" in problem:
        return DatasetError(
            f"{path} is not valid UTF-8: ijson gives no byte offset or line, only the text around the bad "
            f"bytes (shown as \\xNN): {before}{after}",
            hint=f"{_REENCODE_HINT}; `iconv -f utf-8 -t utf-8 FILE > /dev/null` prints the exact position",
        )
    if "premature EOF" in problem or "Incomplete JSON content" in problem:
        return DatasetError(
            f"{path}: the JSON array ends before its closing ']' (the file looks truncated)",
            hint="copy or download the file again; " + _JSON_ARRAY_HINT,
        )
    where = f"; where ijson stopped (marked >>>; it gives no line number): {before}>>>{after}"
    return DatasetError(
        f"{path}: the JSON array is not valid JSON ({problem}){where if before or after else ''}",
        hint=_JSON_ARRAY_HINT,
    )


def _csv_rows(path: Path, required: Sequence[str]) -> Iterator[dict[str, Any]]:
    # Documents are long; the csv module's default 128 KiB field limit would reject them.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open("rb") as handle:
        # Feeding decoded lines (endings kept) to csv gives exact line numbers for encoding errors.
        reader = csv.DictReader(text for _, text in _decoded_lines(path, handle))
        try:
            header = reader.fieldnames
            if header is None:
                return
            _require_columns(f"{path} (header)", list(header), required)
            yield from reader
        except csv.Error as error:
            raise DatasetError(
                f"{path}: line {reader.line_num} is not valid CSV ({error})",
                hint="check quoting on that line; fields holding commas or newlines must be quoted",
            ) from None


def _parquet_rows(path: Path, required: Sequence[str]) -> Iterator[dict[str, Any]]:
    import pyarrow as pa  # lazily: pyarrow is heavy and only Parquet files need it
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise DatasetError(f"{path} is not a readable Parquet file ({error})", hint="re-export the file") from None
    with parquet:
        columns = _parquet_columns(parquet.schema_arrow.names, str(path), required)
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=columns):
            values = {column: batch.column(column).to_pylist() for column in columns}  # one batch only
            for row in range(batch.num_rows):
                yield {column: values[column][row] for column in columns}


# --- Parts: the rows of a split that one of N machines reads ----------------------------------------------
#
# `--num-shards N --shard-index I` gives every source row to exactly one part, the same one whatever runs it
# (this process, a SLURM array task or a Ray task), and each part reads only what it needs where the source can
# seek. The rule, in one place:
#   - a split stored as Parquet files only (local, or on the Hub): N contiguous row ranges over the split's rows,
#     counted from the files' footers; part I reads the row groups its range touches, nothing else;
#   - a split stored as JSON Lines files only (local): N contiguous byte ranges over the files laid end to end; a
#     line belongs to the range its first byte lies in, so a part reads its own bytes and the rest of one line;
#   - anything else (CSV, JSON arrays, ACLSum, Hub datasets stored in another format): rows dealt round-robin,
#     row `index` to part `index % N`; every part streams the split from its start.
# With N = 1 every scheme reads the whole split in order, exactly as `documents(split)` does. Ranges keep source
# order: parts 0..N-1 one after another give the split's rows in order, whatever N.

ROUND_ROBIN = "round-robin"
ROW_RANGES = "row-ranges"
BYTE_RANGES = "byte-ranges"
PART_ASSIGNMENT = "ranges"
"""The rule above, as the fingerprint of a folder made with N > 1 records it (folders made before it dealt every
source round-robin: their fingerprint has no such entry, so they are refused rather than mixed)."""


class SourcePart:
    """The rows of one split that part `index` of `count` reads, as `Document`s in source order (iterate once).

    `limit` keeps the first `limit` rows of the split (`--max-samples`): part I then holds the rows of its range
    that lie among them. `rows` is how many rows the part holds under `limit`, when known before reading (row
    ranges: exact; round-robin with a limit: an upper bound that assumes the split has `limit` rows; otherwise
    None). After the iteration, `limited` is True when `limit` cut the part short.
    """

    def __init__(self, scheme: str, rows: int | None, stream: Callable[[SourcePart], Iterator[Document]]) -> None:
        self.scheme = scheme
        self.rows = rows
        self.limited = False
        self._stream = stream

    def __iter__(self) -> Iterator[Document]:
        stream: Iterator[Document] = self._stream(self)
        return stream


def part_bounds(total: int, index: int, count: int) -> tuple[int, int]:
    """[start, stop) of range `index` of `count` contiguous, balanced ranges over `total` units (rows, bytes)."""
    return total * index // count, total * (index + 1) // count


def round_robin_part(
    documents: Callable[[], Iterator[Document]], index: int, count: int, limit: int | None
) -> SourcePart:
    """Rows dealt round-robin: row `i` of the split goes to part `i % count`; every part streams from the start."""
    rows = None if limit is None else max(0, -(-(limit - index) // count))

    def stream(part: SourcePart) -> Iterator[Document]:
        for row, document in enumerate(documents()):
            if limit is not None and row >= limit:
                part.limited = True
                return
            if row % count == index:
                yield document

    return SourcePart(ROUND_ROBIN, rows, stream)


@dataclass(frozen=True)
class ParquetPiece:
    """One Parquet file of a split: how to open it, its footer, and the rows of each of its row groups."""

    name: str  # for messages
    open: Callable[[], Any]  # a path or binary file object that pyarrow reads
    metadata: Any  # pyarrow FileMetaData, read once; reopening with it costs no second footer read

    @property
    def group_rows(self) -> list[int]:
        return [self.metadata.row_group(group).num_rows for group in range(self.metadata.num_row_groups)]


def parquet_piece(name: str, open_file: Callable[[], Any]) -> ParquetPiece:
    """Read one Parquet footer (a few KB, by range on the Hub)."""
    import pyarrow.parquet as pq

    handle = open_file()
    try:
        metadata = pq.ParquetFile(handle).metadata
    finally:
        if hasattr(handle, "close"):
            handle.close()
    return ParquetPiece(name, open_file, metadata)


def row_range_part(
    pieces: Sequence[ParquetPiece],
    index: int,
    count: int,
    limit: int | None,
    columns: Callable[[list[str], str], list[str]],
    document: Callable[[dict[str, Any], int], Document],
) -> SourcePart:
    """Part `index` of `count` contiguous row ranges over Parquet files read in order; reads only the row groups
    its range touches, and of them only `columns(columns_present, name)`. `document(row, split_row)` builds a Document
    from a row and its index in the split (what a whole-split read would number it)."""
    total = sum(sum(piece.group_rows) for piece in pieces)
    start, stop = part_bounds(total, index, count)
    end = stop if limit is None else min(stop, max(limit, start))

    def stream(part: SourcePart) -> Iterator[Document]:
        import pyarrow.parquet as pq

        part.limited = end < stop
        base = 0
        for piece in pieces:
            groups, first, group_base = [], None, base
            for group, rows in enumerate(piece.group_rows):
                if group_base + rows > start and group_base < end:
                    first = group_base if first is None else first
                    groups.append(group)
                group_base += rows
            base = group_base
            if not groups or first is None:
                continue
            handle = piece.open()
            try:
                with pq.ParquetFile(handle, metadata=piece.metadata) as parquet:
                    names = columns(parquet.schema_arrow.names, piece.name)
                    row = first
                    batches = parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, row_groups=groups, columns=names)
                    for batch in batches:
                        skip, take = max(0, start - row), min(batch.num_rows, end - row)
                        if take > skip:
                            kept = batch.slice(skip, take - skip)
                            values = {name: kept.column(name).to_pylist() for name in names}  # one batch only
                            for offset in range(kept.num_rows):
                                yield document({name: values[name][offset] for name in names}, row + skip + offset)
                        row += batch.num_rows
                        if row >= end:
                            break
            finally:
                if hasattr(handle, "close"):
                    handle.close()
            if base >= end:
                return

    return SourcePart(ROW_RANGES, max(0, end - start), stream)


def byte_range_part(
    paths: Sequence[Path],
    index: int,
    count: int,
    limit: int | None,
    required: Sequence[str],
    document: Callable[[dict[str, Any], int], Document],
) -> SourcePart:
    """Part `index` of `count` contiguous byte ranges over JSON Lines files laid end to end. A line (blank ones are
    not rows) belongs to the range holding its first byte; a file's start is a line start. `document(row, offset)`
    builds a Document from a row and the offset of its line in the files laid end to end.

    With `limit`, the rows before this range are counted first (reading at most the first `limit` rows' bytes), so
    that only rows among the split's first `limit` are kept.
    """
    sizes = [path.stat().st_size for path in paths]
    start, stop = part_bounds(sum(sizes), index, count)

    def stream(part: SourcePart) -> Iterator[Document]:
        before = 0
        if limit is not None:
            before = _rows_before(paths, sizes, start, limit)
        base = 0
        kept = 0
        for path, size in zip(paths, sizes, strict=True):
            lo, hi = max(0, start - base), min(stop - base, size)
            if hi > lo:
                for position, row in _jsonl_range_rows(path, lo, hi, required):
                    if limit is not None and before + kept >= limit:
                        part.limited = True
                        return
                    yield document(row, base + position)
                    kept += 1
            base += size
            if base >= stop:
                return

    return SourcePart(BYTE_RANGES, None, stream)


def _rows_before(paths: Sequence[Path], sizes: Sequence[int], offset: int, limit: int) -> int:
    """Rows (non-blank lines) that start before `offset` in `paths` laid end to end, counting no further than
    `limit`."""
    counted, base = 0, 0
    for path, size in zip(paths, sizes, strict=True):
        if base >= offset:
            break
        with path.open("rb") as handle:
            for position, raw in _lines_from(handle, 0, min(size, offset - base)):
                if not _is_blank(raw, position):
                    counted += 1
                    if counted >= limit:
                        return counted
        base += size
    return counted


def _lines_from(handle: IO[bytes], start: int, stop: int) -> Iterator[tuple[int, bytes]]:
    """(offset, raw line with its ending) for each line of `handle` that starts at an offset in [start, stop).

    The line running through `start - 1` belongs to the range before (its rest is read and dropped); a line that
    starts before `stop` is read whole, however far it runs. Only b"\\n" ends a line (a CRLF line keeps its b"\\r",
    which JSON ignores as whitespace), and no UTF-8 sequence holds that byte, so no character is ever split.
    """
    offset = start
    if start > 0:
        handle.seek(start - 1)
        offset = start - 1 + len(handle.readline())
    while offset < stop:
        raw = handle.readline()
        if not raw:
            return
        yield offset, raw
        offset += len(raw)


def _is_blank(raw: bytes, offset: int) -> bool:
    """The rule `_jsonl_rows` applies: a line is not a row when nothing but whitespace (or the BOM) is on it."""
    if not raw.strip():
        return True
    text = raw.decode("utf-8", "replace")
    return not (text.removeprefix("\ufeff") if offset == 0 else text).strip()


def _jsonl_range_rows(
    path: Path, start: int, stop: int, required: Sequence[str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(byte offset, object) for each row of a JSON Lines file that starts in [start, stop). Errors name the line
    and its byte offset: the line number is counted only then, by reading the file up to that offset."""
    checked = False
    with path.open("rb") as handle:
        for offset, raw in _lines_from(handle, start, stop):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise _not_utf8(path, offset + error.start, _line_at(path, offset)) from None
            if offset == 0:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            try:
                row = _json_object(path, text, "")
                if not checked:
                    _require_columns(str(path), list(row), required)
                    checked = True
            except DatasetError:  # again, naming the line: its number is counted only now
                where = f"line {_line_at(path, offset)} (byte {offset})"
                row = _json_object(path, text, where)
                _require_columns(f"{path} ({where})", list(row), required)
                raise
            yield offset, row


def _line_at(path: Path, offset: int) -> int:
    """The number of the line that starts at byte `offset` (for an error message: reads the file up to there)."""
    newlines, done = 0, 0
    with path.open("rb") as handle:
        while done < offset:
            block = handle.read(min(1 << 20, offset - done))
            if not block:
                break
            newlines += block.count(b"\n")
            done += len(block)
    return newlines + 1


_HUB_BLOCK_SIZE = 2**16  # each read is one range request of what pyarrow asked for: no read-ahead, no cache


def _remote_piece(url: str) -> ParquetPiece:
    """A Parquet file by URL (`hf://...` read by HTTP range through HfFileSystem; a local path as it is)."""
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(url)
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return parquet_piece(url, lambda: path)
    return parquet_piece(url, lambda: fs.open(path, "rb", block_size=_HUB_BLOCK_SIZE, cache_type="none"))


def assignment_inputs(parts: int) -> dict[str, Any]:
    """What a folder's fingerprint records of how rows are dealt to parts: nothing for one part (every scheme then
    reads the whole split in order, so such folders keep their fingerprint), `PART_ASSIGNMENT` for several."""
    return {"part_assignment": PART_ASSIGNMENT} if parts > 1 else {}


def _is_json_lines(path: Path) -> bool:
    suffix = path.suffix.lower()
    return suffix == ".jsonl" or (suffix == ".json" and not _starts_with_bracket(path))


# --- Shared helpers --------------------------------------------------------------------------------------


def _parquet_columns(present: Sequence[str], where: str, required: Sequence[str]) -> list[str]:
    """The columns to read of a Parquet file: the required ones (checked), and `id`/language columns when present.
    Only these are read: a wide table's other columns never leave the disk (or the Hub)."""
    _require_columns(where, present, required)
    optional = [column for column in (ID_COLUMN, *LANGUAGE_COLUMNS) if column in present]
    return list(dict.fromkeys([*required, *optional]))


def _require_columns(where: str, present: Sequence[str], required: Iterable[str]) -> None:
    missing = [column for column in dict.fromkeys(required) if column not in present]
    if missing:
        raise DatasetError(
            f"{where} has no column {', '.join(repr(column) for column in missing)}; "
            f"columns present: {', '.join(present) or '(none)'}",
            hint="pass --text-column/--summary-column with the names of the text and summary columns",
        )


def _no_such_split(where: str, split: str, available: Sequence[str]) -> DatasetError:
    return DatasetError(
        f"{where} has no split {split!r}; available splits: {', '.join(available)}",
        hint="pass one of the available splits",
    )


def _source_id(value: Any, split: str, index: int, sep: str = "-") -> str:
    """A row's `id`, else `{split}-{row number}` (or `{split}@{byte offset}` where the number is not known)."""
    if value is None or value == "":
        return f"{split}{sep}{index}"
    return str(value)


def _as_text(value: Any, joiner: str) -> str:
    """A cell as text: None -> "", lists (sentences, highlights) joined with `joiner`."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return joiner.join(_as_text(item, joiner) for item in value if item is not None)
    return str(value)


def _stem(path: Path) -> str:
    return path.name[: -len(path.suffix)] if path.suffix else path.name
