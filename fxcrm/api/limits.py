"""Rate limits of the API: per client address, per account, and the failed-login throttle.

Failed logins are counted per account *and* client address: after `login_max_failures` that
address may not try that account again until the window ends, while the owner, from their own
address, still logs in. A second, larger budget counts the account's failures from every address
together, so many addresses cannot guess without end; it too ends with its window. Nothing locks
an account for longer than `login_lockout_minutes`.
"""

from __future__ import annotations

import hashlib

import jwt
from fastapi import Request

from fxcrm.api.errors import Problem
from fxcrm.core.config import Settings
from fxcrm.core.ratelimit import Limit, RateLimiter
from fxcrm.core.security import decode_token


def client_address(request: Request) -> str:
    """The peer address; behind a proxy, run uvicorn with --forwarded-allow-ips so it is the
    client's (X-Forwarded-For from a trusted proxy only)."""
    return request.client.host if request.client else "unknown"


def limiter(request: Request) -> RateLimiter:
    rate_limiter: RateLimiter = request.app.state.limiter
    return rate_limiter


def too_many(retry_after: int, detail: str) -> Problem:
    return Problem(
        429,
        "Too many requests",
        detail,
        type_="/problems/rate-limit",
        headers={"Retry-After": str(retry_after)},
    )


async def throttle(request: Request, key: str, limit: Limit, detail: str) -> None:
    """Counts one request under `key`; 429 with Retry-After once the window is full."""
    wait = await limiter(request).hit(key, limit)
    if wait:
        raise too_many(wait, detail)


def _digest(*parts: str) -> str:
    # Keys name accounts by digest: no e-mail address is stored in the limiter.
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def account_key(kind: str, scope: str, username: str) -> str:
    """The same key for an account whether or not it exists: the limiter never tells which do."""
    return _digest(kind, scope, username.strip().lower())


class LoginGuard:
    """The failed-login throttle of one account, seen from one client address."""

    def __init__(self, request: Request, settings: Settings, account: str) -> None:
        self._limiter = limiter(request)
        window = settings.login_lockout_minutes * 60
        self._pair = (
            f"login-fail:{account}:{_digest(client_address(request))}",
            Limit(settings.login_max_failures, window),
        )
        self._account = (
            f"login-fail:{account}",
            Limit(settings.login_account_max_failures, window),
        )
        self._request = request
        self._settings = settings

    async def check(self) -> None:
        """Before the password is verified: refuse if this address or everyone is over budget."""
        await throttle(
            self._request,
            f"login:{_digest(client_address(self._request))}",
            Limit(self._settings.rate_login_per_minute, 60),
            "too many login attempts from this address",
        )
        for key, limit in (self._pair, self._account):
            wait = await self._limiter.peek(key, limit)
            if wait:
                raise too_many(wait, "too many failed logins: try again later")

    async def failed(self) -> bool:
        """Counts a failure; True when this failure used up this address's budget."""
        await self._limiter.hit(*self._account)
        key, limit = self._pair
        await self._limiter.hit(key, limit)
        return bool(await self._limiter.peek(key, limit))

    async def succeeded(self) -> None:
        await self._limiter.reset(self._pair[0])


async def limit_registration(request: Request) -> None:
    settings: Settings = request.app.state.settings
    await throttle(
        request,
        f"register:{_digest(client_address(request))}",
        Limit(settings.rate_register_per_hour, 3600),
        "too many registrations from this address",
    )


def token_subject(authorization: str | None, secret: str) -> str | None:
    """`kind:id` of a valid bearer token, without a database read (the write limit's key)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    try:
        claims = decode_token(secret, authorization[7:].strip())
        return f"{claims['kind']}:{claims['sub']}"
    except (jwt.InvalidTokenError, KeyError):
        return None


async def write_limit_wait(request: Request) -> tuple[int, str]:
    """For a POST/PUT/PATCH/DELETE: seconds to wait (0: go on) and why."""
    settings: Settings = request.app.state.settings
    address = _digest(client_address(request))
    wait = await limiter(request).hit(
        f"writes:{address}", Limit(settings.rate_writes_per_minute, 60)
    )
    if wait:
        return wait, "too many requests from this address"
    subject = token_subject(request.headers.get("authorization"), settings.secret_key)
    if subject is not None:
        wait = await limiter(request).hit(
            f"writes:{_digest(subject)}", Limit(settings.rate_account_writes_per_minute, 60)
        )
        if wait:
            return wait, "too many requests for this account"
    return 0, ""
