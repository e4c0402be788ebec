"""Dataset checks on a rendered dataset (local folder or Hub repo): schema, pages, text, duplicates, leakage,
row counts against the manifest, truncation and compression, and fonts for the text it holds.

Rows are read with pyarrow straight from the shards (no `datasets` start-up, pages left as bytes so one corrupt
image is reported instead of aborting the read). `--sample N` rows per split are decoded. Locally, duplicates and
leakage hash the text column of every row, which is cheap next to the pages; on the Hub only the shards the sample
needs are downloaded (the part files give the other shards' row counts), so those two checks cover what was read.
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from deepsynth_cli.data import rendered
from deepsynth_cli.data.rendered import MANIFEST_FILE, ROW_SCHEMA
from deepsynth_cli.data.store import DatasetLocation, resolve_dataset
from deepsynth_cli.errors import DeepsynthError
from deepsynth_cli.settings import Settings
from deepsynth_cli.validation import Check, failed, passed, skipped, warned

# Sane bounds; outside them the dataset is usable but probably not what was meant.
MAX_DROPPED_SHARE = 0.3  # of all text characters: long documents losing a tail is normal, losing most is not
MIN_COMPRESSION, MAX_COMPRESSION = 1.0, 20.0
_EVAL_SPLITS = ("validation", "test")


@dataclass
class DatasetSample:
    """What the checks look at: the shards per split, the manifest, sampled rows and the hash of every text."""

    name: str
    location: DatasetLocation
    manifest: dict[str, Any] | None
    files: dict[str, list[Path]] = field(default_factory=dict)  # shards per split (in the repo, for the Hub)
    schemas: dict[str, pa.Schema] = field(default_factory=dict)  # of every shard opened, by file name
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    text_hashes: dict[str, list[str]] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)


def load_sample(name: str, settings: Settings, sample: int) -> DatasetSample:
    """Resolve NAME like every command does and read what the checks need. Raises DeepsynthError."""
    location = resolve_dataset(name, settings)
    if location.kind == "local" and location.path:
        return _local_sample(name, location, location.path, sample)
    return _hub_sample(name, location, settings, sample)


def _local_sample(name: str, location: DatasetLocation, folder: Path, sample: int) -> DatasetSample:
    """A local folder: every shard is counted and its texts hashed; the first `sample` rows per split decoded."""
    result = DatasetSample(name=name, location=location, manifest=rendered.read_local_manifest(folder))
    result.files = rendered.local_shards(folder)
    for split, paths in result.files.items():
        result.rows[split], result.text_hashes[split], result.row_counts[split] = [], [], 0
        for path in paths:
            _read_shard(rendered.open_shard(path), path.name, split, result, sample)
    return result


def _read_shard(shard: rendered.Shard, name: str, split: str, result: DatasetSample, sample: int) -> None:
    """Count the shard's rows, hash its texts, and decode row groups until the split has `sample` rows. Only the
    footer, the text column and those row groups are read: on the Hub, each is one HTTP range request."""
    result.schemas[name] = shard.schema
    result.row_counts[split] = result.row_counts.get(split, 0) + shard.num_rows
    if "text" in shard.columns:
        result.text_hashes.setdefault(split, []).extend(_content_hash(text) for text in shard.read_column("text"))
    rows = result.rows.setdefault(split, [])
    for group in range(len(shard.group_rows())):
        if len(rows) >= sample:
            break
        rows.extend(shard.read_group(group)[: sample - len(rows)])


def _hub_sample(name: str, location: DatasetLocation, settings: Settings, sample: int) -> DatasetSample:
    """A Hub repo, reading only what `--sample` needs: one file listing, the manifest and the part files (a few KB
    that give every shard's row count), then per split the shards in order until `sample` rows are read (usually
    the first), each through HTTP range requests for its footer, its text column and the row groups decoded (64
    rows each), never the whole shard. Shards not opened are counted from the part files; a shard no part file
    describes is opened. Duplicates and leakage are then judged on the texts of the shards opened."""
    from deepsynth_cli.data.hub_read import list_hub_dataset

    hub = list_hub_dataset(location, settings)
    result = DatasetSample(name=name, location=location, manifest=hub.manifest)
    for split, paths in hub.shards().items():
        result.files[split] = [Path(path) for path in paths]
        result.rows[split], result.text_hashes[split], result.row_counts[split] = [], [], 0
        for path in paths:
            shard = Path(path).name
            if len(result.rows[split]) >= sample and shard in hub.declared:
                result.row_counts[split] += hub.declared[shard]
                continue
            _read_shard(rendered.open_shard(path, hub), shard, split, result, sample)
    return result


def _content_hash(text: object) -> str:
    # Whitespace differences do not make a different document.
    normalised = " ".join(str(text or "").split())
    return hashlib.sha256(normalised.encode()).hexdigest()


def check_found(name: str, settings: Settings, sample: int) -> tuple[Check, DatasetSample | None]:
    check_name = f"dataset:{name}:found"
    try:
        loaded = load_sample(name, settings, sample)
    except DeepsynthError as error:
        return failed(check_name, "critical", error.message, error.hint), None
    except Exception as error:  # the Hub client's errors (repo not found, 401) or an unreadable shard
        first = str(error).splitlines()[0] if str(error) else ""
        message = f"cannot read {name}: {type(error).__name__}" + (f": {first}" if first else "")
        return failed(check_name, "critical", message, "check the name, HF_TOKEN, or regenerate the dataset"), None
    if not loaded.files:
        return failed(check_name, "critical", f"{loaded.location} holds no shards", "run `deepsynth generate`"), None
    splits = ", ".join(f"{split} {rows}" for split, rows in loaded.row_counts.items())
    return passed(check_name, "critical", f"{loaded.location}: {splits}"), loaded


def check_schema(data: DatasetSample) -> Check:
    name = f"dataset:{data.name}:schema"
    problems = []
    for shard, schema in data.schemas.items():
        for expected in ROW_SCHEMA:
            index = schema.get_field_index(expected.name)
            if index < 0:
                problems.append(f"{shard}: missing column {expected.name!r}")
            elif not schema.field(index).type.equals(expected.type):
                problems.append(f"{shard}: {expected.name} is {schema.field(index).type}, not {expected.type}")
    if problems:
        return failed(name, "critical", "; ".join(problems[:5]), "regenerate the dataset with `deepsynth generate`")
    return passed(name, "critical", f"{len(data.schemas)} shard(s) with the row schema")


def check_images(data: DatasetSample) -> Check:
    """Pages decode, are square at the manifest's page size, and each row's counts agree with its pages."""
    from PIL import Image

    name = f"dataset:{data.name}:images"
    render = (data.manifest or {}).get("render", {})
    size = render.get("page_size")
    per_page = (data.manifest or {}).get("model_geometry", {}).get("vision_tokens_per_page")
    problems: list[str] = []
    pages_seen = 0
    for split, rows in data.rows.items():
        for row in rows:
            where = f"{split} row {row.get('source_id')}"
            pages = row.get("pages") or []
            if not pages:
                problems.append(f"{where}: no pages")
            for number, page in enumerate(pages, 1):
                pages_seen += 1
                try:
                    with Image.open(io.BytesIO(page["bytes"])) as image:
                        image.load()
                        if size and image.size != (size, size):
                            problems.append(f"{where} page {number}: {image.size[0]}x{image.size[1]}, not {size}px")
                except Exception as error:
                    problems.append(f"{where} page {number} does not decode ({type(error).__name__})")
            if row.get("num_pages") is not None and row["num_pages"] != len(pages):
                problems.append(f"{where}: num_pages {row['num_pages']} but {len(pages)} page(s)")
            if per_page and row.get("vision_tokens") is not None and row["vision_tokens"] != per_page * len(pages):
                problems.append(f"{where}: vision_tokens {row['vision_tokens']}, expected {per_page * len(pages)}")
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return failed(
            name, "high", "; ".join(problems[:3]) + more, "regenerate the affected shards (delete them, rerun generate)"
        )
    return passed(name, "high", f"{pages_seen} sampled page(s) decode at {size}px")


def check_empty(data: DatasetSample) -> Check:
    name = f"dataset:{data.name}:empty-text"
    empty = [
        f"{split} {row.get('source_id')} ({column})"
        for split, rows in data.rows.items()
        for row in rows
        for column in ("text", "summary")
        if not str(row.get(column) or "").strip()
    ]
    if empty:
        return failed(name, "high", f"{len(empty)} empty field(s): {', '.join(empty[:5])}", "drop or fix those rows")
    return passed(name, "high", "no empty text or summary in the sample")


def _coverage(data: DatasetSample) -> str:
    """What the duplicate and leakage checks saw, when it is not every row (a sampled Hub dataset)."""
    hashed = sum(map(len, data.text_hashes.values()))
    total = sum(data.row_counts.values())
    return f" (texts of {hashed} of {total} rows read)" if hashed < total else ""


def check_duplicates(data: DatasetSample) -> Check:
    name = f"dataset:{data.name}:duplicates"
    found = []
    for split, hashes in data.text_hashes.items():
        extra = sum(count - 1 for count in Counter(hashes).values() if count > 1)
        if extra:
            found.append(f"{split}: {extra} duplicate row(s)")
    if found:
        return warned(name, "medium", "; ".join(found) + _coverage(data), "deduplicate the source before generating")
    return passed(name, "medium", "no duplicate texts within a split" + _coverage(data))


def check_leakage(data: DatasetSample) -> Check:
    """A training text that is also in validation or test makes those scores meaningless."""
    name = f"dataset:{data.name}:leakage"
    train = set(data.text_hashes.get("train", []))
    if not train:
        return skipped(name, "no train split")
    leaks = [_leak(split, data.text_hashes[split], train) for split in _EVAL_SPLITS if split in data.text_hashes]
    leaks = [leak for leak in leaks if leak]
    if leaks:
        hint = "remove the overlapping rows from train and regenerate"
        return failed(name, "critical", "; ".join(leaks) + _coverage(data), hint)
    others = [split for split in _EVAL_SPLITS if split in data.text_hashes]
    return passed(name, "critical", f"train shares no text with {', '.join(others) or 'other splits'}{_coverage(data)}")


def _leak(split: str, hashes: list[str], train: set[str]) -> str:
    """`3 test row(s) (2 distinct texts) also in train`: rows are what scoring sees, texts what to remove."""
    rows = sum(1 for digest in hashes if digest in train)
    if not rows:
        return ""
    texts = len(train.intersection(hashes))
    return f"{rows} {split} row(s) ({texts} distinct text(s)) also in train"


def check_row_counts(data: DatasetSample) -> Check:
    name = f"dataset:{data.name}:row-counts"
    if data.manifest is None:
        return warned(name, "medium", f"no {MANIFEST_FILE}", "rerun `deepsynth generate` to rebuild it from the shards")
    declared = {split: int(info.get("rows", -1)) for split, info in data.manifest.get("splits", {}).items()}
    mismatches = [
        f"{split}: {data.row_counts.get(split, 0)} rows, manifest says {rows}"
        for split, rows in declared.items()
        if data.row_counts.get(split, 0) != rows
    ]
    mismatches += [f"{split}: not in the manifest" for split in data.row_counts if split not in declared]
    if mismatches:
        return failed(
            name, "high", "; ".join(mismatches), "shards are missing or extra: rerun `deepsynth generate` to resume"
        )
    return passed(name, "high", "rows match the manifest")


def check_truncation(data: DatasetSample) -> Check:
    """The truncation rate is the share of the text that did not fit the page budget (rows truncated are shown)."""
    name = f"dataset:{data.name}:truncation"
    rows = [row for split_rows in data.rows.values() for row in split_rows]
    if not rows:
        return skipped(name, "no rows sampled")
    chars = sum(len(str(row.get("text") or "")) for row in rows)
    dropped = sum(int(row.get("dropped_chars") or 0) for row in rows)
    share = dropped / chars if chars else 0.0
    truncated = sum(bool(row.get("truncated")) for row in rows)
    message = f"{share:.0%} of the sampled text did not fit ({truncated}/{len(rows)} rows truncated)"
    if share > MAX_DROPPED_SHARE:
        hint = f"above {MAX_DROPPED_SHARE:.0%}: raise render.max_pages or lower render.font_size"
        return warned(name, "medium", message, hint)
    return passed(name, "medium", message)


def check_compression(data: DatasetSample) -> Check:
    name = f"dataset:{data.name}:compression"
    rows = [row for split_rows in data.rows.values() for row in split_rows if row.get("vision_tokens")]
    if not rows:
        return skipped(name, "no rows with vision tokens sampled")
    ratios = sorted(row["text_tokens"] / row["vision_tokens"] for row in rows)
    mean = rendered.compression(sum(row["text_tokens"] for row in rows), sum(row["vision_tokens"] for row in rows))
    assert mean is not None
    message = f"drawn text/vision tokens: {mean:.2f}x (rows: min {ratios[0]:.2f}x, max {ratios[-1]:.2f}x)"
    if int((data.manifest or {}).get("format_version") or 1) < 2:
        message += "; format 1 counted the whole document, not the drawn text: regenerate for the true figure"
    if not MIN_COMPRESSION <= mean <= MAX_COMPRESSION:
        hint = (
            "pages are mostly empty: raise font_size or lower page_size"
            if mean < MIN_COMPRESSION
            else ("text is too dense to read: lower font_size or raise page_size")
        )
        return warned(name, "medium", message + f", outside {MIN_COMPRESSION:g}-{MAX_COMPRESSION:g}x", hint)
    return passed(name, "medium", message)


def check_fonts(data: DatasetSample) -> Check:
    """Every character of the sampled texts has a glyph in a font the renderer loads (else it renders as tofu)."""
    from deepsynth_cli.data.render import _load_fonts, lacks_glyph

    name = f"dataset:{data.name}:fonts"
    languages = sorted({str(row.get("language")) for rows in data.rows.values() for row in rows})
    chars = {
        char
        for rows in data.rows.values()
        for row in rows
        for char in str(row.get("text") or "") + str(row.get("summary") or "")
        if not char.isspace()
    }
    extra_dirs = tuple(Path(d) for d in (data.manifest or {}).get("render", {}).get("font_dirs", []))
    fonts = _load_fonts(extra_dirs)
    missing = sorted(char for char in chars if lacks_glyph(char, fonts))
    if missing:
        shown = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c in missing[:3])
        return failed(
            name,
            "high",
            f"{len(missing)} character(s) have no font ({shown}); language(s) {', '.join(languages)}",
            "add a font folder for that script with render.font_dirs and regenerate",
        )
    return passed(name, "high", f"fonts cover {len(chars)} distinct characters ({', '.join(languages)})")


def dataset_checks(name: str, settings: Settings, sample: int) -> tuple[list[Check], DatasetSample | None]:
    found, data = check_found(name, settings, sample)
    if data is None:
        return [found], None
    checks = [found]
    for check in (check_schema, check_images, check_empty, check_duplicates, check_leakage, check_row_counts):
        checks.append(check(data))
    checks += [check_truncation(data), check_compression(data), check_fonts(data)]
    return checks, data
