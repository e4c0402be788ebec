"""The API's one error shape, `{"error": code, "message": ...}`, and the handlers that give every failure that shape
(and count it in `deepsynth_errors_total`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from deepsynth_cli.serving.inputs import InputError
from deepsynth_cli.serving.metrics import Metrics
from deepsynth_cli.serving.schemas import ErrorBody

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        401: "missing or wrong API key",
        413: "too large: body, text, image, PDF pages or number of texts",
        415: "unsupported file type (read from the bytes)",
        422: "invalid input: empty text, corrupt image, encrypted or malformed PDF, options out of bounds",
        503: "queue full (see Retry-After) or model not ready",
        504: "not answered within the request timeout",
    }.items()
}
"""The error answers every `/v1` route documents in the OpenAPI schema."""


class ApiError(Exception):
    """Raise from a route or dependency: answered with `status` and `{"error": code, "message": message}`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    """Every error the app answers goes through `answer`: one JSON shape, counted by code."""

    def answer(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
        metrics.errors.labels(code=code).inc()
        return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return answer(error.status, error.code, error.message, error.headers)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, error: InputError) -> JSONResponse:
        return answer(error.status, error.code, error.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        if request.scope.get("state", {}).get("body_refused"):
            return JSONResponse({"error": "bad_request", "message": "body refused"}, status_code=400)
        problems = error.errors()
        if any(item.get("type") == "json_invalid" for item in problems):
            return answer(422, "invalid_json", "the body is not valid JSON")
        return answer(422, "invalid_request", describe(problems))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if request.scope.get("state", {}).get("body_refused"):
            # The body limit broke the read (FastAPI answers 400): its own answer replaces this one, uncounted here.
            return JSONResponse({"error": "bad_request", "message": "body refused"}, status_code=400)
        if error.status_code == 400 and _is_json(request):
            # FastAPI answers 400 for a JSON body it cannot even decode (not UTF-8): to the client it is bad JSON.
            return answer(422, "invalid_json", "the body is not valid JSON in UTF-8")
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
        return answer(error.status_code, codes.get(error.status_code, "http_error"), str(error.detail), error.headers)

    # Any other exception: middleware.Guard (a handler for Exception here would let Starlette re-raise it to uvicorn,
    # which logs its text and closes the connection).


def _is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def describe(problems: Sequence[Any], prefix: str = "") -> str:
    """`field: what is wrong` per problem; never echoes the input itself."""
    parts = []
    for item in problems:
        loc = [str(part) for part in item.get("loc", ()) if part != "body"]
        where = ".".join([prefix, *loc] if prefix else loc) or "body"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts)
