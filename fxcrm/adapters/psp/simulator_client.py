"""The PSP simulator (`fxcrm.adapters.simulators.psp`) as a PaymentProvider, over HTTP.

Wire protocol (JSON; amounts are decimal strings with a currency code):
- every API request is signed: X-Sim-Timestamp (unix seconds) and X-Sim-Signature =
  hex HMAC-SHA256(api key, ts + "\\n" + METHOD + "\\n" + path_with_query + "\\n" + body bytes);
  the key itself never travels. POSTs that create something carry Idempotency-Key = our id.
- POST /v1/payments, GET /v1/payments/{ref}, POST /v1/payments/{ref}/refunds,
  POST /v1/payouts, GET /v1/payouts/{ref}, GET /v1/settlements/{YYYY-MM-DD}.
- errors: {"error": {"code": ..., "message": ...}} with a 4xx/5xx status.
- webhooks: X-Sim-Signature = "sha256=" + hex HMAC-SHA256(webhook secret, raw body), X-Sim-Event-Id;
  body {"id": "evt_...", "type": "payment.succeeded", "created_at": ISO 8601 UTC,
  "object": "payment" | "payout", "data": {the payment or payout as GET shows it}}.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import httpx

from fxcrm.adapters.psp.base import (
    BankInstructions,
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

PROVIDER = "sim"
SIGNATURE_HEADER = "X-Sim-Signature"
TIMESTAMP_HEADER = "X-Sim-Timestamp"
EVENT_ID_HEADER = "X-Sim-Event-Id"


def request_signature(
    api_key: str, ts: str, method: str, path_with_query: bytes, body: bytes
) -> str:
    message = b"\n".join([ts.encode(), method.upper().encode(), path_with_query, body])
    return hmac.new(api_key.encode(), message, hashlib.sha256).hexdigest()


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_webhook_signature(headers: Mapping[str, str], raw_body: bytes, secret: str) -> bool:
    if not secret:
        return False  # never "verify" against an empty secret
    lower = {k.lower(): v for k, v in headers.items()}
    provided = (lower.get(SIGNATURE_HEADER.lower()) or "").strip()
    if not provided:
        return False
    expected = webhook_signature(secret, raw_body)
    return hmac.compare_digest(expected.encode(), provided.encode("utf-8", "replace"))


def money_of(data: Mapping[str, Any], key: str, currency: str) -> Money | None:
    value = data.get(key)
    return None if value is None else Money.of(str(value), currency)


def payment_from_api(data: Mapping[str, Any]) -> PaymentResult:
    currency = str(data["currency"])
    wire = data.get("bank_instructions")
    return PaymentResult(
        provider=PROVIDER,
        provider_ref=str(data["id"]),
        our_payment_id=data.get("payment_id"),
        method=PaymentMethod(data["method"]),
        status=PaymentStatus(data["status"]),
        amount_requested=Money.of(str(data["amount"]), currency),
        amount_received=money_of(data, "amount_received", currency),
        amount_refunded=money_of(data, "amount_refunded", currency),
        fee=money_of(data, "fee", currency),
        redirect_url=data.get("redirect_url"),
        crypto_address=data.get("crypto_address"),
        crypto_network=data.get("crypto_network"),
        confirmations=data.get("confirmations"),
        confirmations_required=data.get("confirmations_required"),
        bank_instructions=BankInstructions(**wire) if isinstance(wire, dict) else None,
        failure_code=data.get("failure_code"),
        failure_message=data.get("failure_message"),
        raw=dict(data),
    )


def payout_from_api(data: Mapping[str, Any]) -> PayoutResult:
    currency = str(data["currency"])
    return PayoutResult(
        provider=PROVIDER,
        provider_ref=str(data["id"]),
        our_payout_id=data.get("payout_id"),
        status=PayoutStatus(data["status"]),
        amount=Money.of(str(data["amount"]), currency),
        fee=money_of(data, "fee", currency),
        failure_code=data.get("failure_code"),
        failure_message=data.get("failure_message"),
        raw=dict(data),
    )


class SimPspClient:
    """PaymentProvider for the simulator. Owns its httpx client unless one is passed in."""

    provider = PROVIDER

    def __init__(
        self,
        base_url: str,
        api_key: str,
        webhook_secret: str,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._webhook_secret = webhook_secret
        self._timeout = timeout
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def create_payment(self, req: CreatePayment) -> PaymentResult:
        body = {
            "payment_id": req.payment_id,
            "amount": str(req.amount.amount),
            "currency": req.amount.currency,
            "method": req.method.value,
            "customer_ref": req.customer_ref,
            "return_url": req.return_url,
            "description": req.description,
            "instrument": req.instrument,
            "network": req.network,
        }
        data = await self._call("POST", "/v1/payments", body, idempotency_key=req.payment_id)
        return payment_from_api(data)

    async def get_payment(self, provider_ref: str) -> PaymentResult:
        return payment_from_api(await self._call("GET", f"/v1/payments/{_seg(provider_ref)}"))

    async def refund(self, provider_ref: str, amount: Money, our_refund_id: str) -> RefundResult:
        body = {
            "refund_id": our_refund_id,
            "amount": str(amount.amount),
            "currency": amount.currency,
        }
        data = await self._call(
            "POST",
            f"/v1/payments/{_seg(provider_ref)}/refunds",
            body,
            idempotency_key=our_refund_id,
        )
        return RefundResult(
            provider_ref=str(data["id"]),
            payment_provider_ref=str(data["payment"]),
            our_refund_id=str(data["refund_id"]),
            amount=Money.of(str(data["amount"]), str(data["currency"])),
            status=RefundStatus(data["status"]),
            failure_code=data.get("failure_code"),
            raw=data,
        )

    async def create_payout(self, req: CreatePayout) -> PayoutResult:
        body = {
            "payout_id": req.payout_id,
            "amount": str(req.amount.amount),
            "currency": req.amount.currency,
            "destination": req.destination.model_dump(mode="json", exclude_none=True),
            "customer_ref": req.customer_ref,
            "description": req.description,
        }
        data = await self._call("POST", "/v1/payouts", body, idempotency_key=req.payout_id)
        return payout_from_api(data)

    async def get_payout(self, provider_ref: str) -> PayoutResult:
        return payout_from_api(await self._call("GET", f"/v1/payouts/{_seg(provider_ref)}"))

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        return verify_webhook_signature(headers, raw_body, self._webhook_secret)

    def parse_webhook(self, raw_body: bytes) -> PspEvent:
        payload = json.loads(raw_body)  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
            raise ValueError("webhook body is not an event object")
        data = payload["data"]
        try:
            kind = str(payload["object"])
            created_at = datetime.fromisoformat(str(payload["created_at"])).astimezone(UTC)
            amount = Money.of(str(data["amount"]), str(data["currency"]))
            is_payout = kind == "payout"
            return PspEvent(
                provider=PROVIDER,
                event_key=str(payload["id"]),
                provider_ref=str(data["id"]),
                our_payment_id=data.get("payout_id" if is_payout else "payment_id"),
                object_kind=kind,
                type=str(payload["type"]),
                status=None if is_payout else PaymentStatus(data["status"]),
                payout_status=PayoutStatus(data["status"]) if is_payout else None,
                created_at=created_at,
                amount=amount,
            )
        except KeyError as exc:
            raise ValueError(f"webhook without {exc}") from exc

    async def settlement_report(self, day: date) -> list[SettlementLine]:
        data = await self._call("GET", f"/v1/settlements/{day.isoformat()}")
        lines = []
        for line in data["lines"]:
            currency = str(line["currency"])
            lines.append(
                SettlementLine(
                    provider_ref=str(line["provider_ref"]),
                    our_id=line.get("our_id"),
                    type=SettlementType(line["type"]),
                    gross=Money.of(str(line["gross"]), currency),
                    fee=Money.of(str(line["fee"]), currency),
                    net=Money.of(str(line["net"]), currency),
                    currency=currency,
                    booked_at=datetime.fromisoformat(str(line["booked_at"])),
                )
            )
        return lines

    async def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        request = self._http.build_request(
            method,
            self._base_url + path,
            content=content,
            headers={"Accept": "application/json", "Content-Type": "application/json"},
            timeout=self._timeout,
        )
        ts = str(int(time.time()))
        request.headers[TIMESTAMP_HEADER] = ts
        request.headers[SIGNATURE_HEADER] = request_signature(
            self._api_key, ts, method, request.url.raw_path, content
        )
        if idempotency_key is not None:
            request.headers["Idempotency-Key"] = idempotency_key
        try:
            response = await self._http.send(request)
        except httpx.TimeoutException as exc:
            raise PspError(f"sim {method} {path}: timed out", True, "timeout") from exc
        except httpx.TransportError as exc:
            raise PspError(f"sim {method} {path}: {type(exc).__name__}", True, "network") from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success and isinstance(data, dict):
            return data
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        code = response.status_code
        raise PspError(
            f"sim {method} {path}: HTTP {code}: {error.get('message', response.text[:200])}",
            retryable=code >= 500 or code in (408, 429),
            code=error.get("code"),
            status_code=code,
        )


def _seg(value: str) -> str:
    return quote(value, safe="")  # an id can never reach another resource
