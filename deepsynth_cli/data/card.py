"""The dataset card (README.md) of a rendered dataset: YAML metadata the Hub and `datasets` read, and a body
that says what the rows are, how they were made and where the text came from."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


def _size_category(rows: int) -> str:
    for limit, label in _SIZE_CATEGORIES:
        if rows < limit:
            return label
    return "1M<n<10M" if rows < 10_000_000 else "n>10M"


def _hub_license(license_text: str | None) -> str:
    """The Hub accepts only license identifiers; anything descriptive goes to `other` plus the body."""
    if not license_text:
        return "unknown"
    first = license_text.split()[0].strip(";,()").lower()
    known = {"mit", "apache-2.0", "cc-by-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-sa-4.0", "cc0-1.0"}
    return first if first in known else "other"


def _dataset_info(splits: dict[str, Any], folder: Path) -> dict[str, Any]:
    """`dataset_info` as `push_to_hub` writes it: features and, per split, rows and bytes on disk.

    `datasets.load_dataset(folder)` hashes the card's `dataset_info` (with the `configs:` block, the data-file
    patterns it also hashes are the same for every folder), so these content-derived figures make its cache key
    follow the rows: a regenerated folder, or another folder of the same name, is not served from a stale cache.
    """
    from deepsynth_cli.data.rendered import local_shards
    from deepsynth_cli.data.shards import hf_features_yaml

    files = local_shards(folder)
    sizes = {name: sum(path.stat().st_size for path in files.get(name, [])) for name in splits}
    return {
        "features": hf_features_yaml(),
        "splits": [
            {"name": name, "num_bytes": sizes[name], "num_examples": int(split["rows"])}
            for name, split in splits.items()
        ],
        "download_size": sum(sizes.values()),
        "dataset_size": sum(sizes.values()),
    }


def card_text(manifest: dict[str, Any], folder: Path | None = None) -> str:
    """README.md for a dataset folder or repo, built from its manifest; with the `folder` holding the shards,
    its `dataset_info` records their rows and bytes (see `_dataset_info`)."""
    from huggingface_hub import DatasetCardData

    source = manifest.get("source", {})
    splits: dict[str, Any] = manifest.get("splits", {})
    total = sum(int(split["rows"]) for split in splits.values())
    language = source.get("language") or "und"
    render = manifest.get("render", {})
    extra: dict[str, Any] = {}
    if folder is not None:
        extra["dataset_info"] = _dataset_info(splits, folder)
    data = DatasetCardData(
        language=[language.split("-")[0]] if language != "und" else None,
        license=_hub_license(source.get("license")),
        task_categories=["summarization", "image-to-text"],
        size_categories=[_size_category(total)],
        source_datasets=[source["hub_id"]] if source.get("hub_id") else None,
        pretty_name=f"{manifest['dataset']} rendered by deepsynth",
        tags=["deepsynth", "optical-compression", "rendered-text"],
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": name, "path": f"data/{name}-*"} for name in splits],
            }
        ],
        deepsynth={
            "format_version": manifest.get("format_version"),
            "rows": {name: int(split["rows"]) for name, split in splits.items()},
            "render": render,
            "vision_tokens_per_page": manifest.get("model_geometry", {}).get("vision_tokens_per_page"),
        },
        **extra,
    )
    rows = "\n".join(
        f"| {name} | {split['rows']} | {split['pages']} | {split['truncated_rows']} | "
        f"{sum(split['skipped'].values())} | {split.get('compression') or '-'} | {split.get('missing_glyphs', '-')} |"
        for name, split in splits.items()
    )
    origin = source.get("hub_id") or source.get("name")
    citation = source.get("citation") or ""
    geometry = manifest.get("model_geometry", {}).get("vision_tokens_per_page")
    config = f" (config `{source['config']}`)" if source.get("config") else ""
    body = f"""
# {manifest["dataset"]}, rendered into page images

Each row holds a document's text rendered into square page images ({render.get("page_size")} px, lossless
{render.get("image_format", "png").upper()}, {render.get("font_size")} px Noto type), its reference summary and its
accounting. It was made by deepsynth (`{manifest.get("generator")}`) to fine-tune DeepSeek-OCR-2 to summarise
what it sees: {geometry} vision tokens per page.

Source: `{origin}`{config}, language `{language}`. Licence of the source: {source.get("license") or "see the source"}.
{_splits_origin(manifest.get("holdout"))}

| split | rows | pages | truncated rows | skipped rows | compression | characters with no glyph |
|---|---|---|---|---|---|---|
{rows}

Compression is the tokens of the text drawn on the pages per vision token.

Columns: `pages` (list of images), `text` (the whole document, also where the pages ran out), `summary`,
`language`, `source_dataset`, `source_split`, `source_id`, `num_pages`, `text_tokens` (tokens of the text drawn
on the pages), `vision_tokens`, `truncated`, `dropped_chars` (characters that did not fit in
{render.get("max_pages")} pages), `source_tokens` (tokens of the whole document) and `missing_glyphs` (drawn
characters no font could draw, shown as boxes).

```python
from datasets import load_dataset
ds = load_dataset("<this repo or folder>", split="train")
```

Rendering parameters:

```json
{json.dumps(render, indent=2, sort_keys=True)}
```
"""
    if citation:
        body += f"\n## Citation of the source\n\n```bibtex\n{citation.strip()}\n```\n"
    return f"---\n{data.to_yaml()}\n---\n{body}"


def _splits_origin(holdout: Mapping[str, Any] | None) -> str:
    """Where each split's rows come from: the source split of the same name, or the holdout's carving."""
    if not holdout:
        return (
            "Splits are kept apart: the rows of a split come only from the source split of the same name\n"
            "(`source_split` keeps the original name)."
        )
    shares = f"{holdout['validation']:.1%} validation and {holdout['test']:.1%} test"
    return (
        f"Validation and test were carved out of the source's train rows ({shares}) by a hash of each text\n"
        f"({holdout['key']}), so identical texts always share a split; `source_split` names the carved split."
    )
