"""Parts of a split (`Source.part`): each of N parts reads only its own rows, every row lands in exactly one part,
and parts 0..N-1 one after another are the split in order. Real files under tmp_path; bytes read are measured by
the kernel (/proc/self/io), not by a wrapper of our code."""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepsynth_cli.data.registry import get_spec
from deepsynth_cli.data.sources import (
    BYTE_RANGES,
    ROUND_ROBIN,
    ROW_RANGES,
    Document,
    HubSource,
    _lines_from,
    open_source,
    part_bounds,
)
from deepsynth_cli.errors import DatasetError

_PROC_IO = Path("/proc/self/io")


def _words(seed: int, count: int) -> str:
    draw = random.Random(seed)
    return " ".join(f"{draw.getrandbits(40):010x}" for _ in range(count))  # incompressible


def _row(n: int, words: int = 20, **extra: Any) -> dict[str, Any]:
    return {"id": f"doc-{n:05d}", "text": f"Document {n}. {_words(n, words)}", "summary": f"Summary {n}.", **extra}


def _write_jsonl(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(end.join(lines).encode("utf-8"))
    return path


def _write_parquet(path: Path, rows: list[dict[str, Any]], row_group_size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return path


def _parts(source: Any, split: str, count: int, limit: int | None = None) -> list[list[Document]]:
    return [list(source.part(split, index, count, limit)) for index in range(count)]


def _reading(source: Any, index: int, count: int) -> Callable[[], object]:
    return lambda: list(source.part("train", index, count))


def _bytes_read(action: Callable[[], object]) -> int:
    """Bytes this process read through read()/pread() system calls while `action` ran (`rchar`)."""

    def rchar() -> int:
        for line in _PROC_IO.read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
        raise AssertionError("no rchar in /proc/self/io")

    before = rchar()
    action()
    return rchar() - before


# --- JSON Lines: byte ranges ------------------------------------------------------------------------------------


def test_line_ranges_split_at_every_byte_give_every_line_once() -> None:
    # Every kind of boundary: CRLF, empty lines, multi-byte UTF-8 (2, 3 and 4 bytes), a line far longer than the
    # ranges, and a last line without a newline. Cut at every single byte, the two ranges hold each line once.
    data = 'a\r\n\n\n{"é": "ü"}\r\n中文字\n' + "x" * 50 + "\n😀🎉\n\nlast"
    raw = data.encode("utf-8")
    whole = [line for _, line in _lines_from(io.BytesIO(raw), 0, len(raw))]
    assert b"".join(whole) == raw
    for cut in range(len(raw) + 1):
        left = list(_lines_from(io.BytesIO(raw), 0, cut))
        right = list(_lines_from(io.BytesIO(raw), cut, len(raw)))
        assert [line for _, line in left + right] == whole, cut
        assert all(raw[offset:].startswith(line) for offset, line in left + right)
        assert all(offset < cut for offset, _ in left) and all(offset >= cut for offset, _ in right)
        for _, line in left + right:
            line.decode("utf-8")  # no line starts or ends inside a character


def test_byte_range_parts_are_the_split_in_order_whatever_n(tmp_path: Path) -> None:
    lines = []
    for n in range(40):
        row = _row(n, words=1 + (n * 37) % 90, language=("fr", "ar", "zh")[n % 3])
        row["text"] += " éü中文😀" * (n % 4)  # multi-byte characters at various offsets
        lines.append(json.dumps(row, ensure_ascii=False))
        if n % 7 == 0:
            lines.append("")  # empty lines are no rows
        if n % 11 == 0:
            lines.append("   \t")
    lines[0] = "\ufeff" + lines[0]  # a byte-order mark, as some editors write
    path = _write_jsonl(tmp_path / "crlf" / "train.jsonl", lines, end="\r\n")  # CRLF, and no final newline
    source = open_source(str(path))
    whole = list(source.documents("train"))
    assert len(whole) == 40 and whole[4].language == "ar"
    for count in (1, 2, 3, 4, 7, 16, 39, 40, 41, 100):
        parts = _parts(source, "train", count)
        assert [document for part in parts for document in part] == whole, count
    assert source.part("train", 0, 2).scheme == BYTE_RANGES
    assert source.part("train", 0, 1).scheme == ROUND_ROBIN  # one part: the plain whole-split read


def test_a_line_longer_than_its_range_belongs_to_the_part_where_it_starts(tmp_path: Path) -> None:
    rows = [_row(0), _row(1, words=2000), _row(2), _row(3)]  # row 1 is ~22 KB, the others ~250 bytes
    path = _write_jsonl(tmp_path / "long" / "train.jsonl", [json.dumps(row) for row in rows], end="\n")
    source = open_source(str(path))
    parts = _parts(source, "train", 8)
    assert [[document.source_id for document in part] for part in parts][:2] == [["doc-00000", "doc-00001"], []]
    assert [document.source_id for part in parts for document in part] == [row["id"] for row in rows]


def test_rows_without_id_in_a_byte_range_are_named_by_their_offset(tmp_path: Path) -> None:
    lines = [json.dumps({"text": f"Text {n}.", "summary": "S."}) for n in range(6)]
    path = _write_jsonl(tmp_path / "noid" / "train.jsonl", lines, end="\n")
    source = open_source(str(path))
    assert [document.source_id for document in source.documents("train")] == [f"train-{n}" for n in range(6)]
    offsets = [0]
    for line in lines[:-1]:
        offsets.append(offsets[-1] + len(line) + 1)
    named = [document.source_id for part in _parts(source, "train", 3) for document in part]
    assert named == [f"train@{offset}" for offset in offsets]


def test_byte_ranges_span_the_files_of_a_split_and_keep_the_first_max_samples(tmp_path: Path) -> None:
    folder = tmp_path / "multi"
    _write_jsonl(folder / "train-00000-of-00002.jsonl", [json.dumps(_row(n)) for n in range(0, 13)])
    _write_jsonl(folder / "train-00001-of-00002.jsonl", [json.dumps(_row(n)) for n in range(13, 30)] + [""])
    source = open_source(str(folder))
    ids = [f"doc-{n:05d}" for n in range(30)]
    for count in (2, 3, 5):
        assert [d.source_id for part in _parts(source, "train", count) for d in part] == ids
        for limit in (0, 1, 12, 13, 14, 29, 30, 31):
            parts = [source.part("train", index, count, limit) for index in range(count)]
            kept = [[d.source_id for d in part] for part in parts]
            assert [source_id for part in kept for source_id in part] == ids[:limit], (count, limit)
            # A part is cut short by the limit when some of its rows lie beyond the first `limit`.
            assert any(part.limited for part in parts) == (limit < 30), (count, limit)


def test_a_bad_line_in_a_byte_range_names_its_line_and_byte_offset(tmp_path: Path) -> None:
    lines = [json.dumps(_row(n)) for n in range(4)]
    lines[3] = '{"text": "broken'
    path = _write_jsonl(tmp_path / "bad" / "train.jsonl", lines)
    offset = sum(len(line) + 1 for line in lines[:3])
    source = open_source(str(path))
    with pytest.raises(DatasetError, match=rf"train.jsonl: line 4 \(byte {offset}\) is not valid JSON"):
        for part in _parts(source, "train", 2):
            list(part)


@pytest.mark.skipif(not _PROC_IO.exists(), reason="bytes read are measured through Linux's /proc/self/io")
def test_a_byte_range_part_reads_only_its_own_bytes(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "big" / "train.jsonl", [json.dumps(_row(n, words=300)) for n in range(400)])
    size = path.stat().st_size  # ~1.3 MB
    source = open_source(str(path))
    read = [_bytes_read(_reading(source, index, 4)) for index in range(4)]
    whole = _bytes_read(lambda: list(source.part("train", 0, 1)))
    # Its quarter, plus the rest of the line before it and one 8 KiB read-ahead buffer past its end.
    assert all(size / 4 <= got < size / 4 + 3 * 3400 + 8192 for got in read), (read, size)
    assert whole >= size


# --- Parquet: row ranges ----------------------------------------------------------------------------------------


def test_row_range_parts_are_the_split_in_order_whatever_n(tmp_path: Path) -> None:
    folder = tmp_path / "pq"
    _write_parquet(folder / "train-00000-of-00003.parquet", [_row(n) for n in range(0, 23)], row_group_size=5)
    _write_parquet(folder / "train-00001-of-00003.parquet", [_row(n) for n in range(23, 24)], row_group_size=5)
    _write_parquet(folder / "train-00002-of-00003.parquet", [_row(n) for n in range(24, 61)], row_group_size=9)
    source = open_source(str(folder))
    whole = list(source.documents("train"))
    assert len(whole) == 61
    for count in (1, 2, 3, 5, 8, 60, 61, 62, 100):
        parts = [source.part("train", index, count) for index in range(count)]
        read = [list(part) for part in parts]
        assert [document for part in read for document in part] == whole, count
        if count > 1:
            assert [part.rows for part in parts] == [len(part) for part in read], count
            assert max(map(len, read)) - min(map(len, read)) <= 1, "balanced to one row"
        for limit in (0, 1, 22, 23, 24, 60, 61, 70):
            kept = [document for part in _parts(source, "train", count, limit) for document in part]
            assert kept == whole[:limit], (count, limit)


def test_row_ranges_name_rows_without_id_by_their_row_number(tmp_path: Path) -> None:
    rows = [{"text": f"Text {n}.", "summary": "S.", "lang": "de"} for n in range(10)]
    path = _write_parquet(tmp_path / "noid" / "train.parquet", rows, row_group_size=3)
    source = open_source(str(path))
    parts = _parts(source, "train", 3)
    assert [document.source_id for part in parts for document in part] == [f"train-{n}" for n in range(10)]
    assert {document.language for part in parts for document in part} == {"de"}  # the `lang` column, per row


@pytest.mark.skipif(not _PROC_IO.exists(), reason="bytes read are measured through Linux's /proc/self/io")
def test_a_row_range_part_reads_only_its_row_groups_and_columns(tmp_path: Path) -> None:
    rows = [_row(n, words=300, notes=_words(-n - 1, 300)) for n in range(256)]
    path = _write_parquet(tmp_path / "big" / "train.parquet", rows, row_group_size=16)  # 16 row groups
    size = path.stat().st_size  # ~1.7 MB, half of it the unused `notes` column
    source = open_source(str(path))
    source.part("train", 0, 4)  # reads the footer once (a few KB), as every part does
    read = [_bytes_read(_reading(source, index, 4)) for index in range(4)]
    whole = _bytes_read(lambda: list(source.part("train", 0, 1)))
    # Four of the 16 row groups, and of them only the text, summary and id columns: about an eighth of the file.
    assert all(size / 10 < got < size / 6 for got in read), (read, size)
    assert whole > size / 2  # the whole-split read: every row group of the columns used


# --- Everything else: round-robin -------------------------------------------------------------------------------


def test_csv_and_json_arrays_are_dealt_round_robin(tmp_path: Path) -> None:
    rows = [_row(n) for n in range(10)]
    with (tmp_path / "train.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "array").mkdir()
    (tmp_path / "array" / "train.json").write_text(json.dumps(rows), encoding="utf-8")
    for dataset in (tmp_path / "train.csv", tmp_path / "array" / "train.json"):
        source = open_source(str(dataset))
        parts = [source.part("train", index, 3) for index in range(3)]
        assert {part.scheme for part in parts} == {ROUND_ROBIN}
        ids = [[document.source_id for document in part] for part in parts]
        assert ids == [[f"doc-{n:05d}" for n in range(index, 10, 3)] for index in range(3)]
        limited = [source.part("train", index, 3, limit=5) for index in range(3)]
        assert [len(list(part)) for part in limited] == [part.rows for part in limited] == [2, 2, 1]


def test_aclsum_is_dealt_round_robin() -> None:
    source = open_source("aclsum", splits=["val"])
    whole = [document.source_id for document in source.documents("val")]
    parts = [[document.source_id for document in source.part("val", index, 2)] for index in range(2)]
    assert parts == [whole[0::2], whole[1::2]]


def test_parquet_export_splits_are_read_by_row_ranges(tmp_path: Path) -> None:
    _write_parquet(tmp_path / "fr" / "train" / "0000.parquet", [_row(n) for n in range(7)], row_group_size=2)
    _write_parquet(tmp_path / "fr" / "train" / "0001.parquet", [_row(n) for n in range(7, 12)], row_group_size=2)
    spec = get_spec("mlsum_fr")
    assert spec.hub_id is not None
    source = HubSource(
        name=spec.key, hub_id=spec.hub_id, config=spec.config, revision=spec.revision,
        text_column="text", summary_column="summary", language="fr", spec=spec, splits=spec.splits,
        parquet_root=str(tmp_path),  # a local copy of the export instead of hf://datasets/...@refs%2Fconvert%2Fparquet
    )  # fmt: skip
    parts = [source.part("train", index, 3) for index in range(3)]
    assert {part.scheme for part in parts} == {ROW_RANGES}
    assert [d.source_id for part in parts for d in part] == [f"doc-{n:05d}" for n in range(12)]
    assert [d.source_id for d in source.documents("train")] == [f"doc-{n:05d}" for n in range(12)]


def test_part_bounds_are_contiguous_and_balanced() -> None:
    for total in (0, 1, 7, 100, 10**12 + 3):
        for count in (1, 2, 3, 64):
            bounds = [part_bounds(total, index, count) for index in range(count)]
            assert bounds[0][0] == 0 and bounds[-1][1] == total
            assert all(left[1] == right[0] for left, right in itertools.pairwise(bounds))
            assert max(stop - start for start, stop in bounds) - min(stop - start for start, stop in bounds) <= 1
