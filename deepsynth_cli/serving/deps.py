"""FastAPI dependencies for the shared state of one app: use them in any router.

    @router.post("/v1/something", dependencies=[RequireApiKey])
    async def something(state: StateDep, summarizer: SummarizerDep, cfg: ConfigDep) -> ...

`create_app` puts the `ServeState` at `app.state.serve` and the `ApiKey` at `app.state.api_key`; these read them
from the request's app, so several apps in one process (as in tests) never share state.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from deepsynth_cli.inference.summarizer import Summarizer
from deepsynth_cli.serving.config import ServeConfig
from deepsynth_cli.serving.errors import ApiError
from deepsynth_cli.serving.metrics import Metrics
from deepsynth_cli.serving.security import CHALLENGE, UNAUTHORIZED, ApiKey
from deepsynth_cli.serving.state import ServeState


def get_state(request: Request) -> ServeState:
    state: ServeState = request.app.state.serve
    return state


StateDep = Annotated[ServeState, Depends(get_state)]


def get_summarizer(state: StateDep) -> Summarizer:
    """The loaded model, or 503 `not_ready` before it is."""
    return state.model()


SummarizerDep = Annotated[Summarizer, Depends(get_summarizer)]


def get_config(state: StateDep) -> ServeConfig:
    return state.cfg


ConfigDep = Annotated[ServeConfig, Depends(get_config)]


def get_metrics(state: StateDep) -> Metrics:
    return state.metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]

_BEARER = HTTPBearer(auto_error=False, description="DEEPSYNTH_API_KEY, when the server has one")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


def _check_key(request: Request) -> None:
    key: ApiKey = request.app.state.api_key
    if not key.allows(request.headers.get("authorization")):
        raise ApiError(401, UNAUTHORIZED["error"], UNAUTHORIZED["message"], dict(CHALLENGE))


async def require_api_key(request: Request, credentials: BearerDep) -> None:
    """No-op without a key; with one, `Authorization: Bearer <key>` or 401 (the Bearer scheme shows in /docs)."""
    _check_key(request)


async def require_docs_key(request: Request, cfg: ConfigDep) -> None:
    """`/docs` and `/openapi.json`: the API key unless `public_docs`."""
    if not cfg.public_docs:
        _check_key(request)


RequireApiKey = Depends(require_api_key)
RequireDocsKey = Depends(require_docs_key)
