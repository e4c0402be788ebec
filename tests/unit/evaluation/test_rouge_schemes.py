"""Named ROUGE schemes: each equals its reference scorer.

`rouge_score` and `deepsynth` (English) are compared with Google's `rouge_score`, installed here, to 1e-6.
The XL-Sum authors' scorer is not on PyPI; its tokens for one pair per language were read off the scorer itself
(csebuetnlp/xl-sum, multilingual_rouge_scoring, run from a local copy) and are written out below, with the
precision and recall that follow from them by counting: matched n-grams / n-grams of each side.
"""

from __future__ import annotations

import sys
from fractions import Fraction

import pytest
from rouge_score import rouge_scorer

from deepsynth_cli.data.registry import REGISTRY, get_spec
from deepsynth_cli.errors import ConfigError
from deepsynth_cli.evaluation import xlsum
from deepsynth_cli.evaluation.language import tokenizer_for
from deepsynth_cli.evaluation.rouge import METRICS, SCHEMES, Pair, lsum_text, scheme_details, score, xlsum_tokenizer

ENGLISH = [
    Pair("The quick brown dog jumps on the log.", "The quick brown fox jumps over the lazy dog"),
    Pair("Running runners ran; the runner runs generously!", "The runners were running generously in the rain."),
    Pair("U.S. GDP grew 2.5% in 2023 -- faster than expected.", "The US economy grew by 2.5 percent last year."),
    Pair("", "An empty output still counts."),
    Pair(
        "The storm hit the coast on Monday.\nThousands lost power.\nSchools were closed.",
        "A powerful storm struck the coast Monday.\nSchools closed and thousands were left without power.",
    ),
    # No line breaks: ROUGE-Lsum reads the sentences the splitter finds, as the summarization scripts do.
    Pair(
        "Charges followed on Friday. Police arrested three men.",
        "Police arrested three men. Charges followed on Friday.",
    ),
]


@pytest.fixture(scope="module")
def google() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(list(METRICS), use_stemmer=True)


@pytest.mark.parametrize("scheme", ["rouge_score", "deepsynth"])
def test_english_equals_google_rouge_score_with_stemming_and_lsum(
    google: rouge_scorer.RougeScorer, scheme: str
) -> None:
    splitter = tokenizer_for("en")
    for pair, row in zip(ENGLISH, score(ENGLISH, "en", scheme), strict=True):  # type: ignore[arg-type]
        # The reference reads ROUGE-Lsum sentences at line breaks: give it the texts one sentence a line.
        split = google.score(lsum_text(pair.reference, splitter), lsum_text(pair.prediction, splitter))
        whole = google.score(pair.reference, pair.prediction)
        for metric in METRICS:
            want = (split if metric == "rougeLsum" else whole)[metric]
            got = row[metric]
            assert got.precision == pytest.approx(want.precision, abs=1e-6), (pair, metric)
            assert got.recall == pytest.approx(want.recall, abs=1e-6), (pair, metric)
            assert got.f1 == pytest.approx(want.fmeasure, abs=1e-6), (pair, metric)
    # The sentences matter: split, the swapped sentences match in full for Lsum, not for sentence-level ROUGE-L.
    last = score(ENGLISH[-1:], "en", scheme)[0]  # type: ignore[arg-type]
    assert last["rougeLsum"].f1 == 1.0 and last["rougeL"].f1 < 1.0


def test_rouge_score_scheme_keeps_googles_tokens_in_every_language(google: rouge_scorer.RougeScorer) -> None:
    pair = Pair("La réforme des retraites est adoptée.", "Le gouvernement adopte la réforme.")
    want = google.score(pair.reference, pair.prediction)
    got = score([pair], "fr", "rouge_score")[0]
    assert got["rouge1"].f1 == pytest.approx(want["rouge1"].fmeasure, abs=1e-6)
    # ... which is not what deepsynth scores French with ("réforme" is one token there, "r" + "forme" here).
    assert score([pair], "fr", "deepsynth")[0]["rouge1"].f1 != pytest.approx(want["rouge1"].fmeasure, abs=1e-6)


# (language, prediction, reference, prediction tokens, reference tokens, R-1 (P, R), R-2 (P, R), R-L (P, R)),
# as the XL-Sum scorer gives them (stemmed where it stems).
XLSUM_CASES = [
    (
        "zh-Hans",
        "香港警方说，2020年有超过一万人被捕！",
        "警方表示去年有一万多人被逮捕。",
        # jieba's words; the comma left a space, which jieba returns as a token and the scorer keeps
        ["香港", "警方", "说", " ", "2020", "年", "有", "超过", "一万", "人", "被捕"],
        ["警方", "表示", "去年", "有", "一万多", "人", "被", "逮捕"],
        (Fraction(3, 11), Fraction(3, 8)),  # 警方 有 人
        (Fraction(0), Fraction(0)),
        (Fraction(3, 11), Fraction(3, 8)),
    ),
    (
        "ja",
        "東京都は感染者が過去最多になったと発表した。",
        "東京都で感染者が過去最多に",
        ["東京", "都", "は", "感染", "者", "が", "過去", "最多", "に", "なっ", "た", "と", "発表", "し", "た"],
        ["東京", "都", "で", "感染", "者", "が", "過去", "最多", "に"],
        (Fraction(8, 15), Fraction(8, 9)),
        (Fraction(6, 14), Fraction(6, 8)),  # 東京都 感染者 者が が過去 過去最多 最多に
        (Fraction(8, 15), Fraction(8, 9)),
    ),
    (
        "th",
        "นายกรัฐมนตรี กล่าวว่า ประเทศไทย จะเปิดประเทศ",
        "ประเทศไทยจะเปิดประเทศในเดือนหน้า",
        ["นายกรัฐมนตรี", " ", "กล่าวว่า", " ", "ประเทศ", "ไทย", " ", "จะ", "เปิด", "ประเทศ"],
        ["ประเทศ", "ไทย", "จะ", "เปิด", "ประเทศ", "ใน", "เดือน", "หน้า"],
        (Fraction(5, 10), Fraction(5, 8)),
        (Fraction(3, 9), Fraction(3, 7)),  # ประเทศ ไทย, จะ เปิด, เปิด ประเทศ
        (Fraction(5, 10), Fraction(5, 8)),
    ),
    (
        "my",
        "ရန်ကုန်မြို့တွင် လူထောင်ချီ စုဝေးခဲ့ကြသည်",
        "ရန်ကုန်တွင် လူများ စုဝေး",
        ["ရန်", "ကုန်", "မြို့", "တွင်", "လူ", "ထောင်", "ချီ", "စု", "ဝေး", "ခဲ့", "ကြ", "သည်"],
        ["ရန်", "ကုန်", "တွင်", "လူ", "များ", "စု", "ဝေး"],
        (Fraction(6, 12), Fraction(6, 7)),
        (Fraction(3, 11), Fraction(3, 6)),  # ရန် ကုန်, စု ဝေး, ... and တွင် လူ
        (Fraction(6, 12), Fraction(6, 7)),
    ),
    (
        "hi",
        "दिल्ली में बारिश के कारण कई सड़कें बंद हो गईं",
        "भारी बारिश से दिल्ली की सड़कों पर पानी भर गया",
        # their suffix stripper: दिल्ली -> दिल्ल, सड़कें/सड़कों -> सड़क, पानी -> पा
        ["दिल्ल", "में", "बारिश", "के", "कारण", "कई", "सड़क", "बंद", "हो", "गईं"],
        ["भार", "बारिश", "से", "दिल्ल", "की", "सड़क", "पर", "पा", "भर", "गया"],
        (Fraction(3, 10), Fraction(3, 10)),
        (Fraction(0), Fraction(0)),
        (Fraction(2, 10), Fraction(2, 10)),
    ),
    (
        "fr",
        "Les élèves retournent à l'école (COVID-19) — 75 % des écoles.",
        "Retour à l’école pour les élèves : 75% des établissements rouvrent.",
        # punctuation dropped (the apostrophe too), digits apart from letters, Snowball French stems
        ["les", "élev", "retournent", "à", "l", "écol", "covid", "19", "75", "des", "écol"],
        ["retour", "à", "l", "écol", "pour", "les", "élev", "75", "des", "établ", "rouvrent"],
        (Fraction(7, 11), Fraction(7, 11)),
        (Fraction(4, 10), Fraction(4, 10)),
        (Fraction(5, 11), Fraction(5, 11)),
    ),
    (
        "en",
        "Police arrested 12 people generously in the U.S.; £5m damage.",
        "Twelve people were arrested generously following protests.",
        # Snowball English, not Porter (Porter stems "generously" to "gener"); "£" is a symbol, kept apart
        ["polic", "arrest", "12", "peopl", "generous", "in", "the", "u", "s", "£", "5", "m", "damag"],
        ["twelv", "peopl", "were", "arrest", "generous", "follow", "protest"],
        (Fraction(3, 13), Fraction(3, 7)),
        (Fraction(0), Fraction(0)),
        (Fraction(2, 13), Fraction(2, 7)),
    ),
    (
        "sr-Cyrl",
        "Вучић: 2021. година abc123 биће боља",
        "Председник Вучић рекао је да ће 2021. бити боља",
        ["вучић", "2021", "година", "abc", "123", "биће", "боља"],  # OpenNMT's aggressive mode parts abc123
        ["председник", "вучић", "рекао", "је", "да", "ће", "2021", "бити", "боља"],
        (Fraction(3, 7), Fraction(3, 9)),
        (Fraction(0), Fraction(0)),
        (Fraction(3, 7), Fraction(3, 9)),
    ),
    (
        "fa",
        "رئیس‌جمهور ایران: مذاکرات ادامه می‌یابد",
        "رئیس‌جمهور ایران گفت مذاکرات ادامه خواهد یافت",
        ["رئیسجمهور", "ایران", "مذاکرات", "ادامه", "مییابد"],  # the ZWNJ is a format character: dropped
        ["رئیسجمهور", "ایران", "گفت", "مذاکرات", "ادامه", "خواهد", "یافت"],
        (Fraction(4, 5), Fraction(4, 7)),
        (Fraction(2, 4), Fraction(2, 6)),
        (Fraction(4, 5), Fraction(4, 7)),
    ),
]


@pytest.mark.parametrize("case", XLSUM_CASES, ids=[case[0] for case in XLSUM_CASES])
def test_xlsum_tokens_and_scores_are_the_xlsum_scorers(case: tuple) -> None:  # type: ignore[type-arg]
    language, prediction, reference, want_prediction, want_reference, rouge1, rouge2, rouge_l = case
    tokenizer = xlsum_tokenizer(language)
    assert tokenizer.tokenize(prediction) == want_prediction
    assert tokenizer.tokenize(reference) == want_reference
    row = score([Pair(prediction, reference)], language, "xlsum")[0]
    for metric, (precision, recall) in (("rouge1", rouge1), ("rouge2", rouge2), ("rougeL", rouge_l)):
        assert row[metric].precision == pytest.approx(float(precision), abs=1e-6), metric
        assert row[metric].recall == pytest.approx(float(recall), abs=1e-6), metric
        f1 = 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))
        assert row[metric].f1 == pytest.approx(f1, abs=1e-6), metric


def test_xlsum_lsum_is_the_scorers_line_by_line_unsegmented_reading() -> None:
    # The XL-Sum scorer's ROUGE-Lsum sanitises and stems each line but never segments it: a Chinese clause is one
    # token, so an unsplit Chinese pair scores 0 there; the paper reports R-1/R-2/R-L, never Lsum.
    tokenizer = xlsum_tokenizer("zh-Hans").sentence_level()
    assert tokenizer.tokenize("香港警方说，2020年有超过一万人被捕！") == ["香港警方说", "2020年有超过一万人被捕"]
    row = score([Pair("香港警方说，2020年有超过一万人被捕！", "警方表示去年有一万多人被逮捕。")], "zh-Hans", "xlsum")[0]
    assert row["rougeLsum"].f1 == 0.0 and row["rougeL"].f1 > 0
    # Line breaks, and only they, make sentences; each line is read as a whole.
    english = score([Pair("A cat sat.\nThe dog ran.", "The dog ran.\nA cat sat.")], "en", "xlsum")[0]
    assert english["rougeLsum"].f1 == 1.0 and english["rougeL"].f1 < 1.0


def test_xlsum_chinese_is_words_where_deepsynth_counts_characters() -> None:
    pair = Pair("香港警方说，2020年有超过一万人被捕！", "警方表示去年有一万多人被逮捕。")
    assert score([pair], "zh-Hans", "xlsum")[0]["rouge1"].f1 < score([pair], "zh-Hans", "deepsynth")[0]["rouge1"].f1


def test_burmese_units_attach_signs_asat_and_stacked_consonants() -> None:
    # As the XL-Sum scorer cuts them: dependent signs join their consonant, an asat unit joins the unit before
    # (သင် + ် + ္ + ဘော stays one), the virama glues the stacked consonant to what follows it.
    assert xlsum.burmese_units("မြန်မာ") == ["မြန်", "မာ"]
    assert xlsum.burmese_units("သင်္ဘော") == ["သင်္ဘော"]
    assert xlsum.burmese_units("ကမ္ဘာ") == ["က", "မ္ဘာ"]
    assert xlsum.burmese_units("") == []


def test_hindi_stemmer_strips_the_longest_suffix_that_leaves_two_characters() -> None:
    assert xlsum.hindi_stem("लड़कियों") == "लड़क"  # -ियों (4 characters)
    assert xlsum.hindi_stem("जाना") == "जा"  # -ना
    assert xlsum.hindi_stem("का") == "का"  # too short to strip


def test_missing_segmenter_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jieba", None)  # what Python does for a package that is not installed
    with pytest.raises(ConfigError) as raised:
        xlsum.XLSumTokenizer("zh-Hans")
    assert "jieba" in str(raised.value) and "\n" not in str(raised.value)
    assert "deepsynth[eval-xlsum]" in raised.value.hint


def test_scheme_details_name_what_was_used() -> None:
    details = scheme_details("xlsum", "ja")
    assert details["name"] == "xlsum" and details["segmenter"] == "fugashi"
    assert details["versions"]["fugashi"] and details["versions"]["unidic-lite"]
    assert scheme_details("deepsynth", "fr")["name"] == "deepsynth"


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown ROUGE scheme"):
        score([Pair("a", "a")], "en", "rouge155")  # type: ignore[arg-type]


def test_registry_entries_default_to_their_papers_scheme() -> None:
    assert {spec.rouge_scheme for spec in REGISTRY.values()} <= set(SCHEMES)
    assert all(spec.rouge_scheme == "xlsum" for key, spec in REGISTRY.items() if key.startswith("xlsum_"))
    assert get_spec("cnn_dailymail").rouge_scheme == "rouge_score"
    assert get_spec("xsum").rouge_scheme == "rouge_score"
    assert get_spec("mlsum_fr").rouge_scheme == "deepsynth"  # MLSUM's own scorer is not reproduced
