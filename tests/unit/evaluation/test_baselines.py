"""Lead-k picks the first sentences with each language's splitter and is scored like the model."""

from __future__ import annotations

import pytest

from deepsynth_cli.evaluation.baselines import lead, lead_predictions, score_lead
from deepsynth_cli.evaluation.rouge import score


@pytest.mark.parametrize(
    ("language", "text", "first_three"),
    [
        (
            "en",
            "Dr. Smith met the U.S. envoy on Monday. Talks went well! Will they sign? A deal is due in May.",
            ["Dr. Smith met the U.S. envoy on Monday.", "Talks went well!", "Will they sign?"],
        ),
        (
            "fr",
            "M. Macron a présenté la réforme. Elle est contestée. Les syndicats appellent à la grève. Fin.",
            ["M. Macron a présenté la réforme.", "Elle est contestée.", "Les syndicats appellent à la grève."],
        ),
        (
            "ar",
            "هل ستنجح الخطة؟ قال الوزير إن الخطة جيدة. وأضاف أن التنفيذ سيبدأ قريبا. ثم غادر.",
            ["هل ستنجح الخطة؟", "قال الوزير إن الخطة جيدة.", "وأضاف أن التنفيذ سيبدأ قريبا."],
        ),
        (
            "hi",
            "सरकार ने नई योजना की घोषणा की। यह योजना किसानों के लिए है। इससे लाभ होगा। अंत।",
            ["सरकार ने नई योजना की घोषणा की।", "यह योजना किसानों के लिए है।", "इससे लाभ होगा।"],
        ),
        (
            "zh-Hans",
            "政府宣布了新计划。该计划面向农民。这将带来好处。最后一句。",
            ["政府宣布了新计划。", "该计划面向农民。", "这将带来好处。"],
        ),
    ],
)
def test_lead_three_picks_the_first_three_sentences(language: str, text: str, first_three: list[str]) -> None:
    assert lead(text, language, 3) == "\n".join(first_three)
    assert lead(text, language, 1) == first_three[0]


def test_paragraph_breaks_end_sentences_and_short_texts_give_what_they_have() -> None:
    assert (
        lead("A first paragraph without a stop but long enough to be a sentence\nFirst sentence. Second.", "en")
        == "A first paragraph without a stop but long enough to be a sentence\nFirst sentence.\nSecond."
    )
    assert lead("Only one.", "en", 3) == "Only one."
    assert lead("", "en") == ""
    with pytest.raises(ValueError):
        lead("Text.", "en", 0)


def test_lead_is_scored_exactly_like_the_model() -> None:
    sources = ["The storm hit the coast. Thousands lost power. Schools closed. Roads flooded.", ""]
    references = ["A storm hit the coast and thousands lost power.", "Nothing to lead with."]
    rows = score_lead(sources, references, "en", k=3)
    assert rows == score(zip(lead_predictions(sources, "en", 3), references, strict=True), "en")
    assert rows[0]["rouge1"].f1 > 0.4
    assert rows[1]["rouge1"].f1 == 0.0  # an empty source gives an empty lead, scored 0 and kept
    with pytest.raises(ValueError):
        score_lead(sources, references[:1], "en")


def test_section_headings_are_not_lead_sentences() -> None:
    paper = "Abstract\nWe parse trees. Results improve.\n1 Introduction\nParsing matters."
    assert lead(paper, "en", 3) == "We parse trees.\nResults improve.\nParsing matters."
    assert lead("Breaking news", "en", 1) == "Breaking news"  # nothing but a heading: kept
