"""SimPspClient against the simulator: signatures, error mapping and faults on demand."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import pytest

from fxcrm.adapters.psp.base import CreatePayment, PaymentMethod, PaymentStatus, PspError
from fxcrm.adapters.psp.simulator_client import SimPspClient, webhook_signature
from fxcrm.adapters.simulators.psp import CARD_3DS, CARD_OK
from fxcrm.domain.money import Money

from .conftest import WEBHOOK_SECRET, Receiver, Sim, eventually


def _card(card: str = CARD_OK) -> CreatePayment:
    return CreatePayment(
        payment_id=f"dep-{uuid.uuid4().hex[:12]}",
        amount=Money.of("10.00", "USD"),
        method=PaymentMethod.CARD,
        customer_ref="trader-2",
        instrument=card,
    )


BODY = b'{"id":"evt_1","type":"payment.succeeded"}'


def test_webhook_signature_good_tampered_wrong_secret() -> None:
    client = SimPspClient("http://unused", "k", WEBHOOK_SECRET)
    good = {"X-Sim-Signature": webhook_signature(WEBHOOK_SECRET, BODY)}
    assert client.verify_webhook(good, BODY)
    assert not client.verify_webhook(good, BODY.replace(b"succeeded", b"failed"))
    assert not client.verify_webhook({"X-Sim-Signature": webhook_signature("other", BODY)}, BODY)
    assert not client.verify_webhook({}, BODY)
    assert not SimPspClient("http://unused", "k", "").verify_webhook(
        {"X-Sim-Signature": webhook_signature("", BODY)}, BODY
    )


def test_parse_webhook_rejects_garbage() -> None:
    client = SimPspClient("http://unused", "k", WEBHOOK_SECRET)
    for body in (b"not json", b"[]", b'{"data": {}}'):
        with pytest.raises(ValueError):
            client.parse_webhook(body)


async def test_wrong_api_key_is_401_not_retryable(sim: Sim) -> None:
    bad = SimPspClient(sim.url, "wrong-key", WEBHOOK_SECRET)
    try:
        with pytest.raises(PspError) as err:
            await bad.create_payment(_card())
    finally:
        await bad.close()
    assert (err.value.status_code, err.value.retryable) == (401, False)


async def test_unknown_payment_is_404(client: SimPspClient) -> None:
    with pytest.raises(PspError) as err:
        await client.get_payment("pay_nope")
    assert (err.value.code, err.value.retryable) == ("not_found", False)


async def test_timeout_once_then_retry_returns_the_same_payment(
    client: SimPspClient, impatient: SimPspClient, control: httpx.AsyncClient, sim: Sim
) -> None:
    await control.post("/_sim/faults", json={"timeout": True})
    req = _card()
    with pytest.raises(PspError) as err:
        await impatient.create_payment(req)
    assert (err.value.code, err.value.retryable) == ("timeout", True)
    again = await client.create_payment(req)  # the work was done: the retry finds it
    assert again.status == PaymentStatus.SUCCEEDED
    assert len(sim.state.payments) == 1


async def test_fail_create_once_is_retryable_and_creates_nothing(
    client: SimPspClient, control: httpx.AsyncClient, sim: Sim
) -> None:
    await control.post("/_sim/faults", json={"fail_create": True})
    req = _card()
    with pytest.raises(PspError) as err:
        await client.create_payment(req)
    assert (err.value.status_code, err.value.retryable) == (500, True)
    assert sim.state.payments == {}
    assert (await client.create_payment(req)).status == PaymentStatus.SUCCEEDED


async def test_duplicate_delivery_repeats_the_event_key(
    client: SimPspClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    await control.post("/_sim/faults", json={"duplicate": True})
    paid = await client.create_payment(_card())
    await eventually(lambda: len(receiver.of(paid.provider_ref)) == 2)
    first, second = receiver.of(paid.provider_ref)
    assert first.body == second.body
    events = {client.parse_webhook(d.body).event_key for d in (first, second)}
    assert len(events) == 1  # the receiver de-duplicates on it


async def test_out_of_order_delivery_is_ordered_by_provider_time(
    client: SimPspClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    await control.post("/_sim/faults", json={"out_of_order": True})
    pending = await client.create_payment(_card(CARD_3DS))
    await control.post(f"/_sim/payments/{pending.provider_ref}/3ds", json={"approve": True})
    await eventually(lambda: len(receiver.of(pending.provider_ref)) == 2)
    assert receiver.types(pending.provider_ref) == ["payment.succeeded", "payment.requires_action"]
    events = [client.parse_webhook(d.body) for d in receiver.of(pending.provider_ref)]
    newest = max(events, key=lambda e: e.created_at)
    assert newest.status == PaymentStatus.SUCCEEDED
    assert isinstance(newest.created_at, datetime) and newest.created_at.tzinfo is not None


async def test_lone_out_of_order_event_is_still_delivered(
    client: SimPspClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    await control.post("/_sim/faults", json={"out_of_order": True})
    paid = await client.create_payment(_card())
    await eventually(lambda: receiver.types(paid.provider_ref) == ["payment.succeeded"])


async def test_bad_signature_fault(
    client: SimPspClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    await control.post("/_sim/faults", json={"bad_signature": True})
    paid = await client.create_payment(_card())
    await eventually(lambda: len(receiver.of(paid.provider_ref)) == 1)
    delivery = receiver.of(paid.provider_ref)[0]
    assert not client.verify_webhook(delivery.headers, delivery.body)


async def test_webhook_retried_after_receiver_error(
    client: SimPspClient, control: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.fail_next = 2
    paid = await client.create_payment(_card())
    await eventually(lambda: len(receiver.of(paid.provider_ref)) == 1)
    log = (await control.get(f"/_sim/payments/{paid.provider_ref}")).json()["webhooks"]
    assert [d["status"] for d in log[0]["deliveries"]] == [503, 503, 200]
