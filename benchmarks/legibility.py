"""Benchmark: how legible our pages are to an independent OCR engine, per script and font size, against compression.

Tesseract (not the model we train) reads pages rendered by `PageRenderer` on 1024 px pages at a range of font sizes.
For each script and size it prints the character error rate (edit distance / reference characters, whitespace
ignored) and the compression a full page of that size carries (text tokens of the drawn text, counted by
`TextTokenCounter`, over `vision_tokens_per_page`). The point where the error rate climbs is the smallest font
size `--target-compression` may choose. The pages are what the model sees: no upscaling or other preprocessing
before OCR.

Tesseract comes from Debian, not pip (it is no dependency of deepsynth, and CI does not need it):

    apt-get update && apt-get install -y tesseract-ocr tesseract-ocr-fra tesseract-ocr-rus tesseract-ocr-ara \\
        tesseract-ocr-hin tesseract-ocr-chi-sim tesseract-ocr-tha

    python benchmarks/legibility.py            # 6 scripts x 6 sizes, a few minutes
    python benchmarks/legibility.py --quick    # 2 sizes

Prints a table, then ONE JSON line (the last line of stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from deepsynth_cli.config import RenderConfig
from deepsynth_cli.data.render import PageRenderer, vision_tokens_per_page
from deepsynth_cli.data.tokens import TextTokenCounter

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_info import cpu_model

PAGE_SIZE = 1024
SIZES = (8, 10, 12, 14, 18, 24)
LEGIBLE_CER = 0.05  # at most 5 % of characters wrong: "legible" for the recommendation


@dataclass(frozen=True)
class Script:
    name: str
    language: str  # BCP-47, for the renderer
    tesseract: str  # Tesseract's traineddata name
    text: str  # a few sentences; `{n}` filled with numbers so paragraphs differ


SCRIPTS = (
    Script(
        "Latin (French)",
        "fr",
        "fra",
        "Le conseil municipal a adopté mardi un nouveau budget de {n} millions d'euros pour les transports publics. "
        "Les habitants ont salué cet investissement, tout en réclamant des bus plus fréquents le soir. "
        "Le maire a déclaré que ces changements seraient financés sans augmenter les impôts locaux.",
    ),
    Script(
        "Cyrillic (Russian)",
        "ru",
        "rus",
        "Во вторник городской совет утвердил новый бюджет в {n} миллионов рублей на общественный транспорт. "
        "Жители поддержали эти вложения, но попросили чаще пускать автобусы по вечерам. "
        "Мэр сообщил журналистам, что изменения будут оплачены без повышения местных налогов.",
    ),
    Script(
        "Arabic",
        "ar",
        "ara",
        "أعلنت الحكومة اليوم عن خطة جديدة بقيمة {n} مليون لإصلاح نظام التعليم في البلاد. "
        "وقال الوزير إن الخطة ستنفذ على مراحل خلال السنوات الثلاث المقبلة. "
        "ورحب السكان بهذا الاستثمار لكنهم طالبوا بمزيد من المدارس في القرى.",
    ),
    Script(
        "Devanagari (Hindi)",
        "hi",
        "hin",
        "भारत सरकार ने आज {n} करोड़ रुपये की एक नई शिक्षा नीति की घोषणा की। "
        "मंत्री ने कहा कि यह योजना अगले तीन वर्षों में चरणबद्ध तरीके से लागू की जाएगी। "
        "लोगों ने इस निवेश का स्वागत किया, लेकिन गांवों में और स्कूलों की मांग की।",
    ),
    Script(
        "CJK (Simplified Chinese)",
        "zh-Hans",
        "chi_sim",
        "中国政府今天宣布了一项投入{n}亿元的教育改革计划。部长表示该计划将在未来三年内分阶段实施。"
        "居民对这项投资表示欢迎，但希望在农村地区建设更多的学校。",
    ),
    Script(
        "Thai",
        "th",
        "tha",
        "รัฐบาลประกาศแผนปฏิรูปการศึกษาใหม่มูลค่า {n} ล้านบาทในวันนี้ "
        "รัฐมนตรีกล่าวว่าแผนนี้จะดำเนินการเป็นระยะในอีกสามปีข้างหน้า "
        "ประชาชนยินดีกับการลงทุนนี้ แต่ต้องการให้สร้างโรงเรียนในชนบทมากขึ้น",
    ),
)


def ocr(image: Path, language: str) -> str:
    """Tesseract's text for one page: one uniform block of text (page segmentation mode 6)."""
    result = subprocess.run(
        ["tesseract", str(image), "stdout", "-l", language, "--psm", "6"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return result.stdout


def comparable(text: str) -> str:
    """What is compared: NFC, no whitespace (Tesseract's spacing in CJK and Thai is not the text's)."""
    return "".join(unicodedata.normalize("NFC", text).split())


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def measure(script: Script, size: int, lines: int, counter: TextTokenCounter, workdir: Path) -> dict[str, Any]:
    cfg = RenderConfig(page_size=PAGE_SIZE, font_size=size, max_pages=1)
    renderer = PageRenderer(cfg)
    # Compression: a page filled to the last line at this size (many paragraphs, cut by the page budget).
    full = renderer.render("\n".join(script.text.format(n=100 + n) for n in range(400)), script.language)
    text_tokens = counter.count(full.drawn_text)
    vision_tokens = vision_tokens_per_page(PAGE_SIZE)
    # Legibility: the first `lines` lines of a page of this size, read back. A part of the page keeps Tesseract's
    # time reasonable; the text is laid out exactly as on a full page.
    paragraph = " ".join(script.text.format(n=100 + n) for n in range(60))
    kept = renderer._chars_on_first_lines(paragraph, script.language, min(lines, renderer.lines_per_page))
    shown = renderer.render(paragraph[:kept], script.language)
    image = workdir / f"{script.tesseract}-{size}.png"
    image.write_bytes(shown.pages[0])
    started = time.perf_counter()
    read = ocr(image, script.tesseract)
    seconds = time.perf_counter() - started
    reference, hypothesis = comparable(shown.drawn_text), comparable(read)
    errors = edit_distance(reference, hypothesis)
    return {
        "script": script.name,
        "language": script.language,
        "font_px": size,
        "lines_read": min(lines, renderer.lines_per_page),
        "chars": len(reference),
        "cer": errors / max(1, len(reference)),
        "page_chars": len(full.drawn_text),
        "text_tokens_per_page": text_tokens,
        "vision_tokens_per_page": vision_tokens,
        "compression": text_tokens / vision_tokens,
        "ocr_s": seconds,
    }


def machine() -> dict[str, Any]:
    model = cpu_model()
    version = subprocess.run(["tesseract", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(), "tesseract": version}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two font sizes only")
    parser.add_argument("--lines", type=int, default=12, help="lines of each page that Tesseract reads")
    args = parser.parse_args(argv)
    if shutil.which("tesseract") is None:
        sys.exit("tesseract is not installed: see the install line at the top of benchmarks/legibility.py")
    sizes = (10, 18) if args.quick else SIZES
    counter = TextTokenCounter()
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="deepsynth-legibility-") as tmp:
        for script in SCRIPTS:
            for size in sizes:
                rows.append(measure(script, size, args.lines, counter, Path(tmp)))
    title = f"Tesseract character error rate vs compression, {PAGE_SIZE} px pages, first {args.lines} lines"
    table = Table(title=title)
    table.add_column("script")
    for size in sizes:
        table.add_column(f"{size} px", justify="right")
    for script in SCRIPTS:
        cells = [f"{row['cer']:.1%} @ {row['compression']:.1f}x" for row in rows if row["language"] == script.language]
        table.add_row(script.name, *cells)
    console = Console(highlight=False, width=160)
    console.print(table)
    # The smallest size from which every larger size of the script stays legible.
    smallest: dict[str, int | None] = {}
    for script in SCRIPTS:
        mine = sorted((row for row in rows if row["language"] == script.language), key=lambda row: row["font_px"])
        legible = [row["font_px"] for i, row in enumerate(mine) if all(r["cer"] <= LEGIBLE_CER for r in mine[i:])]
        smallest[script.language] = legible[0] if legible else None
    console.print(
        "  cell: CER (whitespace ignored) @ text tokens of a full page / vision tokens of the page\n"
        f"  smallest size with CER <= {LEGIBLE_CER:.0%} at it and every larger size: "
        + ", ".join(f"{lang} {px if px else '-'}" for lang, px in smallest.items())
    )
    summary = {
        "benchmark": "legibility",
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
        "page_size": PAGE_SIZE,
        "legible_cer": LEGIBLE_CER,
        "smallest_legible_px": smallest,
        "median_cer_by_size": {
            str(size): statistics.median(row["cer"] for row in rows if row["font_px"] == size) for size in sizes
        },
        "rows": [{key: round(v, 4) if isinstance(v, float) else v for key, v in row.items()} for row in rows],
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
