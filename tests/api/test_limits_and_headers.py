"""Rate limits (login, registration, writes) with 429 and Retry-After on both backends, request
size limits enforced while the body streams in, and the security headers of every response."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fxcrm.core.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from tests.api.inprocess import InProcessApp, inprocess_app
from tests.core.test_ratelimit import REDIS_URL
from tests.e2e.portal import bearer

PASSWORD = "Correct-horse-2026"


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    backend: RateLimiter = (
        MemoryRateLimiter()
        if request.param == "memory"
        else RedisRateLimiter(REDIS_URL, prefix=f"fxcrm-test-sec:{uuid.uuid4().hex}:")
    )
    yield backend
    await backend.close()


def _throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["Retry-After"]) >= 1
    _secure(response)


async def test_guesses_from_one_address_do_not_lock_the_owner_out(
    database_url: str, limiter: RateLimiter
) -> None:
    async with inprocess_app(database_url, limiter, login_max_failures=3) as api:
        _, email = await api.add_staff("admin", PASSWORD)
        for _ in range(3):
            wrong = await api.login("staff", email, "guess", address="203.0.113.9")
            assert wrong.status_code == 401
        # The attacker's address is throttled, even with the right password...
        _throttled(await api.login("staff", email, PASSWORD, address="203.0.113.9"))
        # ...while the owner, from their own address, signs in.
        owner = await api.login("staff", email, PASSWORD, address="198.51.100.4")
        assert owner.status_code == 200


async def test_many_addresses_together_are_throttled_for_a_while(
    database_url: str, limiter: RateLimiter
) -> None:
    async with inprocess_app(
        database_url, limiter, login_max_failures=3, login_account_max_failures=6
    ) as api:
        _, email = await api.add_trader(PASSWORD)
        for address in ("203.0.113.1", "203.0.113.2"):
            for _ in range(3):
                assert (
                    await api.login("trader", email, "guess", address=address)
                ).status_code == 401
        response = await api.login("trader", email, PASSWORD, address="198.51.100.4")
        _throttled(response)
        assert int(response.headers["Retry-After"]) <= api.settings.login_lockout_minutes * 60


async def test_unknown_accounts_are_throttled_like_known_ones(
    database_url: str, limiter: RateLimiter
) -> None:
    async with inprocess_app(database_url, limiter, login_max_failures=2) as api:
        for _ in range(2):
            assert (await api.login("staff", "ghost@staff.test", "x")).status_code == 401
        _throttled(await api.login("staff", "ghost@staff.test", "x"))


async def test_password_change_guesses_are_throttled(
    database_url: str, limiter: RateLimiter
) -> None:
    async with inprocess_app(database_url, limiter, login_max_failures=2) as api:
        _, email = await api.add_trader(PASSWORD)
        token = await api.token("trader", email, PASSWORD)
        body = {"current_password": "guess-guess", "new_password": "Another-pass-2027"}
        async with api.client("192.0.2.50") as http:
            for _ in range(2):
                wrong = await http.post("/auth/password", json=body, headers=token)
                assert wrong.status_code == 403
            right = {**body, "current_password": PASSWORD}
            _throttled(await http.post("/auth/password", json=right, headers=token))


async def test_login_attempts_per_address(database_url: str, limiter: RateLimiter) -> None:
    async with inprocess_app(database_url, limiter, rate_login_per_minute=3) as api:
        for n in range(3):
            response = await api.login("staff", f"user{n}@staff.test", "x", address="192.0.2.7")
            assert response.status_code == 401
        _throttled(await api.login("staff", "user9@staff.test", "x", address="192.0.2.7"))
        other = await api.login("staff", "user9@staff.test", "x", address="192.0.2.8")
        assert other.status_code == 401


async def test_registrations_per_address(database_url: str, limiter: RateLimiter) -> None:
    async with inprocess_app(database_url, limiter, rate_register_per_hour=2) as api:
        async with api.client("192.0.2.20") as http:
            for _ in range(2):
                assert (await http.post("/portal/demo/register", json={})).status_code == 422
            _throttled(await http.post("/portal/demo/register", json={}))
        async with api.client("192.0.2.21") as http:
            assert (await http.post("/portal/demo/register", json={})).status_code == 422


async def test_writes_per_address_and_per_account(database_url: str, limiter: RateLimiter) -> None:
    async with inprocess_app(
        database_url, limiter, rate_writes_per_minute=3, rate_account_writes_per_minute=2
    ) as api:
        async with api.client("192.0.2.30") as http:
            for _ in range(3):
                assert (await http.post("/auth/logout")).status_code == 401
            _throttled(await http.post("/auth/logout"))
            assert (await http.get("/health")).status_code == 200  # reads are not counted
        _, email = await api.add_trader(PASSWORD)
        token = await api.token("trader", email, PASSWORD)  # one write from 10.0.0.1
        body = {"currency": "USD", "amount": "not-a-number"}
        for n, address in enumerate(("192.0.2.31", "192.0.2.32", "192.0.2.33")):
            async with api.client(address) as http:
                response = await http.post("/portal/me/deposits", json=body, headers=token)
                if n < 2:
                    assert response.status_code == 422
                else:
                    _throttled(response)  # the account's budget, whatever the address


async def test_provider_webhooks_are_not_throttled_by_address(database_url: str) -> None:
    async with (
        inprocess_app(database_url, rate_writes_per_minute=1) as api,
        api.client("192.0.2.40") as http,
    ):
        for _ in range(3):
            response = await http.post("/webhooks/psp/sim", content=b"{}")
            assert response.status_code != 429


# -- request size ---------------------------------------------------------------------------------


class CountingBody(httpx.AsyncByteStream):
    """A request body streamed in chunks, counting how much the server pulled."""

    def __init__(self, total: int, chunk: int = 64 * 1024, prefix: bytes = b"") -> None:
        self.total, self.chunk, self.prefix, self.sent = total, chunk, prefix, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.prefix:
            self.sent += len(self.prefix)
            yield self.prefix
        while self.sent < self.total:
            self.sent += self.chunk
            yield b" " * self.chunk


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[InProcessApp]:
    async with inprocess_app(database_url) as running:
        yield running


def _too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 413
    _secure(response)


async def test_a_huge_json_body_is_refused(api: InProcessApp) -> None:
    _, email = await api.add_trader(PASSWORD)
    token = await api.token("trader", email, PASSWORD)
    body = b'{"currency": "USD", "amount": "1", "pad": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    async with api.client() as http:
        headers = {**token, "content-type": "application/json"}
        _too_large(await http.post("/portal/me/deposits", content=body, headers=headers))
        # Without a Content-Length (chunked), reading stops at the limit.
        stream = CountingBody(20 * 1024 * 1024, prefix=b'{"pad": "')
        request = http.build_request("POST", "/portal/me/deposits", headers=headers)
        request.stream = stream
        request.headers.pop("content-length", None)
        _too_large(await http.send(request))
    assert stream.sent <= api.settings.max_body_bytes + 2 * stream.chunk


async def test_a_huge_upload_is_refused_before_it_is_spooled(api: InProcessApp) -> None:
    _, email = await api.add_trader(PASSWORD)
    token = await api.token("trader", email, PASSWORD)
    boundary = "fxcrmboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
    ).encode()
    stream = CountingBody(50 * 1024 * 1024, prefix=head)
    async with api.client() as http:
        request = http.build_request(
            "POST",
            "/portal/me/documents",
            headers={**token, "content-type": f"multipart/form-data; boundary={boundary}"},
        )
        request.stream = stream
        _too_large(await http.send(request))
    assert stream.sent <= 11 * 1024 * 1024  # the 10 MiB document limit, not 50 MB


async def test_an_html_page_behind_an_image_header_is_refused(api: InProcessApp) -> None:
    _, email = await api.add_trader(PASSWORD)
    token = await api.token("trader", email, PASSWORD)
    html = b"<html><script>alert(document.cookie)</script></html>"
    async with api.client() as http:
        for content, content_type in (
            (b"\xff\xd8\xff\xe0\x00\x10JFIF" + html, "image/jpeg"),
            (b"%PDF-1.7\n" + html, "application/pdf"),
        ):
            response = await http.post(
                "/portal/me/documents",
                headers=token,
                data={
                    "kind": "identity",
                    "doc_type": "PASSPORT",
                    "issuing_country": "DE",
                    "document_number": "X1234567",
                },
                files={"file": ("doc", content, content_type)},
            )
            assert response.status_code == 422, response.text
            assert response.json()["reason"] == "unreadable"


# -- headers --------------------------------------------------------------------------------------


def _secure(response: httpx.Response) -> None:
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-store"


async def test_every_response_carries_the_security_headers(api: InProcessApp) -> None:
    _, email = await api.add_trader(PASSWORD)
    async with api.client() as http:
        responses: list[Any] = [
            await http.get("/health"),
            await http.get("/portal/me"),  # 401 problem
            await http.post("/portal/demo/token", data={"username": email, "password": PASSWORD}),
        ]
        token = responses[-1].json()["access_token"]
        responses.append(await http.get("/portal/me", headers=bearer(token)))
    for response in responses:
        _secure(response)
    assert responses[0].headers["Content-Security-Policy"].startswith("default-src 'none'")
