"""Staff back office: onboarding queue, a trader's file, KYC and compliance decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from fxcrm.api import onboarding_client as onboarding
from fxcrm.api.deps import (
    Principal,
    SessionDep,
    TemporalDep,
    WriteSessionDep,
    release,
    require,
)
from fxcrm.api.errors import Problem
from fxcrm.api.params import Offset
from fxcrm.core.audit import append_audit
from fxcrm.domain.masking import mask_email, mask_name
from fxcrm.domain.text import CleanText
from fxcrm.models import KycDocument, ScreeningRecord, Trader, TradingAccount
from fxcrm.workflows.onboarding_types import (
    ComplianceDecision,
    OnboardingState,
    StaffActor,
    StaffKycDecision,
    Stage,
)

router = APIRouter(prefix="/backoffice", tags=["backoffice"])

PII_ROLES = {"admin", "onboarding", "compliance"}
ReaderDep = Annotated[
    Principal,
    Depends(
        require("admin", "onboarding", "compliance", "support", "auditor", "finance", "dealer")
    ),
]
KycStaffDep = Annotated[Principal, Depends(require("admin", "onboarding"))]
ComplianceDep = Annotated[Principal, Depends(require("admin", "compliance"))]
DocReaderDep = Annotated[Principal, Depends(require("admin", "onboarding", "compliance"))]


class TraderSummary(BaseModel):
    trader_id: str
    brand_id: str
    email: str
    first_name: str
    last_name: str
    country: str
    account_type: str
    status: str
    stage: str
    kyc_status: str
    risk_category: str | None
    created_at: datetime


class DocumentMeta(BaseModel):
    document_id: str
    kind: str
    doc_type: str
    issuing_country: str
    content_type: str
    size: int
    sha256: str
    uploaded_at: datetime
    duplicate_identity: bool


class ScreeningView(BaseModel):
    record_id: str
    list_version: str
    decision: str
    top_score: float
    is_pep: bool
    matches: list[dict[str, Any]]
    review_decision: str | None
    review_reason: str | None
    reviewed_by: str | None
    screened_at: datetime


class TraderFile(BaseModel):
    trader: TraderSummary
    risk_reasons: list[str]
    rejection_reason: str | None
    documents: list[DocumentMeta]
    screenings: list[ScreeningView]
    accounts: list[dict[str, Any]]
    onboarding: OnboardingState | None


class DecisionRequest(BaseModel):
    decision: str
    reason: CleanText = Field(min_length=3, max_length=1000)


class KycDecisionRequest(DecisionRequest):
    decision: Literal["approve", "reject", "request_documents"]


class ComplianceDecisionRequest(DecisionRequest):
    decision: Literal["clear", "reject"]


class Accepted(BaseModel):
    status: str = "accepted"
    stage: str


def _summary(t: Trader, principal: Principal) -> TraderSummary:
    show = principal.role in PII_ROLES
    return TraderSummary(
        trader_id=t.id,
        brand_id=t.brand_id,
        email=t.email if show else mask_email(t.email),
        first_name=t.first_name if show else mask_name(t.first_name),
        last_name=t.last_name if show else mask_name(t.last_name),
        country=t.country,
        account_type=t.account_type,
        status=t.status,
        stage=t.stage,
        kyc_status=t.kyc_status,
        risk_category=t.risk_category,
        created_at=t.created_at,
    )


async def _scoped_trader(session: SessionDep, principal: Principal, trader_id: str) -> Trader:
    trader = await session.get(Trader, trader_id)
    # Another brand's trader looks exactly like a missing one.
    if trader is None or not principal.can_see_brand(trader.brand_id):
        raise Problem(404, "Not found", "no such trader")
    await release(session)
    return trader


@router.get("/traders", response_model=list[TraderSummary])
async def list_traders(
    principal: ReaderDep,
    session: SessionDep,
    stage: str | None = None,
    status: str | None = None,
    brand_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> list[TraderSummary]:
    brands = principal.brand_ids
    if brand_id is not None:
        if brand_id not in brands:
            raise Problem(403, "Forbidden", "you have no access to this brand")
        brands = [brand_id]
    query = select(Trader).where(Trader.brand_id.in_(brands))
    if stage:
        query = query.where(Trader.stage == stage)
    if status:
        query = query.where(Trader.status == status)
    rows = (
        await session.scalars(query.order_by(Trader.created_at.desc()).limit(limit).offset(offset))
    ).all()
    return [_summary(t, principal) for t in rows]


@router.get("/traders/{trader_id}", response_model=TraderFile)
async def trader_file(
    trader_id: str, principal: ReaderDep, session: SessionDep, temporal: TemporalDep
) -> TraderFile:
    trader = await _scoped_trader(session, principal, trader_id)
    docs = (
        await session.scalars(select(KycDocument).where(KycDocument.trader_id == trader_id))
    ).all()
    fingerprints = {d.identity_fingerprint for d in docs if d.identity_fingerprint}
    reused = set()
    if fingerprints:
        reused = set(
            (
                await session.scalars(
                    select(KycDocument.identity_fingerprint).where(
                        KycDocument.identity_fingerprint.in_(fingerprints),
                        KycDocument.trader_id != trader_id,
                    )
                )
            ).all()
        )
    screenings = (
        await session.scalars(select(ScreeningRecord).where(ScreeningRecord.trader_id == trader_id))
    ).all()
    accounts = (
        await session.scalars(select(TradingAccount).where(TradingAccount.trader_id == trader_id))
    ).all()
    await release(session)
    try:
        state: OnboardingState | None = await onboarding.onboarding_state(temporal, trader_id)
    except Problem:
        state = None
    show = principal.role in PII_ROLES
    return TraderFile(
        trader=_summary(trader, principal),
        risk_reasons=trader.risk_reasons or [],
        rejection_reason=trader.rejection_reason,
        documents=[
            DocumentMeta(
                document_id=d.id,
                kind=d.kind,
                doc_type=d.doc_type,
                issuing_country=d.issuing_country,
                content_type=d.content_type,
                size=d.size,
                sha256=d.sha256,
                uploaded_at=d.uploaded_at,
                duplicate_identity=d.identity_fingerprint in reused,
            )
            for d in docs
        ],
        screenings=[
            ScreeningView(
                record_id=s.id,
                list_version=s.list_version,
                decision=s.decision,
                top_score=s.top_score,
                is_pep=s.is_pep,
                matches=s.matches if show else [],
                review_decision=s.review_decision,
                review_reason=s.review_reason,
                reviewed_by=s.reviewed_by,
                screened_at=s.screened_at,
            )
            for s in screenings
        ],
        accounts=[
            {
                "account_id": a.id,
                "server_id": a.server_id,
                "login": a.login,
                "group": a.group,
                "leverage": a.leverage,
                "status": a.status,
            }
            for a in accounts
        ],
        onboarding=state,
    )


@router.get("/traders/{trader_id}/documents/{document_id}")
async def download_document(
    trader_id: str,
    document_id: str,
    principal: DocReaderDep,
    session: SessionDep,
    audit: WriteSessionDep,
) -> Response:
    trader = await _scoped_trader(session, principal, trader_id)
    doc = await session.get(KycDocument, document_id)
    if doc is None or doc.trader_id != trader.id:
        raise Problem(404, "Not found", "no such document")
    await release(session)
    # The view is recorded before the file leaves, in a session that may write: the GET's own
    # session is read-only (on SQLite, upgrading it to a writer fails with "database is locked").
    await append_audit(
        audit,
        actor=principal.actor,
        action="kyc.document_viewed",
        entity_type="kyc_document",
        entity_id=doc.id,
        brand_id=trader.brand_id,
        after={"trader_id": trader.id},
    )
    await audit.commit()
    return Response(
        doc.content,
        media_type=doc.content_type,
        headers={"Content-Disposition": f'attachment; filename="{doc.id}"'},
    )


def _actor(principal: Principal) -> StaffActor:
    return StaffActor(id=principal.id, role=principal.role)


@router.post("/traders/{trader_id}/kyc-decision", status_code=202, response_model=Accepted)
async def kyc_decision(
    trader_id: str,
    body: KycDecisionRequest,
    principal: KycStaffDep,
    session: SessionDep,
    temporal: TemporalDep,
) -> Accepted:
    await _scoped_trader(session, principal, trader_id)
    state = await onboarding.onboarding_state(temporal, trader_id)
    if state.stage != Stage.KYC_REVIEW:
        raise Problem(
            409, "No KYC decision due", f"the application is in stage {state.stage.value}"
        )
    await onboarding.signal(
        temporal,
        trader_id,
        "staff_kyc_decision",
        StaffKycDecision(actor=_actor(principal), decision=body.decision, reason=body.reason),
    )
    return Accepted(stage=state.stage.value)


@router.post("/traders/{trader_id}/compliance-decision", status_code=202, response_model=Accepted)
async def compliance_decision(
    trader_id: str,
    body: ComplianceDecisionRequest,
    principal: ComplianceDep,
    session: SessionDep,
    temporal: TemporalDep,
) -> Accepted:
    await _scoped_trader(session, principal, trader_id)
    state = await onboarding.onboarding_state(temporal, trader_id)
    if state.stage != Stage.COMPLIANCE_REVIEW:
        raise Problem(
            409, "No compliance decision due", f"the application is in stage {state.stage.value}"
        )
    await onboarding.signal(
        temporal,
        trader_id,
        "compliance_decision",
        ComplianceDecision(actor=_actor(principal), decision=body.decision, reason=body.reason),
    )
    return Accepted(stage=state.stage.value)


class AccountTypeRequest(BaseModel):
    account_type: Literal["retail", "pro", "vip"]
    reason: CleanText = Field(min_length=3, max_length=1000)


OPEN_STAGES = {"documents", "kyc_review", "screening", "compliance_review"}


@router.post("/traders/{trader_id}/account-type", response_model=TraderSummary)
async def set_account_type(
    trader_id: str, body: AccountTypeRequest, principal: KycStaffDep, session: SessionDep
) -> TraderSummary:
    """VIP is granted by staff, before the account is opened (the risk stage reads it)."""
    trader = await _scoped_trader(session, principal, trader_id)
    if trader.stage not in OPEN_STAGES:
        raise Problem(409, "Too late", f"the account type is fixed in stage {trader.stage}")
    if body.account_type == "pro" and not trader.questionnaire:
        raise Problem(422, "Questionnaire required", "Pro needs the appropriateness questionnaire")
    before = {"account_type": trader.account_type}
    trader.account_type = body.account_type
    await append_audit(
        session,
        actor=principal.actor,
        action="trader.account_type_changed",
        entity_type="trader",
        entity_id=trader.id,
        brand_id=trader.brand_id,
        before=before,
        after={"account_type": body.account_type, "reason": body.reason},
    )
    await session.commit()
    return _summary(trader, principal)
