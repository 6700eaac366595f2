"""The API docs work offline: /docs and /redoc load their assets from the installation, never a
CDN; the Authorize dialog offers staff, trader and IB logins, and each kind of endpoint asks for
its own; the brand-less token endpoints the dialog uses log traders and IBs in."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from fxcrm.api.main import create_app
from fxcrm.core.config import Settings
from tests.api.ib_fixtures import new_brand
from tests.e2e.portal import PASSWORD, bearer, register
from tests.e2e.stack import Stack

EXTERNAL = re.compile(r"""(?:src|href)=["']?(?:https?:)?//""", re.IGNORECASE)


@pytest.fixture
async def docs_http() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(env="test"))  # the docs need neither database nor Temporal
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fxcrm") as http:
        yield http


async def test_docs_pages_load_everything_from_the_installation(
    docs_http: httpx.AsyncClient,
) -> None:
    for page, assets in (
        ("/docs", ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")),
        ("/redoc", ("redoc.standalone.js", "favicon.png")),
    ):
        html = (await docs_http.get(page)).text
        assert not EXTERNAL.search(html), page  # no script, style, font or icon from elsewhere
        assert "cdn.jsdelivr" not in html and "fonts.googleapis" not in html
        for asset in assets:
            assert f"/docs-assets/{asset}" in html
            served = await docs_http.get(f"/docs-assets/{asset}")
            assert served.status_code == 200 and len(served.content) > 1000, asset
    assert (await docs_http.get("/docs/oauth2-redirect")).status_code == 200


async def test_authorize_offers_staff_trader_and_ib_logins(docs_http: httpx.AsyncClient) -> None:
    schema = (await docs_http.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    assert {name: s["flows"]["password"]["tokenUrl"] for name, s in schemes.items()} == {
        "staff": "/auth/token",
        "trader": "/portal/token",
        "ib": "/partner/token",
    }
    paths = schema["paths"]
    assert paths["/portal/me"]["get"]["security"] == [{"trader": []}]
    assert paths["/partner/me"]["get"]["security"] == [{"ib": []}]
    assert paths["/audit/events"]["get"]["security"] == [{"staff": []}]
    assert "security" not in paths["/health"]["get"]


async def test_brand_less_token_endpoints(stack: Stack) -> None:
    await new_brand(stack, roles=("admin",))  # several brands: the brand must be named
    email = f"docs-{uuid.uuid4().hex[:10]}@example.com"
    trader_id, _ = await register(stack.http, email=email)
    form = {"username": email, "password": PASSWORD}

    as_form = await stack.http.post("/portal/token", data={**form, "client_id": "demo"})
    assert as_form.status_code == 200, as_form.text
    me = await stack.http.get("/portal/me", headers=bearer(as_form.json()["access_token"]))
    assert me.status_code == 200 and me.json()["trader_id"] == trader_id
    # Swagger UI's default: the client id in HTTP Basic.
    basic = {"Authorization": "Basic " + base64.b64encode(b"demo:").decode()}
    assert (await stack.http.post("/portal/token", data=form, headers=basic)).status_code == 200

    unnamed = await stack.http.post("/portal/token", data=form)
    assert unnamed.status_code == 422 and unnamed.json()["code"] == "brand_required"
    unknown = await stack.http.post("/portal/token", data={**form, "client_id": "nope"})
    assert unknown.status_code == 404
    wrong = await stack.http.post(
        "/portal/token", data={**form, "password": "wrong-password", "client_id": "demo"}
    )
    assert wrong.status_code == 401

    ib = await stack.http.post(
        "/partner/token",
        data={"username": "ib1@demo.fxcrm.dev", "password": "ib1-demo-2026", "client_id": "demo"},
    )
    assert ib.status_code == 200, ib.text
    partner = await stack.http.get("/partner/me", headers=bearer(ib.json()["access_token"]))
    assert partner.status_code == 200 and partner.json()["referral_code"] == "MASTERIB"
