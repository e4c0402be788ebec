"""report.html: one self-contained file (no scripts, no external assets) a person can open or mail.

Per dataset and language: the metrics with their intervals, the model against each baseline, the pixel ablation
when `eval --ablation` ran (own, another row's and blank pages: does the model read them), two plots (the
distribution of ROUGE-L per row; prediction length against ROUGE-L) drawn by matplotlib as inline SVG, and a
gallery of examples spread from the best to the worst row, each with its first page (downscaled, embedded as a
data: URI) beside the reference and the prediction. Every text from the data is HTML-escaped (Jinja2
autoescape); the SVGs come from matplotlib, which escapes the text it draws.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepsynth_cli.data.pages import open_page
from deepsynth_cli.evaluation.ablation import READS_MIN_GAIN
from deepsynth_cli.evaluation.config import ReportConfig
from deepsynth_cli.evaluation.language import tokenizer_for
from deepsynth_cli.evaluation.rouge import METRICS

if TYPE_CHECKING:
    from deepsynth_cli.evaluation.metrics import GroupResult
    from deepsynth_cli.evaluation.rows import EvalRow

TEMPLATE = "report.html.j2"
METRIC_NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum"}
_COLOURS = {"model": "#1f77b4", "lead-1": "#ff7f0e", "lead-3": "#2ca02c"}

PageReader = Callable[["EvalRow"], Any]


def write_report(
    path: Path,
    metrics: Mapping[str, Any],
    groups: Sequence[GroupResult],
    settings: ReportConfig,
    page_reader: PageReader | None = None,
) -> Path:
    """Render the report of `metrics` (as written to metrics.json) and `groups` (per-row scores) to `path`."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_source), autoescape=True, undefined=jinja2.StrictUndefined
    )
    environment.filters["pct"] = _pct
    # `eval --ablation`: own, another row's and blank pages per dataset and language (evaluation/ablation.py).
    ablations = {(found["dataset"], found["language"]): found for found in metrics.get("ablation") or []}
    sections = [_section(group, settings, page_reader, ablations) for group in groups]
    html = environment.get_template(TEMPLATE).render(
        metrics=metrics,
        sections=sections,
        metric_names=METRIC_NAMES,
        settings_json=json.dumps(metrics.get("settings", {}), indent=2, ensure_ascii=False),
        versions=metrics.get("versions", {}),
        reads_min_gain=READS_MIN_GAIN,
    )
    partial = path.with_name(path.name + ".partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)
    return path


def _template_source(name: str) -> str:
    return resources.files("deepsynth_cli.evaluation").joinpath("templates", name).read_text(encoding="utf-8")


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}"


def _section(
    group: GroupResult,
    settings: ReportConfig,
    page_reader: PageReader | None,
    ablations: Mapping[tuple[str, str], Mapping[str, Any]],
) -> dict[str, Any]:
    from markupsafe import Markup

    systems = [{"name": "model", "metrics": group.metrics, "versus": None}]
    for name, system in group.baselines.items():
        systems.append({"name": name, "metrics": system.metrics, "versus": system.metrics["versus_model"]})
    plots = [Markup(_distribution_plot(group)), Markup(_length_plot(group))]
    return {
        "title": f"{group.dataset} ({group.language})",
        "anchor": f"{group.dataset}-{group.language}".replace("/", "-").replace("#", "-"),
        "metrics": group.metrics,
        "systems": systems,
        "plots": plots,
        "gallery": _gallery(group, settings, page_reader),
        "ablation": ablations.get((group.dataset, group.language)),
    }


def _gallery(group: GroupResult, settings: ReportConfig, page_reader: PageReader | None) -> list[dict[str, Any]]:
    """`settings.gallery` rows spread evenly over the ranking by ROUGE-L F1, best first."""
    count = min(settings.gallery, len(group.rows))
    if count == 0:
        return []
    ranked = sorted(range(len(group.rows)), key=lambda index: -group.model.rows[index]["rougeL"].f1)
    if count == 1:
        picks = [ranked[0]]
    else:
        picks = [ranked[round(step * (len(ranked) - 1) / (count - 1))] for step in range(count)]
    examples = []
    for rank, index in zip([ranked.index(pick) + 1 for pick in picks], picks, strict=True):
        row = group.rows[index]
        page = page_reader(row) if page_reader is not None else None
        examples.append(
            {
                "id": row.id,
                "rank": rank,
                "of": len(ranked),
                "image": thumbnail_uri(page, settings.thumbnail_px) if page is not None else None,
                "pages": row.pages_shown if row.pages_shown is not None else row.num_pages,
                "reference": row.reference,
                "prediction": row.prediction,
                "error": row.error,
                "scores": {metric: group.model.rows[index][metric].f1 for metric in METRICS},
            }
        )
    return examples


def thumbnail_uri(page: Any, width: int) -> str | None:
    """A page (an HF Image dict {bytes, path}, a PIL image, bytes or a path) as a downscaled JPEG data: URI."""
    from PIL import Image

    try:
        image = open_page(page).convert("L")
        if image.width > width:
            image = image.resize((width, max(1, round(image.height * width / image.width))), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85, optimize=True)
    except (OSError, ValueError):
        return None  # an unreadable page is shown as missing rather than failing the report
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ---------------------------------------------------------------------------------------------------------------
# Plots: matplotlib with the Agg backend, written as SVG text (fonts as text, not paths: smaller and searchable).


def _figure(width: float = 5.2, height: float = 3.2) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _svg(figure: Any) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "deepsynth"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE: the SVG sits inside HTML


def _distribution_plot(group: GroupResult) -> str:
    figure = _figure()
    axes = figure.subplots()
    bins = [step / 20 for step in range(21)]
    systems = {"model": group.model.rows} | {name: system.rows for name, system in group.baselines.items()}
    for name, rows in systems.items():
        values = [row["rougeL"].f1 for row in rows]
        axes.hist(values, bins=bins, histtype="step", linewidth=1.6, label=name, color=_COLOURS.get(name))
    axes.set_xlabel("ROUGE-L F1 per row")
    axes.set_ylabel("rows")
    axes.set_xlim(0, 1)
    axes.set_title("Score distribution", fontsize=10)
    axes.legend(fontsize=8)
    return _svg(figure)


def _length_plot(group: GroupResult) -> str:
    tokenizer = tokenizer_for(group.language)
    figure = _figure()
    axes = figure.subplots()
    systems = {"model": group.model} | dict(group.baselines)
    for name, system in systems.items():
        lengths = [len(tokenizer.words(text)) for text in system.predictions]
        scores = [row["rougeL"].f1 for row in system.rows]
        axes.scatter(lengths, scores, s=14, alpha=0.7, label=name, color=_COLOURS.get(name))
    reference = group.metrics["lengths"]["reference_mean"]
    axes.axvline(reference, color="grey", linestyle="--", linewidth=1, label="reference mean length")
    axes.set_xlabel(f"prediction length ({tokenizer.spec.unit}s)")
    axes.set_ylabel("ROUGE-L F1")
    axes.set_ylim(-0.02, 1.02)
    axes.set_title("Length against score", fontsize=10)
    axes.legend(fontsize=8)
    return _svg(figure)
