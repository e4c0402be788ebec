"""The heap is given back when the server falls idle after work, not after every probe, and not mid-burst."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from deepsynth_cli.serving.memory import ReleaseWhenIdle


async def _work(request: Request) -> PlainTextResponse:
    await asyncio.sleep(float(request.query_params.get("hold", "0")))
    return PlainTextResponse("done")


def _app(min_interval_s: float = 0.2) -> ReleaseWhenIdle:
    inner = Starlette(routes=[Route("/work", _work, methods=["GET", "POST"])])
    return ReleaseWhenIdle(inner, idle_s=0.05, min_interval_s=min_interval_s)


def _client(app: ReleaseWhenIdle) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def _trimmed(app: ReleaseWhenIdle) -> bool:
    await asyncio.sleep(0.15)
    return app._running is not None and await app._running


def test_a_post_is_followed_by_one_trim_once_idle() -> None:
    async def scenario() -> None:
        app = _app()
        async with _client(app) as client:
            assert (await client.post("/work")).status_code == 200
        assert await _trimmed(app)  # glibc here: the trim ran and said so
        assert app.dirty is False

    asyncio.run(scenario())


def test_probes_alone_never_trim() -> None:
    async def scenario() -> None:
        app = _app()
        async with _client(app) as client:
            for _ in range(5):
                await client.get("/work")
        await asyncio.sleep(0.15)
        assert app._running is None and app.last == float("-inf")

    asyncio.run(scenario())


def test_no_trim_while_requests_are_in_flight_and_one_after_the_last() -> None:
    async def scenario() -> None:
        app = _app()
        async with _client(app) as client:
            short = asyncio.ensure_future(client.post("/work"))
            long = asyncio.ensure_future(client.post("/work", params={"hold": "0.3"}))
            await short
            await asyncio.sleep(0.15)  # past idle_s after the short one: the long one is still in flight
            assert app._running is None
            await long
        assert await _trimmed(app)

    asyncio.run(scenario())


def test_trims_are_spaced_by_the_minimum_interval() -> None:
    async def scenario() -> None:
        app = _app(min_interval_s=0.6)
        async with _client(app) as client:
            await client.post("/work")
            assert await _trimmed(app)
            first = app.last
            await client.post("/work")
            await asyncio.sleep(0.1)  # idle, but within min_interval_s of the first trim
            assert app.last == first
            await asyncio.sleep(0.6)
            assert app.last > first + 0.55  # the second trim waited for the interval (timers may fire a tick early)

    asyncio.run(scenario())
