"""Tokens, stems and sentences per language, and which of the dataset languages get a stemmer."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer, tokenizers

from deepsynth_cli.data.registry import REGISTRY, XLSUM_LANGUAGES
from deepsynth_cli.errors import ConfigError
from deepsynth_cli.evaluation.language import Tokenizer, language_spec, split_sentences, tokenizer_for


def test_english_tokens_are_rouge_scores_own() -> None:
    text = "The runners' 2.5% gains, said officials -- running late."
    assert tokenizer_for("en").tokenize(text) == tokenizers.DefaultTokenizer(use_stemmer=True).tokenize(text)
    assert tokenizer_for("en-GB").words(text) == tokenizers.DefaultTokenizer(use_stemmer=False).tokenize(text)


def test_french_accented_words_are_single_tokens() -> None:
    french = tokenizer_for("fr")
    assert french.words("La réforme de l'économie, déjà votée.") == [
        "la",
        "réforme",
        "de",
        "l",
        "économie",
        "déjà",
        "votée",
    ]
    assert french.tokenize("réforme réformes") == ["réform", "réform"]
    assert tokenizers.DefaultTokenizer().tokenize("réforme") == ["r", "forme"]


def test_decomposed_and_full_width_forms_match_their_composed_forms() -> None:
    french = tokenizer_for("fr")
    assert french.words("re\u0301forme") == french.words("réforme") == ["réforme"]
    assert tokenizer_for("zh").words("ＧＤＰ增长") == ["gdp", "增", "长"]


def test_hindi_matras_stay_inside_words() -> None:
    hindi = tokenizer_for("hi")
    assert hindi.words("सरकार ने नई योजना की घोषणा की।") == ["सरकार", "ने", "नई", "योजना", "की", "घोषणा", "की"]
    assert hindi.tokenize("किसानों") == ["किसान"]  # Snowball's Hindi stemmer


def test_arabic_diacritics_stay_inside_words_and_the_stemmer_normalises_them() -> None:
    arabic = tokenizer_for("ar")
    assert arabic.words("هَلْ سَتَنْجَحُ الخُطَّة؟") == ["هَلْ", "سَتَنْجَحُ", "الخُطَّة"]
    assert arabic.tokenize("الخُطَّة") == arabic.tokenize("الخطة")


def test_joiners_stay_inside_persian_and_sinhala_words() -> None:
    assert tokenizer_for("fa").words("می\u200cخواهم بروم") == ["می\u200cخواهم", "بروم"]
    assert tokenizer_for("si").words("ශ්\u200dරී ලංකා") == ["ශ්\u200dරී", "ලංකා"]


def test_unspaced_scripts_become_characters_and_other_scripts_stay_words() -> None:
    assert tokenizer_for("zh-Hant").words("中國GDP增長5.2%") == ["中", "國", "gdp", "增", "長", "5", "2"]
    assert tokenizer_for("ja").words("コーヒーを飲む") == ["コ", "ー", "ヒ", "ー", "を", "飲", "む"]
    # Thai: each letter keeps its vowel and tone marks; Burmese likewise, and its section mark is punctuation.
    assert tokenizer_for("th").words("ใหม่") == ["ใ", "ห", "ม่"]
    assert tokenizer_for("my").words("ခဲ့သည်။") == ["ခဲ့", "သ", "ည်"]
    assert tokenizer_for("ko").words("한국어 문장") == ["한국어", "문장"]
    assert tokenizer_for("fr").words("Pékin (北京)") == ["pékin", "北", "京"]


def test_turkish_dotted_and_dotless_i_lower_case_correctly() -> None:
    turkish = tokenizer_for("tr")
    assert turkish.words("İSTANBUL IRMAK") == ["istanbul", "ırmak"]
    assert turkish.words("İstanbul") == turkish.words("istanbul")


def test_serbian_cyrillic_and_latin_stem_alike() -> None:
    assert tokenizer_for("sr-Cyrl").tokenize("влада") == tokenizer_for("sr-Latn").tokenize("vlada")


def test_tokenizer_plugs_into_rouge_score() -> None:
    scorer = rouge_scorer.RougeScorer(["rouge1"], tokenizer=Tokenizer("de"))
    assert scorer.score("Die Regierung plant Änderungen", "Regierungen planen Änderungen")["rouge1"].fmeasure > 0.5


def test_unknown_language_is_refused_with_a_hint() -> None:
    with pytest.raises(ConfigError, match="no scoring rules for language 'xx'") as error:
        language_spec("xx")
    assert "zh-Hans" in error.value.hint


def test_every_registry_language_has_scoring_rules() -> None:
    for spec in REGISTRY.values():
        language_spec(spec.language)
    assert len(XLSUM_LANGUAGES) == 45


def test_stemmer_and_character_coverage_of_xlsum() -> None:
    specs = {name: language_spec(tag) for name, tag in XLSUM_LANGUAGES.items()}
    stemmed = {name for name, spec in specs.items() if spec.stemmer is not None}
    characters = {name for name, spec in specs.items() if spec.unit == "character"}
    assert stemmed == {
        "arabic",
        "english",
        "french",
        "hindi",
        "indonesian",
        "nepali",
        "persian",
        "portuguese",
        "russian",
        "serbian_cyrillic",
        "serbian_latin",
        "spanish",
        "tamil",
        "turkish",
    }
    assert characters == {"burmese", "chinese_simplified", "chinese_traditional", "japanese", "thai"}
    assert language_spec("de").stemmer == "german"
    assert language_spec("en").stemmer == "porter"


@pytest.mark.parametrize(
    ("language", "text", "sentences"),
    [
        (
            "en",
            "Dr. Smith left at 5 p.m. on Monday. He returned!\nA new line",
            ["Dr. Smith left at 5 p.m. on Monday.", "He returned!", "A new line"],
        ),
        ("fr", "M. Macron a parlé. Le Dr. Roux aussi.", ["M. Macron a parlé.", "Le Dr. Roux aussi."]),
        ("ar", "هل ستنجح الخطة؟ قال الوزير إن الخطة جيدة.", ["هل ستنجح الخطة؟", "قال الوزير إن الخطة جيدة."]),
        ("ur", "یہ منصوبہ اچھا ہے۔ کیا یہ کام کرے گا؟", ["یہ منصوبہ اچھا ہے۔", "کیا یہ کام کرے گا؟"]),
        ("hi", "सरकार ने घोषणा की। यह अच्छा है।", ["सरकार ने घोषणा की।", "यह अच्छा है।"]),
        ("zh-Hans", "他说：“我们会赢。”然后离开了！", ["他说：“我们会赢。”", "然后离开了！"]),
        ("am", "መንግሥት አዲስ እቅድ አሳወቀ። ጥሩ ነው።", ["መንግሥት አዲስ እቅድ አሳወቀ።", "ጥሩ ነው።"]),
        ("my", "အစိုးရက ကြေညာခဲ့သည်။ ဖြစ်သည်။", ["အစိုးရက ကြေညာခဲ့သည်။", "ဖြစ်သည်။"]),
        ("th", "รัฐบาลประกาศแผนใหม่ แผนนี้สำหรับเกษตรกร", ["รัฐบาลประกาศแผนใหม่", "แผนนี้สำหรับเกษตรกร"]),
        ("en", "  \n\n  ", []),
    ],
)
def test_sentences_per_language(language: str, text: str, sentences: list[str]) -> None:
    assert split_sentences(text, language) == sentences
