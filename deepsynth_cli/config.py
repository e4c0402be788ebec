"""Job configs: typed, loaded from YAML (`--config FILE`) and overridden by command-line flags.

Precedence, lowest to highest (README "Configuration"): built-in defaults < environment and `.env`
(`Settings`) < the YAML file < command-line flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deepsynth_cli.data.holdout import check_fractions, parse_fractions
from deepsynth_cli.errors import ConfigError
from deepsynth_cli.settings import Settings


class _Strict(BaseModel):
    # A typo in a YAML key must fail loudly, not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RenderConfig(_Strict):
    """How text becomes pages. The defaults fit DeepSeek-OCR-2's 1024 px global view (256 vision tokens)."""

    page_size: int = Field(1024, ge=128, le=4096, description="square page side in pixels")
    font_size: float = Field(18.0, ge=6, le=96, description="font size in pixels")
    line_height: float = Field(1.3, ge=1.0, le=3.0, description="line spacing as a multiple of font_size")
    margin: int = Field(24, ge=0, le=512, description="page margin in pixels")
    paragraph_spacing: float = Field(0.5, ge=0, le=4, description="gap between paragraphs, in lines")
    max_pages: int = Field(4, ge=1, le=64, description="page budget per document; the rest is counted as dropped")
    image_format: Literal["png", "webp"] = Field("png", description="lossless encoding of the pages")
    png_compress_level: int = Field(1, ge=0, le=9, description="zlib level: 1 is fast, 9 is small")
    font_dirs: list[Path] = Field(default_factory=list, description="extra folders of .ttf/.otf fonts")
    target_compression: float | None = Field(
        None, gt=0, le=100, description="pick font_size: full pages carry ~X text tokens per vision token"
    )


class HubConfig(_Strict):
    """How shards travel to the Hub: pre-uploaded by each part, committed in batches at a bounded rate (the Hub
    rate-limits commits per repo), retried with backoff."""

    commit_every: int = Field(8, ge=1, le=1000, description="commit when this many shards wait")
    commit_interval_s: float = Field(120.0, ge=0, description="commit what is ready at least this often")
    max_commits_per_hour: float = Field(
        60.0, gt=0, le=3600, description="at most this many commits an hour (the Hub allows 128 per repo)"
    )
    attempts: int = Field(6, ge=1, le=50, description="tries per commit on transient errors")
    backoff_s: float = Field(2.0, ge=0, le=600, description="first retry delay, doubled each time")
    timeout_s: float = Field(120.0, gt=0, le=3600, description="give up on a stalled network operation after this")


MAX_TEXT_CHARS = 1_000_000
"""Default per-document size limit of `generate` (and of the texts in an `eval --predictions` file): 1 M
characters, about 200 pages of 1024 px at 18 px (4,700 characters a page), 50x the default page budget. A row over
it is skipped as `text_too_long`."""


class GenerateConfig(_Strict):
    """`deepsynth generate`: which documents to render and where the shards go."""

    datasets: list[str] = Field(default_factory=lambda: ["aclsum"], min_length=1)
    splits: list[str] | None = Field(None, description="source splits to render (default: all)")
    max_samples: int | None = Field(None, ge=1, description="first N source rows of each split")
    out: Path | None = Field(None, description="output root (default: DEEPSYNTH_DATA_DIR)")
    text_column: str | None = None
    summary_column: str | None = None
    language: str | None = Field(None, description="language code for files and Hub ids without one")
    num_workers: int | None = Field(None, ge=1, le=256, description="render processes (default: DEEPSYNTH_NUM_WORKERS)")
    num_shards: int = Field(1, ge=1, le=99999, description="split the work across this many machines")
    shard_index: int = Field(0, ge=0, description="this machine's part, 0 <= shard_index < num_shards")
    executor: Literal["local", "ray"] = Field(
        "local", description="local: this machine's part here; ray: every part as a Ray task (deepsynth[ray])"
    )
    ray_address: str | None = Field(
        None, description="Ray cluster to join (an address or 'auto'); default: start a local Ray on 127.0.0.1"
    )
    num_workers_per_task: int = Field(1, ge=1, le=256, description="render processes in each Ray task")
    rows_per_shard: int = Field(1000, ge=1, le=1_000_000, description="source rows per Parquet file")
    language_column: str | None = Field(
        None, description="column with each row's language (files and Hub ids: `language`/`lang` are used when present)"
    )
    min_text_words: int = Field(10, ge=1, description="shorter texts are skipped and counted (data/lengths.py)")
    min_summary_words: int = Field(2, ge=1, description="shorter summaries are skipped and counted")
    max_text_chars: int = Field(
        MAX_TEXT_CHARS, ge=1, description="longer documents are skipped and counted (text_too_long), never rendered"
    )
    holdout: tuple[float, float] | None = Field(
        None, description="VAL,TEST: carve validation and test out of a local train file, by a hash of each text"
    )
    tokenizer: str = Field("deepseek", description="'deepseek' (shipped BPE) or a tokenizer.json / its folder")
    store: Literal["auto", "local", "hub"] | None = Field(None, description="default: DEEPSYNTH_STORE")
    repo_id: str | None = Field(None, description="Hub dataset repo (default: {HF_USERNAME}/deepsynth-{dataset})")
    private: bool = Field(False, description="create the Hub repo private")
    hub: HubConfig = Field(default_factory=lambda: HubConfig())
    preview: Path | None = Field(None, description="only write PNGs of the first documents here, no shards")
    preview_docs: int = Field(3, ge=1, le=1000, description="documents per split shown by --preview")
    render: RenderConfig = Field(default_factory=RenderConfig)

    @field_validator("holdout", mode="before")
    @classmethod
    def _holdout_from_text(cls, value: Any) -> Any:
        return parse_fractions(value)

    @field_validator("holdout")
    @classmethod
    def _holdout_fractions(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        return None if value is None else check_fractions(value)

    @model_validator(mode="after")
    def _consistent(self) -> GenerateConfig:
        if self.shard_index >= self.num_shards:
            raise ValueError(f"shard_index {self.shard_index} must be below num_shards {self.num_shards}")
        if self.executor == "ray" and self.shard_index != 0:
            raise ValueError("shard_index picks one machine's part; with executor ray every part runs: drop it")
        if self.repo_id is not None and len(self.datasets) > 1:
            raise ValueError("repo_id names one repo: give one dataset per run, or drop repo_id")
        return self

    def resolved(self, settings: Settings) -> GenerateConfig:
        """Fill what the environment decides (output root, workers) so the run records real values."""
        return self.model_copy(
            update={
                "out": self.out or settings.data_dir,
                "num_workers": self.num_workers or settings.num_workers,
                "store": self.store or settings.store,
            }
        )


C = TypeVar("C", bound=BaseModel)


def set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in nested dicts, creating sections as needed (flags override YAML this way)."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = target.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted}: {part} is not a section", hint="check the key")
        target = node
    target[leaf] = value


def _describe(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{where}: {item['msg']}")
    return f"invalid configuration in {source}: " + "; ".join(lines)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}", hint="check the path given to --config") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8", hint="save it as UTF-8") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}", hint="fix the YAML syntax") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys", hint="see configs/ for examples")
    return data


def load_config(cls: type[C], path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> C:
    """Build a job config from defaults, an optional YAML file and flag overrides (dotted keys; None = unset).

    Every problem is reported at once, with the field path and what is wrong.
    """
    data: dict[str, Any] = read_yaml(path) if path else {}
    for key, value in (overrides or {}).items():
        if value is not None:
            set_dotted(data, key, value)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        source = str(path) if path else "command-line options"
        hint = "fix the listed fields (see `deepsynth COMMAND --help`)"
        raise ConfigError(_describe(exc, source), hint=hint) from exc
