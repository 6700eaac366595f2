"""A payment service provider for development and tests: card, crypto, bank wire and a local method.

It speaks the wire protocol documented in `fxcrm.adapters.psp.simulator_client` (signed JSON API,
Idempotency-Key, signed webhooks), keeps everything in memory and sends a webhook for every status
change to `config.webhook_url`, retrying non-2xx answers with doubling backoff.

Test data (the payment's `instrument`):
  card   4242424242424242  succeeds at once
         4000000000003220  3-D Secure: requires_action with redirect_url = /3ds/{ref}; the page's
                           Approve → succeeded, Decline → failed (authentication_failed)
         4000000000000002  failed, card_declined
         4000000000009995  failed, insufficient_funds
         None              a hosted page: like 4000000000003220
         other             succeeds if it passes the Luhn check, else failed (incorrect_number)
  crypto requires_action with an address; POST /_sim/payments/{ref}/crypto {"amount": "..."} sends
         funds: processing, one confirmation every `confirmation_interval_seconds`, then after
         `crypto_confirmations` succeeded (underpaid if less than asked arrived)
  bank_wire processing with bank instructions until finance confirms:
         POST /_sim/payments/{ref}/confirm {"amount": "..."} (or {"reject": true})
  local  processing, then after `local_delay_seconds` succeeded; instrument "sim-fail" fails
Payouts: processing, then after `payout_delay_seconds` paid; a destination card 4000000000000002
fails (card_declined), any destination field containing "sim-fail" fails (account_closed).
Fees: card 2.9%, crypto 1%, wire 0, local 1.5%, payouts 0.5%, chargebacks 15 flat.

Faults (`config.faults` or POST /_sim/faults; fields left out stay as they are):
  duplicate      every webhook is delivered twice, byte for byte
  out_of_order   webhooks of one payment leave in swapped pairs (a lone one after a short hold)
  bad_signature  webhooks are signed with a wrong secret
  timeout        one-shot: the next API call does its work, then answers too late
  fail_create    one-shot: the next create (payment or payout) answers 500 and does nothing

Test helpers (no auth: loopback only): GET /_sim/payments/{ref}, POST /_sim/payments/{ref}/3ds
{"approve": bool}, .../chargeback {"amount"?}, .../crypto, .../confirm, .../expire,
GET /_sim/payouts/{ref}, GET|POST /_sim/faults, POST /_sim/reset.

Run it: `python -m fxcrm.adapters.simulators.psp --port 7110`, or in tests
`async with serving(create_psp_simulator(config)) as base_url:`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import html
import json
import secrets
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from fxcrm.adapters.psp.simulator_client import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    request_signature,
    webhook_signature,
)
from fxcrm.adapters.simulators.kyc import serving
from fxcrm.core.config import DEV_PSP_API_KEY, DEV_PSP_WEBHOOK_SECRET
from fxcrm.domain.money import CURRENCY_SCALE

__all__ = ["DEFAULT_PORT", "PspSimConfig", "PspSimulator", "create_psp_simulator", "serving"]

DEFAULT_PORT = 7110

CARD_OK = "4242424242424242"
CARD_3DS = "4000000000003220"
CARD_DECLINED = "4000000000000002"
CARD_NO_FUNDS = "4000000000009995"
FAIL_MARKER = "sim-fail"

FEE_RATE = {
    "card": Decimal("0.029"),
    "crypto": Decimal("0.01"),
    "bank_wire": Decimal(0),
    "local": Decimal("0.015"),
}
PAYOUT_FEE_RATE = Decimal("0.005")
CHARGEBACK_FEE = Decimal(15)
_METHODS = set(FEE_RATE)


class SimFaults(BaseModel):
    duplicate: bool = False
    out_of_order: bool = False
    bad_signature: bool = False
    timeout: bool = False  # one-shot
    fail_create: bool = False  # one-shot


class FaultsUpdate(BaseModel):
    duplicate: bool | None = None
    out_of_order: bool | None = None
    bad_signature: bool | None = None
    timeout: bool | None = None
    fail_create: bool | None = None


class PspSimConfig(BaseModel):
    api_key: str = DEV_PSP_API_KEY
    webhook_secret: str = DEV_PSP_WEBHOOK_SECRET
    webhook_url: str | None = "http://127.0.0.1:8000/webhooks/psp/sim"
    public_url: str | None = None  # base of 3-D Secure links; None: the URL the request used
    crypto_confirmations: int = 3
    confirmation_interval_seconds: float = 1.0
    local_delay_seconds: float = 1.0
    payout_delay_seconds: float = 1.0
    out_of_order_hold_seconds: float = 0.5
    webhook_attempts: int = 4
    webhook_backoff_seconds: float = 0.5  # doubles after each failed attempt
    webhook_timeout_seconds: float = 5.0
    timeout_fault_seconds: float = 6.0  # longer than the client's timeout
    max_clock_skew_seconds: float = 300.0
    faults: SimFaults = Field(default_factory=SimFaults)


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _quantize(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-CURRENCY_SCALE[currency]))


def _amount(raw: object, currency: str) -> Decimal:
    try:
        value = Decimal(str(raw))
    except InvalidOperation as exc:
        raise _ApiError(400, "invalid_amount", f"not an amount: {raw!r}") from exc
    if not value.is_finite() or value <= 0 or value != _quantize(value, currency):
        raise _ApiError(400, "invalid_amount", f"bad amount {raw!r} for {currency}")
    return value


def _currency(raw: object) -> str:
    code = str(raw or "").upper()
    if code not in CURRENCY_SCALE:
        raise _ApiError(400, "invalid_currency", f"unsupported currency {raw!r}")
    return code


def _luhn_ok(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        digit = int(ch) * (2 if i % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


def _hash_body(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


@dataclass
class _Stream:
    """Webhooks of one payment or payout: they leave one after another, in order."""

    last_delivery: asyncio.Task[None] | None = None
    held: dict[str, Any] | None = None  # out_of_order: waiting for the next event to swap with
    last_event_at: datetime | None = None
    webhooks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SimRefund:
    id: str
    refund_id: str
    payment: str
    amount: Decimal
    currency: str
    body_hash: str
    status: str = "succeeded"

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "refund_id": self.refund_id,
            "payment": self.payment,
            "amount": str(self.amount),
            "currency": self.currency,
            "status": self.status,
        }


@dataclass
class SimPayment:
    id: str
    payment_id: str
    body_hash: str
    method: str
    amount: Decimal
    currency: str
    customer_ref: str
    return_url: str | None
    description: str | None
    instrument: str | None
    network: str | None
    status: str = "created"
    received: Decimal | None = None
    refunded: Decimal = Decimal(0)
    booked: Decimal = Decimal(0)  # received money already in the settlement report
    fee: Decimal | None = None
    redirect_url: str | None = None
    crypto_address: str | None = None
    confirmations: int | None = None
    confirmations_required: int | None = None
    bank_instructions: dict[str, str] | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    refunds: dict[str, SimRefund] = field(default_factory=dict)
    stream: _Stream = field(default_factory=_Stream)
    generation: int = 0  # bumped by every crypto send: an older confirmation run stops

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "payment_id": self.payment_id,
            "method": self.method,
            "status": self.status,
            "amount": str(self.amount),
            "currency": self.currency,
            "amount_received": _text(self.received),
            "amount_refunded": str(self.refunded) if self.refunded else None,
            "fee": _text(self.fee),
            "customer_ref": self.customer_ref,
            "description": self.description,
            "redirect_url": self.redirect_url,
            "crypto_address": self.crypto_address,
            "crypto_network": self.network if self.method == "crypto" else None,
            "confirmations": self.confirmations,
            "confirmations_required": self.confirmations_required,
            "bank_instructions": self.bank_instructions,
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
        }


@dataclass
class SimPayout:
    id: str
    payout_id: str
    body_hash: str
    amount: Decimal
    currency: str
    destination: dict[str, Any]
    status: str = "processing"
    fee: Decimal | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    stream: _Stream = field(default_factory=_Stream)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "payout_id": self.payout_id,
            "status": self.status,
            "amount": str(self.amount),
            "currency": self.currency,
            "fee": _text(self.fee),
            "destination": self.destination,
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
        }


class PspSimulator:
    """State and behaviour; `create_psp_simulator` wraps it in a FastAPI app."""

    def __init__(self, config: PspSimConfig) -> None:
        self.config = config
        self.faults = config.faults.model_copy()
        self.payments: dict[str, SimPayment] = {}
        self.by_payment_id: dict[str, SimPayment] = {}
        self.payouts: dict[str, SimPayout] = {}
        self.by_payout_id: dict[str, SimPayout] = {}
        self.settlements: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None

    # -- payments -----------------------------------------------------------------------------

    def create_payment(self, body: dict[str, Any], key: str | None, base_url: str) -> SimPayment:
        payment_id = body.get("payment_id")
        if not isinstance(payment_id, str) or not payment_id:
            raise _ApiError(400, "invalid_request", "payment_id is required")
        if key != payment_id:
            raise _ApiError(400, "invalid_request", "Idempotency-Key must equal payment_id")
        body_hash = _hash_body(body)
        existing = self.by_payment_id.get(payment_id)
        if existing is not None:
            if existing.body_hash != body_hash:
                raise _ApiError(409, "idempotency_conflict", "payment_id reused with other data")
            return existing  # a retry: the same payment, nothing done twice
        self._fail_create_if_faulted()
        method = str(body.get("method"))
        if method not in _METHODS:
            raise _ApiError(400, "invalid_request", f"unknown method {method!r}")
        currency = _currency(body.get("currency"))
        payment = SimPayment(
            id="pay_" + secrets.token_hex(10),
            payment_id=payment_id,
            body_hash=body_hash,
            method=method,
            amount=_amount(body.get("amount"), currency),
            currency=currency,
            customer_ref=str(body.get("customer_ref") or ""),
            return_url=body.get("return_url"),
            description=body.get("description"),
            instrument=body.get("instrument"),
            network=body.get("network"),
        )
        self.payments[payment.id] = payment
        self.by_payment_id[payment_id] = payment
        getattr(self, f"_start_{method}")(payment, base_url)
        return payment

    def _start_card(self, payment: SimPayment, base_url: str) -> None:
        card = payment.instrument
        if card is None or card == CARD_3DS:
            payment.redirect_url = f"{self.config.public_url or base_url}/3ds/{payment.id}"
            self._set(payment, "requires_action")
        elif card == CARD_DECLINED:
            self._fail(payment, "card_declined", "Your card was declined.")
        elif card == CARD_NO_FUNDS:
            self._fail(payment, "insufficient_funds", "Your card has insufficient funds.")
        elif not _luhn_ok(card):
            self._fail(payment, "incorrect_number", "Your card number is incorrect.")
        else:
            self._succeed(payment, payment.amount)

    def _start_crypto(self, payment: SimPayment, _: str) -> None:
        payment.network = payment.network or ("bitcoin" if payment.currency == "BTC" else "TRC20")
        payment.crypto_address = "sim" + secrets.token_hex(16)
        payment.confirmations = 0
        payment.confirmations_required = self.config.crypto_confirmations
        self._set(payment, "requires_action")

    def _start_bank_wire(self, payment: SimPayment, _: str) -> None:
        payment.bank_instructions = {
            "beneficiary": "fxcrm Simulated Broker Ltd",
            "iban": "GB33BUKB20201555555555",
            "bic": "BUKBGB22",
            "reference": "SIM-" + payment.id[-10:].upper(),
        }
        self._set(payment, "processing")

    def _start_local(self, payment: SimPayment, _: str) -> None:
        self._set(payment, "processing")
        self._spawn(self._settle_local(payment))

    async def _settle_local(self, payment: SimPayment) -> None:
        await asyncio.sleep(self.config.local_delay_seconds)
        if payment.status != "processing":
            return
        if payment.instrument == FAIL_MARKER:
            self._fail(payment, "bank_rejected", "The bank rejected the transfer.")
        else:
            self._succeed(payment, payment.amount)

    def three_ds(self, payment: SimPayment, approve: bool) -> None:
        if payment.status != "requires_action" or payment.method != "card":
            raise _ApiError(409, "invalid_state", f"payment is {payment.status}")
        if approve:
            self._succeed(payment, payment.amount)
        else:
            self._fail(payment, "authentication_failed", "3-D Secure authentication failed.")

    def send_crypto(self, payment: SimPayment, amount: Decimal, confirmations: int) -> None:
        if payment.method != "crypto" or payment.status not in {"requires_action", "underpaid"}:
            raise _ApiError(409, "invalid_state", f"payment is {payment.status}")
        payment.received = (payment.received or Decimal(0)) + amount
        payment.confirmations = confirmations
        payment.generation += 1
        self._set(payment, "processing")
        self._spawn(self._confirm_crypto(payment, payment.generation))

    async def _confirm_crypto(self, payment: SimPayment, generation: int) -> None:
        required = payment.confirmations_required or 0
        while (payment.confirmations or 0) < required:
            await asyncio.sleep(self.config.confirmation_interval_seconds)
            if payment.generation != generation:
                return  # another transfer arrived: its run takes over
            payment.confirmations = (payment.confirmations or 0) + 1
        received = payment.received or Decimal(0)
        if received >= payment.amount:
            self._succeed(payment, received)
        else:
            self._book_received(payment, received)
            self._set(payment, "underpaid")

    def confirm_wire(self, payment: SimPayment, amount: Decimal | None, reject: bool) -> None:
        if payment.method != "bank_wire" or payment.status != "processing":
            raise _ApiError(409, "invalid_state", f"payment is {payment.status}")
        if reject:
            self._fail(payment, "rejected_by_finance", "The wire was not received.")
        elif amount is None:
            raise _ApiError(400, "invalid_request", "amount is required")
        elif amount >= payment.amount:
            self._succeed(payment, amount)
        else:
            self._book_received(payment, amount)
            self._set(payment, "underpaid")

    def expire(self, payment: SimPayment) -> None:
        if payment.status not in {"created", "requires_action", "processing"}:
            raise _ApiError(409, "invalid_state", f"payment is {payment.status}")
        self._set(payment, "expired")

    def refund(self, payment: SimPayment, body: dict[str, Any], key: str | None) -> SimRefund:
        refund_id = body.get("refund_id")
        if not isinstance(refund_id, str) or not refund_id or key != refund_id:
            raise _ApiError(400, "invalid_request", "refund_id = Idempotency-Key is required")
        body_hash = _hash_body(body)
        existing = payment.refunds.get(refund_id)
        if existing is not None:
            if existing.body_hash != body_hash:
                raise _ApiError(409, "idempotency_conflict", "refund_id reused with other data")
            return existing
        if payment.status not in {"succeeded", "partially_refunded"}:
            raise _ApiError(409, "not_refundable", f"payment is {payment.status}")
        if _currency(body.get("currency")) != payment.currency:
            raise _ApiError(400, "invalid_currency", "refund currency differs from the payment")
        amount = _amount(body.get("amount"), payment.currency)
        if amount > (payment.received or payment.amount) - payment.refunded:
            raise _ApiError(400, "amount_too_large", "refund exceeds what is left to refund")
        refund = SimRefund(
            "re_" + secrets.token_hex(10),
            refund_id,
            payment.id,
            amount,
            payment.currency,
            body_hash,
        )
        payment.refunds[refund_id] = refund
        payment.refunded += amount
        self._book("refund", payment.id, refund_id, -amount, Decimal(0), payment.currency)
        fully = payment.refunded >= (payment.received or payment.amount)
        self._set(payment, "refunded" if fully else "partially_refunded")
        return refund

    def chargeback(self, payment: SimPayment, amount: Decimal | None) -> None:
        if payment.method != "card" or payment.status not in {"succeeded", "partially_refunded"}:
            raise _ApiError(409, "invalid_state", f"payment is {payment.status}")
        disputed = amount if amount is not None else payment.amount - payment.refunded
        fee = _quantize(CHARGEBACK_FEE, payment.currency)
        self._book("chargeback", payment.id, payment.payment_id, -disputed, fee, payment.currency)
        self._set(payment, "charged_back")

    def _succeed(self, payment: SimPayment, received: Decimal) -> None:
        self._book_received(payment, received)
        payment.failure_code = payment.failure_message = None
        self._set(payment, "succeeded")

    def _book_received(self, payment: SimPayment, received: Decimal) -> None:
        payment.received = received
        payment.fee = _quantize(received * FEE_RATE[payment.method], payment.currency)
        delta = received - payment.booked
        if delta > 0:
            # Fee on this delta only, so the report's fees add up to the payment's fee.
            fee = payment.fee - _quantize(
                payment.booked * FEE_RATE[payment.method], payment.currency
            )
            self._book("payment", payment.id, payment.payment_id, delta, fee, payment.currency)
            payment.booked = received

    def _fail(self, payment: SimPayment, code: str, message: str) -> None:
        payment.failure_code, payment.failure_message = code, message
        self._set(payment, "failed")

    def _set(self, payment: SimPayment, status: str) -> None:
        payment.status = status
        self._emit(payment.stream, "payment", f"payment.{status}", payment.to_api())

    # -- payouts ------------------------------------------------------------------------------

    def create_payout(self, body: dict[str, Any], key: str | None) -> SimPayout:
        payout_id = body.get("payout_id")
        if not isinstance(payout_id, str) or not payout_id or key != payout_id:
            raise _ApiError(400, "invalid_request", "payout_id = Idempotency-Key is required")
        body_hash = _hash_body(body)
        existing = self.by_payout_id.get(payout_id)
        if existing is not None:
            if existing.body_hash != body_hash:
                raise _ApiError(409, "idempotency_conflict", "payout_id reused with other data")
            return existing
        self._fail_create_if_faulted()
        currency = _currency(body.get("currency"))
        destination = body.get("destination")
        if not isinstance(destination, dict) or destination.get("kind") not in _METHODS:
            raise _ApiError(400, "invalid_request", "destination with a kind is required")
        payout = SimPayout(
            "po_" + secrets.token_hex(10),
            payout_id,
            body_hash,
            _amount(body.get("amount"), currency),
            currency,
            destination,
        )
        self.payouts[payout.id] = payout
        self.by_payout_id[payout_id] = payout
        self._set_payout(payout, "processing")
        self._spawn(self._settle_payout(payout))
        return payout

    async def _settle_payout(self, payout: SimPayout) -> None:
        await asyncio.sleep(self.config.payout_delay_seconds)
        dest = payout.destination
        if dest.get("card_token") == CARD_DECLINED:
            payout.failure_code, payout.failure_message = "card_declined", "The card refused it."
            self._set_payout(payout, "failed")
        elif any(FAIL_MARKER in str(value) for value in dest.values()):
            payout.failure_code, payout.failure_message = "account_closed", "Account is closed."
            self._set_payout(payout, "failed")
        else:
            payout.fee = _quantize(payout.amount * PAYOUT_FEE_RATE, payout.currency)
            self._book(
                "payout", payout.id, payout.payout_id, -payout.amount, payout.fee, payout.currency
            )
            self._set_payout(payout, "paid")

    def _set_payout(self, payout: SimPayout, status: str) -> None:
        payout.status = status
        self._emit(payout.stream, "payout", f"payout.{status}", payout.to_api())

    # -- settlement, faults -------------------------------------------------------------------

    def _book(
        self, kind: str, ref: str, our_id: str, gross: Decimal, fee: Decimal, currency: str
    ) -> None:
        self.settlements.append(
            {
                "provider_ref": ref,
                "our_id": our_id,
                "type": kind,
                "gross": str(gross),
                "fee": str(fee),
                "net": str(gross - fee),
                "currency": currency,
                "booked_at": datetime.now(UTC).isoformat(),
            }
        )

    def settlement_report(self, day: date) -> list[dict[str, Any]]:
        return [
            line
            for line in self.settlements
            if datetime.fromisoformat(line["booked_at"]).date() == day
        ]

    def update_faults(self, update: FaultsUpdate) -> SimFaults:
        for name in SimFaults.model_fields:
            value = getattr(update, name)
            if value is not None:
                setattr(self.faults, name, value)
        return self.faults

    def _fail_create_if_faulted(self) -> None:
        if self.faults.fail_create:
            self.faults.fail_create = False
            raise _ApiError(500, "internal_error", "simulated outage (fail_create fault)")

    async def stall_if_faulted(self) -> None:
        """The timeout fault: the work is done, the answer comes too late (and only once)."""
        if self.faults.timeout:
            self.faults.timeout = False
            await asyncio.sleep(self.config.timeout_fault_seconds)

    def check_signature(self, request: Request, body: bytes) -> None:
        ts = request.headers.get(TIMESTAMP_HEADER, "")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not ts.isdigit() or abs(time.time() - int(ts)) > self.config.max_clock_skew_seconds:
            raise _ApiError(401, "unauthorized", "timestamp missing or too far from now")
        path: bytes = request.scope.get("raw_path") or request.url.path.encode()
        query: bytes = request.scope.get("query_string", b"")
        path_with_query = path + b"?" + query if query else path
        expected = request_signature(self.config.api_key, ts, request.method, path_with_query, body)
        if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
            raise _ApiError(401, "unauthorized", "request signature mismatch")

    def find_payment(self, ref: str) -> SimPayment:
        payment = self.payments.get(ref)
        if payment is None:
            raise _ApiError(404, "not_found", "no such payment")
        return payment

    def find_payout(self, ref: str) -> SimPayout:
        payout = self.payouts.get(ref)
        if payout is None:
            raise _ApiError(404, "not_found", "no such payout")
        return payout

    def reset(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.payments.clear()
        self.by_payment_id.clear()
        self.payouts.clear()
        self.by_payout_id.clear()
        self.settlements.clear()
        self.faults = self.config.faults.model_copy()

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- webhooks -----------------------------------------------------------------------------

    def _emit(self, stream: _Stream, kind: str, event_type: str, data: dict[str, Any]) -> None:
        # Strictly increasing per object, so "newer" is always well defined for the receiver.
        now = datetime.now(UTC)
        if stream.last_event_at is not None and now <= stream.last_event_at:
            now = stream.last_event_at + timedelta(microseconds=1)
        stream.last_event_at = now
        event = {
            "id": "evt_" + secrets.token_hex(12),
            "type": event_type,
            "created_at": now.isoformat(),
            "object": kind,
            "data": data,
        }
        if not self.faults.out_of_order:
            self._send(stream, event)
        elif stream.held is None:
            stream.held = event
            self._spawn(self._release_held(stream, event))
        else:
            held, stream.held = stream.held, None
            self._send(stream, event)  # the newer one first
            self._send(stream, held)

    async def _release_held(self, stream: _Stream, event: dict[str, Any]) -> None:
        await asyncio.sleep(self.config.out_of_order_hold_seconds)
        if stream.held is event:  # nothing came to swap with
            stream.held = None
            self._send(stream, event)

    def _send(self, stream: _Stream, event: dict[str, Any]) -> None:
        previous = stream.last_delivery
        bad_signature = self.faults.bad_signature
        copies = 2 if self.faults.duplicate else 1

        async def after_previous() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await self._deliver(stream, event, bad_signature, copies)

        stream.last_delivery = self._spawn(after_previous())

    async def _deliver(
        self, stream: _Stream, event: dict[str, Any], bad_signature: bool, copies: int
    ) -> None:
        body = json.dumps(event, separators=(",", ":")).encode()
        secret = self.config.webhook_secret
        if bad_signature:
            secret = "wrong-" + secret
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: webhook_signature(secret, body),
            EVENT_ID_HEADER: event["id"],
        }
        record: dict[str, Any] = {
            "id": event["id"],
            "type": event["type"],
            "created_at": event["created_at"],
            "bad_signature": bad_signature,
            "deliveries": [],
        }
        stream.webhooks.append(record)
        if not self.config.webhook_url:
            return
        for _ in range(copies):
            await self._post(body, headers, record["deliveries"])

    async def _post(self, body: bytes, headers: dict[str, str], log: list[dict[str, Any]]) -> None:
        assert self.config.webhook_url is not None
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.config.webhook_timeout_seconds)
        backoff = self.config.webhook_backoff_seconds
        attempts = max(1, self.config.webhook_attempts)
        for attempt in range(1, attempts + 1):
            try:
                response = await self._http.post(
                    self.config.webhook_url, content=body, headers=headers
                )
            except httpx.HTTPError as exc:
                log.append({"attempt": attempt, "error": type(exc).__name__})
            else:
                log.append({"attempt": attempt, "status": response.status_code})
                if response.is_success:
                    return
            if attempt < attempts:
                await asyncio.sleep(backoff)
                backoff *= 2

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # keep a reference: the loop holds tasks only weakly
        task.add_done_callback(self._tasks.discard)
        return task


class ThreeDsDecision(BaseModel):
    approve: bool


class CryptoSend(BaseModel):
    amount: str
    confirmations: int = 0


class WireConfirm(BaseModel):
    amount: str | None = None
    reject: bool = False


class ChargebackRequest(BaseModel):
    amount: str | None = None


_THREE_DS_PAGE = """<!doctype html>
<html><head><title>3-D Secure (simulator)</title></head><body>
<h1>3-D Secure check</h1>
<p>Payment {ref}: {amount} {currency}</p>
<form method="post" action="/3ds/{ref}">
<button name="decision" value="approve">Approve</button>
<button name="decision" value="decline">Decline</button>
</form></body></html>
"""


def create_psp_simulator(config: PspSimConfig | None = None) -> FastAPI:
    sim = PspSimulator(config or PspSimConfig())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await sim.aclose()

    app = FastAPI(title="fxcrm PSP simulator", lifespan=lifespan)
    app.state.simulator = sim

    @app.exception_handler(_ApiError)
    async def _api_error(_: Request, exc: _ApiError) -> JSONResponse:
        body = {"error": {"code": exc.code, "message": exc.message}}
        return JSONResponse(body, status_code=exc.status)

    async def signed_json(request: Request) -> dict[str, Any]:
        body = await request.body()
        sim.check_signature(request, body)
        if not body:
            return {}
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise _ApiError(400, "invalid_request", "body is not JSON") from exc
        if not isinstance(data, dict):
            raise _ApiError(400, "invalid_request", "body is not a JSON object")
        return data

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    api = APIRouter(prefix="/v1")

    @api.post("/payments", status_code=201)
    async def create_payment(
        request: Request,
        body: dict[str, Any] = Depends(signed_json),
        idempotency_key: str | None = Header(None),
    ) -> dict[str, Any]:
        payment = sim.create_payment(body, idempotency_key, base_url(request))
        await sim.stall_if_faulted()
        return payment.to_api()

    @api.get("/payments/{ref}")
    async def get_payment(ref: str, _: dict[str, Any] = Depends(signed_json)) -> dict[str, Any]:
        payment = sim.find_payment(ref)
        await sim.stall_if_faulted()
        return payment.to_api()

    @api.post("/payments/{ref}/refunds", status_code=201)
    async def refund(
        ref: str,
        body: dict[str, Any] = Depends(signed_json),
        idempotency_key: str | None = Header(None),
    ) -> dict[str, Any]:
        result = sim.refund(sim.find_payment(ref), body, idempotency_key)
        await sim.stall_if_faulted()
        return result.to_api()

    @api.post("/payouts", status_code=201)
    async def create_payout(
        body: dict[str, Any] = Depends(signed_json),
        idempotency_key: str | None = Header(None),
    ) -> dict[str, Any]:
        payout = sim.create_payout(body, idempotency_key)
        await sim.stall_if_faulted()
        return payout.to_api()

    @api.get("/payouts/{ref}")
    async def get_payout(ref: str, _: dict[str, Any] = Depends(signed_json)) -> dict[str, Any]:
        payout = sim.find_payout(ref)
        await sim.stall_if_faulted()
        return payout.to_api()

    @api.get("/settlements/{day}")
    async def settlements(day: date, _: dict[str, Any] = Depends(signed_json)) -> dict[str, Any]:
        return {"day": day.isoformat(), "lines": sim.settlement_report(day)}

    @app.get("/3ds/{ref}", response_class=HTMLResponse)
    async def three_ds_page(ref: str) -> str:
        payment = sim.find_payment(ref)
        return _THREE_DS_PAGE.format(
            ref=html.escape(payment.id), amount=payment.amount, currency=payment.currency
        )

    @app.post("/3ds/{ref}")
    async def three_ds_submit(ref: str, request: Request) -> Response:
        payment = sim.find_payment(ref)
        form = await request.form()
        sim.three_ds(payment, form.get("decision") == "approve")
        if payment.return_url:
            separator = "&" if "?" in payment.return_url else "?"
            target = f"{payment.return_url}{separator}payment={payment.id}"
            return RedirectResponse(target, status_code=303)
        return HTMLResponse(f"<p>Payment {html.escape(payment.id)}: {payment.status}</p>")

    control = APIRouter(prefix="/_sim")

    @control.get("/payments/{ref}")
    async def inspect_payment(ref: str) -> dict[str, Any]:
        payment = sim.find_payment(ref)
        return {**payment.to_api(), "webhooks": payment.stream.webhooks}

    @control.post("/payments/{ref}/3ds")
    async def decide_3ds(ref: str, decision: ThreeDsDecision) -> dict[str, Any]:
        payment = sim.find_payment(ref)
        sim.three_ds(payment, decision.approve)
        return payment.to_api()

    @control.post("/payments/{ref}/crypto")
    async def send_crypto(ref: str, send: CryptoSend) -> dict[str, Any]:
        payment = sim.find_payment(ref)
        sim.send_crypto(payment, _amount(send.amount, payment.currency), send.confirmations)
        return payment.to_api()

    @control.post("/payments/{ref}/confirm")
    async def confirm_wire(ref: str, confirm: WireConfirm) -> dict[str, Any]:
        payment = sim.find_payment(ref)
        amount = None if confirm.amount is None else _amount(confirm.amount, payment.currency)
        sim.confirm_wire(payment, amount, confirm.reject)
        return payment.to_api()

    @control.post("/payments/{ref}/chargeback")
    async def chargeback(ref: str, request: ChargebackRequest) -> dict[str, Any]:
        payment = sim.find_payment(ref)
        amount = None if request.amount is None else _amount(request.amount, payment.currency)
        sim.chargeback(payment, amount)
        return payment.to_api()

    @control.post("/payments/{ref}/expire")
    async def expire(ref: str) -> dict[str, Any]:
        payment = sim.find_payment(ref)
        sim.expire(payment)
        return payment.to_api()

    @control.get("/payouts/{ref}")
    async def inspect_payout(ref: str) -> dict[str, Any]:
        payout = sim.find_payout(ref)
        return {**payout.to_api(), "webhooks": payout.stream.webhooks}

    @control.get("/faults")
    async def get_faults() -> SimFaults:
        return sim.faults

    @control.post("/faults")
    async def set_faults(update: FaultsUpdate) -> SimFaults:
        return sim.update_faults(update)

    @control.post("/reset")
    async def reset() -> dict[str, int]:
        sim.reset()
        return {"ok": 1}

    app.include_router(api)
    app.include_router(control)
    return app


async def run_psp_simulator(
    host: str = "127.0.0.1", port: int = DEFAULT_PORT, config: PspSimConfig | None = None
) -> None:
    """Serve the simulator until cancelled or interrupted."""
    app = create_psp_simulator(config)
    await uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info")).serve()


def main(argv: list[str] | None = None) -> None:
    defaults = PspSimConfig()
    parser = argparse.ArgumentParser(description="fxcrm PSP simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--webhook-url", default=defaults.webhook_url)
    parser.add_argument("--public-url", default=None, help="base URL of 3-D Secure links")
    parser.add_argument("--confirmations", type=int, default=defaults.crypto_confirmations)
    args = parser.parse_args(argv)
    config = PspSimConfig(
        webhook_url=args.webhook_url or None,
        public_url=args.public_url,
        crypto_confirmations=args.confirmations,
    )
    asyncio.run(run_psp_simulator(args.host, args.port, config))


if __name__ == "__main__":
    main()
