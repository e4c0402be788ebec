"""Benchmark: rendering text into pages, alone and inside `deepsynth generate`.

Three measurements, each against a baseline taken in the same run (absolute times on a shared machine are noisy,
so every figure is a median of repetitions and the targets are judged where possible on ratios):

1. Renderer throughput on one core: full `PageRenderer.render()` calls (layout, paint and lossless PNG encoding)
   on ~600-word news pages in six scripts, against a naive Pillow renderer (`ImageDraw.text`, wrap by character
   count) drawing the same documents onto the same 1024 px greyscale page at the same PNG level.
2. End-to-end `deepsynth generate` (CLI subprocess) documents/s and pages/s with 1 and 2 workers on one
   mixed-script JSONL; the 2-worker/1-worker ratio.
3. Peak RSS of `deepsynth generate --num-workers 1 --max-pages 1` on 1k vs 10k short documents, each run in
   its own fresh wrapper process; the 10k/1k ratio.

Documents are built offline from a few sentences per language, shuffled with fixed seeds, with a number filled
into some sentences so that paragraphs do not repeat (SkParagraph caches laid-out paragraphs; repeated text
would flatter the renderer).

    python benchmarks/render.py            # full run, ~5-10 minutes
    python benchmarks/render.py --quick    # smoke run, < 60 s

Prints tables, then ONE JSON line (the last line of stdout) with every figure and pass/fail per target.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import io
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.table import Table

from deepsynth_cli.config import RenderConfig
from deepsynth_cli.data.render import PageRenderer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_info import cpu_model, usable_cores

TARGET_PAGES_PER_S = 40.0  # per core, 1024 x 1024, including lossless encoding
TARGET_WORKER_SCALING = 1.7  # 2 workers vs 1
TARGET_RSS_RATIO = 1.10  # peak RSS at 10x the documents, vs 1x ("independent of dataset size", with noise)
CONTENDED_CORES = 0.25  # other processes using more than this during a timed run make its scaling figures unreliable


# ---------------------------------------------------------------------------------------------------------------
# Corpus: the same local-news story in six scripts. `{n}` and `{year}` are filled per sentence from a seeded RNG.
@dataclass(frozen=True)
class Script:
    name: str
    language: str  # BCP-47 tag passed to the renderer
    sentences: tuple[str, ...]
    spaced: bool = True  # words are separated by spaces; False: size is counted in characters (CJK)
    page_size_units: int = 600  # words (characters when not spaced) in one ~full page
    short_units: int = 100  # the short documents of the RSS runs

    def size(self, text: str) -> int:
        return len(text.split()) if self.spaced else sum(not char.isspace() for char in text)


SCRIPTS = (
    Script(
        "English (Latin)",
        "en",
        (
            "The city council approved a new budget on Tuesday that sets aside more money for public transport "
            "and road repairs.",
            "Officials said the plan would add {n} electric buses to the fleet over the next three years.",
            "Residents who spoke at the meeting welcomed the investment but asked for more frequent service in "
            "the evenings.",
            "The mayor told reporters that the changes would be paid for without raising local taxes.",
            "Critics argued that the figures were optimistic and that fuel savings might take longer to appear.",
            "A report published last month found that traffic in the city centre had grown by nearly {n} percent "
            "since {year}.",
            "Several shop owners said that easier access by bus would bring more customers to the old market streets.",
            "The first new routes are expected to open in the spring, after a short consultation with "
            "neighbourhood groups.",
            "Engineers will also replace two ageing bridges on the northern ring road, a project delayed twice by "
            "flooding.",
            "The council will publish quarterly updates on its website so that residents can follow the progress "
            "of each project.",
            "According to the transport office, about {n} thousand people take the bus to work on an average weekday.",
            "Cycling groups asked for protected lanes on the main avenues, and the council promised to study the "
            "idea within {n} months.",
        ),
    ),
    Script(
        "French (accents)",
        "fr",
        (
            "Le conseil municipal a adopté mardi un nouveau budget qui accorde davantage de moyens aux transports "
            "publics et à l'entretien des routes.",
            "Selon les responsables, le plan prévoit l'achat de {n} bus électriques au cours des trois prochaines "
            "années.",
            "Les habitants présents à la réunion ont salué cet investissement, tout en réclamant des passages plus "
            "fréquents le soir.",
            "Le maire a déclaré aux journalistes que ces changements seraient financés sans augmenter les impôts "
            "locaux.",
            "Les critiques jugent ces chiffres trop optimistes et estiment que les économies de carburant tarderont "
            "à se faire sentir.",
            "D'après un rapport publié le mois dernier, la circulation dans le centre-ville a augmenté de près de "
            "{n} % depuis {year}.",
            "Plusieurs commerçants espèrent qu'un meilleur accès en bus attirera davantage de clients dans les rues "
            "du vieux marché.",
            "Les premières lignes devraient ouvrir au printemps, après une brève concertation avec les associations "
            "de quartier.",
            "Les ingénieurs remplaceront également deux ponts vieillissants sur le périphérique nord, un chantier "
            "déjà retardé à deux reprises par les inondations.",
            "La municipalité publiera chaque trimestre un bilan sur son site afin que les habitants puissent suivre "
            "l'avancement des travaux.",
            "À la rentrée, l'école élémentaire du quartier fermera ses portes pendant {n} jours pour des travaux "
            "d'accessibilité.",
            "Le coût définitif reste à préciser, mais la préfecture s'est déjà engagée à en financer une partie.",
        ),
    ),
    Script(
        "Russian (Cyrillic)",
        "ru",
        (
            "Во вторник городской совет утвердил новый бюджет, в котором больше средств выделено на общественный "
            "транспорт и ремонт дорог.",
            "По словам чиновников, в ближайшие три года город закупит новые электробусы, а доля экологичного "
            "транспорта вырастет до {n} %.",
            "Жители, выступившие на заседании, поддержали эти вложения, но попросили чаще пускать автобусы по вечерам.",
            "Мэр сообщил журналистам, что изменения будут оплачены без повышения местных налогов.",
            "Критики считают эти расчёты слишком оптимистичными и полагают, что экономия на топливе появится не скоро.",
            "Согласно докладу, опубликованному в прошлом месяце, с {year} года движение в центре города выросло "
            "почти на {n} %.",
            "Несколько владельцев магазинов уверены, что удобный автобусный маршрут привлечёт больше покупателей "
            "на улицы старого рынка.",
            "Первые новые маршруты должны открыться весной, после короткого обсуждения с жителями районов.",
            "Инженеры также заменят два старых моста на северной кольцевой дороге; этот проект уже дважды "
            "откладывался из-за наводнений.",
            "Каждый квартал совет будет публиковать на своём сайте отчёт, чтобы жители могли следить за ходом работ.",
            "По данным транспортного управления, в будний день автобусами пользуются около {n} тыс. человек.",
            "Велосипедисты попросили выделить защищённые полосы на главных проспектах, и совет обещал изучить этот "
            "вопрос.",
        ),
    ),
    Script(
        "Arabic (RTL)",
        "ar",
        (
            "وافق المجلس البلدي يوم الثلاثاء على ميزانية جديدة تخصص مزيدا من الأموال للنقل العام وصيانة الطرق.",
            "وقال مسؤولون إن الخطة ستضيف حافلات كهربائية جديدة إلى الأسطول خلال السنوات الثلاث المقبلة، بكلفة "
            "تقارب {n} مليون دولار.",
            "ورحب السكان الذين تحدثوا في الاجتماع بهذا الاستثمار، لكنهم طالبوا بزيادة عدد الرحلات في المساء.",
            "وأكد رئيس البلدية للصحفيين أن هذه التغييرات ستمول دون رفع الضرائب المحلية.",
            "في المقابل، يرى المنتقدون أن الأرقام متفائلة أكثر من اللازم، وأن توفير الوقود قد يستغرق وقتا أطول.",
            "وأظهر تقرير نشر الشهر الماضي أن حركة المرور في وسط المدينة زادت بنسبة {n} في المئة منذ عام {year}.",
            "ويقول عدد من أصحاب المتاجر إن تسهيل الوصول بالحافلات سيجلب مزيدا من الزبائن إلى شوارع السوق القديمة.",
            "ومن المتوقع افتتاح الخطوط الجديدة الأولى في فصل الربيع، بعد مشاورات قصيرة مع لجان الأحياء.",
            "كما سيستبدل المهندسون جسرين قديمين على الطريق الدائري الشمالي، وهو مشروع تأجل مرتين بسبب الفيضانات.",
            "وسينشر المجلس تقارير فصلية على موقعه الإلكتروني حتى يتمكن السكان من متابعة تقدم كل مشروع.",
            "وبحسب إدارة النقل، يستقل نحو {n} ألف شخص الحافلات يوميا للذهاب إلى العمل.",
            "وطالبت جمعيات راكبي الدراجات بمسارات محمية في الشوارع الرئيسية، ووعد المجلس بدراسة الفكرة.",
        ),
    ),
    Script(
        "Hindi (Devanagari)",
        "hi",
        (
            "नगर परिषद ने मंगलवार को एक नया बजट पारित किया, जिसमें सार्वजनिक परिवहन और सड़कों की मरम्मत के लिए "
            "अधिक धन रखा गया है।",
            "अधिकारियों ने बताया कि अगले तीन वर्षों में बेड़े में {n} बिजली से चलने वाली बसें जोड़ी जाएँगी।",
            "बैठक में बोलने वाले निवासियों ने इस निवेश का स्वागत किया, लेकिन शाम के समय अधिक बसें चलाने की माँग की।",
            "महापौर ने पत्रकारों से कहा कि इन बदलावों का खर्च स्थानीय कर बढ़ाए बिना उठाया जाएगा।",
            "आलोचकों का कहना है कि ये आँकड़े ज़रूरत से ज़्यादा आशावादी हैं और ईंधन की बचत दिखने में समय लगेगा।",
            "पिछले महीने प्रकाशित एक रिपोर्ट के अनुसार, {year} के बाद से शहर के केंद्र में यातायात लगभग {n} प्रतिशत बढ़ा है।",
            "कई दुकानदारों का मानना है कि बस से आसान पहुँच पुराने बाज़ार की गलियों में ज़्यादा ग्राहक लाएगी।",
            "मोहल्ला समितियों के साथ संक्षिप्त परामर्श के बाद पहले नए मार्ग वसंत में खुलने की उम्मीद है।",
            "इंजीनियर उत्तरी रिंग रोड पर दो पुराने पुलों को भी बदलेंगे, यह परियोजना बाढ़ के कारण दो बार टल चुकी है।",
            "परिषद हर तिमाही अपनी वेबसाइट पर प्रगति रिपोर्ट प्रकाशित करेगी, ताकि निवासी हर परियोजना पर नज़र रख सकें।",
            "परिवहन विभाग के अनुसार, सामान्य कार्यदिवस पर लगभग {n} हज़ार लोग बस से काम पर जाते हैं।",
            "साइकिल चालकों के समूहों ने मुख्य सड़कों पर सुरक्षित लेन की माँग की, और परिषद ने इस सुझाव पर विचार करने का वादा किया।",
        ),
    ),
    Script(
        "Chinese (CJK)",
        "zh",
        (
            "市议会周二通过了一项新预算，为公共交通和道路维修拨出更多资金。",
            "官员表示，该计划将在未来三年内为车队增加{n}辆电动公交车。",
            "在会上发言的居民对这项投资表示欢迎，但希望晚间的公交班次能够更加频繁。",
            "市长对记者说，这些改变所需的费用不会通过提高地方税来筹集。",
            "批评者认为这些数字过于乐观，燃料节省的效果可能需要更长时间才能显现。",
            "上个月发布的一份报告显示，自{year}年以来，市中心的交通流量增长了近{n}%。",
            "几位店主表示，乘坐公交车更加方便，将会为老市场街区带来更多顾客。",
            "首批新线路预计将于春季开通，此前还将与各社区团体进行简短的协商。",
            "工程师们还将更换北环路上两座老化的桥梁，该项目已因洪水两次推迟。",
            "市议会将每季度在其网站上公布进展报告，以便居民跟踪每个项目的进度。",
            "据交通部门统计，平均每个工作日约有{n}万人乘坐公交车上班。",
            "自行车爱好者团体呼吁在主干道上设置受保护的自行车道，市议会承诺将研究这一建议。",
        ),
        spaced=False,
        page_size_units=950,  # ~600 words of English carry about as much as 900-1000 Chinese characters
        short_units=160,
    ),
)


def build_document(script: Script, seed: int, units: int) -> str:
    """About `units` words (characters for CJK) of shuffled sentences, in paragraphs of 3-5 sentences."""
    rng = random.Random(f"{script.language}:{seed}")
    joiner = " " if script.spaced else ""
    paragraphs: list[str] = []
    current: list[str] = []
    per_paragraph = rng.randint(3, 5)
    size = 0
    deck: list[str] = []
    while size < units:
        if not deck:  # cycle through the sentences, reshuffled each round
            deck = list(script.sentences)
            rng.shuffle(deck)
        sentence = deck.pop().format(n=rng.randint(2, 98), year=rng.randint(1998, 2022))
        current.append(sentence)
        size += script.size(sentence)
        if len(current) == per_paragraph:
            paragraphs.append(joiner.join(current))
            current, per_paragraph = [], rng.randint(3, 5)
    if current:
        paragraphs.append(joiner.join(current))
    return "\n".join(paragraphs)


def fit_one_page(renderer: PageRenderer, script: Script, units: int, probes: int = 6) -> int:
    """The largest size, from `units` down in 4 % steps, at which sample documents all fit on one page."""
    while units > 20:
        documents = [renderer.render(build_document(script, -1 - i, units), script.language) for i in range(probes)]
        if all(len(doc.pages) == 1 and doc.dropped_chars == 0 for doc in documents):
            return units
        units = int(units * 0.96)
    raise RuntimeError(f"{script.name}: no document size fits one page")


def one_page_document(renderer: PageRenderer, script: Script, seed: int, units: int) -> str:
    """The document of `seed`, cut by whole sentences until it fills exactly one page.

    `renderer` must not be the one being measured: SkParagraph caches laid-out paragraphs per font collection.
    """
    while True:
        text = build_document(script, seed, units)  # a smaller size gives a prefix of the same sentences
        rendered = renderer.render(text, script.language)
        if len(rendered.pages) == 1 and rendered.dropped_chars == 0:
            return text
        units = int(units * 0.98)


# ---------------------------------------------------------------------------------------------------------------
# 1. Renderer throughput on one core.
class _TimedRenderer(PageRenderer):
    """The project's renderer, timing its encoder to report the encoding share (two clock reads per page)."""

    encode_seconds = 0.0

    def _encode(self) -> bytes:
        started = time.perf_counter()
        try:
            return super()._encode()
        finally:
            self.encode_seconds += time.perf_counter() - started


class NaivePillowRenderer:
    """The baseline: what a public Pillow renderer does. One TrueType font, lines wrapped by character count
    (from the font's average advance on this script), drawn line by line with `ImageDraw.text`.

    Pillow's basic layout: no shaping or bidi (Arabic comes out unjoined, left to right), the fastest Pillow path.
    """

    def __init__(self, font_path: Path, font_index: int, sample: str, cfg: RenderConfig) -> None:
        self.cfg = cfg
        self.font = ImageFont.truetype(
            str(font_path), cfg.font_size, index=font_index, layout_engine=ImageFont.Layout.BASIC
        )
        content = cfg.page_size - 2 * cfg.margin
        self.chars_per_line = max(10, int(content / (self.font.getlength(sample) / len(sample))))
        self.line_px = cfg.font_size * cfg.line_height
        self.lines_per_page = int(content // self.line_px)

    def render(self, text: str) -> list[bytes]:
        lines: list[str] = []
        for paragraph in text.splitlines():
            lines += textwrap.wrap(paragraph, self.chars_per_line) or [""]
        pages = []
        for first in range(0, len(lines), self.lines_per_page):
            image = Image.new("L", (self.cfg.page_size, self.cfg.page_size), 255)
            draw = ImageDraw.Draw(image)
            for row, line in enumerate(lines[first : first + self.lines_per_page]):
                draw.text((self.cfg.margin, self.cfg.margin + row * self.line_px), line, font=self.font, fill=0)
            buffer = io.BytesIO()
            image.save(buffer, "PNG", compress_level=self.cfg.png_compress_level)
            pages.append(buffer.getvalue())
        return pages


def baseline_font(script: Script) -> tuple[Path, int]:
    """The shipped Noto face that covers the script (Pillow's basic layout has no font fallback)."""
    latin = resources.files("manimgx_fonts")
    if script.language == "ar":
        return Path(str(latin / "NotoSansArabic[wght].ttf")), 0
    if script.language == "hi":
        return Path(str(latin / "NotoSansDevanagari[wght].ttf")), 0
    if script.language == "zh":  # the collection holds JP, KR, SC, TC, HK: index 2 is Simplified Chinese
        return Path(str(resources.files("noto_cjk_sans_otc") / "NotoSansCJK-Regular.ttc")), 2
    return Path(str(latin / "NotoSans[wght].ttf")), 0


def timed_pages(render: Callable[[str], int], documents: Sequence[str]) -> tuple[float, int]:
    started = time.perf_counter()
    pages = sum(render(document) for document in documents)
    return time.perf_counter() - started, pages


def renderer_at(revision: str) -> type[PageRenderer]:
    """`PageRenderer` as `deepsynth_cli/data/render.py` was at a git revision: the before of a before/after."""
    source = subprocess.run(
        ["git", "show", f"{revision}:deepsynth_cli/data/render.py"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    module = type(sys)(f"render_at_{revision}")
    sys.modules[module.__name__] = module  # dataclasses look their module up while the class is made
    exec(compile(source, f"render.py@{revision}", "exec"), module.__dict__)
    renderer: type[PageRenderer] = module.PageRenderer
    return renderer


def bench_renderer(
    script: Script,
    units: int,
    docs: int,
    reps: int,
    baseline_docs: int,
    fitter: PageRenderer,
    before: type[PageRenderer] | None = None,
) -> dict[str, Any]:
    cfg = RenderConfig()
    ours = _TimedRenderer(cfg)
    earlier = before(cfg) if before is not None else None
    font_path, font_index = baseline_font(script)
    naive = NaivePillowRenderer(font_path, font_index, " ".join(script.sentences), cfg)

    def render_ours(text: str) -> int:
        return len(ours.render(text, script.language).pages)

    def render_naive(text: str) -> int:
        return len(naive.render(text))

    # Fresh documents for every repetition: no paragraph is laid out twice (see the module docstring).
    documents = [one_page_document(fitter, script, seed, units) for seed in range(docs * reps)]
    warm = [build_document(script, 10_000 + i, units) for i in range(2)]
    for text in warm:
        render_ours(text)
        render_naive(text)
    before_rates: list[float] = []
    rates, docs_rates, base_rates, base_docs_rates, pages_per_doc, base_pages_per_doc = [], [], [], [], [], []
    ours.encode_seconds, seconds_ours = 0.0, 0.0
    for rep in range(reps):  # interleave ours and the baseline so drifts in machine load hit both
        batch = documents[rep * docs : (rep + 1) * docs]
        seconds, pages = timed_pages(render_ours, batch)
        rates.append(pages / seconds)
        docs_rates.append(docs / seconds)
        pages_per_doc.append(pages / docs)
        seconds_ours += seconds
        if earlier is not None:  # the same documents through the renderer of the earlier revision
            seconds, pages = timed_pages(lambda text: len(earlier.render(text, script.language).pages), batch)
            before_rates.append(pages / seconds)
        seconds, pages = timed_pages(render_naive, batch[:baseline_docs])
        base_rates.append(pages / seconds)
        base_docs_rates.append(baseline_docs / seconds)
        base_pages_per_doc.append(pages / baseline_docs)
    return {
        "script": script.name,
        "language": script.language,
        "units_per_doc": round(statistics.mean(script.size(text) for text in documents)),
        "unit": "words" if script.spaced else "chars",
        "chars_per_doc": round(statistics.mean(len(text) for text in documents)),
        "pages_per_doc": statistics.mean(pages_per_doc),
        "pages_per_s": statistics.median(rates),
        "pages_per_s_min": min(rates),
        "pages_per_s_max": max(rates),
        "docs_per_s": statistics.median(docs_rates),
        "encode_share": ours.encode_seconds / seconds_ours,
        "baseline_pages_per_s": statistics.median(base_rates),
        "baseline_docs_per_s": statistics.median(base_docs_rates),
        "baseline_pages_per_doc": statistics.mean(base_pages_per_doc),
        "baseline_chars_per_line": naive.chars_per_line,
        # Per document: both render the same documents whole (the baseline may spill onto a second page).
        "ratio_vs_baseline": statistics.median(docs_rates) / statistics.median(base_docs_rates),
        **(
            {
                "before_pages_per_s": statistics.median(before_rates),
                "ratio_vs_before": statistics.median(rates) / statistics.median(before_rates),
            }
            if before_rates
            else {}
        ),
        "reps": reps,
        "docs_per_rep": docs,
        "baseline_docs_per_rep": baseline_docs,
    }


def _pages_of(renderer: PageRenderer, language: str, text: str) -> int:
    return len(renderer.render(text, language).pages)


def bench_page_breaks(script: Script, units: int, docs: int, reps: int, before: type[PageRenderer]) -> dict[str, Any]:
    """Before/after on what pagination changes: documents of ~2.5 pages, whole (page breaks inside paragraphs)
    and cut to a 2-page budget (the characters shown are counted at the cut). Interleaved, fresh documents.
    """
    figures: dict[str, Any] = {"script": script.name, "language": script.language}
    for case, max_pages in (("multi_page", 4), ("truncated", 2)):
        cfg = RenderConfig(max_pages=max_pages)
        renderers = {"before": before(cfg), "after": PageRenderer(cfg)}
        documents = [build_document(script, 20_000 + seed, int(units * 2.5)) for seed in range(docs * reps)]
        rates: dict[str, list[float]] = {"before": [], "after": []}
        for rep in range(reps):
            batch = documents[rep * docs : (rep + 1) * docs]
            for name, renderer in renderers.items():
                render = functools.partial(_pages_of, renderer, script.language)
                seconds, pages = timed_pages(render, batch)
                rates[name].append(pages / seconds)
        figures[case] = {
            "before_pages_per_s": statistics.median(rates["before"]),
            "after_pages_per_s": statistics.median(rates["after"]),
            "ratio": statistics.median(rates["after"]) / statistics.median(rates["before"]),
        }
    return figures


# ---------------------------------------------------------------------------------------------------------------
# 2 and 3. The CLI in subprocesses.
class CpuMeter:
    """CPU used on the whole machine while a block runs, split into ours (this process and every child it waited
    for) and other processes'. Other sessions share this machine: a busy neighbour makes scaling figures lie.
    """

    def __enter__(self) -> CpuMeter:
        self._start = (time.perf_counter(), _machine_busy_seconds(), _own_cpu_seconds())
        return self

    def __exit__(self, *exc: object) -> None:
        wall, busy, own = (end - start for end, start in zip(self._now(), self._start, strict=True))
        self.wall_s = wall
        self.own_cores = own / wall
        self.other_cores = max(0.0, busy - own) / wall

    @staticmethod
    def _now() -> tuple[float, float, float]:
        return time.perf_counter(), _machine_busy_seconds(), _own_cpu_seconds()


def wait_for_quiet(budget: list[float], max_other: float = CONTENDED_CORES, window_s: float = 1.0) -> None:
    """Wait while other processes keep more than `max_other` cores busy, spending at most `budget[0]` s in all.

    Timing 2 workers on a 2-core machine while a neighbour holds a core measures the neighbour, not the pipeline.
    """
    while budget[0] > 0:
        with CpuMeter() as cpu:
            time.sleep(window_s)
        if cpu.other_cores <= max_other:
            return
        budget[0] -= cpu.wall_s


def spare_cores() -> float:
    """Cores left over while one is timed: other processes may use these without slowing a one-core figure."""
    return max(0.0, (os.cpu_count() or 1) - 1.0)


def _machine_busy_seconds() -> float:
    """Non-idle CPU time of all cores since boot (0 where /proc/stat is missing)."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# Runs one command and reports its peak RSS: RUSAGE_CHILDREN.ru_maxrss is the largest of all the children a
# process ever waited for, so each measurement needs a fresh parent.
_PEAK_RSS_WRAPPER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - started
print(json.dumps({"rc": proc.returncode, "seconds": seconds, "stdout": proc.stdout, "stderr": proc.stderr[-2000:],
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def write_jsonl(path: Path, count: int, sized: Callable[[Script], int], seed: int) -> None:
    """`count` documents cycling through the scripts; the summary is the first sentence."""
    with path.open("w", encoding="utf-8") as file:
        for index in range(count):
            script = SCRIPTS[index % len(SCRIPTS)]
            text = build_document(script, seed + index, sized(script))
            summary = text.split("\n")[0][:80]
            row = {"id": f"doc-{index:06d}", "text": text, "summary": summary}
            file.write(json.dumps(row, ensure_ascii=False) + "\n")


def run_generate(dataset: Path, out: Path, workers: int, extra: Sequence[str] = ()) -> dict[str, Any]:
    """`deepsynth generate` in a fresh wrapper process: wall time, peak RSS, CPU used by it and by others."""
    command = [sys.executable, "-m", "deepsynth_cli", "generate", str(dataset), "--out", str(out)]
    command += ["--num-workers", str(workers), "--json", *extra]
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEEPSYNTH_")}
    with CpuMeter() as cpu:
        # cwd: an empty folder, so that no `.env` of the working tree changes the settings.
        result = subprocess.run(
            [sys.executable, "-c", _PEAK_RSS_WRAPPER, *command],
            capture_output=True,
            text=True,
            check=True,
            cwd=out.parent,
            env=env,
        )
    measured = json.loads(result.stdout)
    if measured["rc"] != 0:
        raise RuntimeError(f"deepsynth generate failed ({measured['rc']}): {measured['stderr']}")
    report = json.loads(measured["stdout"])
    return {
        "rows": sum(sum(dataset["rows"].values()) for dataset in report["datasets"]),
        "pages": sum(dataset["pages"] for dataset in report["datasets"]),
        "wall_s": measured["seconds"],
        "service_s": report["seconds"],
        "peak_rss_mib": measured["maxrss_kib"] / 1024,
        "cores_used": cpu.own_cores,
        "other_cores": cpu.other_cores,
    }


def bench_generate(workdir: Path, docs: int, reps: int, units: dict[str, int], budget: list[float]) -> dict[str, Any]:
    """1 vs 2 workers, interleaved. A run of the first few documents alone measures the fixed start-up cost, so
    the marginal rate ((N - n) / (t_N - t_n)) shows the pipeline's scaling apart from process start-up.
    """
    dataset = workdir / "mixed.jsonl"
    write_jsonl(dataset, docs, lambda script: units[script.language], seed=50_000)
    few = max(6, docs // 25)
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    waited = budget[0]
    for rep in range(reps):
        for workers in (1, 2):
            wait_for_quiet(budget)
            full = run_generate(dataset, workdir / f"generate-{workers}w-{rep}", workers)
            start = run_generate(
                dataset, workdir / f"generate-{workers}w-{rep}-few", workers, ["--max-samples", str(few)]
            )
            full["marginal_docs_per_s"] = (full["rows"] - start["rows"]) / max(1e-3, full["wall_s"] - start["wall_s"])
            full["startup_s"] = start["wall_s"]
            full["other_cores"] = max(full["other_cores"], start["other_cores"])
            runs[workers].append(full)
    figures: dict[str, Any] = {"docs": docs, "reps": reps, "startup_docs": few, "waited_s": waited - budget[0]}
    for workers, results in runs.items():
        figures[f"{workers}w"] = {
            "docs_per_s": statistics.median(r["rows"] / r["wall_s"] for r in results),
            "pages_per_s": statistics.median(r["pages"] / r["wall_s"] for r in results),
            "service_docs_per_s": statistics.median(r["rows"] / r["service_s"] for r in results),
            "marginal_docs_per_s": statistics.median(r["marginal_docs_per_s"] for r in results),
            "wall_s": statistics.median(r["wall_s"] for r in results),
            "startup_s": statistics.median(r["startup_s"] for r in results),
            "rows": results[0]["rows"],
            "pages": results[0]["pages"],
            "cores_used": statistics.median(r["cores_used"] for r in results),
            "other_cores": statistics.median(r["other_cores"] for r in results),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in results),  # the largest single process
            "runs": results,
        }
    for key in ("docs_per_s", "service_docs_per_s", "marginal_docs_per_s"):
        figures[f"ratio_2w_1w_{key}"] = figures["2w"][key] / figures["1w"][key]
    figures["ratio_2w_1w"] = figures["ratio_2w_1w_docs_per_s"]
    figures["contended"] = max(figures["1w"]["other_cores"], figures["2w"]["other_cores"]) > CONTENDED_CORES
    return figures


def bench_rss(workdir: Path, small: int, large: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"small": small, "large": large}
    for count in (small, large):
        dataset = workdir / f"short-{count}.jsonl"
        write_jsonl(dataset, count, lambda script: script.short_units, seed=90_000)
        result = run_generate(dataset, workdir / f"rss-{count}", 1, ["--max-pages", "1"])
        figures[str(count)] = {**result, "docs_per_s": result["rows"] / result["wall_s"]}
    figures["ratio"] = figures[str(large)]["peak_rss_mib"] / figures[str(small)]["peak_rss_mib"]
    return figures


# ---------------------------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    model = cpu_model()
    return {
        "cpu": model,
        "cores": usable_cores(),
        "python": platform.python_version(),
        "skia_python": importlib.metadata.version("skia-python"),
        "pillow": importlib.metadata.version("pillow"),
    }


def harmonic_mean(values: Sequence[float]) -> float:
    """The rate over an even mix of the scripts (equal numbers of pages or documents of each)."""
    return len(values) / sum(1 / value for value in values)


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"


def show_renderer(console: Console, rows: list[dict[str, Any]], mixed: dict[str, float]) -> None:
    reps, docs = rows[0]["reps"], rows[0]["docs_per_rep"]
    table = Table(title=f"1. Renderer, one core: 1024 px pages, PNG level 1, median of {reps} x {docs} documents")
    columns = ("script", "size/doc", "pages/doc", "pages/s", "min-max", "ms/page", "encode", "Pillow pages/s", "ratio")
    for column in (*columns, f">= {TARGET_PAGES_PER_S:.0f}"):
        table.add_column(column, justify="left" if column == "script" else "right")
    for row in rows:
        table.add_row(
            row["script"],
            f"{row['units_per_doc']} {row['unit']}",
            f"{row['pages_per_doc']:.2f}",
            f"{row['pages_per_s']:.1f}",
            f"{row['pages_per_s_min']:.0f}-{row['pages_per_s_max']:.0f}",
            f"{1000 / row['pages_per_s']:.1f}",
            f"{row['encode_share']:.0%}",
            f"{row['baseline_pages_per_s']:.1f}",
            f"{row['ratio_vs_baseline']:.2f}x",
            _mark(row["pages_per_s"] >= TARGET_PAGES_PER_S),
        )
    table.add_row(
        "mix (harmonic mean)",
        "",
        "",
        f"{mixed['pages_per_s']:.1f}",
        "",
        f"{1000 / mixed['pages_per_s']:.1f}",
        "",
        f"{mixed['baseline_pages_per_s']:.1f}",
        f"{mixed['ratio_vs_baseline']:.2f}x",
        _mark(mixed["pages_per_s"] >= TARGET_PAGES_PER_S),
    )
    console.print(table)
    console.print(
        "  size/doc: each document is cut, by whole sentences, to fill exactly one page\n"
        "  pages/s: whole PageRenderer.render() calls (layout, paint, encode); encode: the share spent encoding PNG\n"
        "  Pillow: the naive baseline on the first documents of each repetition; ratio: documents/s, ours / Pillow\n"
        "  (the same documents; the baseline's wrapping may spill onto a second page, which flatters its pages/s)\n"
        f"  this part used {mixed['own_cores']:.2f} cores, other processes {mixed['other_cores']:.2f} meanwhile"
    )
    if mixed["contended"]:
        console.print("  [yellow]warning:[/] other processes left this part less than a whole core: rates are low")


def show_generate(console: Console, figures: dict[str, Any]) -> None:
    table = Table(
        title=f"2. deepsynth generate (CLI), {figures['docs']} mixed-script documents, median of {figures['reps']}"
    )
    columns = ("workers", "docs/s", "pages/s", "wall s", "start-up s", "marginal docs/s", "cores", "others")
    for column in (*columns, "peak RSS MiB", "vs 1 worker", f">= {TARGET_WORKER_SCALING}x"):
        table.add_column(column, justify="right")
    for workers in (1, 2):
        row = figures[f"{workers}w"]
        scaling = f"{figures['ratio_2w_1w']:.2f}x ({figures['ratio_2w_1w_marginal_docs_per_s']:.2f}x)"
        table.add_row(
            str(workers),
            f"{row['docs_per_s']:.1f}",
            f"{row['pages_per_s']:.1f}",
            f"{row['wall_s']:.1f}",
            f"{row['startup_s']:.1f}",
            f"{row['marginal_docs_per_s']:.1f}",
            f"{row['cores_used']:.2f}",
            f"{row['other_cores']:.2f}",
            f"{row['peak_rss_mib']:.0f}",
            "1.00x" if workers == 1 else scaling,
            "" if workers == 1 else _mark(figures["ratio_2w_1w"] >= TARGET_WORKER_SCALING),
        )
    console.print(table)
    console.print(
        "  docs/s, pages/s, vs 1 worker: wall clock of the CLI process, start-up included\n"
        f"  start-up s: the same command on the first {figures['startup_docs']} documents; marginal docs/s and the "
        "ratio in brackets:\n  (N - n) / (t_N - t_n), the pipeline without start-up\n"
        "  cores: CPU used by the run / wall; others: cores used by other processes meanwhile\n"
        "  peak RSS: the largest single process"
        + (f"; waited {figures['waited_s']:.0f} s for other processes to quieten" if figures["waited_s"] > 1 else "")
    )
    if figures["contended"]:
        console.print(
            f"  [yellow]warning:[/] other processes used > {CONTENDED_CORES} cores during these runs: the scaling "
            "figures\n  understate what 2 workers do on an idle machine"
        )


def show_rss(console: Console, figures: dict[str, Any]) -> None:
    table = Table(title="3. Peak RSS: deepsynth generate --num-workers 1 --max-pages 1 on short documents")
    for column in ("documents", "peak RSS MiB", "wall s", "docs/s", "others", "vs smallest", f"<= {TARGET_RSS_RATIO}x"):
        table.add_column(column, justify="right")
    for count in (figures["small"], figures["large"]):
        row = figures[str(count)]
        large = count == figures["large"]
        table.add_row(
            str(count),
            f"{row['peak_rss_mib']:.0f}",
            f"{row['wall_s']:.1f}",
            f"{row['docs_per_s']:.1f}",
            f"{row['other_cores']:.2f}",
            f"{figures['ratio']:.3f}x" if large else "1.000x",
            _mark(figures["ratio"] <= TARGET_RSS_RATIO) if large else "",
        )
    console.print(table)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (< 60 s): fewer documents and repetitions")
    parser.add_argument("--skip-generate", action="store_true", help="only the renderer throughput (part 1)")
    parser.add_argument(
        "--before",
        metavar="REV",
        help="also time the renderer of git revision REV on the same documents, interleaved (a before/after)",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=None,
        help="seconds to wait, in all, for other processes to quieten before timed parts (default 120; quick 5)",
    )
    args = parser.parse_args(argv)

    if args.quick:
        docs, reps, baseline_docs, gen_docs, gen_reps, rss_sizes = 8, 3, 2, 48, 1, (200, 2000)
    else:
        docs, reps, baseline_docs, gen_docs, gen_reps, rss_sizes = 40, 5, 8, 1000, 3, (1000, 10000)
    console = Console(highlight=False, width=120)
    started = time.perf_counter()

    # 1. Renderer, one process. The fitter sizes the documents; it is never the renderer being timed.
    budget = [args.max_wait if args.max_wait is not None else (5.0 if args.quick else 120.0)]
    before = renderer_at(args.before) if args.before else None
    page_breaks: list[dict[str, Any]] | None = None
    fitter = PageRenderer(RenderConfig())
    units = {script.language: fit_one_page(fitter, script, script.page_size_units) for script in SCRIPTS}
    renderer, meters = [], []
    for script in SCRIPTS:
        # One core is timed: others may use the rest of the machine, not more.
        wait_for_quiet(budget, max_other=spare_cores() + 0.1)
        with CpuMeter() as cpu:
            renderer.append(bench_renderer(script, units[script.language], docs, reps, baseline_docs, fitter, before))
        meters.append(cpu)
    del fitter
    mixed = {
        key: harmonic_mean([row[key] for row in renderer])
        for key in ("pages_per_s", "docs_per_s", "baseline_pages_per_s", "baseline_docs_per_s")
    }
    mixed["ratio_vs_baseline"] = mixed["docs_per_s"] / mixed["baseline_docs_per_s"]
    wall = sum(meter.wall_s for meter in meters)
    mixed["own_cores"] = sum(meter.own_cores * meter.wall_s for meter in meters) / wall
    mixed["other_cores"] = sum(meter.other_cores * meter.wall_s for meter in meters) / wall
    mixed["contended"] = mixed["own_cores"] < 0.9  # the timed process did not get a whole core
    show_renderer(console, renderer, mixed)
    if before is not None:
        mixed["before_pages_per_s"] = harmonic_mean([row["before_pages_per_s"] for row in renderer])
        table = Table(title=f"1b. The same documents, renderer at {args.before} (before) vs this tree (after)")
        for column in ("script", "before pages/s", "after pages/s", "after / before"):
            table.add_column(column, justify="left" if column == "script" else "right")
        for row in renderer:
            table.add_row(
                row["script"],
                f"{row['before_pages_per_s']:.1f}",
                f"{row['pages_per_s']:.1f}",
                f"{row['ratio_vs_before']:.2f}x",
            )
        ratio = mixed["pages_per_s"] / mixed["before_pages_per_s"]
        table.add_row("mix", f"{mixed['before_pages_per_s']:.1f}", f"{mixed['pages_per_s']:.1f}", f"{ratio:.2f}x")
        console.print(table)
        breaks = [
            bench_page_breaks(script, units[script.language], max(2, docs // 4), reps, before) for script in SCRIPTS
        ]
        table = Table(title=f"1c. ~2.5-page documents, {args.before} (before) vs this tree (after), pages/s")
        columns = ("script", "whole: before", "after", "ratio", "cut to 2 pages: before", "after", "ratio")
        for column in columns:
            table.add_column(column, justify="left" if column == "script" else "right")
        for row in breaks:
            whole, cut = row["multi_page"], row["truncated"]
            table.add_row(
                row["script"],
                *(f"{whole['before_pages_per_s']:.1f}", f"{whole['after_pages_per_s']:.1f}", f"{whole['ratio']:.2f}x"),
                *(f"{cut['before_pages_per_s']:.1f}", f"{cut['after_pages_per_s']:.1f}", f"{cut['ratio']:.2f}x"),
            )
        console.print(table)
        page_breaks = breaks
    passed = {
        "renderer_pages_per_s_mix": mixed["pages_per_s"] >= TARGET_PAGES_PER_S,
        **{f"renderer_pages_per_s_{row['language']}": row["pages_per_s"] >= TARGET_PAGES_PER_S for row in renderer},
    }

    # 2 and 3. The CLI, in subprocesses.
    generate: dict[str, Any] | None = None
    rss: dict[str, Any] | None = None
    if not args.skip_generate:
        with tempfile.TemporaryDirectory(prefix="deepsynth-bench-") as tmp:
            generate = bench_generate(Path(tmp), gen_docs, gen_reps, units, budget)
            show_generate(console, generate)
            rss = bench_rss(Path(tmp), *rss_sizes)
            show_rss(console, rss)
        passed["generate_2w_vs_1w"] = generate["ratio_2w_1w"] >= TARGET_WORKER_SCALING
        passed["rss_independent_of_size"] = rss["ratio"] <= TARGET_RSS_RATIO

    seconds = time.perf_counter() - started
    missed = [name for name, ok in passed.items() if not ok]
    console.print(
        f"targets met: {len(passed) - len(missed)}/{len(passed)}"
        + (f"; missed: {', '.join(missed)}" if missed else "")
        + f"; {seconds:.0f} s in all"
    )
    summary = {
        "benchmark": "render",
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
        "targets": {
            "pages_per_s_per_core": TARGET_PAGES_PER_S,
            "ratio_2w_1w": TARGET_WORKER_SCALING,
            "rss_ratio_max": TARGET_RSS_RATIO,
        },
        "renderer": {
            "page_size": RenderConfig().page_size,
            "image_format": RenderConfig().image_format,
            "png_compress_level": RenderConfig().png_compress_level,
            "baseline": "Pillow ImageDraw.text, basic layout, Noto TTF, textwrap by character count, same PNG level",
            "mix": mixed,
            "scripts": renderer,
            "before": args.before,
            "page_breaks": page_breaks,
        },
        "generate": generate,
        "rss": rss,
        "pass": passed,
        "seconds": seconds,
    }
    console.file.flush()
    print(json.dumps(_rounded(summary), ensure_ascii=False, default=str), flush=True)


def _rounded(value: Any) -> Any:
    """Floats to 4 significant digits: the noise is far larger, and the JSON line stays readable."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(item) for item in value]
    return value


if __name__ == "__main__":
    main()
