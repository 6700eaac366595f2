"""POST /portal/me/deposits refusals and idempotency, payment reads and their scoping, and the PSP
webhook's signature check and de-duplication, over the real API, worker and PSP simulator."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.service import RPCError, RPCStatusCode

from fxcrm.adapters.psp.registry import build_psps
from fxcrm.adapters.simulators.kyc import serving
from fxcrm.api.main import create_app
from fxcrm.domain.payments import PaymentRules
from fxcrm.models import Brand, Payment, ProviderWebhook, Trader, TradingAccount
from fxcrm.seed import DEMO_SERVER
from fxcrm.workflows.deposit import DepositWorkflow
from tests.e2e.money import payments_of, verified_trader
from tests.e2e.payments import (
    CARD_3DS,
    deposit,
    deposit_body,
    signed_psp_event,
    wait_payment,
)
from tests.e2e.portal import bearer, register, staff_token
from tests.e2e.stack import Stack, eventually


async def _open_account(stack: Stack, trader_id: str, currency: str = "USD") -> str:
    async with stack.sessions() as session, session.begin():
        brand_id = await session.scalar(select(Trader.brand_id).where(Trader.id == trader_id))
        account = TradingAccount(
            trader_id=trader_id,
            brand_id=brand_id,
            server_id=DEMO_SERVER,
            platform="mt5",
            opening_key=f"test-{uuid.uuid4().hex}",
            status="open",
            login=random.randint(9_000_000, 9_999_999),
            group="real\\retail\\std",
            leverage=30,
            currency=currency,
            account_type="retail",
        )
        session.add(account)
    return account.id


def _problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.text


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"amount": "0"}, "amount_not_positive"),
        ({"amount": "-10.00"}, "amount_not_positive"),
        ({"amount": "ten"}, "malformed_amount"),
        ({"amount": "NaN"}, "malformed_amount"),
        ({"amount": "10.001"}, "too_many_decimals"),
        ({"amount": "5.00"}, "below_minimum"),
        ({"amount": "50000.01"}, "above_maximum"),
        ({"currency": "XYZ"}, "unsupported_currency"),
        ({"currency": "JPY", "amount": "1000"}, "unsupported_currency"),  # not this brand's
        ({"method": "paypal"}, "unsupported_method"),
        ({"instrument": "-- --"}, "invalid_destination"),
    ],
)
async def test_bad_deposit_is_refused_with_a_code_and_stores_nothing(
    stack: Stack, overrides: dict[str, Any], code: str
) -> None:
    trader_id, token = await verified_trader(stack)
    response = await deposit(stack.http, token, deposit_body(**overrides))
    _problem(response, 422, code)
    assert await payments_of(stack.sessions, trader_id) == 0


async def test_amount_as_a_json_number_is_refused(stack: Stack) -> None:
    trader_id, token = await verified_trader(stack)
    response = await deposit(stack.http, token, deposit_body(amount=100.5))  # type: ignore[arg-type]
    assert response.status_code == 422
    assert await payments_of(stack.sessions, trader_id) == 0


async def test_missing_idempotency_key_is_a_400(stack: Stack) -> None:
    trader_id, token = await verified_trader(stack)
    response = await stack.http.post(
        "/portal/me/deposits", json=deposit_body(), headers=bearer(token)
    )
    _problem(response, 400, "idempotency_key_required")
    assert await payments_of(stack.sessions, trader_id) == 0


async def test_kyc_level_too_low_is_refused(stack: Stack) -> None:
    assert PaymentRules().deposit_kyc_level == "verified"
    trader_id, token = await register(stack.http)  # documents not even uploaded
    response = await deposit(stack.http, token, deposit_body())
    _problem(response, 403, "kyc_level_too_low")
    assert await payments_of(stack.sessions, trader_id) == 0


async def test_account_target_must_be_the_callers_open_account_in_the_same_currency(
    stack: Stack,
) -> None:
    trader_id, token = await verified_trader(stack)
    other_id, _ = await verified_trader(stack)
    others = await _open_account(stack, other_id)
    response = await deposit(stack.http, token, deposit_body(target={"account_id": others}))
    _problem(response, 422, "unknown_account")
    euro = await _open_account(stack, trader_id, currency="EUR")
    response = await deposit(stack.http, token, deposit_body(target={"account_id": euro}))
    _problem(response, 422, "currency_mismatch")
    response = await deposit(stack.http, token, deposit_body(target={"account_id": "nope"}))
    _problem(response, 422, "unknown_account")
    assert await payments_of(stack.sessions, trader_id) == 0


async def test_same_key_same_body_is_the_same_payment_other_body_a_conflict(stack: Stack) -> None:
    trader_id, token = await verified_trader(stack)
    key = uuid.uuid4().hex
    first = await deposit(stack.http, token, deposit_body(), key=key)
    assert first.status_code == 201, first.text
    again = await deposit(stack.http, token, deposit_body(), key=key)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    conflict = await deposit(stack.http, token, deposit_body(amount="200.00"), key=key)
    _problem(conflict, 422, "idempotency_conflict")
    assert await payments_of(stack.sessions, trader_id) == 1
    view = await wait_payment(stack, token, first.json()["id"], "completed")
    assert view["is_ftd"] is True and view["amount_received"] == "100.00"


async def test_3ds_deposit_answers_with_the_redirect(stack: Stack) -> None:
    _, token = await verified_trader(stack)
    response = await deposit(stack.http, token, deposit_body(instrument=CARD_3DS))
    assert response.status_code == 201, response.text
    view = response.json()
    assert view["status"] == "pending"
    assert view["next_action"]["type"] == "redirect"
    assert view["next_action"]["url"].startswith(stack.psp_url)


async def test_crypto_and_wire_deposits_show_what_to_do(stack: Stack) -> None:
    _, token = await verified_trader(stack)
    crypto = await deposit(
        stack.http,
        token,
        deposit_body(method="crypto", instrument=None, network="TRC20"),
    )
    assert crypto.status_code == 201, crypto.text
    action = crypto.json()["next_action"]
    assert action["type"] == "crypto_address" and action["network"] == "TRC20"
    wire = await deposit(stack.http, token, deposit_body(method="bank_wire", instrument=None))
    assert wire.status_code == 201, wire.text
    assert wire.json()["next_action"]["type"] == "bank_transfer"
    assert wire.json()["next_action"]["reference"]


async def test_payment_reads_are_scoped(stack: Stack) -> None:
    trader_id, token = await verified_trader(stack)
    _, other_token = await verified_trader(stack)
    made = await deposit(stack.http, token, deposit_body(instrument=CARD_3DS))
    payment_id = made.json()["id"]
    mine = await stack.http.get("/portal/me/payments", headers=bearer(token))
    assert [p["id"] for p in mine.json()["items"]] == [payment_id]
    assert "risk_flags" not in mine.json()["items"][0]
    filtered = await stack.http.get(
        "/portal/me/payments", params={"status": "completed"}, headers=bearer(token)
    )
    assert filtered.json()["total"] == 0
    hidden = await stack.http.get(f"/portal/me/payments/{payment_id}", headers=bearer(other_token))
    assert hidden.status_code == 404

    finance = await staff_token(stack.http, "finance")
    staff_view = await stack.http.get(f"/backoffice/payments/{payment_id}", headers=bearer(finance))
    assert staff_view.status_code == 200
    assert staff_view.json()["trader_id"] == trader_id
    assert staff_view.json()["workflow_id"] == f"deposit-{payment_id}"
    listed = await stack.http.get(
        "/backoffice/payments", params={"trader_id": trader_id}, headers=bearer(finance)
    )
    assert [p["id"] for p in listed.json()["items"]] == [payment_id]
    dealer = await staff_token(stack.http, "dealer")
    refused = await stack.http.get("/backoffice/payments", headers=bearer(dealer))
    assert refused.status_code == 403
    assert (await stack.http.get("/backoffice/payments", headers=bearer(token))).status_code == 403

    foreign = await _foreign_brand_payment(stack)
    auditor = await staff_token(stack.http, "auditor")
    response = await stack.http.get(f"/backoffice/payments/{foreign}", headers=bearer(auditor))
    assert response.status_code == 404


async def _foreign_brand_payment(stack: Stack) -> str:
    """A payment of a brand the demo staff do not work for."""
    async with stack.sessions() as session, session.begin():
        brand = Brand(
            code=f"other-{uuid.uuid4().hex[:8]}", name="Other", legal_entity="Other Ltd", config={}
        )
        session.add(brand)
        await session.flush()
        trader = Trader(
            brand_id=brand.id,
            email=f"{uuid.uuid4().hex[:8]}@example.com",
            password_hash="x",
            first_name="O",
            last_name="T",
            date_of_birth="1980-01-01",
            phone="+4915112345678",
            address="{}",
            country="DE",
            account_type="retail",
        )
        session.add(trader)
        await session.flush()
        payment = Payment(
            brand_id=brand.id,
            trader_id=trader.id,
            kind="deposit",
            status="created",
            idempotency_key="k",
            request_hash="h",
            workflow_id=f"deposit-foreign-{uuid.uuid4().hex}",
            currency="USD",
            amount=1000,
            source_kind="psp",
            target_kind="wallet",
            method="card",
            psp="sim",
        )
        session.add(payment)
    return payment.id


# ---------------------------------------------------------------- the PSP webhook


def _event(payment_id: str, provider_ref: str, status: str = "requires_action") -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": f"payment.{status}",
        "created_at": datetime.now(UTC).isoformat(),
        "object": "payment",
        "data": {
            "id": provider_ref,
            "payment_id": payment_id,
            "method": "card",
            "status": status,
            "amount": "100.00",
            "currency": "USD",
        },
    }


async def _stored(stack: Stack, event_key: str) -> int:
    async with stack.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(ProviderWebhook)
            .where(ProviderWebhook.event_key == event_key)
        )
    return int(count or 0)


async def test_psp_webhook_with_a_bad_signature_is_refused_and_stores_nothing(
    stack: Stack,
) -> None:
    event = _event("nobody", "pay_nobody")
    body, headers = signed_psp_event("wrong-secret", event)
    response = await stack.http.post("/webhooks/psp/sim", content=body, headers=headers)
    assert response.status_code == 401
    unsigned = await stack.http.post(
        "/webhooks/psp/sim", content=body, headers={"Content-Type": "application/json"}
    )
    assert unsigned.status_code == 401
    assert await _stored(stack, event["id"]) == 0
    body, headers = signed_psp_event(stack.settings.psp_webhook_secret, {"id": "x"})
    malformed = await stack.http.post("/webhooks/psp/sim", content=body, headers=headers)
    assert malformed.status_code == 400
    unknown = await stack.http.post("/webhooks/psp/nope", content=body, headers=headers)
    assert unknown.status_code == 404


async def test_psp_webhook_is_signalled_once_and_duplicates_acknowledged(stack: Stack) -> None:
    _, token = await verified_trader(stack)
    made = await deposit(stack.http, token, deposit_body(instrument=CARD_3DS))
    payment_id = made.json()["id"]
    async with stack.sessions() as session:
        payment = await session.get(Payment, payment_id)
        assert payment is not None and payment.provider_ref
        provider_ref = payment.provider_ref
    handle = stack.client.get_workflow_handle(f"deposit-{payment_id}")

    async def psp_own_event_signalled() -> bool:
        async with stack.sessions() as session:
            signalled = await session.scalar(
                select(func.count())
                .select_from(ProviderWebhook)
                .where(
                    ProviderWebhook.provider_ref == provider_ref,
                    ProviderWebhook.signalled_at.is_not(None),
                )
            )
        return bool(signalled)

    await eventually(psp_own_event_signalled, within=10)
    seen_before = (await handle.query(DepositWorkflow.state)).events_seen

    event = _event(payment_id, provider_ref)
    body, headers = signed_psp_event(stack.settings.psp_webhook_secret, event)
    first = await stack.http.post("/webhooks/psp/sim", content=body, headers=headers)
    assert first.status_code == 200 and first.json()["status"] == "accepted"
    again = await stack.http.post("/webhooks/psp/sim", content=body, headers=headers)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert await _stored(stack, event["id"]) == 1

    async def signalled_once() -> bool:
        state = await handle.query(DepositWorkflow.state)
        return state.events_seen == seen_before + 1

    await eventually(signalled_once, within=10)
    # Only a hint: the PSP, asked again, still has the payment waiting for 3-D Secure.
    state = await handle.query(DepositWorkflow.state)
    assert state.status == "pending"


class _TemporalDown:
    """A Temporal client whose every signal fails as an unreachable frontend does."""

    def get_workflow_handle(self, workflow_id: str) -> _TemporalDown:
        return self

    async def signal(self, *args: object) -> None:
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")


async def test_psp_webhook_while_temporal_is_down_is_a_503_then_signalled_on_redelivery(
    stack: Stack,
) -> None:
    _, token = await verified_trader(stack)
    made = await deposit(stack.http, token, deposit_body(instrument=CARD_3DS))
    payment_id = made.json()["id"]
    async with stack.sessions() as session:
        payment = await session.get(Payment, payment_id)
        assert payment is not None and payment.provider_ref
        provider_ref = payment.provider_ref
    event = _event(payment_id, provider_ref)
    body, headers = signed_psp_event(stack.settings.psp_webhook_secret, event)

    async def temporal_down() -> Any:
        return _TemporalDown()

    psps = build_psps(stack.settings)
    api = create_app(stack.settings, temporal_client=temporal_down, psps=psps)
    async with serving(api) as url, httpx.AsyncClient(base_url=url) as http:  # type: ignore[arg-type]
        down = await http.post("/webhooks/psp/sim", content=body, headers=headers)
    await psps.close()
    assert down.status_code == 503, down.text
    async with stack.sessions() as session:
        stored = await session.scalar(
            select(ProviderWebhook).where(ProviderWebhook.event_key == event["id"])
        )
        assert stored is not None and stored.signalled_at is None  # kept for the redelivery
    redelivered = await stack.http.post("/webhooks/psp/sim", content=body, headers=headers)
    assert redelivered.status_code == 200
    assert redelivered.json()["status"] == "duplicate"  # stored before, signalled now
    async with stack.sessions() as session:
        stored = await session.scalar(
            select(ProviderWebhook).where(ProviderWebhook.event_key == event["id"])
        )
        assert stored is not None and stored.signalled_at is not None
