"""Pure ASGI middleware: the request size limit (enforced before the body is read), the per-request metrics and
access log (request id, method, route, status and time only: never a header, a query string or a body), and the
last guard against an unexpected exception."""

from __future__ import annotations

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


class _BodyTooLargeError(Exception):
    pass


class BodyLimit:
    """413 for a body over `limit` bytes: at once from Content-Length, or as soon as the streamed body passes the
    limit (chunked uploads, or a client that lies), without reading the rest."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _refuse(self) -> dict[str, str]:
        return {"error": "too_large", "message": f"request body over the limit of {self.limit:,} bytes"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.limit
            except ValueError:
                await send_json(send, 400, {"error": "bad_request", "message": "invalid Content-Length"})
                return
            if too_large:
                await send_json(send, 413, self._refuse(), [(b"connection", b"close")])
                return
        received = 0
        over = False
        started = False

        async def capped_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    over = True
                    raise _BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the app's own answer to the broken read (FastAPI says 400); ours follows
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, guarded_send)
        except _BodyTooLargeError:
            pass
        except Exception:
            if not over:
                raise
        if over and not started:
            await send_json(send, 413, self._refuse(), [(b"connection", b"close")])


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
