"""Request and response bodies of the API (they are its OpenAPI schema at /docs)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from deepsynth_cli.inference.options import GenerationOptions

LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$"
UNDETERMINED = "und"


def check_language(language: str) -> str:
    """`und` (undetermined), or a tag `eval` can score (evaluation.language): serve and eval accept the same codes,
    so a summary served for a language can be scored in it."""
    if language == UNDETERMINED:
        return language
    from deepsynth_cli.errors import ConfigError
    from deepsynth_cli.evaluation.language import language_spec

    try:
        language_spec(language)
    except ConfigError as error:
        raise ValueError(f"{error.message}: use a BCP-47 tag such as fr, en, zh-Hans or sr-Cyrl, or und") from None
    return language


Language = Annotated[str, AfterValidator(check_language)]
LANGUAGE = Field(
    "und",
    min_length=2,
    max_length=16,
    pattern=LANGUAGE_PATTERN,
    description="language code of the text (fr, en, ar, zh, ...): picks the fonts and text direction",
)
RETURN_PAGES = Field(False, description="also return the page images the model saw, as base64 PNG")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SummarizeRequest(_Request):
    text: str = Field(..., description="the document; it is rendered into pages exactly as the training data was")
    language: Language = LANGUAGE
    options: GenerationOptions = Field(default_factory=GenerationOptions, description="decoding settings")
    return_pages: bool = RETURN_PAGES


class BatchRequest(_Request):
    texts: list[str] = Field(..., min_length=1, description="the documents, each summarised on its own")
    language: Language = LANGUAGE
    options: GenerationOptions = Field(default_factory=GenerationOptions, description="decoding settings")
    return_pages: bool = RETURN_PAGES


class Timing(BaseModel):
    render_ms: float = Field(description="text into pages (or decoding the uploaded file), and the processor")
    queue_ms: float = Field(description="waiting for a batch to start")
    generate_ms: float = Field(description="the model call of the whole batch")
    total_ms: float = Field(description="the request, end to end")
    batch_size: int = Field(description="documents that shared the model call")


class SummaryResult(BaseModel):
    summary: str
    pages_rendered: int = Field(description="pages the document became (text) or was given as (file)")
    pages_used: int = Field(description="pages the model read (its page limit)")
    pages_dropped: int = Field(description="pages beyond the model's limit, not read")
    dropped_chars: int = Field(0, description="characters of text that did not fit the render's page budget")
    vision_tokens: int = Field(description="image positions the pages cost in the prompt")
    text_tokens: int | None = Field(None, description="tokens of the text drawn on the pages (text input only)")
    compression: float | None = Field(None, description="text_tokens / vision_tokens (text input only)")
    new_tokens: int = Field(description="tokens generated")
    finished: bool = Field(description="the summary ended on its own, before max_new_tokens")
    logprob: float | None = Field(None, description="mean log-probability per generated token")
    timing: Timing
    page_images: list[str] | None = Field(
        None, description="base64 PNG of each page the model read, when return_pages was set"
    )
    notice: str | None = Field(None, description="how the input was read, when the client should know (files)")


class BatchResult(BaseModel):
    results: list[SummaryResult]
    total_ms: float


class ModelInfo(BaseModel):
    model_id: str
    preset: dict[str, Any] = Field(description="image size, vision tokens per page, prompt")
    device: str
    max_pages: int
    render: dict[str, Any] = Field(description="the renderer settings text is rendered with")
    render_source: str = Field(description="checkpoint: saved with the model; default: the built-in settings")
    batching: dict[str, Any]
    limits: dict[str, Any]


class ErrorBody(BaseModel):
    error: str = Field(description="a stable code: empty_text, unsupported_file, corrupt_image, ...")
    message: str = Field(description="what was wrong, in words")
