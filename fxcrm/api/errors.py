"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """Raise from a route: becomes a problem-details response and changes nothing."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = headers
        self.extra = extra


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str = "",
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {"type": type_, "title": title, "status": status, "instance": request.url.path}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


# PostgreSQL's "character not in repertoire": text it cannot store (a NUL character).
UNSTORABLE_TEXT = "22021"


def _nul_problem(request: Request) -> JSONResponse:
    return problem_response(
        request,
        422,
        "Invalid request",
        "text may not contain NUL characters",
        type_="/problems/validation",
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.middleware("http")
    async def refuse_nul_characters(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # In the path or the query: refused up front, on every database alike.
        if "\x00" in request.url.path or any(
            "\x00" in key or "\x00" in value for key, value in request.query_params.multi_items()
        ):
            return _nul_problem(request)
        return await call_next(request)

    @app.exception_handler(DBAPIError)
    async def _unstorable(request: Request, exc: DBAPIError) -> JSONResponse:
        # In a body or a header, PostgreSQL refuses it when it is written; the transaction is
        # rolled back, so nothing changed. Any other database error stays a 500.
        if getattr(exc.orig, "sqlstate", None) == UNSTORABLE_TEXT:
            return _nul_problem(request)
        raise exc

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            request, exc.status, exc.title, exc.detail, exc.type, exc.headers, **exc.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        return problem_response(
            request,
            422,
            "Invalid request",
            "one or more fields are missing or malformed",
            type_="/problems/validation",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            request, exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None)
        )
