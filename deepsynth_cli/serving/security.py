"""The API key: one check (`ApiKey.allows`), used twice. `KeyGate` refuses a keyless POST from its headers alone,
before the body is read; the `require_api_key` dependency (serving.deps) checks every protected route and puts
the Bearer scheme in the OpenAPI schema."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from deepsynth_cli.serving.metrics import Metrics
from deepsynth_cli.serving.middleware import send_json
from deepsynth_cli.settings import Settings

UNAUTHORIZED = {
    "error": "unauthorized",
    "message": "missing or wrong API key: send the header Authorization: Bearer <key>",
}
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def bearer_matches(authorization: str | None, expected: bytes) -> bool:
    """Whether an Authorization header carries `Bearer <expected>`, compared in constant time: how long the check
    takes must not tell how much of a guess was right."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    return hmac.compare_digest(given.strip().encode("utf-8"), expected)


class ApiKey:
    """`DEEPSYNTH_API_KEY`, or none (then everything is allowed)."""

    def __init__(self, key: str | None) -> None:
        self._expected = key.encode("utf-8") if key else None

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKey:
        return cls(settings.api_key.get_secret_value() if settings.api_key is not None else None)

    @property
    def required(self) -> bool:
        return self._expected is not None

    def allows(self, authorization: str | None) -> bool:
        """Whether a request with this Authorization header may pass."""
        return self._expected is None or bearer_matches(authorization, self._expected)


class KeyGate:
    """401 for a request with a body to a protected path, before the body is read: without it an unauthenticated
    client could make the server receive and parse uploads up to the size limit (FastAPI reads the body before it
    runs the route's dependencies). The route dependency still checks every request (and documents the scheme)."""

    def __init__(self, app: ASGIApp, key: ApiKey, metrics: Metrics, prefix: str = "/v1/") -> None:
        self.app = app
        self.key = key
        self.metrics = metrics
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in {"POST", "PUT", "PATCH"}
            and scope["path"].startswith(self.prefix)
        ):
            header = dict(scope.get("headers", [])).get(b"authorization")
            if not self.key.allows(header.decode("latin-1") if header else None):
                self.metrics.errors.labels(code="unauthorized").inc()
                await send_json(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
                return
        await self.app(scope, receive, send)
