"""The OpenAI-compatible face of `deepsynth serve`: `POST /v1/chat/completions` and `GET /v1/models`, so the `openai`
SDK, LiteLLM, LangChain and anything else that speaks the chat API can ask for summaries.

What a request means here: the last user turns hold the document. Page images (`image_url` parts: data URLs of
PNG, JPEG or WebP) and PDFs (an `image_url` or `file` part whose data URL holds a PDF) are the pages the model
reads; without pages, a `text/plain` data URL is the text, and without either the text parts are; the text is
rendered into pages exactly like the training data. Text beside pages or a text file is taken for an instruction
and not shown to the model: it answers with the instruction it was trained on. The server fetches nothing: an
`http(s)://` URL is refused. Pages past the model's page limit are not decoded (a PDF's are not rasterised), and
`limits.max_request_pixels` bounds the pixels of all the request's pages together.

The rest is the existing API's: the same limits, API key (`Authorization: Bearer`), micro-batcher, metrics and
status codes, with errors in the OpenAI shape `{"error": {"message", "type", "param", "code"}}` (the
`OpenAIErrorShape` middleware rewrites the shared handlers' answers on these paths; this module's own refusals are
written in that shape directly, naming the offending `param`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepsynth_cli.inference.options import GenerationOptions
from deepsynth_cli.inference.summarizer import PreparedPages
from deepsynth_cli.serving.deps import RequireApiKey, StateDep
from deepsynth_cli.serving.errors import ERRORS, ApiError, describe
from deepsynth_cli.serving.inputs import InputError, read_upload, sniff
from deepsynth_cli.serving.schemas import LANGUAGE, Language
from deepsynth_cli.serving.state import ServeState

PATHS = ("/v1/chat/completions", "/v1/models")
_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}


def error_type(status: int) -> str:
    """The OpenAI error `type` for an HTTP status."""
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}


class ChatError(Exception):
    """A refusal of this API, naming the request field at fault (`messages[0].content[1].image_url.url`)."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


# -- request and response bodies (the OpenAI chat completion schema, the fields deepsynth reads) -----------------


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """Fields of the OpenAI API that do not apply (tools, logprobs, penalties, ...) are accepted and ignored, as
    vLLM and SGLang do; `model` is not checked: the server has one model and names it in the answer."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = Field(None, description="0 or absent: greedy; above 0: sampling")
    top_p: float | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1, description="one answer per request")
    language: Language = LANGUAGE  # deepsynth's own field: the text's language, as in /v1/summarize


class Usage(BaseModel):
    prompt_tokens: int = Field(description="the whole prompt: the pages' vision tokens and the instruction")
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "deepsynth"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# -- reading the messages ----------------------------------------------------------------------------------------


class _Document:
    """What the messages hold: pages (images, PDF pages), text files, and text parts."""

    def __init__(self) -> None:
        self.pages: list[Image.Image] = []  # at most the model's page limit: later pages are not decoded
        self.pixels = 0
        self.files: list[str] = []
        self.texts: list[str] = []


def _kind(data: bytes) -> str | None:
    try:
        return sniff(data)
    except InputError:
        return None


def _data_url(url: Any, param: str) -> bytes:
    if not isinstance(url, str) or not url.startswith("data:"):
        raise ChatError(
            422,
            "unsupported_url",
            "only data: URLs are read (data:image/png;base64,...); the server fetches nothing",
            param,
        )
    header, comma, payload = url.partition(",")
    if not comma:
        raise ChatError(422, "invalid_data_url", "a data URL needs a comma before its data", param)
    if header.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ChatError(422, "invalid_data_url", "the data URL is not valid base64", param) from None
    return unquote_to_bytes(payload)


def _read_part(part: dict[str, Any], where: str, document: _Document, state: ServeState) -> None:
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise ChatError(422, "invalid_request", "a text part needs a string `text`", f"{where}.text")
        document.texts.append(text)
        return
    if kind == "image_url":
        image_url = part.get("image_url")
        url, param = (image_url.get("url") if isinstance(image_url, dict) else image_url), f"{where}.image_url.url"
    elif kind == "file":
        file = part.get("file")
        url, param = (file.get("file_data") if isinstance(file, dict) else None), f"{where}.file.file_data"
    else:
        raise ChatError(
            422,
            "unsupported_part",
            f"parts of type {kind!r} are not read: send text, image_url or file",
            f"{where}.type",
        )
    data = _data_url(url, param)
    limits, room = state.cfg.limits, state.model().max_pages - len(document.pages)
    if room <= 0 and _kind(data) != "text":  # the model reads no more pages: later ones are not decoded at all
        return
    try:
        upload = read_upload(data, limits, room)
    except InputError as error:
        raise ChatError(error.status, error.code, error.message, param) from None
    if upload.text is not None:
        document.files.append(upload.text)
        return
    document.pages.extend(upload.pages)
    document.pixels += upload.pixels
    if document.pixels > limits.max_request_pixels:  # the budget is per request, over all its parts
        raise ChatError(
            413,
            "too_many_pixels",
            f"the pages would be {document.pixels:,} pixels; the limit per request is {limits.max_request_pixels:,}: "
            "send fewer or smaller pages",
            param,
        )


def read_document(messages: Sequence[ChatMessage], state: ServeState) -> _Document:
    """The user messages' parts, decoded (call off the event loop: images decode, PDFs rasterise here)."""
    document = _Document()
    for index, message in enumerate(messages):
        if message.role != "user":  # system, developer, assistant: the model follows its own trained instruction
            continue
        if isinstance(message.content, str):
            document.texts.append(message.content)
            continue
        for number, part in enumerate(message.content or []):
            _read_part(part, f"messages[{index}].content[{number}]", document, state)
    return document


def _options(body: ChatRequest) -> GenerationOptions:
    values: dict[str, Any] = {}
    limit = body.max_completion_tokens or body.max_tokens
    if limit is not None:
        values["max_new_tokens"] = limit
    if body.temperature:  # 0 and None: greedy, the default for summaries
        values.update(do_sample=True, temperature=body.temperature, seed=body.seed)
        if body.top_p is not None:
            values["top_p"] = body.top_p
    try:
        return GenerationOptions.model_validate(values)
    except ValidationError as error:
        names = {"max_new_tokens": "max_tokens"}
        problems: list[dict[str, Any]] = [
            {**item, "loc": [names.get(str(loc), str(loc)) for loc in item["loc"]]} for item in error.errors()
        ]
        param = problems[0]["loc"][0] if problems and problems[0]["loc"] else None
        raise ChatError(422, "invalid_request", describe(problems), param) from None


# -- the routes --------------------------------------------------------------------------------------------------


def _refusal(state: ServeState, error: ChatError) -> JSONResponse:
    state.metrics.errors.labels(code=error.code).inc()
    return JSONResponse(error_body(error.status, error.code, error.message, error.param), status_code=error.status)


class ErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, not_found_error or server_error")
    param: str | None = Field(None, description="the request field at fault, when one is")
    code: str = Field(description="the stable code of the native routes: empty_text, corrupt_image, queue_full, ...")


class OpenAIError(BaseModel):
    error: ErrorDetail


_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {**answer, "model": OpenAIError} for status, answer in ERRORS.items()
}
router = APIRouter(prefix="/v1", dependencies=[RequireApiKey], responses=_RESPONSES, tags=["openai"])


@router.get("/models", response_model=ModelList, summary="The loaded model (OpenAI format)")
async def list_models(state: StateDep) -> ModelList:
    return ModelList(data=[ModelCard(id=state.model().model_id, created=int(time.time()))])


@router.get("/models/{model_id:path}", response_model=ModelCard, summary="One model (OpenAI format)")
async def get_model(model_id: str, state: StateDep) -> ModelCard | JSONResponse:
    loaded = state.model().model_id
    if model_id != loaded:
        return _refusal(state, ChatError(404, "model_not_found", f"this server serves {loaded!r} only", "model"))
    return ModelCard(id=loaded, created=int(time.time()))


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    summary="Summarise pages or a text (OpenAI chat completions; `stream: true` for server-sent events)",
)
async def chat_completions(body: ChatRequest, state: StateDep) -> Any:
    try:
        return await _complete(body, state)
    except ChatError as error:
        return _refusal(state, error)


async def _complete(body: ChatRequest, state: ServeState) -> Any:
    started = time.perf_counter()
    options = _options(body)
    summarizer = state.model()
    document = await run_in_threadpool(read_document, body.messages, state)
    prepared: PreparedPages
    if document.pages:
        prepared = await run_in_threadpool(state.prepare, document.pages)
    else:
        text = "\n\n".join(document.files or document.texts)
        try:
            state.check_text(text, "the text of the messages")
        except ApiError as error:
            raise ChatError(error.status, error.code, error.message, "messages") from None
        _, prepared, _ = await run_in_threadpool(state.text_pages, text, body.language)
    identity = f"chatcmpl-{uuid.uuid4().hex}"
    model_id, created = summarizer.model_id, int(time.time())
    if not body.stream:
        [done] = await state.generate([prepared], options, started)
        summary = done.summary
        return ChatCompletion(
            id=identity,
            created=created,
            model=model_id,
            choices=[Choice(message=AssistantMessage(content=summary.text), finish_reason=_finish(summary.finished))],
            usage=_usage(summary),
        )
    stream = _TokenStream(state, identity, created, model_id, body.stream_options)
    await stream.start(prepared, options, started)
    return StreamingResponse(
        stream.events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _finish(finished: bool) -> Literal["stop", "length"]:
    return "stop" if finished else "length"


def _usage(summary: Any) -> Usage:
    return Usage(
        prompt_tokens=summary.prompt_tokens,
        completion_tokens=summary.new_tokens,
        total_tokens=summary.prompt_tokens + summary.new_tokens,
    )


class _TokenStream:
    """One streamed answer: tokens arrive from the model thread, are decoded as they come and leave as OpenAI
    `chat.completion.chunk` events; `data: [DONE]` ends the stream."""

    def __init__(
        self, state: ServeState, identity: str, created: int, model: str, options: StreamOptions | None
    ) -> None:
        self.state, self.identity, self.created, self.model = state, identity, created, model
        self.include_usage = bool(options and options.include_usage)
        self.tokens: asyncio.Queue[int | None] = asyncio.Queue()
        self.task: asyncio.Task[Any] | None = None

    async def start(self, prepared: PreparedPages, options: GenerationOptions, started: float) -> None:
        """Queue the document. A refusal that comes at once (queue full, not ready) is raised here, before the
        stream starts, so that it is an HTTP error and not an event."""
        loop = asyncio.get_running_loop()
        tokens = self.tokens

        def hear(token: int) -> None:  # model thread
            with contextlib.suppress(RuntimeError):  # the event loop is closed (shutdown): nobody listens
                loop.call_soon_threadsafe(tokens.put_nowait, token)

        self.task = asyncio.create_task(self.state.generate([prepared], options, started, on_tokens=[hear]))
        self.task.add_done_callback(lambda _: tokens.put_nowait(None))  # after every token: same loop, FIFO
        await asyncio.sleep(0)  # the batcher's submit runs in the task's first step
        if self.task.done() and self.task.exception() is not None:
            raise self.task.exception()  # type: ignore[misc]

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, usage: Usage | None = None) -> str:
        payload: dict[str, Any] = {
            "id": self.identity,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [] if usage is not None else [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage is not None:
            payload["usage"] = usage.model_dump()
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    async def events(self) -> AsyncIterator[str]:
        assert self.task is not None
        tokenizer = self.state.model().processor.tokenizer
        ids: list[int] = []
        sent = ""
        try:
            yield self._chunk({"role": "assistant", "content": ""})
            while (token := await self.tokens.get()) is not None:
                ids.append(token)
                text = tokenizer.decode(ids, skip_special_tokens=True).lstrip()
                if text.startswith(sent) and len(text) > len(sent) and not text.endswith("\ufffd"):
                    yield self._chunk({"content": text[len(sent) :]})  # a partial UTF-8 character waits
                    sent = text
            try:
                [done] = self.task.result()
            except ApiError as error:  # after the stream started: an error event (the openai client raises it)
                self.state.metrics.errors.labels(code=error.code).inc()
                yield f"data: {json.dumps(error_body(error.status, error.code, error.message))}\n\n"
            else:
                summary = done.summary
                if summary.text.startswith(sent) and len(summary.text) > len(sent):
                    yield self._chunk({"content": summary.text[len(sent) :]})
                yield self._chunk({}, _finish(summary.finished))
                if self.include_usage:
                    yield self._chunk({}, usage=_usage(summary))
            yield "data: [DONE]\n\n"
        finally:
            self.task.cancel()  # no-op when done; when the client left, its queued document is dropped


class OpenAIErrorShape:
    """On the OpenAI paths, rewrites the shared error answers (`{"error": code, "message": ...}` from the app's
    handlers and from the size and key middleware) into the OpenAI shape; status, headers and code are kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PATHS):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def reshape(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message  # held until the body is complete
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            try:
                shared = json.loads(body)
            except ValueError:
                shared = None
            if isinstance(shared, dict) and isinstance(shared.get("error"), str):
                status = int(start["status"])
                body = json.dumps(error_body(status, shared["error"], str(shared.get("message", "")))).encode()
            headers = [(name, value) for name, value in start.get("headers", []) if name.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, reshape)
