"""Stripe (api.stripe.com) as a PaymentProvider, for card deposits.

Wire protocol: HTTP Basic-less bearer auth (`Authorization: Bearer sk_...`), form-encoded bodies
with bracketed keys (`metadata[payment_id]=...`), amounts as integers in the currency's minor unit,
lowercase currency codes, an `Idempotency-Key` header on every POST (our id, so a retry maps to the
same object; Stripe answers 400 `idempotency_error` when the key is reused with other parameters).

- deposits: POST /v1/payment_intents (confirm=true with the card's PaymentMethod); 3-D Secure comes
  back as status requires_action with next_action.redirect_to_url.url. A decline is an HTTP 402
  card_error that carries the PaymentIntent: that is a FAILED result, not an exception.
- refunds: POST /v1/refunds. Chargebacks arrive as charge.dispute.* events.
- withdrawals: POST /v1/transfers to a Connect account (`destination.provider_account`); Stripe
  cannot push money to an arbitrary card or IBAN, and card withdrawals should be refunds to the
  source anyway (COMPLIANCE.md §3.8 P5).
- webhooks: Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>[,v1=...];
  fresh within `tolerance_seconds`.
- settlement: GET /v1/balance_transactions for one UTC day, expanding each source.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from fxcrm.adapters.psp.base import (
    CreatePayment,
    CreatePayout,
    PaymentMethod,
    PaymentResult,
    PaymentStatus,
    PayoutResult,
    PayoutStatus,
    PspError,
    PspEvent,
    RefundResult,
    RefundStatus,
    SettlementLine,
    SettlementType,
)
from fxcrm.domain.money import Money

PROVIDER = "stripe"
DEFAULT_BASE_URL = "https://api.stripe.com"
DEFAULT_TOLERANCE_SECONDS = 300  # Stripe's libraries use five minutes too

_PI_STATUS = {
    "requires_payment_method": PaymentStatus.CREATED,
    "requires_confirmation": PaymentStatus.CREATED,
    "requires_action": PaymentStatus.REQUIRES_ACTION,
    "processing": PaymentStatus.PROCESSING,
    "requires_capture": PaymentStatus.PROCESSING,
    "succeeded": PaymentStatus.SUCCEEDED,
    "canceled": PaymentStatus.EXPIRED,
}
_REFUND_STATUS = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.FAILED,
}
_BT_TYPE = {
    "charge": SettlementType.PAYMENT,
    "payment": SettlementType.PAYMENT,
    "refund": SettlementType.REFUND,
    "payment_refund": SettlementType.REFUND,
    "transfer": SettlementType.PAYOUT,
    "payout": SettlementType.SETTLEMENT,
}


def sign_payload(secret: str, timestamp: int, payload: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()


def verify_stripe_signature(
    header: str, payload: bytes, secret: str, tolerance_seconds: float, now: float
) -> bool:
    if not secret or not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":  # v0 and other schemes are ignored: only v1 is HMAC-SHA256
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_seconds:
        return False
    expected = sign_payload(secret, timestamp, payload).encode()
    # Compare against every v1: Stripe sends several while a secret is being rolled.
    matches = [hmac.compare_digest(expected, c.encode("utf-8", "replace")) for c in candidates]
    return any(matches)


def _money(minor: int, currency: str) -> Money:
    return Money.from_minor(int(minor), currency.upper())


def _from_unix(value: object) -> datetime:
    return datetime.fromtimestamp(int(str(value)), UTC)


def flatten_form(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: nested dicts as a[b]=, lists as a[0]=; None is left out."""
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            pairs.extend(flatten_form(value, name))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                pairs.extend(flatten_form({str(i): item}, name))
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        else:
            pairs.append((name, str(value)))
    return pairs


def payment_from_intent(pi: Mapping[str, Any]) -> PaymentResult:
    currency = str(pi["currency"]).upper()
    status = _PI_STATUS.get(str(pi.get("status")), PaymentStatus.PROCESSING)
    error = pi.get("last_payment_error") or {}
    if status == PaymentStatus.CREATED and error:
        status = PaymentStatus.FAILED  # the attempt was declined; the intent waits for another
    latest = pi.get("latest_charge")
    charge: Mapping[str, Any] = latest if isinstance(latest, dict) else {}
    received = int(pi.get("amount_received") or 0)
    refunded = int(charge.get("amount_refunded") or 0)
    if status == PaymentStatus.SUCCEEDED:
        if charge.get("disputed"):
            status = PaymentStatus.CHARGED_BACK
        elif refunded and refunded >= received:
            status = PaymentStatus.REFUNDED
        elif refunded:
            status = PaymentStatus.PARTIALLY_REFUNDED
    next_action = pi.get("next_action") or {}
    redirect = (next_action.get("redirect_to_url") or {}).get("url")
    txn = charge.get("balance_transaction")
    fee = _money(txn["fee"], str(txn["currency"])) if isinstance(txn, dict) else None
    metadata = pi.get("metadata") or {}
    return PaymentResult(
        provider=PROVIDER,
        provider_ref=str(pi["id"]),
        our_payment_id=metadata.get("payment_id"),
        method=PaymentMethod.CARD,
        status=status,
        amount_requested=_money(pi["amount"], currency),
        amount_received=_money(received, currency) if received else None,
        amount_refunded=_money(refunded, currency) if refunded else None,
        fee=fee,
        redirect_url=redirect,
        failure_code=error.get("decline_code") or error.get("code"),
        failure_message=error.get("message"),
        raw=dict(pi),
    )


def payout_from_transfer(tr: Mapping[str, Any]) -> PayoutResult:
    currency = str(tr["currency"]).upper()
    return PayoutResult(
        provider=PROVIDER,
        provider_ref=str(tr["id"]),
        our_payout_id=(tr.get("metadata") or {}).get("payout_id"),
        # A transfer between Stripe balances is done when created; a reversal sends it back.
        status=PayoutStatus.RETURNED if tr.get("reversed") else PayoutStatus.PAID,
        amount=_money(tr["amount"], currency),
        raw=dict(tr),
    )


class StripeClient:
    """PaymentProvider for Stripe. Owns its httpx client unless one is passed in."""

    provider = PROVIDER

    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        base_url: str = DEFAULT_BASE_URL,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
        api_version: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api_key = api_key
        self._webhook_secret = webhook_secret
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._tolerance = tolerance_seconds
        self._api_version = api_version
        self._clock = clock
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def create_payment(self, req: CreatePayment) -> PaymentResult:
        if req.method != PaymentMethod.CARD:
            raise PspError(f"stripe adapter takes cards only, not {req.method}", code="unsupported")
        form: dict[str, Any] = {
            "amount": req.amount.to_minor(),
            "currency": req.amount.currency.lower(),
            "payment_method_types": ["card"],
            "description": req.description,
            "metadata": {"payment_id": req.payment_id, "customer_ref": req.customer_ref},
        }
        if req.instrument:
            form |= {
                "payment_method": req.instrument,
                "confirm": True,
                "return_url": req.return_url,
            }
        try:
            pi = await self._call("POST", "/v1/payment_intents", form, idem=req.payment_id)
        except _CardError as declined:
            return payment_from_intent(declined.payment_intent)
        return payment_from_intent(pi)

    async def get_payment(self, provider_ref: str) -> PaymentResult:
        path = f"/v1/payment_intents/{_seg(provider_ref)}"
        pi = await self._call("GET", path, {"expand": ["latest_charge.balance_transaction"]})
        return payment_from_intent(pi)

    async def refund(self, provider_ref: str, amount: Money, our_refund_id: str) -> RefundResult:
        form = {
            "payment_intent": provider_ref,
            "amount": amount.to_minor(),
            "metadata": {"refund_id": our_refund_id},
        }
        data = await self._call("POST", "/v1/refunds", form, idem=our_refund_id)
        return RefundResult(
            provider_ref=str(data["id"]),
            payment_provider_ref=str(data.get("payment_intent") or provider_ref),
            our_refund_id=our_refund_id,
            amount=_money(data["amount"], str(data["currency"])),
            status=_REFUND_STATUS.get(str(data.get("status")), RefundStatus.PENDING),
            failure_code=data.get("failure_reason"),
            raw=data,
        )

    async def create_payout(self, req: CreatePayout) -> PayoutResult:
        account = req.destination.provider_account
        if not account:
            raise PspError(
                "stripe withdrawals go to a Connect account (acct_...); refund cards instead",
                code="unsupported",
            )
        form = {
            "amount": req.amount.to_minor(),
            "currency": req.amount.currency.lower(),
            "destination": account,
            "transfer_group": req.payout_id,
            "description": req.description,
            "metadata": {"payout_id": req.payout_id, "customer_ref": req.customer_ref},
        }
        return payout_from_transfer(
            await self._call("POST", "/v1/transfers", form, idem=req.payout_id)
        )

    async def get_payout(self, provider_ref: str) -> PayoutResult:
        return payout_from_transfer(await self._call("GET", f"/v1/transfers/{_seg(provider_ref)}"))

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        lower = {k.lower(): v for k, v in headers.items()}
        return verify_stripe_signature(
            lower.get("stripe-signature", ""),
            raw_body,
            self._webhook_secret,
            self._tolerance,
            self._clock(),
        )

    def parse_webhook(self, raw_body: bytes) -> PspEvent:
        event = json.loads(raw_body)
        if not isinstance(event, dict) or event.get("object") != "event":
            raise ValueError("not a Stripe event")
        try:
            obj = event["data"]["object"]
            kind = str(obj["object"])
            etype = str(event["type"])
            base: dict[str, Any] = {
                "provider": PROVIDER,
                "event_key": str(event["id"]),
                "type": etype,
                "created_at": _from_unix(event["created"]),
            }
            if kind == "payment_intent":
                result = payment_from_intent(obj)
                return PspEvent(
                    **base,
                    provider_ref=result.provider_ref,
                    our_payment_id=result.our_payment_id,
                    status=result.status,
                    amount=result.amount_requested,
                )
            if kind == "dispute":
                return PspEvent(
                    **base,
                    provider_ref=str(obj["payment_intent"]),
                    object_kind="dispute",
                    # funds_reinstated / a won dispute: the receiver re-fetches and sees it
                    status=PaymentStatus.CHARGED_BACK if etype.endswith(".created") else None,
                    amount=_money(obj["amount"], str(obj["currency"])),
                )
            if kind in ("refund", "charge"):
                refunded = obj.get("amount_refunded", obj["amount"])
                return PspEvent(
                    **base,
                    provider_ref=str(obj["payment_intent"]),
                    our_payment_id=(obj.get("metadata") or {}).get("payment_id"),
                    object_kind="refund" if kind == "refund" else "payment",
                    amount=_money(refunded, str(obj["currency"])),
                )
            if kind == "transfer":
                payout = payout_from_transfer(obj)
                return PspEvent(
                    **base,
                    provider_ref=payout.provider_ref,
                    our_payment_id=payout.our_payout_id,
                    object_kind="payout",
                    payout_status=payout.status,
                    amount=payout.amount,
                )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed Stripe event: {exc!r}") from exc
        raise ValueError(f"unhandled Stripe object {kind!r}")

    async def settlement_report(self, day: date) -> list[SettlementLine]:
        start = datetime.combine(day, dtime(), UTC)
        params: dict[str, Any] = {
            "created": {
                "gte": int(start.timestamp()),
                "lt": int((start + timedelta(days=1)).timestamp()),
            },
            "limit": 100,
            "expand": ["data.source"],
        }
        lines: list[SettlementLine] = []
        while True:
            page = await self._call("GET", "/v1/balance_transactions", params)
            data = page.get("data") or []
            lines.extend(_settlement_line(txn) for txn in data)
            if not page.get("has_more") or not data:
                return lines
            params["starting_after"] = data[-1]["id"]

    async def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        idem: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._api_key}"}
        if self._api_version:
            headers["Stripe-Version"] = self._api_version
        pairs = flatten_form(params or {})
        if method == "POST":
            if idem is not None:
                headers["Idempotency-Key"] = idem
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            request = self._http.build_request(
                method,
                self._base_url + path,
                content=urlencode(pairs).encode(),
                headers=headers,
                timeout=self._timeout,
            )
        else:
            request = self._http.build_request(
                method,
                self._base_url + path,
                params=urlencode(pairs),
                headers=headers,
                timeout=self._timeout,
            )
        try:
            response = await self._http.send(request)
        except httpx.TimeoutException as exc:
            raise PspError(f"stripe {method} {path}: timed out", True, "timeout") from exc
        except httpx.TransportError as exc:
            raise PspError(
                f"stripe {method} {path}: {type(exc).__name__}", True, "network"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict):
            return body
        raise _error(method, path, response, body)


class _CardError(PspError):
    """HTTP 402 card_error with the PaymentIntent attached: a decline, not a failure to call."""

    def __init__(self, message: str, code: str | None, payment_intent: dict[str, Any]) -> None:
        super().__init__(message, False, code, status_code=402)
        self.payment_intent = payment_intent


def _error(method: str, path: str, response: httpx.Response, body: object) -> PspError:
    status = response.status_code
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    message = f"stripe {method} {path}: HTTP {status}: {error.get('message', '')}".rstrip(": ")
    etype = error.get("type")
    code = error.get("decline_code") or error.get("code")
    if etype == "card_error" and isinstance(error.get("payment_intent"), dict):
        return _CardError(message, code, error["payment_intent"])
    if etype == "idempotency_error":
        code = "idempotency_conflict"
    should_retry = response.headers.get("Stripe-Should-Retry")
    if should_retry is not None:
        retryable = should_retry == "true"
    else:
        # 409: a concurrent request with the same key or a lock; 429: rate limit.
        retryable = status >= 500 or status in (409, 429)
    if status == 404 and code is None:
        code = "not_found"
    return PspError(message, retryable, code or etype, status_code=status)


def _settlement_line(txn: Mapping[str, Any]) -> SettlementLine:
    currency = str(txn["currency"]).upper()
    source = txn.get("source")
    source = source if isinstance(source, dict) else {"id": source}
    category = str(txn.get("reporting_category") or "")
    kind = _BT_TYPE.get(str(txn.get("type")), SettlementType.OTHER)
    if category == "dispute":
        kind = SettlementType.CHARGEBACK
    elif category == "dispute_reversal":
        kind = SettlementType.CHARGEBACK_REVERSAL
    metadata = source.get("metadata") or {}
    our_id = metadata.get("payment_id") or metadata.get("refund_id") or metadata.get("payout_id")
    # Payments, refunds and disputes are matched to our payments by their PaymentIntent.
    ref = source.get("payment_intent") or source.get("id") or txn["id"]
    return SettlementLine(
        provider_ref=str(ref),
        our_id=our_id,
        type=kind,
        gross=_money(txn["amount"], currency),
        fee=_money(txn["fee"], currency),
        net=_money(txn["net"], currency),
        currency=currency,
        booked_at=_from_unix(txn["created"]),
    )


def _seg(value: str) -> str:
    return quote(value, safe="")
