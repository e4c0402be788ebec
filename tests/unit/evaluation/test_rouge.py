"""ROUGE per row: English equals the reference implementation; other languages get real tokens."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from deepsynth_cli.evaluation.language import tokenizer_for
from deepsynth_cli.evaluation.rouge import METRICS, Pair, Score, corpus_scores, f1_scores, lsum_text, score

ENGLISH_PAIRS = [
    Pair("The quick brown dog jumps on the log.", "The quick brown fox jumps over the lazy dog"),
    Pair(
        "Police arrested 3 men after the robbery on Tuesday, officials said.",
        "Three men were arrested by police following Tuesday's robbery.",
    ),
    Pair("Running runners ran; the runner runs!", "The runners were running in the rain."),
    Pair("U.S. GDP grew 2.5% in 2023 -- faster than expected.", "The US economy grew by 2.5 percent last year."),
    Pair("", "An empty output still counts."),
    # Newline-separated sentences, as in CNN/DailyMail highlights: ROUGE-Lsum reads them as they are.
    Pair(
        "The storm hit the coast on Monday.\nThousands lost power.\nSchools were closed.",
        "A powerful storm struck the coast Monday.\nSchools closed and thousands were left without power.",
    ),
    Pair("a b c d\ne f", "e f\na b c d"),
]


@pytest.fixture(scope="module")
def reference() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(list(METRICS), use_stemmer=True)


def test_english_equals_rouge_score_exactly(reference: rouge_scorer.RougeScorer) -> None:
    rows = score(ENGLISH_PAIRS, "en")
    for pair, row in zip(ENGLISH_PAIRS, rows, strict=True):
        expected = reference.score(pair.reference, pair.prediction)
        for metric in METRICS:
            want = expected[metric]
            assert row[metric] == Score(want.precision, want.recall, want.fmeasure), (pair, metric)


def test_known_values_of_the_rouge_score_readme_example() -> None:
    [row] = score([Pair("The quick brown dog jumps on the log.", "The quick brown fox jumps over the lazy dog")], "en")
    assert row["rouge1"].precision == pytest.approx(0.75)
    assert row["rouge1"].recall == pytest.approx(2 / 3)
    assert row["rouge1"].f1 == pytest.approx(0.7058823529)
    assert row["rouge2"].f1 == pytest.approx(0.2666666667)
    assert row["rougeL"].f1 == pytest.approx(0.5882352941)


def test_rouge_lsum_differs_from_rouge_l_exactly_as_the_reference_does(reference: rouge_scorer.RougeScorer) -> None:
    # Sentences in swapped order: one LCS over the whole text finds "a b c d" only (4 of 6 tokens); the
    # summary-level union LCS matches every sentence (6 of 6).
    [row] = score([Pair("a b c d\ne f", "e f\na b c d")], "en")
    assert row["rougeL"].f1 == pytest.approx(4 / 6)
    assert row["rougeLsum"].f1 == pytest.approx(1.0)
    expected = reference.score("e f\na b c d", "a b c d\ne f")
    assert row["rougeLsum"].f1 == expected["rougeLsum"].fmeasure
    assert row["rougeL"].f1 == expected["rougeL"].fmeasure


def test_single_line_texts_are_split_into_sentences_for_rouge_lsum(reference: rouge_scorer.RougeScorer) -> None:
    prediction = "Schools were closed. The storm hit the coast on Monday."
    target = "The storm hit the coast on Monday. Schools were closed."
    [row] = score([Pair(prediction, target)], "en")
    split = reference.score(
        "The storm hit the coast on Monday.\nSchools were closed.",
        "Schools were closed.\nThe storm hit the coast on Monday.",
    )
    assert row["rougeLsum"].f1 == split["rougeLsum"].fmeasure == pytest.approx(1.0)
    assert row["rougeL"].f1 == reference.score(target, prediction)["rougeL"].fmeasure < 1.0


def test_lsum_text_keeps_existing_line_breaks() -> None:
    english = tokenizer_for("en")
    assert lsum_text("One. Two.\nThree. Four.", english) == "One. Two.\nThree. Four."
    assert lsum_text("One. Two! Three?", english) == "One.\nTwo!\nThree?"
    assert lsum_text("他走了。她来了。", tokenizer_for("zh")) == "他走了。\n她来了。"


def test_french_accents_stay_inside_words_and_change_the_score() -> None:
    prediction, target = "La réforme des retraites fait débat", "La forme des retraites fait débat"
    [row] = score([Pair(prediction, target)], "fr")
    default = rouge_scorer.RougeScorer(["rouge1"]).score(target, prediction)["rouge1"]
    # Default: "réforme" -> "r", "forme" matches the reference's "forme", recall 1.0. Ours: 5 of 6 words.
    assert default.recall == 1.0
    assert row["rouge1"].recall == pytest.approx(5 / 6)
    assert row["rouge1"].f1 < default.fmeasure


@pytest.mark.parametrize(
    ("language", "prediction", "target", "nothing_shared"),
    [
        ("ar", "أعلنت الحكومة خطة جديدة", "الحكومة تعلن خطة جديدة للمزارعين", "ذهب الولد إلى المدرسة"),
        ("zh-Hans", "政府宣布了新计划。", "政府宣布新计划", "我们明天去看电影"),
        ("hi", "सरकार ने नई योजना की घोषणा की।", "नई योजना किसानों के लिए है।", "आज मौसम अच्छा था"),
        ("ja", "政府は新しい計画を発表した。", "新しい計画が発表された", "猫と犬"),
        ("th", "รัฐบาลประกาศแผนใหม่", "แผนใหม่ของรัฐบาล", "คุณ"),
    ],
)
def test_non_latin_pairs_score_when_they_share_words_and_zero_when_not(
    language: str, prediction: str, target: str, nothing_shared: str
) -> None:
    default = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True).score(target, prediction)
    shared, unrelated = score([Pair(prediction, target), Pair(nothing_shared, target)], language)
    assert default["rouge1"].fmeasure == 0.0  # the default tokenizer sees no tokens at all
    for metric in METRICS:
        assert shared[metric].f1 > 0, metric
        assert unrelated[metric] == Score(0.0, 0.0, 0.0), metric


def test_chinese_known_values_are_character_level() -> None:
    # Prediction 政府宣布了新计划 (8 characters, the 。 is punctuation), reference 政府宣布新计划 (7): 7 shared.
    [row] = score([Pair("政府宣布了新计划。", "政府宣布新计划")], "zh")
    assert (row["rouge1"].precision, row["rouge1"].recall) == (7 / 8, 1.0)
    assert row["rouge1"].f1 == pytest.approx(2 * 7 / 8 / (1 + 7 / 8))
    assert row["rouge2"].recall == pytest.approx(5 / 6)  # 政府 府宣 宣布 新计 计划 of 6 reference bigrams


def test_empty_prediction_scores_zero_and_is_counted_in_the_mean() -> None:
    rows = score(
        [Pair("", "The storm hit."), Pair("   ...  ", "The storm hit."), Pair("The storm hit.", "The storm hit.")], "en"
    )
    for metric in METRICS:
        assert rows[0][metric] == Score(0.0, 0.0, 0.0)
        assert rows[1][metric] == Score(0.0, 0.0, 0.0)
        assert rows[2][metric].f1 == 1.0
    assert len(rows) == 3
    assert f1_scores(rows, "rouge1") == [0.0, 0.0, 1.0]
    means = corpus_scores(rows, resamples=200)
    assert means["rouge1"].mean == pytest.approx(1 / 3)
    assert means["rouge1"].n == 3


def test_scores_are_floats_even_where_rouge_score_returns_int_zero() -> None:
    [row] = score([Pair("", "something")], "fr")
    assert all(isinstance(value, float) for metric in METRICS for value in vars(row[metric]).values())
