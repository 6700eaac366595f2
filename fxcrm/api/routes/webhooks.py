"""Provider webhooks: verified over the raw body, stored, de-duplicated, then signalled."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from temporalio.service import RPCError

from fxcrm.api import onboarding_client as onboarding
from fxcrm.api.deps import KycDep, SessionDep, TemporalDep, release
from fxcrm.api.errors import Problem
from fxcrm.models import ProviderWebhook, Trader
from fxcrm.models.base import utcnow
from fxcrm.workflows.onboarding_types import KycEvent

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
log = structlog.get_logger(__name__)
PROVIDER = "sumsub"
MAX_WEBHOOK_BYTES = 1_000_000


class WebhookAck(BaseModel):
    status: str  # accepted | duplicate | unmatched


@router.post("/kyc/sumsub", response_model=WebhookAck)
async def kyc_webhook(
    request: Request, kyc: KycDep, session: SessionDep, temporal: TemporalDep
) -> WebhookAck:
    raw = await request.body()
    if len(raw) > MAX_WEBHOOK_BYTES:
        raise Problem(413, "Payload too large")
    headers = {k.lower(): v for k, v in request.headers.items()}
    if not kyc.verify_webhook(headers, raw):
        log.warning("kyc webhook with a bad signature refused")
        raise Problem(401, "Invalid signature", "the webhook signature does not match the body")
    try:
        event = kyc.parse_webhook(raw)
    except (ValueError, KeyError) as exc:
        raise Problem(400, "Malformed webhook", str(exc)) from exc

    stored = await session.scalar(
        select(ProviderWebhook).where(
            ProviderWebhook.provider == PROVIDER, ProviderWebhook.event_key == event.event_key
        )
    )
    duplicate = stored is not None
    if stored is None:
        stored = ProviderWebhook(
            provider=PROVIDER,
            event_key=event.event_key,
            provider_ref=event.provider_ref,
            event_type=event.type,
            raw_body=raw,
            headers={k: v for k, v in headers.items() if k.startswith("x-") or k == "content-type"},
            provider_created_at=event.created_at,
        )
        session.add(stored)
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            return WebhookAck(status="duplicate")
    if stored.signalled_at is not None:
        return WebhookAck(status="duplicate")

    trader_id = await session.scalar(
        select(Trader.id).where(Trader.kyc_applicant_id == event.provider_ref)
    )
    await release(session)
    if trader_id is None:
        log.warning("kyc webhook for an unknown applicant", applicant=event.provider_ref)
        return WebhookAck(status="unmatched")
    status = event.result.status if event.result else "SUBMITTED"
    try:
        await onboarding.handle(temporal, trader_id).signal(
            "kyc_event",
            KycEvent(
                event_key=event.event_key,
                event_type=event.type,
                status=str(status),
                created_at=event.created_at,
            ),
        )
    except RPCError as exc:
        # Closed workflow: the event stays stored for the case file. Temporal down: the provider
        # retries, and the unsignalled stored event is signalled then.
        log.warning("kyc webhook not signalled", trader_id=trader_id, error=exc.message)
        if "not found" not in exc.message.lower() and "completed" not in exc.message.lower():
            raise Problem(
                503, "Try again", "the event is stored but could not be delivered yet"
            ) from exc
    stored.signalled_at = utcnow()
    await session.commit()
    return WebhookAck(status="duplicate" if duplicate else "accepted")
