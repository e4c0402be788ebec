"""The rendered dataset's accounting and card: compression on the drawn text, missing glyphs, and a card whose
`datasets` cache key follows the folder's content."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from deepsynth_cli.config import GenerateConfig
from deepsynth_cli.data import rendered, shards
from deepsynth_cli.data.render import PageRenderer
from deepsynth_cli.data.tokens import TextTokenCounter
from deepsynth_cli.services import generate

MakeCfg = Callable[..., GenerateConfig]


def _rows(folder: Path) -> list[dict[str, object]]:
    return [row for path in sorted((folder / "data").glob("*.parquet")) for row in pq.read_table(path).to_pylist()]


def test_regenerated_folder_and_same_named_folders_load_their_own_rows(generate_cfg: MakeCfg, tmp_path: Path) -> None:
    # The session cache (tests/conftest.py) is pre-populated by the first load; later loads must not reuse it.
    first = generate.run(generate_cfg(["aclsum"], max_samples=3, splits=["test"]))
    folder = Path(first.datasets[0].location)
    assert datasets.load_dataset(str(folder), split="test").num_rows == 3
    generate.run(generate_cfg(["aclsum"], max_samples=28, splits=["test"]))
    assert datasets.load_dataset(str(folder), split="test").num_rows == 28

    other = generate.run(generate_cfg(["aclsum"], max_samples=5, splits=["test"], out=tmp_path / "elsewhere"))
    other_folder = Path(other.datasets[0].location)
    assert other_folder.name == folder.name and other_folder != folder
    assert datasets.load_dataset(str(other_folder), split="test").num_rows == 5
    assert datasets.load_dataset(str(folder), split="test").num_rows == 28

    card = (folder / rendered.CARD_FILE).read_text(encoding="utf-8")
    assert "num_examples: 28" in card and "dataset_info:" in card


def test_compression_counts_the_drawn_text_not_the_whole_document(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path]
) -> None:
    long_text = " ".join(f"token{n}" for n in range(4000))
    path = make_jsonl([{"id": "long", "text": long_text, "summary": "A summary of a long text."}])
    cfg = generate_cfg([str(path)])
    cfg = cfg.model_copy(update={"render": cfg.render.model_copy(update={"max_pages": 2})})
    report = generate.run(cfg)
    folder = Path(report.datasets[0].location)
    (row,) = _rows(folder)
    counter = TextTokenCounter()
    drawn = PageRenderer(cfg.render).render(long_text, "en").drawn_text
    assert row["text_tokens"] == counter.count(drawn)
    assert row["source_tokens"] == counter.count(long_text) > 2 * int(str(row["text_tokens"]))
    split = report.datasets[0].splits["train"]
    expected = rendered.compression(int(str(row["text_tokens"])), int(str(row["vision_tokens"])))
    assert split.compression == expected
    manifest = rendered.read_local_manifest(folder)
    assert manifest is not None and manifest["format_version"] == 2
    assert manifest["splits"]["train"]["compression"] == expected
    assert manifest["splits"]["train"]["source_tokens"] == row["source_tokens"]


def test_long_source_is_counted_in_bounded_chunks_to_the_same_total() -> None:
    counter = TextTokenCounter()
    text = "Un réforme écrite, 中文的句子 and English words. " * 2000
    assert counter.count_long(text, chunk_chars=1000) == counter.count(text)


def test_missing_glyphs_are_counted_per_row_and_split_and_named(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path]
) -> None:
    text = "A proof ends here \ue000 and the text goes on for a while so that it is a document. " * 3
    path = make_jsonl([{"id": "box", "text": text, "summary": "A proof that ends."}])
    report = generate.run(generate_cfg([str(path)]))
    folder = Path(report.datasets[0].location)
    (row,) = _rows(folder)
    assert row["missing_glyphs"] == 3
    split = report.datasets[0].splits["train"]
    assert split.missing_glyphs == 3
    warning = report.to_dict()["datasets"][0]["splits"]["train"]["warning"]
    assert "U+E000" in warning
    manifest = json.loads((folder / rendered.MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["splits"]["train"]["missing_glyphs"] == 3


def test_one_vision_token_formula_follows_the_model_geometry() -> None:
    from deepsynth_cli.data.render import vision_tokens_per_page
    from deepsynth_cli.models.preset_config import vision_queries

    for size in (256, 384, 768, 769, 783, 784, 1024):
        assert rendered.vision_tokens_per_page(size) == vision_tokens_per_page(size) == vision_queries(size) + 1
    assert rendered.vision_tokens_per_page(775) == 145  # SAM's 48x48 map at 775 px pools to 12x12 queries


def test_default_repo_name_is_built_in_one_place() -> None:
    assert rendered.default_repo_id("alice", "mlsum_fr") == "alice/deepsynth-mlsum_fr"
    assert rendered.default_repo_id(None, "mlsum_fr") is None


def test_short_cjk_summaries_are_kept_and_lengths_count_words_in_every_script(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path]
) -> None:
    from deepsynth_cli.data.lengths import word_count

    assert word_count("经济增长放缓") == 6 and word_count("Bad film.") == 2 and word_count("Réforme — 2024 !") == 2
    text = "今年全国经济总体保持稳定，居民收入继续增长，消费市场逐步回暖，对外贸易结构不断优化。" * 2
    note = "A short English note that says enough words to count."
    rows = [
        {"id": "zh", "text": text, "summary": "经济增长放缓", "language": "zh"},
        {"id": "en", "text": note, "summary": "Bad film.", "lang": "en"},
        {"id": "one", "text": note, "summary": "Fine."},
    ]
    report = generate.run(generate_cfg([str(make_jsonl(rows))]))
    split = report.datasets[0].splits["train"]
    assert split.skipped == {"summary_too_short": 1}
    languages = {row["source_id"]: row["language"] for row in _rows(Path(report.datasets[0].location))}
    assert languages == {"zh": "zh", "en": "en"}, "a language or lang column gives each row its language"


def test_language_column_and_a_warning_for_undetermined_rows(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, object]]
) -> None:
    rows = [{**article(0), "lng": "fr"}, article(1)]
    path = make_jsonl(rows)
    report = generate.run(generate_cfg([str(path)], language_column="lng"))
    assert [row["language"] for row in _rows(Path(report.datasets[0].location))] == ["fr", "und"]
    (warning,) = [line for line in report.warnings() if "und" in line]
    assert "1 row(s) have language 'und'" in warning and "--language" in warning
    assert report.to_dict()["warnings"] == report.warnings()


def test_preview_warns_about_characters_without_a_glyph(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], tmp_path: Path
) -> None:
    text = "A proof ends here \ue000 and the text goes on for a while so that it is a document. " * 2
    path = make_jsonl([{"id": "box", "text": text, "summary": "A proof that ends.", "language": "en"}])
    report = generate.run(generate_cfg([str(path)], preview=tmp_path / "preview"))
    assert report.preview_files
    (warning,) = report.warnings()
    assert "(preview)" in warning and "U+E000" in warning


def test_eval_refuses_undetermined_rows_before_loading_any_model(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, object]], tmp_path: Path
) -> None:
    import pytest

    from deepsynth_cli.errors import ConfigError
    from deepsynth_cli.evaluation.config import EvalConfig
    from deepsynth_cli.services import eval as eval_service

    path = make_jsonl([article(0), article(1)], name="corpus/test.jsonl")
    folder = Path(generate.run(generate_cfg([str(path)])).datasets[0].location)
    cfg = EvalConfig(model=str(tmp_path / "no-such-model"), datasets=[str(folder)], output=tmp_path / "eval")
    with pytest.raises(ConfigError, match=r"2 rows of .* have no language \('und'\)"):
        eval_service.run(cfg)  # the model path does not exist: the language check came first


def test_a_truncated_shard_is_named_by_readers_and_set_aside_and_redone_by_generate(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, object]]
) -> None:
    """A shard cut short (a full disk, a bad copy) names itself in every reader's error instead of an anonymous
    ArrowInvalid, and the next `generate` sets it aside and renders its rows again: every row once."""
    cfg = generate_cfg([str(make_jsonl([article(n) for n in range(6)]))], rows_per_shard=2)
    folder = Path(generate.run(cfg).datasets[0].location)
    victim = sorted((folder / "data").glob("*.parquet"))[1]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])

    with pytest.raises(shards.DamagedShardError, match=victim.name) as caught:
        rendered.scan(folder)
    assert "deepsynth generate" in caught.value.hint
    with pytest.raises(shards.DamagedShardError, match=victim.name):
        rendered.open_shard(victim)

    events: list[object] = []
    report = generate.run(cfg, on_event=events.append)
    assert any("set aside 1 damaged shard(s)" in str(getattr(event, "message", "")) for event in events)
    assert report.datasets[0].splits["train"].shards_written == 1
    assert (victim.parent / f"{victim.name}{shards.DAMAGED_SUFFIX}").is_file(), "kept for a look, not deleted"
    ids = sorted(str(row["source_id"]) for row in _rows(folder))
    assert ids == [f"doc-{n:05d}" for n in range(6)]
