"""The OpenAI-compatible routes with the real `openai` client against the real uvicorn server on 127.0.0.1, around
the tiny model (random weights: the summaries are noise, but the same noise whichever route asks, which is what
these tests compare)."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from deepsynth_cli.inference.summarizer import Summarizer
from deepsynth_cli.serving.app import create_app
from deepsynth_cli.serving.config import ServeConfig
from deepsynth_cli.settings import Settings
from tests.unit.serving import uploads

openai = pytest.importorskip("openai")

KEY = "dsk-openai-test-key-0123456789"
TEXT = "The city council approved the new tram line on Monday after a long debate about its cost. " * 6
FAST = 6  # max_tokens: enough to see several streamed chunks, little enough to stay fast on a busy CPU


@dataclass
class Served:
    url: str

    def client(self, key: str = KEY) -> Any:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=120)

    def native(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", headers={"Authorization": f"Bearer {KEY}"}, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def served(summarizer: Summarizer) -> Iterator[Served]:
    import uvicorn

    cfg = ServeConfig.model_validate({"model": "tiny", "batching": {"max_wait_ms": 200, "max_batch_size": 8}})
    app = create_app(summarizer, cfg, Settings(api_key=KEY))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-openai-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(30)


def _data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _page_png(summarizer: Summarizer) -> bytes:
    page = summarizer.render(TEXT).pages[0]
    if isinstance(page, bytes):
        return page
    buffer = io.BytesIO()
    page.save(buffer, format="PNG")
    return buffer.getvalue()


def _user(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "You summarise."}, {"role": "user", "content": list(parts)}]


def test_models_lists_the_loaded_model(served: Served, summarizer: Summarizer) -> None:
    models = served.client().models.list()
    assert [model.id for model in models.data] == [summarizer.model_id]
    assert served.client().models.retrieve(summarizer.model_id).owned_by == "deepsynth"
    with pytest.raises(openai.NotFoundError):
        served.client().models.retrieve("gpt-4o")


def test_a_text_is_rendered_and_summarised_like_the_native_route(served: Served, summarizer: Summarizer) -> None:
    answer = served.client().chat.completions.create(
        model="deepsynth", messages=[{"role": "user", "content": TEXT}], max_tokens=FAST
    )
    native = served.native("/v1/summarize", json={"text": TEXT, "options": {"max_new_tokens": FAST}}).json()
    [choice] = answer.choices
    assert choice.message.role == "assistant" and choice.message.content == native["summary"]
    assert choice.finish_reason == ("stop" if native["finished"] else "length")
    assert answer.model == summarizer.model_id and answer.object == "chat.completion"
    usage = answer.usage
    assert usage is not None and usage.completion_tokens == native["new_tokens"]
    assert usage.prompt_tokens > native["vision_tokens"] > 0  # the pages' vision tokens and the instruction
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    # The same text as a text/plain data URL (instruction text beside it is not shown to the model).
    as_file = served.client().chat.completions.create(
        model="deepsynth",
        messages=_user(
            {"type": "text", "text": "Summarise this file."},
            {"type": "file", "file": {"file_data": _data_url(TEXT.encode(), "text/plain"), "filename": "a.txt"}},
        ),
        max_tokens=FAST,
    )
    assert as_file.choices[0].message.content == native["summary"]


def test_an_image_page_and_a_pdf(served: Served, summarizer: Summarizer) -> None:
    png = _page_png(summarizer)
    answer = served.client().chat.completions.create(
        model="deepsynth",
        messages=_user(
            {"type": "text", "text": "Summarise this page."},
            {"type": "image_url", "image_url": {"url": _data_url(png, "image/png")}},
        ),
        max_tokens=FAST,
    )
    native = served.native(
        "/v1/summarize/file", files={"file": ("p.png", png)}, data={"options": f'{{"max_new_tokens": {FAST}}}'}
    )
    assert answer.choices[0].message.content == native.json()["summary"]
    pdf = uploads.pdf(2, size=(200, 280))
    by_image_url = served.client().chat.completions.create(
        model="deepsynth",
        messages=_user({"type": "image_url", "image_url": {"url": _data_url(pdf, "application/pdf")}}),
        max_tokens=FAST,
    )
    native_pdf = served.native(
        "/v1/summarize/file", files={"file": ("d.pdf", pdf)}, data={"options": f'{{"max_new_tokens": {FAST}}}'}
    ).json()
    assert native_pdf["pages_used"] == 2
    assert by_image_url.choices[0].message.content == native_pdf["summary"]
    assert by_image_url.usage is not None and by_image_url.usage.prompt_tokens > native_pdf["vision_tokens"]
    assert answer.usage is not None and by_image_url.usage.prompt_tokens > answer.usage.prompt_tokens  # 2 pages > 1


def test_streaming_sends_the_same_summary_token_by_token(served: Served) -> None:
    messages = [{"role": "user", "content": TEXT}]
    plain = served.client().chat.completions.create(model="deepsynth", messages=messages, max_tokens=FAST)
    chunks = list(
        served.client().chat.completions.create(
            model="deepsynth", messages=messages, max_tokens=FAST, stream=True, stream_options={"include_usage": True}
        )
    )
    deltas = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    assert "".join(deltas) == plain.choices[0].message.content
    assert len(deltas) >= 2, "tokens arrive as they are generated, not as one piece at the end"
    assert chunks[0].choices[0].delta.role == "assistant"
    finishing = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert finishing == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == plain.usage.model_dump() if plain.usage else False
    raw = httpx.post(
        f"{served.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"messages": messages, "max_tokens": 2, "stream": True},
        timeout=120,
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [line for line in raw.text.splitlines() if line]
    assert all(line.startswith("data: ") for line in events) and events[-1] == "data: [DONE]"


def test_streamed_and_plain_requests_share_batches(served: Served) -> None:
    texts = [f"Report {index}. " + TEXT for index in range(4)]

    def ask(index: int) -> str:
        messages = [{"role": "user", "content": texts[index]}]
        if index % 2:
            stream = served.client().chat.completions.create(model="d", messages=messages, max_tokens=FAST, stream=True)
            return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        answer = served.client().chat.completions.create(model="d", messages=messages, max_tokens=FAST)
        return answer.choices[0].message.content or ""

    before = _metric(served, "deepsynth_batch_size_count")
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(ask, range(4)))
    batches = _metric(served, "deepsynth_batch_size_count") - before
    assert batches < 4, "four requests within max_wait share model calls"
    alone = [ask(index) for index in range(4)]
    assert together == alone


def _metric(served: Served, name: str, labels: str = "") -> float:
    text = httpx.get(f"{served.url}/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=30).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_bad_requests_get_openai_shaped_errors(served: Served) -> None:
    client = served.client()
    with pytest.raises(openai.UnprocessableEntityError) as remote:
        client.chat.completions.create(
            model="d", messages=_user({"type": "image_url", "image_url": {"url": "https://example.com/page.png"}})
        )
    error = remote.value.body
    assert remote.value.status_code == 422
    assert error == {
        "message": "only data: URLs are read (data:image/png;base64,...); the server fetches nothing",
        "type": "invalid_request_error",
        "param": "messages[1].content[0].image_url.url",
        "code": "unsupported_url",
    }
    with pytest.raises(openai.UnprocessableEntityError) as corrupt:
        client.chat.completions.create(
            model="d",
            messages=_user(
                {"type": "image_url", "image_url": {"url": _data_url(b"\x89PNG\r\n\x1a\nbroken", "image/png")}}
            ),
        )
    assert corrupt.value.body["code"] == "corrupt_image"  # the native routes' code, in the OpenAI shape
    with pytest.raises(openai.UnprocessableEntityError) as too_long:
        client.chat.completions.create(model="d", messages=[{"role": "user", "content": "x"}], max_tokens=5000)
    assert too_long.value.body["param"] == "max_tokens" and too_long.value.body["code"] == "invalid_request"
    with pytest.raises(openai.UnprocessableEntityError) as empty:
        client.chat.completions.create(model="d", messages=[{"role": "user", "content": "   "}])
    assert empty.value.body["code"] == "empty_text"
    # A body FastAPI refuses before the route runs (no messages): the shared handler's answer, reshaped.
    raw = httpx.post(
        f"{served.url}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"}, json={"model": "d"}, timeout=30
    )
    assert raw.status_code == 422
    assert raw.json()["error"]["type"] == "invalid_request_error" and raw.json()["error"]["code"] == "invalid_request"
    assert "messages" in raw.json()["error"]["message"]
    assert _metric(served, "deepsynth_errors_total", 'code="unsupported_url"') >= 1
    assert _metric(served, "deepsynth_requests_total", 'route="/v1/chat/completions",status="422"') >= 5
    # The native routes keep their own shape.
    native = served.native("/v1/summarize", json={"text": " "}).json()
    assert native == {"error": "empty_text", "message": "the text is empty"}


def test_a_missing_or_wrong_key_is_refused(served: Served) -> None:
    with pytest.raises(openai.AuthenticationError) as wrong:
        served.client("dsk-wrong").chat.completions.create(model="d", messages=[{"role": "user", "content": TEXT}])
    assert wrong.value.status_code == 401
    assert wrong.value.body["type"] == "authentication_error" and wrong.value.body["code"] == "unauthorized"
    with pytest.raises(openai.AuthenticationError):
        served.client("dsk-wrong").models.list()
    missing = httpx.get(f"{served.url}/v1/models", timeout=30)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    assert missing.headers["www-authenticate"] == "Bearer"
    missing_post = httpx.post(f"{served.url}/v1/chat/completions", json={"messages": []}, timeout=30)
    assert missing_post.status_code == 401 and missing_post.json()["error"]["type"] == "authentication_error"
    assert KEY not in missing_post.text + missing.text + str(wrong.value.body)


def test_a_full_queue_is_refused_before_the_stream_starts(make_client: Any) -> None:
    """503 with Retry-After as an HTTP answer (not an event), in the OpenAI shape, for streamed requests too."""
    with make_client(batching={"max_queue": 1, "max_batch_size": 1}) as test_client:
        client = openai.OpenAI(base_url="http://testserver/v1", api_key="-", http_client=test_client, max_retries=0)
        state = test_client.app.state.serve
        slow = threading.Thread(
            target=lambda: test_client.post("/v1/summarize", json={"text": TEXT, "options": {"max_new_tokens": 200}})
        )
        slow.start()
        deadline = time.monotonic() + 20
        while state.batcher.depth < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        with pytest.raises(openai.InternalServerError) as busy:
            client.chat.completions.create(model="d", messages=[{"role": "user", "content": TEXT}], stream=True)
        slow.join(60)
        assert busy.value.status_code == 503 and int(busy.value.response.headers["retry-after"]) >= 1
        assert busy.value.body["code"] == "queue_full" and busy.value.body["type"] == "server_error"


def test_a_timeout_after_the_stream_started_is_an_error_event(make_client: Any) -> None:
    with make_client(batching={"request_timeout_s": 0.05}) as test_client:
        client = openai.OpenAI(base_url="http://testserver/v1", api_key="-", http_client=test_client, max_retries=0)
        stream = client.chat.completions.create(
            model="d", messages=[{"role": "user", "content": TEXT}], max_tokens=300, stream=True
        )
        with pytest.raises(openai.APIError, match="not answered within"):
            list(stream)
        assert 'deepsynth_errors_total{code="timeout"} 1.0' in test_client.get("/metrics").text


def test_pages_beyond_the_models_limit_are_not_read(served: Served, summarizer: Summarizer) -> None:
    page = {"type": "image_url", "image_url": {"url": _data_url(_page_png(summarizer), "image/png")}}
    broken = {"type": "image_url", "image_url": {"url": _data_url(b"\x89PNG\r\n\x1a\nbroken", "image/png")}}
    at_limit = served.client().chat.completions.create(
        model="d", messages=_user(*[page] * summarizer.max_pages), max_tokens=1
    )
    beyond = served.client().chat.completions.create(
        model="d", messages=_user(*[page] * summarizer.max_pages, broken), max_tokens=1
    )
    assert at_limit.usage is not None and beyond.usage is not None
    assert beyond.usage.prompt_tokens == at_limit.usage.prompt_tokens  # the extra part was never decoded
