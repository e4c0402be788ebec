"""`--holdout VAL,TEST`: the carving of validation and test out of one local file, by a hash of each text."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from deepsynth_cli.config import GenerateConfig, load_config
from deepsynth_cli.data.holdout import Holdout, normalized, position
from deepsynth_cli.data.sources import open_source
from deepsynth_cli.errors import ConfigError, DatasetError


def test_the_key_is_the_sha256_of_the_nfc_whitespace_collapsed_text() -> None:
    expected = int.from_bytes(hashlib.sha256("Café au lait".encode()).digest()[:8], "big") / 2**64
    assert position(" Cafe\u0301\tau \n\n lait  ") == expected  # decomposed é, tabs, newlines, ends
    assert normalized("a\u00a0\u2003b") == "a b"  # Unicode spaces are whitespace too
    assert position("Café au lait") != position("café au lait"), "case is kept: only texts that read the same are one"
    assert 0 <= position("\ud800 a lone surrogate") < 1  # hashed, not an error


def _write(path: Path, texts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"r{n}", "text": text, "summary": "s"} for n, text in enumerate(texts)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_fractions_hold_within_tolerance_on_a_few_thousand_rows(tmp_path: Path) -> None:
    path = _write(tmp_path / "corpus.jsonl", [f"document number {n} about topic {n % 37}" for n in range(4000)])
    source = open_source(str(path), holdout=Holdout(0.05, 0.10))
    assert source.splits() == ["train", "validation", "test"]
    counts = {split: sum(1 for _ in source.documents(split)) for split in source.splits()}
    assert sum(counts.values()) == 4000, "every row in exactly one split"
    for split, share in (("validation", 0.05), ("test", 0.10)):
        spread = 4 * (4000 * share * (1 - share)) ** 0.5  # 4 binomial standard deviations
        assert abs(counts[split] - 4000 * share) < spread, (split, counts)


def test_duplicates_never_straddle_and_the_order_is_the_files(tmp_path: Path) -> None:
    texts = [f"text {n % 150}" + (" " if n % 2 else "\n") for n in range(900)]  # each text 6 times, spaced apart
    path = _write(tmp_path / "corpus.jsonl", texts)
    source = open_source(str(path), holdout=Holdout(0.2, 0.2))
    where: dict[str, set[str]] = {}
    for split in source.splits():
        ids = [document.source_id for document in source.documents(split)]
        assert ids == sorted(ids, key=lambda i: int(i[1:])), "each split keeps the file's order"
        for document in source.documents(split):
            where.setdefault(normalized(document.text), set()).add(split)
    assert len(where) == 150 and all(len(splits) == 1 for splits in where.values())
    again = open_source(str(path), holdout=Holdout(0.2, 0.2))
    assert [d.source_id for d in again.documents("test")] == [d.source_id for d in source.documents("test")]


def test_a_zero_fraction_gives_no_split_and_split_selects_among_the_carved(tmp_path: Path) -> None:
    path = _write(tmp_path / "corpus.jsonl", [f"text {n}" for n in range(50)])
    assert open_source(str(path), holdout=Holdout(0.1, 0.0)).splits() == ["train", "validation"]
    only = open_source(str(path), holdout=Holdout(0.1, 0.1), splits=["validation"])
    assert only.splits() == ["validation"]
    with pytest.raises(DatasetError, match="no split 'dev'"):
        open_source(str(path), holdout=Holdout(0.1, 0.1), splits=["dev"])


def test_sources_with_their_own_splits_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    _write(folder / "train.jsonl", ["a text"])
    _write(folder / "validation.jsonl", ["another text"])
    with pytest.raises(DatasetError) as caught:
        open_source(str(folder), holdout=Holdout(0.1, 0.1))
    assert "already has split(s) train, validation" in caught.value.message
    with pytest.raises(DatasetError, match="already has split"):
        open_source(str(_write(tmp_path / "test.jsonl", ["a text"])), holdout=Holdout(0.1, 0.1))
    with pytest.raises(DatasetError, match="is not a local file"):
        open_source("aclsum", holdout=Holdout(0.1, 0.1))
    with pytest.raises(DatasetError, match="is a Hub dataset"):
        open_source("owner/name", text_column="a", summary_column="b", holdout=Holdout(0.1, 0.1))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.6,0.5", "summing below 1"),
        ("0,0", "not both 0"),
        ("-0.1,0.1", "in [0, 1)"),
        ("0.1", "two fractions VAL,TEST"),
        ("0.1,a", "two fractions VAL,TEST"),
        ([0.1, 0.1, 0.1], "two fractions VAL,TEST"),
    ],
)
def test_bad_fractions_are_one_clear_line(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(GenerateConfig, None, {"holdout": value})
    assert message in caught.value.message and "\n" not in caught.value.message
    assert load_config(GenerateConfig, None, {"holdout": "0.05, 0.1"}).holdout == (0.05, 0.1)
    assert Counter(Holdout(0.05, 0.1).splits()) == Counter(["train", "validation", "test"])
