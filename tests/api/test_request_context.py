"""Every answer carries a request id, the caller's or a new one, bound to the log context."""

from __future__ import annotations

import httpx
import structlog
from fastapi import FastAPI

from fxcrm.api.errors import Problem, install_error_handlers
from fxcrm.api.request_context import RequestContextMiddleware


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.get("/context")
    async def context() -> dict[str, str]:
        return {k: str(v) for k, v in structlog.contextvars.get_contextvars().items()}

    @app.get("/refused")
    async def refused() -> None:
        raise Problem(409, "Conflict", "no")

    return app


async def _get(path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        return await http.get(path, headers=headers)


async def test_the_callers_request_id_is_echoed_and_logged() -> None:
    answer = await _get("/context", **{"X-Request-ID": "abc-123"})
    assert answer.headers["X-Request-ID"] == "abc-123"
    assert answer.json() == {"request_id": "abc-123"}


async def test_a_request_without_an_id_gets_a_new_one_each_time() -> None:
    first, second = await _get("/context"), await _get("/context")
    ids = {first.headers["X-Request-ID"], second.headers["X-Request-ID"]}
    assert len(ids) == 2 and all(len(i) == 32 for i in ids)
    assert first.json() == {"request_id": first.headers["X-Request-ID"]}


async def test_context_of_an_earlier_request_does_not_leak() -> None:
    structlog.contextvars.bind_contextvars(user="trader:someone-else")
    answer = await _get("/context")
    assert set(answer.json()) == {"request_id"}


async def test_an_oversized_id_is_replaced_not_echoed() -> None:
    answer = await _get("/context", **{"X-Request-ID": "x" * 201})
    assert len(answer.headers["X-Request-ID"]) == 32


async def test_problem_answers_carry_the_id_too() -> None:
    answer = await _get("/refused", **{"X-Request-ID": "r-1"})
    assert answer.status_code == 409
    assert answer.headers["X-Request-ID"] == "r-1"
