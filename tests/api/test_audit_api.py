"""Auditors over the API: every workflow's history of their brands (deposits too, not only
onboarding), with readable payloads; everything about one trader in one query; another brand's
answers 404; bad parameters 422."""

from __future__ import annotations

from typing import Any

from fxcrm.core.audit import Actor, append_audit
from fxcrm.core.db import transaction
from fxcrm.models import TradingAccount
from fxcrm.seed import DEMO_SERVER
from tests.api.ib_fixtures import new_brand
from tests.e2e.money import add_account, verified_trader
from tests.e2e.payments import deposit, deposit_body
from tests.e2e.portal import bearer, staff_token
from tests.e2e.stack import Stack


def _started_input(history: dict[str, Any]) -> Any:
    started = history["events"][0]["workflowExecutionStartedEventAttributes"]
    return started["input"]["payloads"][0]


async def test_auditor_reads_a_deposits_history_with_readable_payloads(stack: Stack) -> None:
    trader_id, token = await verified_trader(stack)
    started = await deposit(stack.http, token, deposit_body())
    assert started.status_code in (201, 202), started.text
    payment_id = started.json()["id"]
    auditor = bearer(await staff_token(stack.http, "auditor"))
    url = f"/audit/workflows/deposit-{payment_id}/history"

    response = await stack.http.get(url, headers=auditor)
    assert response.status_code == 200, response.text
    history = response.json()
    assert history["workflowId"] == f"deposit-{payment_id}"
    payload = _started_input(history)
    assert payload["payment_id"] == payment_id and payload["trader_id"] == trader_id
    raw = (await stack.http.get(url, params={"raw": "true"}, headers=auditor)).json()
    assert set(_started_input(raw)) == {"metadata", "data"}  # as Temporal encodes it

    onboarding = await stack.http.get(
        f"/audit/workflows/onboarding-{trader_id}/history", headers=auditor
    )
    assert onboarding.status_code == 200
    assert _started_input(onboarding.json())["trader_id"] == trader_id

    # Another brand's auditor: the workflow does not exist for them.
    other = await new_brand(stack, roles=("auditor",))
    hidden = await stack.http.get(url, headers=other.staff("auditor"))
    assert hidden.status_code == 404
    assert hidden.headers["content-type"].startswith("application/problem+json")
    # An id fxcrm never starts: nothing to show an auditor.
    assert (await stack.http.get("/audit/workflows/x-1/history", headers=auditor)).status_code == (
        404
    )
    too_long = await stack.http.get(f"/audit/workflows/{'x' * 400}/history", headers=auditor)
    assert too_long.status_code == 422


async def test_one_query_for_everything_about_a_trader(stack: Stack) -> None:
    trader_id, token = await verified_trader(stack)
    other_trader, _ = await verified_trader(stack)
    started = await deposit(stack.http, token, deposit_body())
    payment_id = started.json()["id"]
    account_id = await add_account(stack.sessions, trader_id, login=8_123_456)
    async with transaction(stack.sessions) as session:
        account = await session.get(TradingAccount, account_id)
        assert account is not None
        dealer = Actor(type="staff", id="dealer-1", role="dealer")
        # A dealer's change names the account by server:login.
        await append_audit(
            session,
            actor=dealer,
            action="trading_account.changed",
            entity_type="trading_account",
            entity_id=f"{DEMO_SERVER}:8123456",
            brand_id=account.brand_id,
            after={"leverage": 50},
        )
        await append_audit(
            session,
            actor=dealer,
            action="trading_account.changed",
            entity_type="trading_account",
            entity_id=f"{DEMO_SERVER}:1",  # someone else's account
            brand_id=account.brand_id,
        )
    auditor = bearer(await staff_token(stack.http, "auditor"))
    url = f"/audit/traders/{trader_id}/events"

    response = await stack.http.get(url, headers=auditor)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["trader_id"] == trader_id and page["next_after_seq"] is None
    events = page["events"]
    seen = {(e["action"], e["entity_id"]) for e in events}
    assert ("trader.registered", trader_id) in seen
    assert ("deposit.requested", payment_id) in seen
    assert ("trading_account.changed", f"{DEMO_SERVER}:8123456") in seen
    assert ("trading_account.changed", f"{DEMO_SERVER}:1") not in seen
    assert all(other_trader not in (e["entity_id"], e["actor_id"]) for e in events)
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)

    staff_only = (await stack.http.get(url, params={"actor_type": "staff"}, headers=auditor)).json()
    assert [e["action"] for e in staff_only["events"]] == ["trading_account.changed"]

    # Paged: one at a time, the cursor gives the rest.
    first = (await stack.http.get(url, params={"limit": 1}, headers=auditor)).json()
    assert first["events"] == events[:1] and first["next_after_seq"] == events[0]["seq"]
    rest = (
        await stack.http.get(
            url, params={"after_seq": first["next_after_seq"], "limit": 1000}, headers=auditor
        )
    ).json()
    assert rest["events"] == events[1:]

    other = await new_brand(stack, roles=("auditor",))
    assert (await stack.http.get(url, headers=other.staff("auditor"))).status_code == 404
    assert (await stack.http.get("/audit/traders/nobody/events", headers=auditor)).status_code == (
        404
    )
    for params in ({"limit": 5000}, {"after_seq": -1}, {"actor_type": "Staff; --"}):
        bad = await stack.http.get(url, params=params, headers=auditor)
        assert bad.status_code == 422, params
    trader = bearer(token)
    assert (await stack.http.get(url, headers=trader)).status_code == 403
