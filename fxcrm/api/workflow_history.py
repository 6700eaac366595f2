"""Workflow histories for auditors: whose brand a workflow belongs to, and its Temporal history with
every payload decoded into readable JSON.

A workflow id is derived from its business key (DESIGN.md, "Exactly once"), so its brand is found
from that key: the trader of `onboarding-{trader}`, the payment of `deposit-`, `withdrawal-`,
`transfer-`, `chargeback-` and `refund-` workflows, the platform server of `platform-sync-` and
`ib-accrual-`, the brand code of `ib-settlement-`; any other workflow by the audit events it wrote
(`account-change-…`). PSP reconciliation is PSP-wide, like its unmatched breaks: no brand.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fxcrm.models import AuditEvent, Brand, Payment, PlatformServer, Trader

PAYMENT_ID = r"[0-9a-f]{32}"
SETTLEMENT = re.compile(r"^ib-settlement-(?P<code>.+?)-(?:\d{4}-\d{2}|scheduled(?:-.*)?)$")
BRAND_LESS = ("psp-reconciliation-",)


@dataclass(frozen=True)
class Owner:
    """Whose workflow it is: `known` False when the id matches nothing fxcrm starts."""

    known: bool
    brand_id: str | None = None  # None with known: brand-less (PSP-wide)


UNKNOWN = Owner(known=False)


async def workflow_owner(session: AsyncSession, workflow_id: str) -> Owner:
    if workflow_id.startswith(BRAND_LESS):
        return Owner(known=True)
    brand_id = await _brand_of(session, workflow_id)
    if brand_id is None:
        # Any other workflow of ours audits what it changes, with its workflow id.
        brand_id = await session.scalar(
            select(AuditEvent.brand_id)
            .where(AuditEvent.workflow_id == workflow_id, AuditEvent.brand_id.is_not(None))
            .limit(1)
        )
    return Owner(known=True, brand_id=brand_id) if brand_id is not None else UNKNOWN


async def _brand_of(session: AsyncSession, workflow_id: str) -> str | None:
    if workflow_id.startswith("onboarding-"):
        return await session.scalar(
            select(Trader.brand_id).where(Trader.id == workflow_id.removeprefix("onboarding-"))
        )
    for prefix in ("platform-sync-", "ib-accrual-"):
        if workflow_id.startswith(prefix):
            return await session.scalar(
                select(PlatformServer.brand_id).where(
                    PlatformServer.id == workflow_id.removeprefix(prefix)
                )
            )
    settlement = SETTLEMENT.match(workflow_id)
    if settlement is not None:
        return await session.scalar(select(Brand.id).where(Brand.code == settlement["code"]))
    # deposit-, withdrawal-, transfer-: the payment row carries its workflow id.
    brand_id = await session.scalar(
        select(Payment.brand_id).where(Payment.workflow_id == workflow_id)
    )
    if brand_id is not None:
        return brand_id
    refund = re.match(rf"^(?:chargeback|refund)-(?P<payment>{PAYMENT_ID})-", workflow_id)
    if refund is not None:
        return await session.scalar(select(Payment.brand_id).where(Payment.id == refund["payment"]))
    return None


# ---------------------------------------------------------------- payloads


def readable(history: dict[str, Any]) -> dict[str, Any]:
    """The history as Temporal's JSON gives it, with every payload (inputs, results, signals,
    queries, failures' details, search attributes, memo, headers) replaced by its decoded value.
    A payload that is not JSON (binary, encrypted) stays as it was, its metadata decoded."""
    decoded: dict[str, Any] = _walk(history)
    return decoded


def _walk(value: Any) -> Any:
    if isinstance(value, dict):
        if _is_payload(value):
            return _decode(value)
        return {key: _walk(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk(item) for item in value]
    return value


def _is_payload(value: dict[str, Any]) -> bool:
    metadata = value.get("metadata")
    return (
        isinstance(metadata, dict)
        and "encoding" in metadata
        and set(value) <= {"metadata", "data", "externalPayloads"}
    )


def _b64(text: Any) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _decode(payload: dict[str, Any]) -> Any:
    metadata = {}
    for key, raw in payload["metadata"].items():
        data = _b64(raw)
        metadata[key] = data.decode("utf-8", "replace") if data is not None else raw
    encoding = metadata.get("encoding")
    data = _b64(payload.get("data", "")) if "data" in payload else b""
    if encoding == "binary/null":
        return None
    if encoding in ("json/plain", "json/protobuf") and data is not None:
        try:
            return json.loads(data)
        except ValueError:
            pass
    return {**payload, "metadata": metadata}
