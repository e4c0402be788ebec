"""The HTTP API on a real tiny model: every endpoint, every bad input, auth on and off, no secret anywhere."""

from __future__ import annotations

import base64
import hmac
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PIL import Image

from deepsynth_cli.settings import Settings
from tests.unit.serving.uploads import encoded, encrypted_pdf, pdf, png, png_claiming

TEXT = "The committee met on Tuesday to discuss the budget. " * 12
FAST = {"max_new_tokens": 4}
API_KEY = "dsk-0123456789abcdef-not-a-real-key"
HF_TOKEN = "test-hub-token-not-real-0123456789"  # a sentinel: the test checks it never leaks


def summarize(client: Any, text: str = TEXT, **extra: Any) -> Any:
    return client.post("/v1/summarize", json={"text": text, "options": FAST, **extra})


def upload(client: Any, data: bytes, name: str = "upload.bin", **form: Any) -> Any:
    fields = {"options": json.dumps(FAST), **form}
    return client.post("/v1/summarize/file", files={"file": (name, data, "application/octet-stream")}, data=fields)


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["message"]


# -- endpoints ------------------------------------------------------------------------------------------------------


def test_health_ready_model_and_docs(make_client: Callable[..., Any]) -> None:
    with make_client(batching={"max_batch_size": 4}) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready", "model_id": "tiny"}
        info = client.get("/v1/model").json()
        assert info["model_id"] == "tiny" and info["preset"]["vision_tokens_per_page"] == 145
        assert info["render"]["page_size"] == 256 and info["max_pages"] == 3  # the settings text is rendered with
        assert info["batching"]["max_batch_size"] == 4 and info["limits"]["max_pdf_pages"] == 16
        paths = client.get("/openapi.json").json()["paths"]
        for path in ("/v1/summarize", "/v1/summarize/file", "/v1/summarize/batch", "/v1/model", "/healthz"):
            assert path in paths
        assert "GenerationOptions" in json.dumps(client.get("/openapi.json").json()["components"])
        assert "swagger-ui" in client.get("/docs").text


def test_docs_load_nothing_from_the_internet(make_client: Callable[..., Any]) -> None:
    import re

    with make_client() as client:
        page = client.get("/docs").text
        urls = re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r"url: '([^']+)'", page)
        assert len(urls) >= 4 and all(url.startswith("/") for url in urls), urls
        assert "http://" not in page and "https://" not in page and "validator.swagger.io" not in page
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200 and response.content, url
        script = client.get("/docs/assets/swagger-ui-bundle.js")
        assert script.headers["content-type"].startswith("text/javascript") and b"SwaggerUIBundle" in script.content
        assert_error(client.get("/docs/assets/..%2Fconsts.py"), 404, "not_found")


def test_summarize_text_renders_like_training_and_reports_cost(make_client: Callable[..., Any]) -> None:
    with make_client() as client:
        response = summarize(client, language="en", return_pages=True)
        assert response.status_code == 200, response.text
        body = response.json()
        expected = client.app.state.serve.render(TEXT, "en")  # the model's renderer and render settings
        assert body["pages_rendered"] == len(expected.pages) == body["pages_used"]
        assert [base64.b64decode(page) for page in body["page_images"]] == expected.pages
        assert body["vision_tokens"] == 145 * body["pages_used"]
        assert body["text_tokens"] > 0 and body["compression"] == round(body["text_tokens"] / body["vision_tokens"], 3)
        assert body["summary"] and 0 < body["new_tokens"] <= 4
        timing = body["timing"]
        assert timing["batch_size"] == 1 and timing["total_ms"] >= timing["generate_ms"] > 0
        assert summarize(client).json()["page_images"] is None  # pages only when asked


def test_text_tokens_count_what_the_pages_show_not_what_was_dropped(make_client: Callable[..., Any]) -> None:
    from deepsynth_cli.data.tokens import TextTokenCounter

    long_text = " ".join(f"Item {n} of the budget was approved." for n in range(3000))
    with make_client() as client:
        body = client.post("/v1/summarize", json={"text": long_text, "options": FAST}).json()
        drawn = client.app.state.serve.render(long_text, "und").drawn_text
    counter = TextTokenCounter()
    assert body["dropped_chars"] > 0 and body["text_tokens"] == counter.count(drawn) < counter.count(long_text) / 2
    assert body["compression"] == round(body["text_tokens"] / body["vision_tokens"], 3)


def test_batch_summarizes_each_text_in_one_model_call(make_client: Callable[..., Any]) -> None:
    with make_client(batching={"max_batch_size": 8, "max_wait_ms": 50}) as client:
        texts = ["First memo about trains.", TEXT, "Third one, in a few words."]
        response = client.post("/v1/summarize/batch", json={"texts": texts, "options": FAST})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert len(results) == 3 and all(item["summary"] for item in results)
        assert [item["timing"]["batch_size"] for item in results] == [3, 3, 3]
        assert results[1]["text_tokens"] > results[0]["text_tokens"]


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "WEBP"])
def test_file_image_is_one_page(make_client: Callable[..., Any], kind: str) -> None:
    with make_client() as client:
        response = upload(client, encoded(kind, (300, 400)), name="scan.pdf", return_pages="true")  # name ignored
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["pages_rendered"], body["vision_tokens"], body["compression"]) == (1, 145, None)
        [page] = body["page_images"]
        assert Image.open(io.BytesIO(base64.b64decode(page))).size == (300, 400)


def test_file_pdf_and_text(make_client: Callable[..., Any]) -> None:
    with make_client() as client:
        body = upload(client, pdf(pages=5), name="report.pdf", return_pages="true").json()
        assert (body["pages_rendered"], body["pages_used"], body["pages_dropped"]) == (5, 3, 2)  # model limit: 3
        assert len(body["page_images"]) == 3 and body["notice"] is None  # only the pages read are rasterised
        locked = upload(client, encrypted_pdf(empty_password=True), name="locked.pdf").json()
        assert locked["summary"] and "empty password" in locked["notice"]
        text = upload(client, TEXT.encode(), name="notes.md", language="en").json()
        assert text["text_tokens"] > 0 and text["pages_rendered"] >= 1 and text["summary"]


# -- bad input ------------------------------------------------------------------------------------------------------


def test_bad_json_requests(make_client: Callable[..., Any]) -> None:
    with make_client(limits={"max_text_chars": 1000, "max_batch_texts": 2}) as client:
        assert_error(summarize(client, text="   \n "), 422, "empty_text")
        assert_error(client.post("/v1/summarize", json={"language": "en"}), 422, "invalid_request")
        assert_error(client.post("/v1/summarize", content=b"{not json", headers=_json()), 422, "invalid_json")
        assert_error(summarize(client, text="x" * 1001), 413, "text_too_long")
        assert_error(summarize(client, colour="red"), 422, "invalid_request")  # unknown field
        assert_error(summarize(client, language="<script>"), 422, "invalid_request")
        for options, field in [
            ({"max_new_tokens": 0}, "max_new_tokens"),
            ({"max_new_tokens": 100_000}, "max_new_tokens"),
            ({"num_beams": 64}, "num_beams"),
            ({"temperature": 0}, "temperature"),
            ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size"),
            ({"repetition_penalty": 5}, "repetition_penalty"),
            ({"num_beams": 2, "do_sample": True}, "not both"),
            ({"top_k": 5}, "top_k"),
        ]:
            response = client.post("/v1/summarize", json={"text": TEXT, "options": options})
            assert_error(response, 422, "invalid_request")
            assert field in response.json()["message"]
        batch = client.post("/v1/summarize/batch", json={"texts": ["a", "b", "c"]})
        assert_error(batch, 413, "too_many_texts")
        assert_error(client.post("/v1/summarize/batch", json={"texts": []}), 422, "invalid_request")
        assert_error(client.post("/v1/summarize/batch", json={"texts": ["ok", " "]}), 422, "empty_text")
        assert "text 1" in client.post("/v1/summarize/batch", json={"texts": ["ok", ""]}).json()["message"]
        assert_error(client.get("/v1/summarize"), 405, "method_not_allowed")
        assert_error(client.get("/v1/nothing-here"), 404, "not_found")
        assert client.get("/readyz").status_code == 200  # still serving


def test_invalid_unicode_and_undecodable_json_are_422(
    make_client: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "do-not-log-this-sentence"
    with make_client() as client:
        lone = json.dumps({"text": f"{secret} \ud800 {TEXT}", "options": FAST})  # valid JSON: an escaped surrogate
        assert "\\ud800" in lone
        response = client.post("/v1/summarize", content=lone, headers=_json())
        assert_error(response, 422, "invalid_unicode")
        batch = {"texts": ["fine", f"{secret} \udfff"], "options": FAST}
        response = client.post("/v1/summarize/batch", content=json.dumps(batch), headers=_json())
        assert_error(response, 422, "invalid_unicode")
        assert "text 1" in response.json()["message"]
        latin1 = f'{{"text": "caf\xe9 {secret}"}}'.encode("latin-1")  # not UTF-8
        assert_error(client.post("/v1/summarize", content=latin1, headers=_json()), 422, "invalid_json")
        surrogate_bytes = b'{"text": "\xed\xa0\x80 two words"}'  # a surrogate encoded as if UTF-8 (CESU-8)
        assert_error(client.post("/v1/summarize", content=surrogate_bytes, headers=_json()), 422, "invalid_unicode")
        assert summarize(client).status_code == 200
    assert secret not in caplog.text


def test_language_codes_are_the_ones_eval_scores(make_client: Callable[..., Any]) -> None:
    with make_client() as client:
        for language in ("xx", "qq-Latn", "english"):
            response = summarize(client, language=language)
            assert_error(response, 422, "invalid_request")
            assert "language" in response.json()["message"]
        assert_error(upload(client, TEXT.encode(), language="xx"), 422, "invalid_request")
        for language in ("und", "fr", "zh-Hans", "sr_Latn", "pcm"):
            assert summarize(client, language=language).status_code == 200, language


def test_an_unexpected_exception_is_a_500_with_only_its_type_logged(
    make_client: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A route that fails in a way nobody planned: the client gets the JSON error shape with a request id, the log
    gets the exception's type and that id, never its message (which can hold the request's text)."""
    caplog.set_level(logging.DEBUG)
    secret = "the-text-of-the-request-0123"
    with make_client() as client:

        async def boom() -> None:
            raise TypeError(f"render(): incompatible arguments. Invoked with: {secret}")

        client.app.add_api_route("/boom", boom, methods=["GET"])
        response = client.get("/boom")  # TestClient re-raises what reaches the server: here nothing does
        assert_error(response, 500, "internal")
        request_id = response.headers["x-request-id"]
        assert request_id in response.json()["message"]
        assert client.get("/healthz").status_code == 200
        assert 'deepsynth_errors_total{code="internal"} 1.0' in client.get("/metrics").text
    assert f"unexpected TypeError in request {request_id}" in caplog.text
    assert secret not in caplog.text and "Invoked with" not in caplog.text


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 422, "empty_file"),
        (b"\x00\x01\x02binary\xff\xfe", 415, "unsupported_file"),
        (png()[:50], 422, "corrupt_image"),
        (png_claiming(60_000, 60_000), 413, "image_too_large"),
        (encrypted_pdf(), 422, "encrypted_pdf"),
        (b"%PDF-1.4\n1 0 obj <<>> garbage", 422, "malformed_pdf"),
        (pdf(pages=17), 413, "too_many_pages"),
        (b"  \n\t ", 422, "empty_text"),
    ],
    ids=["empty", "binary", "corrupt", "bomb", "encrypted", "malformed", "too-many-pages", "blank-text"],
)
def test_bad_files(make_client: Callable[..., Any], data: bytes, status: int, code: str) -> None:
    with make_client() as client:
        # The client's name and Content-Type say PNG; the bytes decide.
        response = client.post("/v1/summarize/file", files={"file": ("page.png", data, "image/png")})
        assert_error(response, status, code)
        assert client.get("/readyz").status_code == 200


def test_bad_file_requests(make_client: Callable[..., Any]) -> None:
    with make_client() as client:
        assert_error(client.post("/v1/summarize/file", data={"language": "en"}), 422, "invalid_request")  # no file
        assert_error(upload(client, png(), options="{max_new_tokens"), 422, "invalid_options")
        response = upload(client, png(), options=json.dumps({"num_beams": 99}))
        assert_error(response, 422, "invalid_options")
        assert "options.num_beams" in response.json()["message"]
        assert_error(upload(client, b"some text", language="../x"), 422, "invalid_request")


def test_body_size_limit_before_reading_the_body(make_client: Callable[..., Any]) -> None:
    with make_client(limits={"max_request_bytes": 4096}) as client:
        declared = client.post("/v1/summarize", content=b"x" * 5000, headers=_json())
        assert_error(declared, 413, "too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted while the body streams in
            for _ in range(64):
                yield b"y" * 1024

        multipart = {"content-type": "multipart/form-data; boundary=b0undary"}
        streamed = client.post("/v1/summarize/file", content=chunks(), headers=multipart)
        assert_error(streamed, 413, "too_large")
        assert_error(client.post("/v1/summarize", content=chunks(), headers=_json()), 413, "too_large")
        assert_error(upload(client, png(200, 200) + b"\x00" * 5000), 413, "too_large")
        assert summarize(client, text="small enough").status_code == 200
        metrics = client.get("/metrics").text
        assert 'deepsynth_errors_total{code="too_large"} 4.0' in metrics  # refused before routing, still counted
        assert (
            'deepsynth_requests_total{route="/v1/summarize",status="413"} 2.0' in metrics
        )  # by route, not "unmatched"
        assert 'deepsynth_requests_total{route="/v1/summarize/file",status="413"} 2.0' in metrics
        assert 'route="unmatched"' not in metrics


# -- batching, queue and timeouts ------------------------------------------------------------------------------------


def _in_threads(calls: list[Callable[[], Any]]) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_concurrent_requests_share_batches_by_options(make_client: Callable[..., Any]) -> None:
    with make_client(batching={"max_batch_size": 4, "max_wait_ms": 1000}) as client:
        other = {"max_new_tokens": 3}
        calls = [lambda: summarize(client) for _ in range(4)]
        calls += [lambda: client.post("/v1/summarize", json={"text": TEXT, "options": other}) for _ in range(2)]
        responses = _in_threads(calls)
        assert all(response.status_code == 200 for response in responses)
        sizes = [response.json()["timing"]["batch_size"] for response in responses]
        assert max(sizes[:4]) > 1  # same options grouped
        assert all(size <= 2 for size in sizes[4:])  # different options never join the others' batch
        assert [r.json()["new_tokens"] <= 3 for r in responses[4:]] == [True, True]
        metrics = client.get("/metrics").text
        assert 'deepsynth_requests_total{route="/v1/summarize",status="200"} 6.0' in metrics
        assert "deepsynth_batch_size_count" in metrics and "deepsynth_queue_depth 0.0" in metrics


def test_full_queue_answers_503_with_retry_after(make_client: Callable[..., Any]) -> None:
    with make_client(batching={"max_queue": 1, "max_batch_size": 1}) as client:
        state = client.app.state.serve
        slow = threading.Thread(
            target=lambda: client.post("/v1/summarize", json={"text": TEXT, "options": {"max_new_tokens": 200}})
        )
        slow.start()
        deadline = time.monotonic() + 20
        while state.batcher.depth < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        response = summarize(client)
        slow.join(60)
        assert_error(response, 503, "queue_full")
        assert int(response.headers["retry-after"]) >= 1
        assert summarize(client).status_code == 200  # room again once the slow one is done
        assert 'deepsynth_errors_total{code="queue_full"} 1.0' in client.get("/metrics").text


def test_request_timeout_answers_504_and_frees_the_queue(make_client: Callable[..., Any]) -> None:
    with make_client(batching={"request_timeout_s": 0.05}) as client:
        response = client.post("/v1/summarize", json={"text": TEXT, "options": {"max_new_tokens": 300}})
        assert_error(response, 504, "timeout")
        state = client.app.state.serve
        deadline = time.monotonic() + 30
        while state.batcher.depth and time.monotonic() < deadline:
            time.sleep(0.01)
        assert state.batcher.depth == 0 and client.get("/readyz").status_code == 200


# -- security -------------------------------------------------------------------------------------------------------


def test_auth_off_by_default(make_client: Callable[..., Any]) -> None:
    with make_client() as client:
        assert summarize(client).status_code == 200
        assert client.get("/metrics").status_code == 200


def test_api_key_is_required_and_compared_in_constant_time(
    make_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    monkeypatch.setenv("DEEPSYNTH_API_KEY", API_KEY)
    good = {"Authorization": f"Bearer {API_KEY}"}
    with make_client(settings=Settings()) as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": API_KEY},
            {"Authorization": "Basic x"},
        ):
            response = client.post("/v1/summarize", json={"text": TEXT, "options": FAST}, headers=headers)
            assert_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
        for path in ("/v1/model", "/metrics", "/openapi.json", "/docs"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers=good).status_code == 200, path
        batch = client.post("/v1/summarize/batch", json={"texts": ["a"]})
        assert_error(batch, 401, "unauthorized")
        assert_error(upload(client, png()), 401, "unauthorized")
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
        assert client.get("/").status_code == 200  # the page is public; its API calls carry the key
        assert client.post("/v1/summarize", json={"text": TEXT, "options": FAST}, headers=good).status_code == 200
        assert (b"wrong", API_KEY.encode()) in compared and (API_KEY.encode(), API_KEY.encode()) in compared
    with make_client(settings=Settings(), public_docs=True) as client:
        assert client.get("/openapi.json").status_code == 200 and client.get("/v1/model").status_code == 401


def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(
    summarizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a key set, a POST without it gets 401 from the headers alone: the server never receives the body."""
    import asyncio

    from deepsynth_cli.serving.app import create_app
    from deepsynth_cli.serving.config import ServeConfig

    monkeypatch.setenv("DEEPSYNTH_API_KEY", API_KEY)
    app = create_app(summarizer, ServeConfig.model_validate({"model": "tiny"}), Settings())
    body_reads: list[int] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        body_reads.append(1)
        return {"type": "http.request", "body": b"x" * 1000, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for authorization in ([], [(b"authorization", b"Bearer wrong")]):
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/summarize/file",
            "raw_path": b"/v1/summarize/file",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"content-type", b"multipart/form-data; boundary=x"),
                (b"content-length", b"1000"),
                *authorization,
            ],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 8000),
        }
        sent.clear()
        asyncio.run(app(scope, receive, send))
        assert sent[0]["status"] == 401 and json.loads(sent[1]["body"])["error"] == "unauthorized"
    assert body_reads == []


def test_no_secret_in_any_response_or_log(
    make_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DEEPSYNTH_API_KEY", API_KEY)
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    caplog.set_level(logging.DEBUG)
    good = {"Authorization": f"Bearer {API_KEY}"}
    seen: list[str] = []
    with make_client(settings=Settings()) as client:
        assert client.app.state.serve  # the settings with both secrets were given to the app
        requests: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", path, {})
            for path in ("/", "/healthz", "/readyz", "/v1/model", "/metrics", "/openapi.json", "/docs")
        ]
        requests += [
            ("POST", "/v1/summarize", {"json": {"text": TEXT, "options": FAST, "return_pages": True}}),
            ("POST", "/v1/summarize", {"json": {"text": " "}}),
            ("POST", "/v1/summarize", {"json": {"text": TEXT, "options": {"num_beams": 0}}}),
            ("POST", "/v1/summarize/batch", {"json": {"texts": ["one", "two"], "options": FAST}}),
            ("POST", "/v1/summarize/file", {"files": {"file": ("a.pdf", encrypted_pdf(), "application/pdf")}}),
            (
                "POST",
                "/v1/summarize/file",
                {"files": {"file": ("a.png", png(), "image/png")}, "data": {"options": "{"}},
            ),
            ("GET", "/missing", {}),
        ]
        for method, path, kwargs in requests:
            for headers in (good, {}, {"Authorization": f"Bearer {HF_TOKEN}"}):
                response = client.request(method, path, headers=headers, **kwargs)
                seen.append(response.text)
                seen.extend(f"{name}: {value}" for name, value in response.headers.items())
    everything = "\n".join(seen) + "\n" + caplog.text
    assert "POST /v1/summarize 200" in caplog.text  # the access log ran
    for secret in (API_KEY, HF_TOKEN):
        assert secret not in everything


def test_cors_is_off_unless_configured(make_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    preflight = {"Origin": "https://app.example.org", "Access-Control-Request-Method": "POST"}
    with make_client() as client:
        assert "access-control-allow-origin" not in client.options("/v1/summarize", headers=preflight).headers
        assert "access-control-allow-origin" not in client.get("/healthz", headers=preflight).headers
    monkeypatch.setenv("DEEPSYNTH_CORS_ORIGINS", '["https://app.example.org"]')
    with make_client(settings=Settings()) as client:
        allowed = client.options("/v1/summarize", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.org"
        other = client.options("/v1/summarize", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_page_is_self_contained(make_client: Callable[..., Any]) -> None:
    with make_client() as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert 'id="text"' in page.text and 'id="file"' in page.text and "/v1/summarize/file" in page.text
        assert "http://" not in page.text and "https://" not in page.text  # nothing loaded from elsewhere
        assert page.headers["x-content-type-options"] == "nosniff"


def _json() -> dict[str, str]:
    return {"content-type": "application/json"}


def test_model_folder_loads_in_the_lifespan_with_its_render_settings(summarizer: Any, tmp_path: Any) -> None:
    """A folder written by `deepsynth train` carries its render settings: the server renders text with them."""
    from fastapi.testclient import TestClient

    from deepsynth_cli.config import RenderConfig
    from deepsynth_cli.inference.summarizer import Summarizer, save_render_config
    from deepsynth_cli.models.presets import save_model
    from deepsynth_cli.serving.app import create_app
    from deepsynth_cli.serving.config import ServeConfig

    folder = save_model(summarizer.model, summarizer.processor, summarizer.info, tmp_path / "model")
    trained = RenderConfig(page_size=320, font_size=13, margin=10, max_pages=2)
    save_render_config(folder, trained)
    loads: list[str] = []

    def load() -> Summarizer:
        loads.append(str(folder))
        return Summarizer.load(str(folder), device="cpu")

    app = create_app(load, ServeConfig(model=str(folder)), Settings())
    assert loads == []  # nothing loads before start-up
    with TestClient(app) as client:
        info = client.get("/v1/model").json()
        assert info["render_source"] == "checkpoint" and info["render"]["page_size"] == 320 and info["max_pages"] == 2
        body = summarize(client, return_pages=True).json()
        page = Image.open(io.BytesIO(base64.b64decode(body["page_images"][0])))
        assert page.size == (320, 320)
    assert loads == [str(folder)]  # once


def test_readyz_and_the_api_say_when_the_model_thread_is_gone(make_client: Callable[..., Any]) -> None:
    with make_client() as client:
        client.app.state.serve.batcher.stop()
        response = client.get("/readyz")
        assert response.status_code == 503 and response.json() == {"status": "not_ready"}
        assert client.get("/healthz").status_code == 200  # alive, not ready
        assert_error(summarize(client), 503, "not_ready")
