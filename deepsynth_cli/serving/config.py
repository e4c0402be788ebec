"""`ServeConfig`: what `deepsynth serve` runs and the limits it enforces (YAML via --config, flags override)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from deepsynth_cli.config import _Strict, load_config


class BatchingConfig(_Strict):
    """Micro-batching: requests with the same generation options that arrive close together share one `generate`."""

    max_batch_size: int = Field(16, ge=1, le=256, description="documents per model call (1: no batching)")
    max_wait_ms: float = Field(
        10.0, ge=0, le=5000, description="how long the first document of a batch waits for others to join"
    )
    max_queue: int = Field(
        128, ge=1, le=100_000, description="documents waiting or running; beyond it requests get 503 + Retry-After"
    )
    request_timeout_s: float = Field(120.0, gt=0, le=3600, description="a request not answered by then gets 504")


class LimitsConfig(_Strict):
    """What one request may ask for. Over a limit: 413 (too large) or 422 (invalid), never a crash."""

    max_request_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="whole request body, uploads included")
    body_timeout_s: float = Field(
        15.0, gt=0, le=3600, description="the whole body must arrive within this time of its first byte, else 408"
    )
    max_body_reads: int = Field(64, ge=1, le=100_000, description="bodies received at once; more get 503 busy")
    max_text_chars: int = Field(200_000, ge=1, description="characters of one text")
    max_batch_texts: int = Field(16, ge=1, le=1024, description="texts in one /v1/summarize/batch request")
    max_image_pixels: int = Field(
        40_000_000, ge=10_000, description="pixels of one image or rasterised PDF page (decompression-bomb guard)"
    )
    max_request_pixels: int = Field(
        64_000_000,
        ge=10_000,
        description="pixels of all the pages one upload is read as (a PDF's first max_pages), checked before drawing",
    )
    max_pdf_pages: int = Field(16, ge=1, le=1000, description="pages of one PDF; longer PDFs are refused")
    pdf_dpi: float = Field(
        96.0, ge=36, le=300, description="PDF rasterisation: 96 dpi puts an A4 page at 794 x 1123 px"
    )


class ServeConfig(_Strict):
    """`deepsynth serve`: which model, where to listen, batching and limits."""

    model: str | None = Field(
        None, min_length=1, description="preset (tiny, deepseek-ocr-2), model folder or Hub id (or --model)"
    )
    host: str = Field("127.0.0.1", description="interface to bind; anything but loopback exposes the API")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port)")
    device: str = Field("auto", description="auto (GPU when available), cpu, cuda, cuda:1, ...")
    max_pages: int | None = Field(None, ge=1, le=64, description="pages shown to the model (default: the render's)")
    torch_threads: int | None = Field(None, ge=1, le=512, description="CPU threads for the model (default: torch's)")
    public_docs: bool = Field(
        False, description="serve /docs and /openapi.json without the API key (they hold no data and no secret)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="server log level")
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)


def load_serve_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> ServeConfig:
    """Defaults < YAML (`--config`) < flags (dotted keys, None = not given)."""
    return load_config(ServeConfig, path, overrides)
