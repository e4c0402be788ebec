"""Pure ASGI middleware: the request size limit (enforced before the body is read), the per-request metrics and
access log (request id, method, route, status and time only: never a header, a query string or a body), and the
last guard against an unexpected exception."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepsynth_cli.serving.metrics import Metrics

access_log = logging.getLogger("deepsynth.serve.access")
log = logging.getLogger("deepsynth.serve")


async def send_json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = []) -> None:  # noqa: B006
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class _BodyRefusedError(Exception):
    """Raised into the app's body read: the body is refused (too large, too slow, too many reads at once)."""


class BodyLimit:
    """What a request body may cost before the app sees it, each answered with connection close and counted:

    - 413 `too_large` over `limit` bytes: from Content-Length when the app first asks for the body (so after
      routing, before any of the body is read), or as soon as the streamed body passes the limit (chunked
      uploads, or a client that lies), without reading the rest;
    - 408 `body_timeout` when the whole body has not arrived within `timeout_s` of its first read (a slow client
      holds a connection and a buffer for as long as it likes otherwise);
    - 503 `busy` (Retry-After) when `max_reads` bodies are already being received.
    """

    def __init__(
        self, app: ASGIApp, limit: int, metrics: Metrics, timeout_s: float = 15.0, max_reads: int = 64
    ) -> None:
        self.app = app
        self.limit = limit
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.max_reads = max_reads
        self.reading = 0  # bodies being received now (one event loop: no lock needed)

    def _too_large(self) -> tuple[int, dict[str, str], list[tuple[bytes, bytes]]]:
        body = {"error": "too_large", "message": f"request body over the limit of {self.limit:,} bytes"}
        return 413, body, []

    async def _refuse(self, send: Send, refusal: tuple[int, dict[str, str], list[tuple[bytes, bytes]]]) -> None:
        status, body, headers = refusal
        self.metrics.errors.labels(code=body["error"]).inc()
        await send_json(send, status, body, [*headers, (b"connection", b"close")])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        try:
            declared_bytes = int(declared) if declared is not None else None
        except ValueError:
            self.metrics.errors.labels(code="bad_request").inc()
            await send_json(send, 400, {"error": "bad_request", "message": "invalid Content-Length"})
            return
        received = 0
        refusal: tuple[int, dict[str, str], list[tuple[bytes, bytes]]] | None = None
        started = False
        deadline: float | None = None
        holding = False  # this request counts in self.reading

        def release() -> None:
            nonlocal holding
            if holding:
                holding = False
                self.reading -= 1

        def refuse(why: tuple[int, dict[str, str], list[tuple[bytes, bytes]]]) -> _BodyRefusedError:
            nonlocal refusal
            refusal = why
            scope.setdefault("state", {})["body_refused"] = True  # the app's own error for the read is not counted
            release()
            return _BodyRefusedError()

        async def capped_receive() -> Message:
            nonlocal received, deadline, holding
            if refusal is not None:
                raise _BodyRefusedError
            loop = asyncio.get_running_loop()
            if deadline is None:  # the first read of the body: after routing (the metrics name the route)
                if declared_bytes is not None and declared_bytes > self.limit:
                    raise refuse(self._too_large())  # from the header alone: nothing of the body is read
                if self.reading >= self.max_reads:
                    text = f"{self.reading} uploads are being received: try again shortly"
                    raise refuse((503, {"error": "busy", "message": text}, [(b"retry-after", b"1")]))
                self.reading += 1
                holding = True
                deadline = loop.time() + self.timeout_s
            if not holding:  # the body is in; later reads wait for the client to disconnect
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except TimeoutError:
                text = f"the request body did not arrive within {self.timeout_s:g} s"
                raise refuse((408, {"error": "body_timeout", "message": text}, [])) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise refuse(self._too_large())
                if not message.get("more_body", False):
                    release()  # the whole body is in: it no longer counts as a read in progress
            else:
                release()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal is not None and not started:
                return  # the app's own answer to the broken read (FastAPI says 400); ours follows
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, guarded_send)
        except _BodyRefusedError:
            pass
        except Exception:
            if refusal is None:
                raise
        finally:
            release()
        if refusal is not None and not started:
            await self._refuse(send, refusal)


class Observe:
    """Counts and times every request by route template (not raw path: no unbounded label values), logs one line,
    and gives each request an id (`x-request-id`, in the log line) that ties a client's report to the log."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await Guard(self.app, self.metrics, request_id)(scope, receive, watch)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route=route, status=str(status)).inc()
            self.metrics.latency.labels(route=route).observe(seconds)
            access_log.info("%s %s %s %d %.1f ms", request_id, scope["method"], route, status, seconds * 1000)


class Guard:
    """An exception nothing else handled becomes a 500 `internal` here, logged as its type and the request id only:
    its message and arguments can hold the request's text (pybind11's "Invoked with: ..." does). It is not re-raised,
    so neither Starlette nor uvicorn logs a traceback, and uvicorn keeps the connection open for the next request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, request_id: str) -> None:
        self.app, self.metrics, self.request_id = app, metrics, request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as error:
            log.error("unexpected %s in request %s", type(error).__name__, self.request_id)
            self.metrics.errors.labels(code="internal").inc()
            if not started:
                message = f"internal error (request {self.request_id})"
                await send_json(send, 500, {"error": "internal", "message": message})
