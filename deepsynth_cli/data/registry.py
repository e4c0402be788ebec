"""The summarization datasets `deepsynth generate` knows by name.

Each entry says exactly what it loads: Hub repo, config, revision, columns and source splits. Several
datasets were published with a loading script, which `datasets` >= 4 refuses; for those the entry points
at the Hub's auto-converted Parquet branch (`refs/convert/parquet`), whose config names are the script's
config names. None of the Hub entries can be checked from the build machines, so a load failure names the
repo, revision and config (see `sources.py`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

from deepsynth_cli.errors import DatasetError

PARQUET_EXPORT = "refs/convert/parquet"
"""Revision of the Parquet copy the Hub keeps of every public dataset, script-based ones included."""


@dataclass(frozen=True)
class DatasetSpec:
    """Where a known dataset lives and how to read a (text, summary) pair out of it."""

    key: str
    kind: Literal["hub", "aclsum"]
    hub_id: str | None
    config: str | None
    revision: str | None
    text_column: str
    summary_column: str
    splits: tuple[str, ...]
    language: str
    license: str
    description: str
    citation: str
    summary_joiner: str = " "
    # How `eval` scores it by default: the ROUGE scheme of the dataset's paper (`evaluation.rouge.SCHEMES`).
    rouge_scheme: str = "deepsynth"

    def __post_init__(self) -> None:
        # A malformed entry is a bug in this file, not a user error: fail loudly at import.
        if self.kind == "hub" and not self.hub_id:
            raise ValueError(f"registry entry {self.key!r} is a Hub dataset without a hub_id")
        if not self.splits:
            raise ValueError(f"registry entry {self.key!r} lists no splits")


_MLSUM_CITATION = """\
@inproceedings{scialom-etal-2020-mlsum,
    title = "{MLSUM}: The Multilingual Summarization Corpus",
    author = "Scialom, Thomas and Dray, Paul-Alexis and Lamprier, Sylvain and Piwowarski, Benjamin and
      Staiano, Jacopo",
    booktitle = "Proceedings of the 2020 Conference on Empirical Methods in Natural Language Processing
      (EMNLP)",
    month = nov,
    year = "2020",
    address = "Online",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2020.emnlp-main.647",
    doi = "10.18653/v1/2020.emnlp-main.647",
    pages = "8051--8067",
}"""

_XLSUM_CITATION = """\
@inproceedings{hasan-etal-2021-xl,
    title = "{XL}-Sum: Large-Scale Multilingual Abstractive Summarization for 44 Languages",
    author = "Hasan, Tahmid and Bhattacharjee, Abhik and Islam, Md. Saiful and Mubasshir, Kazi and
      Li, Yuan-Fang and Kang, Yong-Bin and Rahman, M. Sohel and Shahriyar, Rifat",
    booktitle = "Findings of the Association for Computational Linguistics: ACL-IJCNLP 2021",
    month = aug,
    year = "2021",
    address = "Online",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2021.findings-acl.413",
    doi = "10.18653/v1/2021.findings-acl.413",
    pages = "4693--4703",
}"""

_CNN_DAILYMAIL_CITATION = """\
@inproceedings{see-etal-2017-get,
    title = "Get To The Point: Summarization with Pointer-Generator Networks",
    author = "See, Abigail and Liu, Peter J. and Manning, Christopher D.",
    booktitle = "Proceedings of the 55th Annual Meeting of the Association for Computational Linguistics
      (Volume 1: Long Papers)",
    month = jul,
    year = "2017",
    address = "Vancouver, Canada",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/P17-1099",
    doi = "10.18653/v1/P17-1099",
    pages = "1073--1083",
}

@inproceedings{hermann-etal-2015-teaching,
    title = "Teaching Machines to Read and Comprehend",
    author = "Hermann, Karl Moritz and Ko{\\v{c}}isk{\\'y}, Tom{\\'a}{\\v{s}} and Grefenstette, Edward and
      Espeholt, Lasse and Kay, Will and Suleyman, Mustafa and Blunsom, Phil",
    booktitle = "Advances in Neural Information Processing Systems 28 (NIPS 2015)",
    year = "2015",
    pages = "1693--1701",
}"""

_XSUM_CITATION = """\
@inproceedings{narayan-etal-2018-dont,
    title = "Don{'}t Give Me the Details, Just the Summary! Topic-Aware Convolutional Neural Networks for
      Extreme Summarization",
    author = "Narayan, Shashi and Cohen, Shay B. and Lapata, Mirella",
    booktitle = "Proceedings of the 2018 Conference on Empirical Methods in Natural Language Processing",
    month = oct # "-" # nov,
    year = "2018",
    address = "Brussels, Belgium",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/D18-1206",
    doi = "10.18653/v1/D18-1206",
    pages = "1797--1807",
}"""

_BILLSUM_CITATION = """\
@inproceedings{kornilova-eidelman-2019-billsum,
    title = "{B}ill{S}um: A Corpus for Automatic Summarization of {US} Legislation",
    author = "Kornilova, Anastassia and Eidelman, Vladimir",
    booktitle = "Proceedings of the 2nd Workshop on New Frontiers in Summarization",
    month = nov,
    year = "2019",
    address = "Hong Kong, China",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/D19-5406",
    doi = "10.18653/v1/D19-5406",
    pages = "48--56",
}"""

_ARXIV_PUBMED_CITATION = """\
@inproceedings{cohan-etal-2018-discourse,
    title = "A Discourse-Aware Attention Model for Abstractive Summarization of Long Documents",
    author = "Cohan, Arman and Dernoncourt, Franck and Kim, Doo Soon and Bui, Trung and Kim, Seokhwan and
      Chang, Walter and Goharian, Nazli",
    booktitle = "Proceedings of the 2018 Conference of the North American Chapter of the Association for
      Computational Linguistics: Human Language Technologies, Volume 2 (Short Papers)",
    month = jun,
    year = "2018",
    address = "New Orleans, Louisiana",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/N18-2097",
    doi = "10.18653/v1/N18-2097",
    pages = "615--621",
}"""

_ACLSUM_CITATION = """\
@inproceedings{takeshita-etal-2024-aclsum,
    title = "{ACLS}um: A New Dataset for Aspect-based Summarization of Scientific Publications",
    author = "Takeshita, Sotaro and Green, Tommaso and Reinig, Ines and Eckert, Kai and
      Ponzetto, Simone Paolo",
    booktitle = "Proceedings of the 2024 Conference of the North American Chapter of the Association for
      Computational Linguistics: Human Language Technologies (Volume 1: Long Papers)",
    month = jun,
    year = "2024",
    address = "Mexico City, Mexico",
    publisher = "Association for Computational Linguistics",
    eprint = "2403.05303",
    archivePrefix = "arXiv",
}"""

_TRAIN_VAL_TEST = ("train", "validation", "test")

# MLSUM config -> (language code, language name). The Turkish config is "tu", its ISO 639-1 code is "tr".
_MLSUM = {
    "fr": ("fr", "French"),
    "es": ("es", "Spanish"),
    "de": ("de", "German"),
    "ru": ("ru", "Russian"),
    "tu": ("tr", "Turkish"),
}

# XL-Sum config (= Hub config name on the Parquet branch) -> BCP-47 language tag. Scripts are explicit
# where the language is written in more than one (Chinese, Serbian); `pcm` is Nigerian Pidgin.
XLSUM_LANGUAGES: dict[str, str] = {
    "amharic": "am",
    "arabic": "ar",
    "azerbaijani": "az",
    "bengali": "bn",
    "burmese": "my",
    "chinese_simplified": "zh-Hans",
    "chinese_traditional": "zh-Hant",
    "english": "en",
    "french": "fr",
    "gujarati": "gu",
    "hausa": "ha",
    "hindi": "hi",
    "igbo": "ig",
    "indonesian": "id",
    "japanese": "ja",
    "kirundi": "rn",
    "korean": "ko",
    "kyrgyz": "ky",
    "marathi": "mr",
    "nepali": "ne",
    "oromo": "om",
    "pashto": "ps",
    "persian": "fa",
    "pidgin": "pcm",
    "portuguese": "pt",
    "punjabi": "pa",
    "russian": "ru",
    "scottish_gaelic": "gd",
    "serbian_cyrillic": "sr-Cyrl",
    "serbian_latin": "sr-Latn",
    "sinhala": "si",
    "somali": "so",
    "spanish": "es",
    "swahili": "sw",
    "tamil": "ta",
    "telugu": "te",
    "thai": "th",
    "tigrinya": "ti",
    "turkish": "tr",
    "ukrainian": "uk",
    "urdu": "ur",
    "uzbek": "uz",
    "vietnamese": "vi",
    "welsh": "cy",
    "yoruba": "yo",
}


def _mlsum(config: str) -> DatasetSpec:
    language, name = _MLSUM[config]
    return DatasetSpec(
        key=f"mlsum_{config}",
        kind="hub",
        hub_id="reciTAL/mlsum",
        config=config,
        revision=PARQUET_EXPORT,
        text_column="text",
        summary_column="summary",
        splits=_TRAIN_VAL_TEST,
        language=language,
        license="other (non-commercial research use only)",
        description=f"MLSUM {name}: newspaper articles with the summaries their journalists wrote.",
        citation=_MLSUM_CITATION,
    )


def _xlsum(config: str) -> DatasetSpec:
    label = config.replace("_", " ").capitalize()
    return DatasetSpec(
        key=f"xlsum_{config}",
        kind="hub",
        hub_id="csebuetnlp/xlsum",
        config=config,
        revision=PARQUET_EXPORT,
        text_column="text",
        summary_column="summary",
        splits=_TRAIN_VAL_TEST,
        language=XLSUM_LANGUAGES[config],
        license="cc-by-nc-sa-4.0",
        description=f"XL-Sum {label}: BBC articles with their one-sentence professional summaries.",
        citation=_XLSUM_CITATION,
        rouge_scheme="xlsum",
    )


_OTHERS = (
    DatasetSpec(
        key="cnn_dailymail",
        kind="hub",
        hub_id="abisee/cnn_dailymail",
        config="3.0.0",
        revision=None,
        text_column="article",
        summary_column="highlights",
        splits=_TRAIN_VAL_TEST,
        language="en",
        license="apache-2.0",
        description="CNN / Daily Mail news articles with their bullet-point highlights (non-anonymized).",
        citation=_CNN_DAILYMAIL_CITATION,
        # Highlights are one sentence per line; ROUGE-Lsum splits on these newlines, so keep them.
        summary_joiner="\n",
        rouge_scheme="rouge_score",
    ),
    DatasetSpec(
        key="xsum",
        kind="hub",
        hub_id="EdinburghNLP/xsum",
        # The script's only config was `plain_text`; the Parquet branch calls it `default`.
        config="default",
        revision=PARQUET_EXPORT,
        text_column="document",
        summary_column="summary",
        splits=_TRAIN_VAL_TEST,
        language="en",
        license="unknown (BBC articles, research use)",
        description="XSum: BBC articles with a one-sentence summary (extreme summarization).",
        citation=_XSUM_CITATION,
        rouge_scheme="rouge_score",
    ),
    DatasetSpec(
        key="billsum",
        kind="hub",
        hub_id="FiscalNote/billsum",
        config=None,
        revision=None,
        text_column="text",
        summary_column="summary",
        splits=("train", "test", "ca_test"),
        language="en",
        license="cc0-1.0",
        description="BillSum: US Congressional and California state bills with their CRS summaries.",
        citation=_BILLSUM_CITATION,
    ),
    DatasetSpec(
        key="arxiv",
        kind="hub",
        hub_id="ccdv/arxiv-summarization",
        # `section` keeps the article's sections apart (newline-separated); `document` flattens them.
        config="section",
        revision=None,
        text_column="article",
        summary_column="abstract",
        splits=_TRAIN_VAL_TEST,
        language="en",
        license="unknown (arXiv papers, research use)",
        description="arXiv papers (body text) with their abstracts as summaries; very long documents.",
        citation=_ARXIV_PUBMED_CITATION,
    ),
    DatasetSpec(
        key="pubmed",
        kind="hub",
        hub_id="ccdv/pubmed-summarization",
        config="section",
        revision=None,
        text_column="article",
        summary_column="abstract",
        splits=_TRAIN_VAL_TEST,
        language="en",
        license="unknown (PubMed Open Access papers, research use)",
        description="PubMed papers (body text) with their abstracts as summaries; very long documents.",
        citation=_ARXIV_PUBMED_CITATION,
    ),
    DatasetSpec(
        key="aclsum",
        kind="aclsum",
        hub_id=None,
        config=None,
        revision=None,
        # Read from the installed `aclsum` package: sentences of abstract, introduction and conclusion
        # become the text; the challenge, approach and outcome summaries become the summary.
        text_column="sentences",
        summary_column="summary",
        splits=("train", "val", "test"),
        language="en",
        license="mit (package); paper texts from the ACL Anthology, CC BY 4.0 for recent papers",
        description="ACLSum: 250 ACL papers with expert-written aspect summaries; works offline.",
        citation=_ACLSUM_CITATION,
    ),
)

REGISTRY: dict[str, DatasetSpec] = {
    spec.key: spec
    for spec in (
        *(_mlsum(config) for config in _MLSUM),
        *(_xlsum(config) for config in XLSUM_LANGUAGES),
        *_OTHERS,
    )
}


def _normalize(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def lookup_spec(key: str) -> DatasetSpec | None:
    """The registry entry for `key` (case and `-`/`_` insensitive), or None when there is none."""
    return REGISTRY.get(_normalize(key))


def get_spec(key: str) -> DatasetSpec:
    """Return the registry entry for `key` (case and `-`/`_` insensitive).

    Raises DatasetError naming the closest known keys when `key` is unknown.
    """
    spec = lookup_spec(key)
    if spec is not None:
        return spec
    normalized = _normalize(key)
    close = difflib.get_close_matches(normalized, REGISTRY, n=3, cutoff=0.6)
    message = f"unknown dataset {key!r}"
    if close:
        message += f"; did you mean {', '.join(repr(match) for match in close)}?"
    raise DatasetError(
        message,
        hint="run `deepsynth generate --list` to see the known datasets, "
        "or pass a local .jsonl/.json/.csv/.parquet file or a Hub dataset id (owner/name)",
    )


def list_registry() -> list[DatasetSpec]:
    """All known datasets, sorted by key."""
    return sorted(REGISTRY.values(), key=lambda spec: spec.key)
