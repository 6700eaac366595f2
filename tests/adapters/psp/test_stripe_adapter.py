"""StripeClient against recorded Stripe request/response shapes (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from fxcrm.adapters.psp.base import (
    CreatePayment,
    CreatePayout,
    PaymentMethod,
    PaymentStatus,
    PayoutDestination,
    PayoutStatus,
    PspError,
    RefundStatus,
    SettlementType,
)
from fxcrm.adapters.psp.stripe import StripeClient, sign_payload
from fxcrm.domain.money import Money

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
KEY = "sk_test_fxcrm"
WHSEC = "whsec_test_fxcrm"
NOW = 1718000600.0


def fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{name}.json").read_text()))


class Recorder:
    """A MockTransport handler: records each request, answers from a queue of (status, body)."""

    def __init__(self, *answers: tuple[int, dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.answers.pop(0)
        return httpx.Response(status, json=body)

    def form(self, i: int = 0) -> dict[str, str]:
        return dict(parse_qsl(self.requests[i].content.decode()))

    def query(self, i: int = 0) -> dict[str, str]:
        return dict(parse_qsl(self.requests[i].url.query.decode()))


def make(recorder: Recorder) -> StripeClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    return StripeClient(KEY, WHSEC, http=http, clock=lambda: NOW)


def card(payment_id: str, amount: str, currency: str = "USD", **kw: Any) -> CreatePayment:
    return CreatePayment(
        payment_id=payment_id,
        amount=Money.of(amount, currency),
        method=PaymentMethod.CARD,
        customer_ref="trader-7",
        **kw,
    )


async def test_create_payment_3ds_sends_the_exact_request() -> None:
    rec = Recorder((200, fixture("payment_intent_requires_action")))
    req = card(
        "dep-001",
        "100.00",
        instrument="pm_card_threeDSecure2Required",
        return_url="https://portal.example/deposits/return",
        description="Deposit dep-001",
    )
    result = await make(rec).create_payment(req)
    sent = rec.requests[0]
    assert (sent.method, sent.url.path) == ("POST", "/v1/payment_intents")
    assert sent.headers["Idempotency-Key"] == "dep-001"
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert rec.form() == {
        "amount": "10000",
        "currency": "usd",
        "payment_method_types[0]": "card",
        "description": "Deposit dep-001",
        "metadata[payment_id]": "dep-001",
        "metadata[customer_ref]": "trader-7",
        "payment_method": "pm_card_threeDSecure2Required",
        "confirm": "true",
        "return_url": "https://portal.example/deposits/return",
    }
    assert result.status == PaymentStatus.REQUIRES_ACTION
    assert result.redirect_url is not None
    assert result.redirect_url.startswith("https://hooks.stripe.com/3d_secure_2/hosted")
    assert result.our_payment_id == "dep-001"
    assert result.amount_requested == Money.of("100.00", "USD")


async def test_decline_402_is_a_failed_result() -> None:
    rec = Recorder((402, fixture("card_declined_402")))
    result = await make(rec).create_payment(card("dep-003", "50.00", "EUR", instrument="pm_x"))
    assert result.status == PaymentStatus.FAILED
    assert result.failure_code == "generic_decline"
    assert result.failure_message == "Your card was declined."
    assert result.provider_ref == "pi_3PsimDeclined0001"


async def test_reused_key_with_other_params_is_idempotency_conflict() -> None:
    rec = Recorder((400, fixture("idempotency_error_400")))
    with pytest.raises(PspError) as err:
        await make(rec).create_payment(card("dep-002", "1.00", instrument="pm_x"))
    assert (err.value.code, err.value.retryable, err.value.status_code) == (
        "idempotency_conflict",
        False,
        400,
    )


@pytest.mark.parametrize(
    ("status", "headers", "retryable"),
    [
        (500, {}, True),
        (429, {}, True),
        (401, {}, False),
        (400, {"Stripe-Should-Retry": "true"}, True),
    ],
)
async def test_error_retryability(status: int, headers: dict[str, str], retryable: bool) -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        body = {"error": {"type": "api_error", "message": "boom"}}
        return httpx.Response(status, json=body, headers=headers)

    client = StripeClient(
        KEY, WHSEC, http=httpx.AsyncClient(transport=httpx.MockTransport(handler))
    )
    with pytest.raises(PspError) as err:
        await client.get_payment("pi_1")
    assert err.value.retryable is retryable


async def test_timeout_is_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client = StripeClient(
        KEY, WHSEC, http=httpx.AsyncClient(transport=httpx.MockTransport(handler))
    )
    with pytest.raises(PspError) as err:
        await client.create_payment(card("dep-9", "1.00", instrument="pm_x"))
    assert (err.value.retryable, err.value.code) == (True, "timeout")


async def test_non_card_methods_are_unsupported() -> None:
    client = make(Recorder())
    req = CreatePayment(
        payment_id="d", amount=Money.of("1", "USDT"), method=PaymentMethod.CRYPTO, customer_ref="t"
    )
    with pytest.raises(PspError) as err:
        await client.create_payment(req)
    assert err.value.code == "unsupported"


async def test_get_payment_expands_charge_and_reads_fee_and_refunds() -> None:
    rec = Recorder((200, fixture("payment_intent_succeeded")))
    result = await make(rec).get_payment("pi_3PsimSucceeded0001")
    sent = rec.requests[0]
    assert (sent.method, sent.url.path) == ("GET", "/v1/payment_intents/pi_3PsimSucceeded0001")
    assert rec.query() == {"expand[0]": "latest_charge.balance_transaction"}
    assert "Idempotency-Key" not in sent.headers
    assert result.status == PaymentStatus.PARTIALLY_REFUNDED
    assert result.fee == Money.of("3.20", "USD")
    assert result.amount_received == Money.of("100", "USD")
    assert result.amount_refunded == Money.of("25", "USD")


async def test_refund() -> None:
    rec = Recorder((200, fixture("refund")))
    result = await make(rec).refund("pi_3PsimSucceeded0001", Money.of("25.00", "USD"), "rf-001")
    sent = rec.requests[0]
    assert (sent.method, sent.url.path, sent.headers["Idempotency-Key"]) == (
        "POST",
        "/v1/refunds",
        "rf-001",
    )
    assert rec.form() == {
        "payment_intent": "pi_3PsimSucceeded0001",
        "amount": "2500",
        "metadata[refund_id]": "rf-001",
    }
    assert (result.status, result.amount) == (RefundStatus.SUCCEEDED, Money.of("25", "USD"))
    assert result.provider_ref == "re_3PsimRefund00001"


async def test_payout_is_a_transfer_to_a_connect_account() -> None:
    rec = Recorder((200, fixture("transfer")), (200, fixture("transfer")))
    client = make(rec)
    req = CreatePayout(
        payout_id="wd-001",
        amount=Money.of("200.00", "USD"),
        destination=PayoutDestination(
            kind=PaymentMethod.LOCAL, provider_account="acct_1PsimConnected01"
        ),
        customer_ref="trader-7",
    )
    result = await client.create_payout(req)
    assert (rec.requests[0].url.path, rec.requests[0].headers["Idempotency-Key"]) == (
        "/v1/transfers",
        "wd-001",
    )
    assert rec.form() == {
        "amount": "20000",
        "currency": "usd",
        "destination": "acct_1PsimConnected01",
        "transfer_group": "wd-001",
        "metadata[payout_id]": "wd-001",
        "metadata[customer_ref]": "trader-7",
    }
    assert (result.status, result.our_payout_id) == (PayoutStatus.PAID, "wd-001")
    assert (await client.get_payout("tr_1PsimTransfer0001")).provider_ref == "tr_1PsimTransfer0001"
    card_payout = req.model_copy(
        update={"destination": PayoutDestination(kind=PaymentMethod.CARD, card_token="pm_x")}
    )
    with pytest.raises(PspError) as err:
        await client.create_payout(card_payout)
    assert err.value.code == "unsupported"


def _signed(body: bytes, t: int, secret: str = WHSEC) -> dict[str, str]:
    return {"Stripe-Signature": f"t={t},v1={sign_payload(secret, t, body)},v0=ignored"}


@pytest.fixture
def events() -> StripeClient:
    return make(Recorder())


def test_webhook_signature_good(events: StripeClient) -> None:
    body = (FIXTURES / "event_charge_dispute_created.json").read_bytes()
    assert events.verify_webhook(_signed(body, int(NOW) - 10), body)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, t: (_signed(body, t), body.replace(b"fraudulent", b"duplicate")),
        lambda body, t: (_signed(body, t, "whsec_other"), body),
        lambda body, t: (_signed(body, t - 301), body),  # replayed: outside the tolerance
        lambda body, t: ({"Stripe-Signature": f"t={t}"}, body),
        lambda body, t: ({}, body),
    ],
)
def test_webhook_signature_refused(
    events: StripeClient, tamper: Callable[[bytes, int], tuple[dict[str, str], bytes]]
) -> None:
    body = (FIXTURES / "event_charge_dispute_created.json").read_bytes()
    headers, sent = tamper(body, int(NOW))
    assert not events.verify_webhook(headers, sent)


def test_webhook_signature_accepts_any_v1_while_rolling(events: StripeClient) -> None:
    body = b'{"id":"evt_1"}'
    t = int(NOW)
    header = f"t={t},v1={sign_payload('whsec_old', t, body)},v1={sign_payload(WHSEC, t, body)}"
    assert events.verify_webhook({"stripe-signature": header}, body)


def test_parse_dispute_event(events: StripeClient) -> None:
    event = events.parse_webhook((FIXTURES / "event_charge_dispute_created.json").read_bytes())
    assert event.event_key == "evt_1PsimDispute00001"
    assert (event.provider_ref, event.object_kind) == ("pi_3PsimSucceeded0001", "dispute")
    assert event.status == PaymentStatus.CHARGED_BACK
    assert event.amount == Money.of("100.00", "USD")
    assert event.created_at == datetime.fromtimestamp(1718000500, UTC)


def test_parse_payment_intent_event(events: StripeClient) -> None:
    event = events.parse_webhook((FIXTURES / "event_payment_intent_succeeded.json").read_bytes())
    assert (event.our_payment_id, event.status) == ("dep-002", PaymentStatus.SUCCEEDED)


def test_parse_garbage(events: StripeClient) -> None:
    for body in (b"nope", b"{}", b'{"object":"event","data":{}}'):
        with pytest.raises(ValueError):
            events.parse_webhook(body)


async def test_settlement_report_pages_and_maps_types() -> None:
    rec = Recorder(
        (200, fixture("balance_transactions_page1")), (200, fixture("balance_transactions_page2"))
    )
    lines = await make(rec).settlement_report(date(2024, 6, 10))
    assert rec.query(0) == {
        "created[gte]": "1717977600",
        "created[lt]": "1718064000",
        "limit": "100",
        "expand[0]": "data.source",
    }
    assert rec.query(1)["starting_after"] == "txn_3PsimRefund00001"
    assert [
        (ln.type, ln.our_id, ln.provider_ref, ln.gross.amount, ln.fee.amount, ln.net.amount)
        for ln in lines
    ] == [
        (
            SettlementType.PAYMENT,
            "dep-002",
            "pi_3PsimSucceeded0001",
            Decimal("100"),
            Decimal("3.2"),
            Decimal("96.8"),
        ),
        (
            SettlementType.REFUND,
            "rf-001",
            "pi_3PsimSucceeded0001",
            Decimal("-25"),
            Decimal(0),
            Decimal("-25"),
        ),
        (
            SettlementType.CHARGEBACK,
            None,
            "pi_3PsimSucceeded0001",
            Decimal("-100"),
            Decimal(15),
            Decimal("-115"),
        ),
        (
            SettlementType.PAYOUT,
            "wd-001",
            "tr_1PsimTransfer0001",
            Decimal("-200"),
            Decimal(0),
            Decimal("-200"),
        ),
    ]
    assert all(line.currency == "USD" for line in lines)
