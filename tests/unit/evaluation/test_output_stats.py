"""Length, repetition and novel n-gram statistics on hand-made outputs."""

from __future__ import annotations

import pytest

from deepsynth_cli.evaluation.output_stats import (
    length_stats,
    novel_ngram_share,
    repeated_ngram,
    repetition_stats,
)

LOOP = "the cat sat on the mat " * 3  # "the cat sat on" occurs 3 times
TWICE = "the cat sat on the mat " * 2


def test_repeated_ngram_finds_a_loop_of_three() -> None:
    assert repeated_ngram(LOOP.split(), 4) == ("the", "cat", "sat", "on")
    assert repeated_ngram(TWICE.split(), 4) is None
    assert repeated_ngram(TWICE.split(), 4, min_count=2) == ("the", "cat", "sat", "on")
    assert repeated_ngram(["a", "b"], 4) is None


def test_repetition_rate_counts_rows_in_a_loop() -> None:
    stats = repetition_stats([LOOP, TWICE, "A normal summary of the news.", ""], "en")
    assert (stats.rows, stats.looping, stats.rate, stats.n, stats.min_count) == (4, 1, 0.25, 4, 3)
    assert repetition_stats([TWICE], "en", n=2, min_count=2).rate == 1.0
    assert repetition_stats([], "en").rate == 0.0


def test_repetition_in_characters_uses_longer_ngrams() -> None:
    loop = "总统宣布了新的计划。" * 3  # 9 characters repeated 3 times
    natural = "特朗普总统说，特朗普总统认为，特朗普总统表示。"  # a 5-character name thrice is not a loop
    stats = repetition_stats([loop, natural], "zh-Hans")
    assert (stats.n, stats.looping) == (8, 1)
    assert repetition_stats([natural], "zh-Hans", n=4).looping == 1  # why words-length n-grams would be wrong


def test_novel_ngram_shares_on_hand_made_rows() -> None:
    source = "The cat sat on the mat."
    stats = novel_ngram_share(["The cat sat on a chair.", "the cat sat", ""], [source, source, source], "en")
    # Row 1: unigrams the cat sat on a chair -> 2/6 novel; bigrams 2/5; trigrams 2/4. Row 2 is all copied.
    assert stats.share[1] == pytest.approx((2 / 6 + 0) / 2)
    assert stats.share[2] == pytest.approx((2 / 5 + 0) / 2)
    assert stats.share[3] == pytest.approx((2 / 4 + 0) / 2)
    assert stats.rows == {1: 2, 2: 2, 3: 2}  # the empty row has no n-grams to share out


def test_novel_ngrams_use_the_language_tokens() -> None:
    stats = novel_ngram_share(["réforme votée"], ["La réforme est votée."], "fr", orders=(1, 2))
    assert stats.share == {1: 0.0, 2: 1.0}  # the default tokenizer would see "r forme"
    chinese = novel_ngram_share(["新计划"], ["政府宣布新计划"], "zh", orders=(1,))
    assert chinese.share[1] == 0.0


def test_length_stats_count_tokens_and_empty_outputs() -> None:
    stats = length_stats(["one two three", "", "one two three four five"], ["a b c d", "a b c d", "a b c d"], "en")
    assert (stats.unit, stats.rows, stats.empty, stats.longest) == ("word", 3, 1, 5)
    assert stats.mean == pytest.approx(8 / 3)
    assert stats.median == 3.0
    assert stats.reference_mean == 4.0
    assert stats.ratio == pytest.approx(8 / 12)
    chinese = length_stats(["政府宣布新计划。"], ["新计划"], "zh")
    assert (chinese.unit, chinese.mean, chinese.reference_mean) == ("character", 7.0, 3.0)


def test_rows_must_line_up() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        length_stats(["a", "b"], ["a"], "en")
