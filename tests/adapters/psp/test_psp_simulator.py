"""The PSP simulator end to end: SimPspClient → simulator → signed webhooks → a receiver."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal

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
    SettlementType,
)
from fxcrm.adapters.psp.simulator_client import SimPspClient
from fxcrm.adapters.simulators.psp import CARD_3DS, CARD_DECLINED, CARD_NO_FUNDS, CARD_OK
from fxcrm.domain.money import Money

from .conftest import Receiver, Sim, eventually


def _req(
    method: PaymentMethod, amount: str = "100.00", currency: str = "USD", **kw: str
) -> CreatePayment:
    return CreatePayment(
        payment_id=f"dep-{uuid.uuid4().hex[:12]}",
        amount=Money.of(amount, currency),
        method=method,
        customer_ref="trader-1",
        **kw,
    )


async def test_card_success_books_fee_and_sends_signed_webhook(
    client: SimPspClient, receiver: Receiver
) -> None:
    result = await client.create_payment(_req(PaymentMethod.CARD, instrument=CARD_OK))
    assert result.status == PaymentStatus.SUCCEEDED
    assert result.amount_received == Money.of("100.00", "USD")
    assert result.fee == Money.of("2.90", "USD")
    await eventually(lambda: receiver.types(result.provider_ref) == ["payment.succeeded"])
    delivery = receiver.of(result.provider_ref)[0]
    assert client.verify_webhook(delivery.headers, delivery.body)
    event = client.parse_webhook(delivery.body)
    assert event.our_payment_id == result.our_payment_id
    assert event.status == PaymentStatus.SUCCEEDED
    assert event.event_key == delivery.headers["x-sim-event-id"]


@pytest.mark.parametrize(
    ("card", "code"),
    [
        (CARD_DECLINED, "card_declined"),
        (CARD_NO_FUNDS, "insufficient_funds"),
        ("4242424242424241", "incorrect_number"),
    ],
)
async def test_card_declines(client: SimPspClient, card: str, code: str) -> None:
    result = await client.create_payment(_req(PaymentMethod.CARD, instrument=card))
    assert result.status == PaymentStatus.FAILED
    assert result.failure_code == code
    assert result.fee is None


async def test_3ds_page_approve_redirects_back(client: SimPspClient, sim: Sim) -> None:
    req = _req(PaymentMethod.CARD, instrument=CARD_3DS, return_url="https://portal.test/back")
    result = await client.create_payment(req)
    assert result.status == PaymentStatus.REQUIRES_ACTION
    assert result.redirect_url == f"{sim.url}/3ds/{result.provider_ref}"
    async with httpx.AsyncClient() as browser:
        page = await browser.get(result.redirect_url)
        assert re.search(r'<form method="post" action="/3ds/pay_\w+">', page.text)
        answer = await browser.post(result.redirect_url, data={"decision": "approve"})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"https://portal.test/back?payment={result.provider_ref}"
    assert (await client.get_payment(result.provider_ref)).status == PaymentStatus.SUCCEEDED


async def test_3ds_decline_through_control(
    client: SimPspClient, control: httpx.AsyncClient
) -> None:
    result = await client.create_payment(_req(PaymentMethod.CARD))  # hosted page: 3DS
    answer = await control.post(
        f"/_sim/payments/{result.provider_ref}/3ds", json={"approve": False}
    )
    assert answer.json()["status"] == "failed"
    fetched = await client.get_payment(result.provider_ref)
    assert (fetched.status, fetched.failure_code) == (PaymentStatus.FAILED, "authentication_failed")


async def test_idempotent_create(client: SimPspClient) -> None:
    req = _req(PaymentMethod.CARD, instrument=CARD_OK)
    first = await client.create_payment(req)
    again = await client.create_payment(req)
    assert again.provider_ref == first.provider_ref
    changed = req.model_copy(update={"amount": Money.of("101.00", "USD")})
    with pytest.raises(PspError) as err:
        await client.create_payment(changed)
    assert (err.value.status_code, err.value.code, err.value.retryable) == (
        409,
        "idempotency_conflict",
        False,
    )


async def test_crypto_confirmations_then_succeeded(
    client: SimPspClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    result = await client.create_payment(_req(PaymentMethod.CRYPTO, "250.000000", "USDT"))
    assert result.status == PaymentStatus.REQUIRES_ACTION
    assert result.crypto_address and result.crypto_network == "TRC20"
    assert (result.confirmations, result.confirmations_required) == (0, 3)
    await control.post(f"/_sim/payments/{result.provider_ref}/crypto", json={"amount": "250"})
    await eventually(lambda: "payment.succeeded" in receiver.types(result.provider_ref))
    fetched = await client.get_payment(result.provider_ref)
    assert fetched.status == PaymentStatus.SUCCEEDED
    assert fetched.confirmations == 3
    assert receiver.types(result.provider_ref) == [
        "payment.requires_action",
        "payment.processing",
        "payment.succeeded",
    ]


async def test_crypto_underpayment(
    client: SimPspClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    result = await client.create_payment(_req(PaymentMethod.CRYPTO, "0.01000000", "BTC"))
    await control.post(f"/_sim/payments/{result.provider_ref}/crypto", json={"amount": "0.008"})
    await eventually(lambda: "payment.underpaid" in receiver.types(result.provider_ref))
    fetched = await client.get_payment(result.provider_ref)
    assert fetched.status == PaymentStatus.UNDERPAID
    assert fetched.amount_received == Money.of("0.008", "BTC")
    assert fetched.amount_requested == Money.of("0.01", "BTC")


async def test_bank_wire_waits_for_finance(
    client: SimPspClient, control: httpx.AsyncClient
) -> None:
    result = await client.create_payment(_req(PaymentMethod.BANK_WIRE, "5000.00", "EUR"))
    assert result.status == PaymentStatus.PROCESSING
    assert result.bank_instructions is not None
    assert result.bank_instructions.reference.startswith("SIM-")
    assert (await client.get_payment(result.provider_ref)).status == PaymentStatus.PROCESSING
    answer = await control.post(
        f"/_sim/payments/{result.provider_ref}/confirm", json={"amount": "5000.00"}
    )
    assert answer.status_code == 200
    fetched = await client.get_payment(result.provider_ref)
    assert fetched.status == PaymentStatus.SUCCEEDED
    assert fetched.amount_received == Money.of("5000", "EUR")
    again = await control.post(
        f"/_sim/payments/{result.provider_ref}/confirm", json={"amount": "1"}
    )
    assert again.status_code == 409


async def test_bank_wire_short_amount_is_underpaid(
    client: SimPspClient, control: httpx.AsyncClient
) -> None:
    result = await client.create_payment(_req(PaymentMethod.BANK_WIRE, "1000.00"))
    await control.post(f"/_sim/payments/{result.provider_ref}/confirm", json={"amount": "990.00"})
    assert (await client.get_payment(result.provider_ref)).status == PaymentStatus.UNDERPAID


async def test_local_method_succeeds_or_fails_after_delay(client: SimPspClient) -> None:
    ok = await client.create_payment(_req(PaymentMethod.LOCAL, instrument="bank-x"))
    bad = await client.create_payment(_req(PaymentMethod.LOCAL, instrument="sim-fail"))
    assert ok.status == bad.status == PaymentStatus.PROCESSING

    async def statuses() -> tuple[PaymentStatus, PaymentStatus]:
        return (
            (await client.get_payment(ok.provider_ref)).status,
            (await client.get_payment(bad.provider_ref)).status,
        )

    seen = await statuses()
    for _ in range(100):
        if PaymentStatus.PROCESSING not in seen:
            break
        await asyncio.sleep(0.02)
        seen = await statuses()
    assert seen == (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED)


async def test_refunds_partial_then_full_and_idempotent(client: SimPspClient) -> None:
    paid = await client.create_payment(_req(PaymentMethod.CARD, instrument=CARD_OK))
    first = await client.refund(paid.provider_ref, Money.of("40", "USD"), "rf-1")
    assert (await client.refund(paid.provider_ref, Money.of("40", "USD"), "rf-1")).provider_ref == (
        first.provider_ref
    )
    assert (await client.get_payment(paid.provider_ref)).status == PaymentStatus.PARTIALLY_REFUNDED
    with pytest.raises(PspError) as err:
        await client.refund(paid.provider_ref, Money.of("60.01", "USD"), "rf-2")
    assert err.value.code == "amount_too_large"
    await client.refund(paid.provider_ref, Money.of("60", "USD"), "rf-2")
    fetched = await client.get_payment(paid.provider_ref)
    assert fetched.status == PaymentStatus.REFUNDED
    assert fetched.amount_refunded == Money.of("100", "USD")


async def test_refund_of_failed_payment_is_refused(client: SimPspClient) -> None:
    failed = await client.create_payment(_req(PaymentMethod.CARD, instrument=CARD_DECLINED))
    with pytest.raises(PspError) as err:
        await client.refund(failed.provider_ref, Money.of("1", "USD"), "rf-x")
    assert (err.value.code, err.value.retryable) == ("not_refundable", False)


async def test_chargeback_event(
    client: SimPspClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    paid = await client.create_payment(_req(PaymentMethod.CARD, instrument=CARD_OK))
    answer = await control.post(f"/_sim/payments/{paid.provider_ref}/chargeback", json={})
    assert answer.json()["status"] == "charged_back"
    await eventually(lambda: "payment.charged_back" in receiver.types(paid.provider_ref))
    event = client.parse_webhook(receiver.of(paid.provider_ref)[-1].body)
    assert event.status == PaymentStatus.CHARGED_BACK


async def test_payouts_paid_and_failed(client: SimPspClient, receiver: Receiver) -> None:
    def payout(dest: PayoutDestination) -> CreatePayout:
        return CreatePayout(
            payout_id=f"wd-{uuid.uuid4().hex[:10]}",
            amount=Money.of("200.00", "USD"),
            destination=dest,
            customer_ref="trader-1",
        )

    ok_req = payout(PayoutDestination(kind=PaymentMethod.BANK_WIRE, iban="DE89370400440532013000"))
    ok = await client.create_payout(ok_req)
    assert ok.status == PayoutStatus.PROCESSING
    assert (await client.create_payout(ok_req)).provider_ref == ok.provider_ref  # idempotent
    declined = await client.create_payout(
        payout(PayoutDestination(kind=PaymentMethod.CARD, card_token=CARD_DECLINED))
    )
    closed = await client.create_payout(
        payout(PayoutDestination(kind=PaymentMethod.CRYPTO, crypto_address="sim-fail-addr"))
    )
    await eventually(lambda: len(receiver.of(closed.provider_ref)) == 2)
    await eventually(lambda: len(receiver.of(ok.provider_ref)) == 2)
    paid = await client.get_payout(ok.provider_ref)
    assert (paid.status, paid.fee) == (PayoutStatus.PAID, Money.of("1.00", "USD"))
    assert (await client.get_payout(declined.provider_ref)).failure_code == "card_declined"
    assert (await client.get_payout(closed.provider_ref)).failure_code == "account_closed"
    event = client.parse_webhook(receiver.of(ok.provider_ref)[-1].body)
    assert (event.object_kind, event.payout_status, event.our_payment_id) == (
        "payout",
        PayoutStatus.PAID,
        ok_req.payout_id,
    )


async def test_settlement_report_matches_what_happened(
    client: SimPspClient, control: httpx.AsyncClient
) -> None:
    card = await client.create_payment(_req(PaymentMethod.CARD, instrument=CARD_OK))
    await client.refund(card.provider_ref, Money.of("10.00", "USD"), "rf-s")
    disputed = await client.create_payment(_req(PaymentMethod.CARD, "50.00", instrument=CARD_OK))
    await control.post(f"/_sim/payments/{disputed.provider_ref}/chargeback", json={})
    await client.create_payment(_req(PaymentMethod.CARD, instrument=CARD_DECLINED))  # not booked
    lines = await client.settlement_report(datetime.now(UTC).date())
    summary = [(line.type, line.our_id, line.gross.amount, line.fee.amount) for line in lines]
    assert summary == [
        (SettlementType.PAYMENT, card.our_payment_id, Decimal("100.00"), Decimal("2.90")),
        (SettlementType.REFUND, "rf-s", Decimal("-10.00"), Decimal(0)),
        (SettlementType.PAYMENT, disputed.our_payment_id, Decimal("50.00"), Decimal("1.45")),
        (SettlementType.CHARGEBACK, disputed.our_payment_id, Decimal("-50.00"), Decimal(15)),
    ]
    assert all(line.net.amount == line.gross.amount - line.fee.amount for line in lines)
    assert await client.settlement_report(datetime(2000, 1, 1, tzinfo=UTC).date()) == []
