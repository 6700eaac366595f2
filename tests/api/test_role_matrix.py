"""Every route declares who may call it, and the declaration holds: each role it does not name
gets 403, a request without a token 401. A route that declares no roles must be on the public
list below, on purpose."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from fxcrm.api.deps import ALL_ROLES, get_settings
from fxcrm.core.config import Settings
from fxcrm.seed import DEMO_PASSWORD_SUFFIX, STAFF_ROLES
from tests.api.inprocess import InProcessApp, inprocess_app

# Authenticated some other way (a password, a provider's signature) or public by nature.
PUBLIC = {
    ("GET", "/health"),
    ("POST", "/auth/token"),
    ("POST", "/portal/{brand_code}/token"),
    ("POST", "/partner/{brand_code}/token"),
    ("POST", "/portal/token"),  # the API docs' Authorize dialog: the brand as client_id
    ("POST", "/partner/token"),
    ("GET", "/docs"),  # the API docs, outside the schema
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("POST", "/portal/{brand_code}/register"),
    ("POST", "/portal/{brand_code}/referral-clicks"),
    ("POST", "/webhooks/kyc/sumsub"),  # HMAC over the body
    ("POST", "/webhooks/psp/{provider}"),  # the provider's signature
}
# The dealing desk alone changes leverage, group and access (support reads, does not change).
ACCOUNT_CHANGE = ("POST", "/backoffice/accounts/{server_id}/{login}/changes")
PASSWORD = "Correct-horse-2026"


def api_routes(routes: list[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        included = getattr(route, "original_router", None)  # an included router's own routes
        if included is not None:
            yield from api_routes(included.routes)
        elif isinstance(route, APIRoute):
            yield route


def declared_roles(route: APIRoute) -> set[str] | None:
    """The roles of the `require(...)` dependency, wherever it sits in the tree; None if none."""
    found: list[tuple[str, ...]] = []
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        roles = getattr(dependency.call, "roles", None)
        if roles is not None:
            found.append(tuple(roles))
        pending.extend(dependency.dependencies)
    assert len(set(found)) <= 1, f"{route.path} declares roles twice: {found}"
    return set(found[0]) if found else None


def filled(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


class RouteProbe:
    """Tells which route answered (a filled-in path must reach the route under test): it stands
    in for get_settings, which the caller check (principal_from_token) depends on."""

    def __init__(self) -> None:
        self.route: Any = None

    async def __call__(self, request: Request) -> Settings:
        self.route = request.scope.get("route")
        return await get_settings(request)


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[InProcessApp]:
    # A thousand requests from one address: the write limits are tested elsewhere.
    async with inprocess_app(
        database_url, rate_writes_per_minute=0, rate_account_writes_per_minute=0
    ) as running:
        yield running


async def _tokens(api: InProcessApp) -> dict[str, dict[str, str]]:
    tokens = {
        role: await api.token("staff", f"{role}@demo.fxcrm.dev", f"{role}{DEMO_PASSWORD_SUFFIX}")
        for role in STAFF_ROLES
    }
    _, trader = await api.add_trader(PASSWORD)
    tokens["trader"] = await api.token("trader", trader, PASSWORD)
    _, ib = await api.add_ib(PASSWORD)
    tokens["ib"] = await api.token("ib", ib, PASSWORD)
    assert set(tokens) == set(ALL_ROLES)
    return tokens


async def test_every_route_enforces_its_roles(api: InProcessApp) -> None:
    routes = list(api_routes(api.app.routes))
    schema_operations = sum(len(ops) for ops in api.app.openapi()["paths"].values())
    documented = [route for route in routes if route.include_in_schema]
    assert len(documented) == schema_operations  # the walk found every route
    tokens = await _tokens(api)
    probe = RouteProbe()
    api.app.dependency_overrides[get_settings] = probe
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    failures: list[str] = []
    checked = 0
    async with httpx.AsyncClient(transport=transport, base_url="http://fxcrm.test") as http:
        for route in routes:
            roles = declared_roles(route)
            for method in sorted(route.methods):
                if roles is None:
                    assert (method, route.path) in PUBLIC, (
                        f"{method} {route.path} declares no roles and is not on the public list"
                    )
                    continue
                assert roles <= set(ALL_ROLES), f"{route.path}: unknown roles {roles}"
                url = filled(route.path)
                probe.route = None
                anonymous = await http.request(method, url)
                assert probe.route is route, f"{method} {url} reached another route: {anonymous}"
                if anonymous.status_code != 401:
                    failures.append(
                        f"{method} {route.path} without a token: {anonymous.status_code}"
                    )
                for role in ALL_ROLES:
                    if role in roles and method != "GET":
                        continue  # an allowed write would act (a logout revokes the token)
                    response = await http.request(method, url, headers=tokens[role])
                    checked += 1
                    refused = response.status_code == 403
                    if role not in roles and not refused:
                        failures.append(f"{method} {route.path} as {role}: {response.status_code}")
                    if role in roles and method == "GET" and response.status_code in (401, 403):
                        failures.append(f"{method} {route.path} refuses {role}: {response.text}")
    assert not failures, "\n".join(failures)
    assert checked > 500


def test_only_the_dealing_desk_changes_accounts() -> None:
    from fxcrm.api.main import create_app
    from fxcrm.core.config import Settings

    app = create_app(Settings(env="test"))
    (route,) = [
        r
        for r in api_routes(app.routes)
        if r.path == ACCOUNT_CHANGE[1] and ACCOUNT_CHANGE[0] in r.methods
    ]
    assert declared_roles(route) == {"admin", "dealer"}
