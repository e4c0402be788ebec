"""The dataset registry: required entries, language tags, loading recipe per entry, unknown-key errors."""

from __future__ import annotations

import re

import pytest

from deepsynth_cli.data.registry import (
    PARQUET_EXPORT,
    REGISTRY,
    XLSUM_LANGUAGES,
    get_spec,
    list_registry,
    lookup_spec,
)
from deepsynth_cli.errors import DatasetError

REQUIRED_KEYS = [
    "mlsum_fr",
    "mlsum_es",
    "mlsum_de",
    "mlsum_ru",
    "mlsum_tu",
    "cnn_dailymail",
    "xsum",
    "billsum",
    "arxiv",
    "pubmed",
    "xlsum_english",
    "xlsum_french",
    "xlsum_spanish",
    "xlsum_arabic",
    "xlsum_hindi",
    "xlsum_russian",
    "xlsum_chinese_simplified",
    "aclsum",
]

# BCP-47: a 2-3 letter language subtag, optionally a 4-letter script subtag.
BCP47 = re.compile(r"[a-z]{2,3}(-[A-Z][a-z]{3})?")


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_required_entries_are_registered(key: str) -> None:
    spec = get_spec(key)
    assert spec.key == key
    assert spec.text_column and spec.summary_column and spec.splits


def test_every_xlsum_language_has_an_entry() -> None:
    xlsum = [spec for spec in REGISTRY.values() if spec.key.startswith("xlsum_")]
    assert len(xlsum) == len(XLSUM_LANGUAGES) == 45
    for spec in xlsum:
        assert spec.hub_id == "csebuetnlp/xlsum"
        assert spec.config == spec.key.removeprefix("xlsum_")
        assert (spec.text_column, spec.summary_column) == ("text", "summary")
        assert spec.splits == ("train", "validation", "test")


@pytest.mark.parametrize(
    ("key", "language"),
    [
        ("xlsum_chinese_simplified", "zh-Hans"),
        ("xlsum_chinese_traditional", "zh-Hant"),
        ("xlsum_serbian_cyrillic", "sr-Cyrl"),
        ("xlsum_serbian_latin", "sr-Latn"),
        ("xlsum_pidgin", "pcm"),
        ("xlsum_kirundi", "rn"),
        ("xlsum_burmese", "my"),
        ("xlsum_persian", "fa"),
        ("xlsum_scottish_gaelic", "gd"),
        ("xlsum_welsh", "cy"),
        ("xlsum_english", "en"),
        ("mlsum_fr", "fr"),
        ("mlsum_es", "es"),
        ("mlsum_de", "de"),
        ("mlsum_tu", "tr"),  # MLSUM's config is "tu"; Turkish is "tr"
        ("cnn_dailymail", "en"),
        ("aclsum", "en"),
    ],
)
def test_language_tags(key: str, language: str) -> None:
    assert get_spec(key).language == language


def test_language_tags_are_well_formed() -> None:
    for spec in REGISTRY.values():
        assert BCP47.fullmatch(spec.language), spec.key


@pytest.mark.parametrize("key", ["mlsum_fr", "mlsum_tu", "xsum", "xlsum_french"])
def test_script_based_datasets_read_the_parquet_export(key: str) -> None:
    spec = get_spec(key)
    assert spec.revision == PARQUET_EXPORT == "refs/convert/parquet"
    assert spec.config  # the export is laid out per config


def test_xsum_uses_the_export_config_name() -> None:
    spec = get_spec("xsum")
    assert (spec.hub_id, spec.config) == ("EdinburghNLP/xsum", "default")
    assert (spec.text_column, spec.summary_column) == ("document", "summary")


def test_cnn_dailymail_recipe() -> None:
    spec = get_spec("cnn_dailymail")
    assert (spec.hub_id, spec.config, spec.revision) == ("abisee/cnn_dailymail", "3.0.0", None)
    assert (spec.text_column, spec.summary_column) == ("article", "highlights")
    assert spec.summary_joiner == "\n"  # highlights are one sentence per line (ROUGE-Lsum)


def test_billsum_keeps_its_california_test_split() -> None:
    assert get_spec("billsum").splits == ("train", "test", "ca_test")


def test_aclsum_entry() -> None:
    spec = get_spec("aclsum")
    assert spec.kind == "aclsum"
    assert spec.hub_id is None
    assert spec.splits == ("train", "val", "test")
    assert spec.license.startswith("mit")
    assert "Takeshita" in spec.citation and "2024" in spec.citation


def test_entries_are_documented() -> None:
    for spec in REGISTRY.values():
        assert spec.license.strip(), spec.key
        assert spec.description.strip() and "\n" not in spec.description, spec.key
        assert spec.citation.startswith("@"), spec.key
        assert spec.citation.count("{") == spec.citation.count("}"), spec.key
        if spec.kind == "hub":
            assert spec.hub_id and spec.hub_id.count("/") == 1, spec.key


@pytest.mark.parametrize(
    ("key", "author"),
    [
        ("mlsum_fr", "Scialom"),
        ("xlsum_english", "Hasan"),
        ("cnn_dailymail", "See, Abigail"),
        ("cnn_dailymail", "Hermann"),
        ("xsum", "Narayan"),
        ("billsum", "Kornilova"),
        ("arxiv", "Cohan"),
        ("pubmed", "Cohan"),
    ],
)
def test_citations_name_the_papers(key: str, author: str) -> None:
    assert author in get_spec(key).citation


def test_unknown_key_suggests_close_matches() -> None:
    with pytest.raises(DatasetError) as caught:
        get_spec("mlsum_fx")
    assert "mlsum_fr" in caught.value.message
    assert "deepsynth generate --list" in caught.value.hint


def test_unknown_key_without_close_match() -> None:
    with pytest.raises(DatasetError) as caught:
        get_spec("qqqqqqqq")
    assert "did you mean" not in caught.value.message
    assert "deepsynth generate --list" in caught.value.hint


def test_keys_are_case_and_dash_insensitive() -> None:
    assert get_spec("CNN-DailyMail").key == "cnn_dailymail"
    assert lookup_spec("XLSUM_English") is REGISTRY["xlsum_english"]
    assert lookup_spec("nope") is None


def test_list_registry_is_sorted_and_complete() -> None:
    keys = [spec.key for spec in list_registry()]
    assert keys == sorted(keys)
    assert set(keys) == set(REGISTRY)
