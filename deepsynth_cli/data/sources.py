"""Stream (text, summary) documents out of a dataset, one split at a time.

`open_source(DATASET)` resolves what the user typed into a `Source`:

1. a registry key (`mlsum_fr`, `cnn_dailymail`, `aclsum`, ...; see `registry.py`);
2. an existing local file (`.jsonl`, `.json`, `.csv`, `.parquet`) or a directory of such files;
3. a Hub dataset id `owner/name`, streamed with `datasets` (text and summary columns must be given).

Every source streams: memory stays flat however large a split is (one line, one CSV row, one JSON array
element or one Parquet batch at a time), and `documents(split)` only ever reads that split, so train and
test never mix. Nothing here prints; problems the user can fix raise `DatasetError` with a hint.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
import sys
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
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
    otherwise). `language_column` names a column with each row's language; local files without it use a
    `language` or `lang` column automatically unless `language` is given. Local files are checked here
    (existence, format, columns of the first record); a Hub
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
            return _open_hub_id(dataset, text_column, summary_column, language, splits, config)
        spec = get_spec(dataset)  # neither a key, a file nor a Hub id: raises "unknown dataset" with matches
    if holdout is not None:
        raise _holdout_refused(dataset, "is not a local file, and has its own splits")
    return _open_registry(spec, text_column, summary_column, language, splits, config)


# --- Registry entries ------------------------------------------------------------------------------------


def _open_registry(
    spec: DatasetSpec,
    text_column: str | None,
    summary_column: str | None,
    language: str | None,
    splits: Sequence[str] | None,
    config: str | None,
) -> Source:
    selected = _select_splits(spec.splits, splits, spec.key)
    if spec.kind == "aclsum":
        if text_column or summary_column or config:
            raise DatasetError(
                "aclsum has a fixed layout: --text-column, --summary-column and --config do not apply",
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
    ) -> None:
        """`splits` are the known splits (registry); without them the Hub is asked, lazily, and
        `requested_splits` is checked against its answer. `parquet_root` replaces the Hub location of the
        Parquet export (`hf://datasets/{hub_id}@refs%2Fconvert%2Fparquet`), e.g. with a local mirror."""
        self.name = name
        self.language = language
        self.spec = spec
        self.hub_id = hub_id
        self.config = config
        self.revision = revision
        self.text_column = text_column
        self.summary_column = summary_column
        self.summary_joiner = summary_joiner
        self._splits = list(splits) if splits is not None else None
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
                _require_columns(f"{self.where} split {split!r}", list(row), (self.text_column, self.summary_column))
            yield Document(
                source_id=_source_id(row.get(ID_COLUMN), split, index),
                text=_as_text(row.get(self.text_column), "\n"),
                summary=_as_text(row.get(self.summary_column), self.summary_joiner),
                language=self.language,
            )
            index += 1

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

    def _stream(self, split: str, paths: list[Path]) -> Iterator[Document]:
        index = 0  # counts across the files of a split, so fallback ids stay unique
        for path in paths:
            explicit = self.language_column if self.language_column != AUTO_LANGUAGE else None
            for row in read_rows(path, self.text_column, self.summary_column, explicit):
                yield Document(
                    source_id=_source_id(row.get(ID_COLUMN), split, index),
                    text=_as_text(row.get(self.text_column), "\n"),
                    summary=_as_text(row.get(self.summary_column), " "),
                    language=row_language(row, self.language_column, self.language),
                )
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
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(
                    f"{path}: line {line_number} is not valid JSON ({error.msg}, column {error.colno})",
                    hint="each line must hold one JSON object; fix or remove that line "
                    "(a .json file may also hold a single JSON array of objects)",
                ) from None
            if not isinstance(row, dict):
                raise DatasetError(
                    f"{path}: line {line_number} holds a JSON {type(row).__name__}, not an object",
                    hint='each line must be an object such as {"text": "...", "summary": "..."}',
                )
            yield line_number, row


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
        present = parquet.schema_arrow.names
        _require_columns(str(path), present, required)
        # Read only the columns we use: a wide table's other columns never leave the disk.
        optional = [column for column in (ID_COLUMN, *LANGUAGE_COLUMNS) if column in present]
        columns = list(dict.fromkeys([*required, *optional]))
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=columns):
            values = {column: batch.column(column).to_pylist() for column in columns}  # one batch only
            for row in range(batch.num_rows):
                yield {column: values[column][row] for column in columns}


# --- Shared helpers --------------------------------------------------------------------------------------


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


def _source_id(value: Any, split: str, index: int) -> str:
    if value is None or value == "":
        return f"{split}-{index}"
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
