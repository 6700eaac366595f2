"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

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


class RefuseNulCharacters:
    """A NUL in the path or the query is refused up front, on every database alike. Plain ASGI:
    Starlette's `@app.middleware("http")` would cost every request a task and a stream."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"] or b"\x00" in unquote_to_bytes(scope.get("query_string", b""))
        ):
            await _nul_problem(Request(scope))(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_middleware(RefuseNulCharacters)

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
