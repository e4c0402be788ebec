"""Streaming documents from local files, directories, the installed ACLSum package and (offline) Hub exports.

Real files written under tmp_path; no mocks of our code, no network.
"""

from __future__ import annotations

import csv
import inspect
import json
import re
import tracemalloc
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepsynth_cli.data.registry import get_spec
from deepsynth_cli.data.sources import (
    AclsumSource,
    Document,
    FileSource,
    HubSource,
    detokenize,
    open_source,
    read_rows,
    split_from_filename,
)
from deepsynth_cli.errors import DatasetError

ROWS = [
    {"text": "Le premier article.", "summary": "Premier.", "title": "a"},
    {"text": "Zweiter Artikel über Öl.", "summary": "Zweiter.", "title": "b"},
    {"text": "第三篇文章。", "summary": "第三。", "title": "c"},
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]], row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return path


def texts(documents: Any) -> list[tuple[str, str]]:
    return [(document.text, document.summary) for document in documents]


EXPECTED = [(row["text"], row["summary"]) for row in ROWS]


# --- Local files: formats and columns ------------------------------------------------------------------


def test_jsonl_with_default_columns(tmp_path: Path) -> None:
    source = open_source(str(write_jsonl(tmp_path / "news.jsonl", ROWS)))
    assert isinstance(source, FileSource)
    assert (source.name, source.language, source.spec) == ("news", "und", None)
    assert source.splits() == ["train"]
    documents = list(source.documents("train"))
    assert texts(documents) == EXPECTED
    assert [document.source_id for document in documents] == ["train-0", "train-1", "train-2"]
    assert {document.language for document in documents} == {"und"}


def test_jsonl_with_custom_columns_language_and_ids(tmp_path: Path) -> None:
    rows = [{"id": f"doc-{i}", "body": row["text"], "abstract": row["summary"]} for i, row in enumerate(ROWS)]
    path = write_jsonl(tmp_path / "corpus.jsonl", rows)
    source = open_source(str(path), text_column="body", summary_column="abstract", language="fr")
    documents = list(source.documents("train"))
    assert texts(documents) == EXPECTED
    assert [document.source_id for document in documents] == ["doc-0", "doc-1", "doc-2"]
    assert documents[0] == Document("doc-0", ROWS[0]["text"], ROWS[0]["summary"], "fr")


def test_missing_and_null_values_become_empty_strings_not_skipped(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [
        {"text": "ok", "summary": "fine"},
        {"text": None, "summary": "no text"},
        {"text": "no summary"},
        {"text": ["para one", "para two"], "summary": ["first.", "second."]},
    ]
    documents = list(open_source(str(write_jsonl(tmp_path / "d.jsonl", rows))).documents("train"))
    assert texts(documents) == [
        ("ok", "fine"),
        ("", "no text"),
        ("no summary", ""),
        ("para one\npara two", "first. second."),
    ]


def test_json_array_file(tmp_path: Path) -> None:
    path = tmp_path / "array.json"
    path.write_text(json.dumps(ROWS, ensure_ascii=False, indent=2), encoding="utf-8")
    assert texts(open_source(str(path)).documents("train")) == EXPECTED


def test_json_file_holding_json_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "lines.json", ROWS)
    assert texts(open_source(str(path)).documents("train")) == EXPECTED


def test_json_array_rows_equal_json_loads(tmp_path: Path) -> None:
    # ijson reads 64 KiB blocks: long multi-byte strings put block edges inside characters, strings and
    # escapes; the BOM must be skipped; every JSON value kind must come back as json.loads gives it.
    rows: list[dict[str, Any]] = [
        {"text": "é" * size + "😀" * size + '\\ "quoted" \n\t\u0000 \u2028', "summary": str(size)}
        for size in (1, 9_999, 21_847, 32_768)
    ]
    rows.append(
        {
            "text": "numbers",
            "summary": ["a", None, True, False],
            "numbers": [0, -7, 2**63 - 1, 1 - 2**63, 1.5, -0.25, 1e-7, 6.02e23, 1e5],
            "nested": {"deep": [{"x": []}, {}], "empty": ""},
        }
    )
    content = json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
    path = tmp_path / "array.json"
    path.write_bytes(b"\xef\xbb\xbf " + content.encode("utf-8"))
    assert list(read_rows(path, "text", "summary")) == json.loads(content)
    escaped = tmp_path / "ascii.json"  # the same rows with \\uXXXX escapes and no whitespace at all
    escaped.write_text(json.dumps(rows, separators=(",", ":")), encoding="ascii")
    assert list(read_rows(escaped, "text", "summary")) == json.loads(content)


def test_json_array_keeps_numbers_beyond_64_bits(tmp_path: Path) -> None:
    # json.loads accepts these; ijson's fast float mode overflows on them, so the file is read again exactly.
    path = tmp_path / "ids.json"
    path.write_text(
        '[{"text": "a", "summary": "b", "score": 2.5},\n'
        ' {"id": 123456789012345678901234567890, "text": "c", "summary": "d", "big": 1E400}]',
        encoding="utf-8",
    )
    rows = list(read_rows(path, "text", "summary"))
    assert [row["text"] for row in rows] == ["a", "c"]  # each element once, none skipped or repeated
    assert rows[0]["score"] == 2.5 and rows[1]["id"] == 123456789012345678901234567890
    assert float(rows[1]["big"]) == float("inf")
    documents = list(open_source(str(path)).documents("train"))
    assert [document.source_id for document in documents] == ["train-0", "123456789012345678901234567890"]


def test_json_array_malformed_element_shows_where_parsing_stopped(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[\n{"text": "a", "summary": "b"},\n{"text": "c", "summary": }\n]\n', encoding="utf-8")
    documents = open_source(str(path)).documents("train")
    assert next(documents).text == "a"  # the elements before the error are delivered
    with pytest.raises(DatasetError) as caught:
        next(documents)
    message = caught.value.message
    assert str(path) in message and "not valid JSON" in message
    assert '"summary": }>>>' in message  # ijson gives no line number, only the text where it stopped
    assert "JSON array" in caught.value.hint


def test_json_array_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_text('[{"text": "a", "summary": "b"}, {"text": "c", "summ', encoding="utf-8")
    documents = open_source(str(path)).documents("train")
    assert next(documents).text == "a"
    with pytest.raises(DatasetError) as caught:
        next(documents)
    message = caught.value.message
    assert message.startswith(f"{path}: ") and "file looks truncated" in message.removeprefix(str(path))


def test_json_array_data_after_closing_bracket(tmp_path: Path) -> None:
    path = tmp_path / "extra.json"
    path.write_text('[{"text": "a", "summary": "b"}]\n{"text": "c"}', encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        list(open_source(str(path)).documents("train"))
    assert str(path) in caught.value.message and "trailing garbage" in caught.value.message


@pytest.mark.parametrize(("element", "kind"), [("3", "int"), ('"text"', "str"), ("[1]", "list"), ("null", "NoneType")])
def test_json_array_element_that_is_not_an_object_names_its_index(tmp_path: Path, element: str, kind: str) -> None:
    path = tmp_path / "mixed.json"
    path.write_text(f'[{{"text": "a", "summary": "b"}}, {element}]', encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        list(open_source(str(path)).documents("train"))
    assert str(path) in caught.value.message
    assert f"element 1 of the JSON array (counting from 0) holds a JSON {kind}, not an object" in caught.value.message


def test_json_array_missing_column_names_the_element(tmp_path: Path) -> None:
    path = tmp_path / "cols.json"
    path.write_text('[{"article": "x", "summary": "y"}]', encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        open_source(str(path))
    assert f"{path} (array element 0) has no column 'text'" in caught.value.message
    assert "article" in caught.value.message


def test_csv_with_default_and_custom_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", ROWS)
    assert texts(open_source(str(path)).documents("train")) == EXPECTED
    source = open_source(str(path), text_column="title", summary_column="summary")
    assert [document.text for document in source.documents("train")] == ["a", "b", "c"]


def test_csv_quoted_newlines_bom_and_long_fields(tmp_path: Path) -> None:
    long_text = "mot " * 100_000  # 400 KB: over the csv module's default 128 KiB field limit
    path = tmp_path / "excel.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as handle:  # Excel writes a BOM
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "summary"])
        writer.writerow(["7", "line one\r\nline two, with comma", "s1"])
        writer.writerow(["8", long_text, "s2"])
    documents = list(open_source(str(path)).documents("train"))
    assert [document.source_id for document in documents] == ["7", "8"]
    assert documents[0].text == "line one\r\nline two, with comma"
    assert documents[1].text == long_text


def test_parquet_with_default_and_custom_columns(tmp_path: Path) -> None:
    rows = [{**row, "id": 100 + i} for i, row in enumerate(ROWS)]
    path = write_parquet(tmp_path / "data.parquet", rows, row_group_size=2)
    documents = list(open_source(str(path)).documents("train"))
    assert texts(documents) == EXPECTED
    assert [document.source_id for document in documents] == ["100", "101", "102"]
    source = open_source(str(path), text_column="title")
    assert [document.text for document in source.documents("train")] == ["a", "b", "c"]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_missing_column_names_file_and_present_columns(tmp_path: Path, suffix: str) -> None:
    rows = [{"article": "x", "highlights": "y"}]
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        write_csv(path, rows)
    elif suffix == ".parquet":
        write_parquet(path, rows)
    else:
        write_jsonl(path, rows)
    with pytest.raises(DatasetError) as caught:
        open_source(str(path), summary_column="highlights")
    message = caught.value.message
    assert str(path) in message
    assert "'text'" in message
    assert "article" in message and "highlights" in message
    assert "--text-column" in caught.value.hint


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_non_utf8_file_names_file_offset_and_line(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"latin1{suffix}"
    if suffix == ".csv":
        content = "text,summary\nok,fine\ncaf\xe9,bad\n"
    else:
        content = '{"text": "ok", "summary": "fine"}\n{"text": "caf\xe9", "summary": "bad"}\n'
    raw = content.encode("latin-1")
    path.write_bytes(raw)
    with pytest.raises(DatasetError) as caught:
        list(open_source(str(path)).documents("train"))
    message = caught.value.message
    assert str(path) in message and "UTF-8" in message
    offset = raw.index(0xE9)
    assert f"offset {offset}" in message
    assert ("line 3" if suffix == ".csv" else "line 2") in message
    assert "re-encode" in caught.value.hint


def test_non_utf8_json_array_names_file_and_shows_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes('[{"text": "ok", "summary": "fine"},\n{"text": "caf\xe9", "summary": "bad"}]'.encode("latin-1"))
    documents = open_source(str(path)).documents("train")
    assert next(documents).text == "ok"
    with pytest.raises(DatasetError) as caught:
        next(documents)
    message = caught.value.message
    assert str(path) in message and "UTF-8" in message
    assert '"caf\\xe9"' in message  # the bad byte in its context; ijson reports no offset, and we say so
    assert "no byte offset" in message
    assert "re-encode" in caught.value.hint and "iconv" in caught.value.hint


def test_malformed_json_line_names_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "summary": "b"}\n\n{"text": "c", "summary": "d"\n', encoding="utf-8")
    source = open_source(str(path))
    with pytest.raises(DatasetError) as caught:
        list(source.documents("train"))
    assert str(path) in caught.value.message
    assert "line 3" in caught.value.message


def test_malformed_first_line_fails_when_opening(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="line 1"):
        open_source(str(path))


# --- Splits ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "split"),
    [
        ("test.jsonl", "test"),
        ("validation.csv", "validation"),
        ("val.jsonl", "val"),
        ("TRAIN.parquet", "train"),
        ("xsum_test.jsonl", "test"),
        ("news-validation.json", "validation"),
        ("train-00000-of-00002.parquet", "train"),
        ("articles.jsonl", None),
        ("contest.jsonl", None),
    ],
)
def test_split_from_file_name(file_name: str, split: str | None) -> None:
    assert split_from_filename(Path(file_name)) == split


def test_single_file_split_and_name(tmp_path: Path) -> None:
    source = open_source(str(write_jsonl(tmp_path / "news" / "test.jsonl", ROWS)))
    assert source.splits() == ["test"]
    assert source.name == "news"  # "test" would be a poor, colliding dataset name
    assert next(source.documents("test")).source_id == "test-0"
    other = open_source(str(write_jsonl(tmp_path / "xsum_validation.jsonl", ROWS)))
    assert (other.name, other.splits()) == ("xsum_validation", ["validation"])


def test_directory_gives_one_split_per_file_kept_apart(tmp_path: Path) -> None:
    train = [{"text": f"train {i}", "summary": f"t{i}"} for i in range(5)]
    test = [{"text": f"test {i}", "summary": f"s{i}"} for i in range(3)]
    ca_test = [{"text": "california", "summary": "ca"}]
    write_jsonl(tmp_path / "bills" / "train.jsonl", train)
    write_csv(tmp_path / "bills" / "test.csv", test)
    write_jsonl(tmp_path / "bills" / "ca_test.jsonl", ca_test)
    source = open_source(str(tmp_path / "bills"))
    assert source.name == "bills"
    assert source.splits() == ["train", "test", "ca_test"]
    assert [document.text for document in source.documents("train")] == [row["text"] for row in train]
    assert [document.text for document in source.documents("test")] == [row["text"] for row in test]
    assert [document.text for document in source.documents("ca_test")] == ["california"]


def test_directory_shards_form_one_split_with_unique_ids(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d" / "train-00001-of-00002.jsonl", ROWS[2:])
    write_jsonl(tmp_path / "d" / "train-00000-of-00002.jsonl", ROWS[:2])
    source = open_source(str(tmp_path / "d"))
    assert source.splits() == ["train"]
    documents = list(source.documents("train"))
    assert texts(documents) == EXPECTED  # shards read in name order
    assert [document.source_id for document in documents] == ["train-0", "train-1", "train-2"]


def test_requested_splits_are_selected_and_checked(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d" / "train.jsonl", ROWS)
    write_jsonl(tmp_path / "d" / "test.jsonl", ROWS)
    assert open_source(str(tmp_path / "d"), splits=["test"]).splits() == ["test"]
    with pytest.raises(DatasetError) as caught:
        open_source(str(tmp_path / "d"), splits=["validation"])
    assert "'validation'" in caught.value.message
    assert "train, test" in caught.value.message


def test_unknown_split_fails_at_call_not_at_first_document(tmp_path: Path) -> None:
    source = open_source(str(write_jsonl(tmp_path / "x.jsonl", ROWS)))
    with pytest.raises(DatasetError, match="available splits: train"):
        source.documents("test")


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"no \.jsonl"):
        open_source(str(tmp_path / "empty"))


# --- Resolution errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["missing.jsonl", "data/missing.csv", "./nowhere", "/no/such/dir/x"])
def test_missing_path_is_file_not_found(dataset: str) -> None:
    with pytest.raises(DatasetError, match="file not found"):
        open_source(dataset)


def test_missing_file_in_existing_directory_is_not_a_hub_id(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(DatasetError, match="file not found"):
        open_source(str(tmp_path / "data" / "train"))


def test_unsupported_extension_lists_supported_formats(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        open_source(str(path))
    assert ".txt" in caught.value.message
    assert all(extension in caught.value.hint for extension in (".jsonl", ".json", ".csv", ".parquet"))


def test_unknown_name_suggests_registry_keys() -> None:
    with pytest.raises(DatasetError) as caught:
        open_source("mlsum_frr")
    assert "mlsum_fr" in caught.value.message
    assert "deepsynth generate --list" in caught.value.hint


# --- Hub datasets (no network) ---------------------------------------------------------------------------


def test_bare_hub_id_requires_columns_before_any_network_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # An unreachable endpoint and offline mode: any Hub call would fail with a different error.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetError) as caught:
        open_source("someone/some-dataset")
    assert "--text-column" in caught.value.hint and "--summary-column" in caught.value.hint
    with pytest.raises(DatasetError) as caught:
        open_source("someone/some-dataset", text_column="body")
    assert "--summary-column" in caught.value.hint and "--text-column" not in caught.value.hint


def test_bare_hub_id_with_columns_opens_without_network() -> None:
    source = open_source("someone/some-dataset", text_column="body", summary_column="tldr", config="en")
    assert isinstance(source, HubSource)
    assert (source.name, source.language, source.spec) == ("someone__some-dataset__en", "und", None)
    assert (source.hub_id, source.config, source.revision) == ("someone/some-dataset", "en", None)


def test_registry_defaults_and_overrides() -> None:
    source = open_source("mlsum_fr")
    assert isinstance(source, HubSource)
    assert source.spec is get_spec("mlsum_fr")
    assert (source.name, source.language, source.splits()) == (
        "mlsum_fr",
        "fr",
        ["train", "validation", "test"],
    )
    assert (source.text_column, source.summary_column) == ("text", "summary")
    custom = open_source("mlsum_fr", text_column="title", summary_column="topic", language="fr-CA")
    assert isinstance(custom, HubSource)
    assert (custom.text_column, custom.summary_column, custom.language) == ("title", "topic", "fr-CA")


def test_registry_split_selection_is_checked_offline() -> None:
    assert open_source("billsum", splits=["ca_test"]).splits() == ["ca_test"]
    with pytest.raises(DatasetError) as caught:
        open_source("billsum", splits=["validation"])
    assert "train, test, ca_test" in caught.value.message


def export_source(root: Path, config: str = "fr") -> HubSource:
    spec = get_spec(f"mlsum_{config}")
    assert spec.hub_id is not None
    return HubSource(
        name=spec.key,
        hub_id=spec.hub_id,
        config=spec.config,
        revision=spec.revision,
        text_column=spec.text_column,
        summary_column=spec.summary_column,
        language=spec.language,
        spec=spec,
        splits=spec.splits,
        # A local copy of the export instead of hf://datasets/reciTAL/mlsum@refs%2Fconvert%2Fparquet.
        parquet_root=str(root),
    )


def test_parquet_export_layouts_stream_per_split(tmp_path: Path) -> None:
    # The three layouts of refs/convert/parquet: {config}/{split}/NNNN.parquet, partial-{split}/ for huge
    # splits, and the pre-2024 {config}/{name}-{split}.parquet.
    write_parquet(tmp_path / "fr" / "train" / "0000.parquet", [{"text": "t0", "summary": "s0", "url": "u"}])
    write_parquet(tmp_path / "fr" / "train" / "0001.parquet", [{"text": "t1", "summary": "s1", "url": "u"}])
    write_parquet(tmp_path / "fr" / "partial-validation" / "0000.parquet", [{"text": "v0", "summary": "w0"}])
    write_parquet(tmp_path / "fr" / "mlsum-test.parquet", [{"text": "x0", "summary": "y0"}])
    source = export_source(tmp_path)
    assert texts(source.documents("train")) == [("t0", "s0"), ("t1", "s1")]
    assert texts(source.documents("validation")) == [("v0", "w0")]
    documents = list(source.documents("test"))
    assert texts(documents) == [("x0", "y0")]
    assert documents[0] == Document("test-0", "x0", "y0", "fr")


def test_parquet_export_missing_column_lists_present_columns(tmp_path: Path) -> None:
    write_parquet(tmp_path / "fr" / "train" / "0000.parquet", [{"body": "t", "summary": "s"}])
    with pytest.raises(DatasetError) as caught:
        list(export_source(tmp_path).documents("train"))
    assert "'text'" in caught.value.message and "body" in caught.value.message


def test_hub_load_failure_names_repo_revision_and_config(tmp_path: Path) -> None:
    source = export_source(tmp_path)  # nothing under tmp_path: no data files for the split
    with pytest.raises(DatasetError) as caught:
        next(source.documents("train"))
    message = caught.value.message
    assert "reciTAL/mlsum" in message and "refs/convert/parquet" in message and "config fr" in message
    assert "HF_TOKEN" in caught.value.hint


# --- ACLSum (installed package) --------------------------------------------------------------------------


def test_aclsum_splits_and_counts() -> None:
    source = open_source("aclsum")
    assert isinstance(source, AclsumSource)
    assert (source.name, source.language) == ("aclsum", "en")
    assert source.splits() == ["train", "val", "test"]
    ids = {split: [document.source_id for document in source.documents(split)] for split in source.splits()}
    # The files hold 99/49/99 newlines: the last line of each has none.
    assert {split: len(values) for split, values in ids.items()} == {"train": 100, "val": 50, "test": 100}
    assert all(len(set(values)) == len(values) for values in ids.values())
    assert not set(ids["train"]) & set(ids["val"]) and not set(ids["train"]) & set(ids["test"])
    assert all(re.fullmatch(r"[\w.-]+", source_id) for values in ids.values() for source_id in values)


def test_aclsum_document_layout() -> None:
    document = next(open_source("aclsum").documents("val"))
    assert document.source_id == "2021.eacl-main.84"
    assert document.text.startswith("Abstract\nIdentifying named entities in written text")
    assert "\n\nIntroduction\n" in document.text and "\n\nConclusion\n" in document.text
    assert "Named Entity Recognition (NER) systems" in document.text  # detokenised
    assert " ." not in document.text and " ," not in document.text
    assert document.summary.startswith("The current experimental setup")
    assert document.summary.endswith("can reduce the gaps.")
    assert document.language == "en"


def test_aclsum_rejects_column_overrides() -> None:
    with pytest.raises(DatasetError, match="fixed layout"):
        open_source("aclsum", text_column="abstract")


def test_aclsum_language_override() -> None:
    assert open_source("aclsum", language="en-US", splits=["test"]).language == "en-US"


@pytest.mark.parametrize(
    ("tokens", "text"),
    [
        ("word .", "word."),
        ("( QA )", "(QA)"),
        ("We use BERT ( Devlin et al. , 2019 ) ; it works !", "We use BERT (Devlin et al., 2019); it works!"),
        ("the model 's output is n't bad", "the model's output isn't bad"),
        ("a \" quoted \" word and ' single ' ones", "a \"quoted\" word and 'single' ones"),
        ("5 % of [ 1 ] : done", "5% of [1]: done"),
        ("1 - 5 F 1 points", "1 - 5 F 1 points"),
        ("already fine.", "already fine."),
        ("", ""),
    ],
)
def test_detokenize(tokens: str, text: str) -> None:
    assert detokenize(tokens) == text


# --- Streaming -------------------------------------------------------------------------------------------


def test_documents_are_streamed_lazily(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    line = json.dumps({"text": "x" * 40, "summary": "y"}) + "\n"
    path.write_text(line * 200_000, encoding="utf-8")  # ~12 MB
    source = open_source(str(path))
    documents = source.documents("train")
    assert inspect.isgenerator(documents)  # nothing is read until the first document is asked for
    assert isinstance(documents, Generator)
    tracemalloc.start()
    try:
        first = next(documents)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        documents.close()
    assert first == Document("train-0", "x" * 40, "y", "und")
    assert peak < 1_000_000  # reading the whole file would take over 12 MB


def test_json_array_is_streamed_lazily(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    element = json.dumps({"text": "x" * 40, "summary": "y"})
    # ~12 MB of elements, then a broken tail: parsing the whole file first would fail before any document.
    path.write_text("[" + ",\n".join([element] * 200_000) + ",\n{broken", encoding="utf-8")
    documents = open_source(str(path)).documents("train")
    tracemalloc.start()
    try:
        first = next(documents)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first == Document("train-0", "x" * 40, "y", "und")
    assert peak < 1_000_000  # reading the whole file would take over 12 MB
    count = 1
    with pytest.raises(DatasetError, match="not valid JSON"):
        for _ in documents:
            count += 1
    assert count == 200_000  # every whole element arrives before the broken tail raises
