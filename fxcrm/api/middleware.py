"""ASGI middleware of the API: security headers on every response, the rate limit of writes, and
problem details for a body refused by the size limit."""

from __future__ import annotations

import json

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fxcrm.api.errors import PROBLEM_JSON, problem_response
from fxcrm.api.limits import write_limit_wait

# An API answers JSON and files, never pages to render: nothing may run, embed or frame it.
API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
# The interactive docs load their script and styles from a CDN; they still may not be framed.
DOCS_CSP = "frame-ancestors 'none'"
DOCS_PATHS = ("/docs", "/redoc")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SecurityHeaders:
    """nosniff, no framing, a CSP, no referrer, and `no-store`: responses carry tokens, one-time
    credentials and PII, which no browser or proxy cache may keep."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        csp = DOCS_CSP if path.startswith(DOCS_PATHS) else API_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Content-Security-Policy", csp)
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class WriteRateLimit:
    """POST, PUT, PATCH and DELETE are counted per client address and per signed-in account.

    Signed provider webhooks are left out: a PSP's bursts are not abuse, and their senders are
    authenticated by signature, not by address.
    """

    def __init__(self, app: ASGIApp, exempt_prefixes: tuple[str, ...] = ("/webhooks/",)) -> None:
        self.app = app
        self.exempt = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in SAFE_METHODS
            or scope["path"].startswith(self.exempt)
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        wait, why = await write_limit_wait(request)
        if wait:
            response = problem_response(
                request,
                429,
                "Too many requests",
                why,
                type_="/problems/rate-limit",
                headers={"Retry-After": str(wait)},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class ProblemForTooLarge:
    """Starlette refuses a body whose declared Content-Length is over the limit with a plain-text
    413 of its own; turn it into problem details like every other error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replacing = False

        async def send_problem(message: Message) -> None:
            nonlocal replacing
            if message["type"] == "http.response.start" and message["status"] == 413:
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").startswith("text/plain"):
                    replacing = True
                    body = _too_large_body(scope["path"])
                    headers["content-type"] = PROBLEM_JSON
                    headers["content-length"] = str(len(body))
                    await send(message)
                    await send({"type": "http.response.body", "body": body})
                    return
            if replacing:
                return  # the plain-text body, already replaced
            await send(message)

        await self.app(scope, receive, send_problem)


def _too_large_body(path: str) -> bytes:
    return json.dumps(
        {
            "type": "about:blank",
            "title": "Content Too Large",
            "status": 413,
            "instance": path,
            "detail": "the request body is larger than this endpoint accepts",
        }
    ).encode()
