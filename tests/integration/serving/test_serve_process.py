"""The real `deepsynth serve --model tiny` in its own process on a loopback port: a burst of concurrent good and
bad requests, the size limit on a raw socket, and the page at / driven by headless Chromium."""

from __future__ import annotations

import io
import json
import random
import shutil
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.integration.serving.live import API_KEY, Server, serve

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TEXT = "The city council approved the new tram line on Monday after a long debate. " * 8
FAST = {"max_new_tokens": 6}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("serve"), "--max-batch-size", "8", "--max-wait-ms", "20") as running:
        yield running


def _png(size: tuple[int, int] = (320, 420)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "white").save(buffer, format="PNG")
    return buffer.getvalue()


def _pdf(pages: int) -> bytes:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument.new()
    for _ in range(pages):
        document.new_page(300, 400)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _file(data: bytes, options: dict[str, Any] = FAST) -> dict[str, Any]:
    return {"files": {"file": ("upload", data, "application/octet-stream")}, "data": {"options": json.dumps(options)}}


def test_burst_of_good_and_bad_requests(server: Server) -> None:
    post = "/v1/summarize"
    good: list[tuple[str, dict[str, Any]]] = [
        (post, {"json": {"text": f"{n}. {TEXT}", "options": FAST}}) for n in range(8)
    ]
    good += [
        (post, {"json": {"text": TEXT, "language": "fr", "options": {"max_new_tokens": 3}, "return_pages": True}}),
        ("/v1/summarize/batch", {"json": {"texts": ["One short memo.", TEXT, "Third."], "options": FAST}}),
        ("/v1/summarize/file", _file(_png())),
        ("/v1/summarize/file", _file(_pdf(2))),
        ("/v1/summarize/file", _file(TEXT.encode())),
    ]
    bad: list[tuple[str, dict[str, Any]]] = [
        (post, {"json": {"text": "   "}}),
        (post, {"content": b"{broken", "headers": {"content-type": "application/json"}}),
        (post, {"json": {"text": TEXT, "options": {"num_beams": 100}}}),
        (post, {"json": {"text": TEXT, "options": {"max_new_tokens": 0}}}),
        (post, {"json": {"text": TEXT, "unknown": 1}}),
        (post, {"json": {"text": "x" * 300_000}}),
        ("/v1/summarize/batch", {"json": {"texts": ["a"] * 40}}),
        ("/v1/summarize/file", _file(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)),
        ("/v1/summarize/file", _file(bytes(range(256)))),
        ("/v1/summarize/file", _file(b"%PDF-1.5\nnot a pdf at all")),
        ("/v1/summarize/file", _file(_pdf(20))),
        ("/v1/summarize/file", _file(_png(), options={"temperature": -1})),
    ]
    requests = [(path, kwargs, True) for path, kwargs in good] + [(path, kwargs, False) for path, kwargs in bad]
    random.Random(0).shuffle(requests)  # good and bad arrive interleaved

    with httpx.Client(base_url=server.url, headers=server.auth, timeout=120) as client:

        def send(item: tuple[str, dict[str, Any], bool]) -> tuple[int, bool, str]:
            path, kwargs, ok = item
            response = client.post(path, **kwargs)
            return response.status_code, ok, response.text[:200]

        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(send, requests))
        unauthorised = client.post(post, json={"text": TEXT}, headers={"Authorization": "Bearer nope"})

        assert unauthorised.status_code == 401
        for status, ok, body in answers:
            assert status < 500, body
            assert (status == 200) if ok else (400 <= status < 500), (status, ok, body)
        assert sum(ok for _, ok, _ in answers) == len(good)
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
        after = client.post(post, json={"text": TEXT, "options": FAST})
        assert after.status_code == 200 and after.json()["summary"]
        metrics = client.get("/metrics").text
        batched = [line for line in metrics.splitlines() if line.startswith("deepsynth_batch_size_count")]
        assert batched and 'status="5' not in metrics


def test_content_length_over_the_limit_is_refused_before_the_body(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(
            b"POST /v1/summarize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 900000000\r\nAuthorization: Bearer " + API_KEY.encode() + b"\r\n\r\n"
        )
        answer = b""
        while chunk := raw.recv(4096):  # no body sent: the answer must not wait for it (and closes)
            answer += chunk
        text = answer.decode(errors="replace")
    assert text.startswith("HTTP/1.1 413") and '"error": "too_large"' in text


def _exchange(raw: socket.socket, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on an open connection and its whole answer (read by Content-Length)."""
    raw.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = raw.recv(4096)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = raw.recv(65536)
        assert chunk, "the server closed the connection mid-answer"
        body += chunk
    return int(status_line.split()[1]), headers, body


def _post(path: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nAuthorization: Bearer {API_KEY}\r\n\r\n"
    ).encode() + body


def test_invalid_unicode_is_a_422_and_the_keep_alive_connection_survives(server: Server) -> None:
    """The lone surrogate of the report, on one raw keep-alive connection to the real uvicorn: 422 each time, the
    same connection then serves a good request, and no part of the text reaches the server's log."""
    secret = "sentence-that-must-never-reach-the-log"
    lone = json.dumps({"text": f"{secret} \ud800", "options": FAST}).encode()  # ASCII JSON with an escape
    latin1 = f'{{"text": "caf\xe9 {secret}"}}'.encode("latin-1")
    good = json.dumps({"text": TEXT, "options": FAST}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as raw:
        for body, code in [(lone, "invalid_unicode"), (latin1, "invalid_json"), (lone, "invalid_unicode")]:
            status, headers, answer = _exchange(raw, _post("/v1/summarize", body))
            assert (status, json.loads(answer)["error"]) == (422, code)
            assert headers.get("connection", "keep-alive") != "close"
        status, _, answer = _exchange(raw, _post("/v1/summarize", good))
        assert status == 200 and json.loads(answer)["summary"]
    log = server.log.read_text(errors="replace")
    assert secret not in log and "Traceback" not in log and "Invoked with" not in log


def test_page_in_headless_chromium(server: Server, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed: apt-get install -y chromium")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) is not installed")
    if shutil.which(str(CHROMIUM)) is None:
        pytest.skip("chromium is not executable: apt-get install -y chromium")
    page_png = tmp_path / "scan.png"
    page_png.write_bytes(_png((400, 520)))
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            page.fill("#key", API_KEY)
            page.fill("#max_new_tokens", "6")
            page.fill("#text", TEXT)
            page.click("#submit")
            page.wait_for_selector("#pages img", timeout=60_000)
            assert page.inner_text("#error") == ""
            assert page.inner_text("#summary").strip()
            assert "vision tokens" in page.inner_text("#stats")
            width = page.eval_on_selector("#pages img", "img => img.naturalWidth")
            assert width == 1024  # the page the model read, as rendered for training (default render settings)

            page.set_input_files("#file", str(page_png))  # a dropped or chosen file goes to /v1/summarize/file
            page.click("#submit")
            page.wait_for_selector("#pages img", timeout=60_000)  # the click cleared the previous result
            assert page.eval_on_selector("#pages img", "img => img.naturalWidth") == 400
            assert page.inner_text("#summary").strip() and page.inner_text("#error") == ""

            page.fill("#key", "wrong-key")
            page.fill("#text", TEXT)
            page.click("#submit")
            playwright.expect(page.locator("#error")).to_contain_text("401", timeout=30_000)
        finally:
            browser.close()
