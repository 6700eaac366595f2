"""Provider webhooks: verified over the raw body, stored, de-duplicated, then signalled."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol, TypeVar

import structlog
from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from fxcrm.adapters.psp.base import PspEvent
from fxcrm.adapters.psp.registry import UnknownProvider
from fxcrm.api import onboarding_client as onboarding
from fxcrm.api.deps import KycDep, PspsDep, SessionDep, TemporalDep, release
from fxcrm.api.errors import Problem
from fxcrm.api.openapi import problems
from fxcrm.api.routes import reconciliation
from fxcrm.domain.payments import FINAL_STATUSES
from fxcrm.models import Payment, ProviderWebhook, Trader
from fxcrm.models.base import utcnow
from fxcrm.workflows.deposit_types import SIGNAL_PSP_EVENT
from fxcrm.workflows.onboarding_types import KycEvent

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
log = structlog.get_logger(__name__)
PROVIDER = "sumsub"
MAX_WEBHOOK_BYTES = 1_000_000


class WebhookAck(BaseModel):
    status: str  # accepted | duplicate | unmatched


class _Event(Protocol):
    @property
    def event_key(self) -> str: ...
    @property
    def provider_ref(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def created_at(self) -> datetime | None: ...


EventT = TypeVar("EventT", bound=_Event, covariant=True)


class _Provider(Protocol[EventT]):
    """A KYC provider or a PSP, as far as its webhooks go."""

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool: ...
    def parse_webhook(self, raw_body: bytes) -> EventT: ...


async def _verified_event(
    request: Request, provider: _Provider[EventT], name: str
) -> tuple[EventT, bytes, dict[str, str]]:
    """The event, its raw body and the headers (lower-case), once the signature over the raw
    bytes holds."""
    raw = await request.body()
    if len(raw) > MAX_WEBHOOK_BYTES:
        raise Problem(413, "Payload too large")
    headers = {k.lower(): v for k, v in request.headers.items()}
    if not provider.verify_webhook(headers, raw):
        log.warning("webhook with a bad signature refused", provider=name)
        raise Problem(401, "Invalid signature", "the webhook signature does not match the body")
    try:
        return provider.parse_webhook(raw), raw, headers
    except (ValueError, KeyError) as exc:
        raise Problem(400, "Malformed webhook", str(exc)) from exc


async def _store(
    session: AsyncSession, provider: str, event: _Event, raw: bytes, headers: dict[str, str]
) -> tuple[ProviderWebhook | None, bool]:
    """Stores the event once per (provider, event key): (the stored row, whether it was already
    there); (None, True) if a concurrent delivery stored it first."""
    stored = await session.scalar(
        select(ProviderWebhook).where(
            ProviderWebhook.provider == provider, ProviderWebhook.event_key == event.event_key
        )
    )
    if stored is not None:
        return stored, True
    stored = ProviderWebhook(
        provider=provider,
        event_key=event.event_key,
        provider_ref=event.provider_ref,
        event_type=event.type[:60],
        raw_body=raw,
        headers={k: v for k, v in headers.items() if k.startswith("x-") or k == "content-type"},
        provider_created_at=event.created_at,
    )
    session.add(stored)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        return None, True
    return stored, False


@router.post("/kyc/sumsub", response_model=WebhookAck, responses=problems(413, 503))
async def kyc_webhook(
    request: Request, kyc: KycDep, session: SessionDep, temporal: TemporalDep
) -> WebhookAck:
    event, raw, headers = await _verified_event(request, kyc, PROVIDER)
    stored, duplicate = await _store(session, PROVIDER, event, raw, headers)
    if stored is None or stored.signalled_at is not None:
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


# ---------------------------------------------------------------- payment service providers


@router.post("/psp/{provider}", response_model=WebhookAck, responses=problems(413, 503))
async def psp_webhook(
    provider: str,
    request: Request,
    psps: PspsDep,
    session: SessionDep,
    temporal: TemporalDep,
) -> WebhookAck:
    """Any PSP's webhook, for deposits and withdrawals alike: verified over the raw bytes, stored
    once per (provider, event key), matched to its payment, then signalled as `psp_event` to the
    payment's workflow, which re-fetches the authoritative state before acting."""
    try:
        psp = psps.get(provider)
    except UnknownProvider as exc:
        raise Problem(404, "Unknown provider", str(exc)) from exc
    event, raw, headers = await _verified_event(request, psp, provider)
    stored, duplicate = await _store(session, provider, event, raw, headers)
    if stored is None or stored.signalled_at is not None:
        return WebhookAck(status="duplicate")
    payment = await _payment_of(session, provider, event)
    if payment is None:
        await release(session)
        log.warning("psp webhook for an unknown payment", provider=provider, ref=event.provider_ref)
        return WebhookAck(status="unmatched")
    workflow_id, closed = payment.workflow_id, payment.status in FINAL_STATUSES
    await release(session)
    if closed:
        await route_post_completion_event(session, payment, event, temporal, request)
    else:
        try:
            await temporal.get_workflow_handle(workflow_id).signal(SIGNAL_PSP_EVENT, event)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                # Temporal is unreachable: the event is stored, the PSP retries, we signal then.
                log.warning("psp webhook not signalled", workflow_id=workflow_id, error=exc.message)
                raise Problem(
                    503, "Try again", "the event is stored but could not be delivered yet"
                ) from exc
            # closed meanwhile
            await route_post_completion_event(session, payment, event, temporal, request)
    stored.signalled_at = utcnow()
    await session.commit()
    return WebhookAck(status="duplicate" if duplicate else "accepted")


async def _payment_of(session: AsyncSession, provider: str, event: PspEvent) -> Payment | None:
    """Our payment (or payout: its id is the payment's) by our id, else by the PSP's reference."""
    if event.our_payment_id:
        payment = await session.get(Payment, event.our_payment_id)
        if payment is not None and payment.psp == provider:
            return payment
    return await session.scalar(
        select(Payment).where(Payment.psp == provider, Payment.provider_ref == event.provider_ref)
    )


async def route_post_completion_event(
    session: AsyncSession, payment: Payment, event: PspEvent, temporal: Client, request: Request
) -> None:
    """An event for a payment whose workflow has finished: a chargeback, a refund, a late
    confirmation of an expired deposit. The event is stored (ProviderWebhook) either way; a
    chargeback or refund of a credited deposit starts its ChargebackWorkflow (`chargeback-…` or
    `psp-refund-…`), the rest is logged."""
    settings = request.app.state.settings
    started = await reconciliation.start_reversal(temporal, settings.task_queue, payment, event)
    log.warning(
        "psp event after the payment finished",
        reversal_workflow=started,
        payment_id=payment.id,
        payment_status=payment.status,
        provider=event.provider,
        event_type=event.type,
        psp_status=event.status.value if event.status else None,
    )
