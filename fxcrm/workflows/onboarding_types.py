"""Pydantic types that cross Temporal for the onboarding workflow: input, signals, state, result."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class Stage(StrEnum):
    DOCUMENTS = "documents"
    KYC_REVIEW = "kyc_review"
    SCREENING = "screening"
    COMPLIANCE_REVIEW = "compliance_review"
    ACCOUNT_OPENING = "account_opening"
    ACTIVE = "active"
    REJECTED = "rejected"
    EXPIRED = "expired"


FINAL_STAGES = {Stage.ACTIVE, Stage.REJECTED, Stage.EXPIRED}
DOCUMENT_KINDS = ("identity", "address")


class StaffActor(BaseModel):
    id: str
    role: str
    name: str = ""


class OnboardingInput(BaseModel):
    trader_id: str
    brand_id: str
    account_type: str  # retail | pro


class DocumentUploaded(BaseModel):
    document_id: str
    kind: str  # identity | address


class KycEvent(BaseModel):
    """A verified, de-duplicated provider webhook, signalled by the API."""

    event_key: str
    event_type: str
    status: str  # fxcrm.adapters.kyc.base.KycStatus value
    created_at: datetime


class StaffKycDecision(BaseModel):
    actor: StaffActor
    decision: str  # approve | reject | request_documents
    reason: str = Field(min_length=3, max_length=1000)


class ComplianceDecision(BaseModel):
    actor: StaffActor
    decision: str  # clear | reject
    reason: str = Field(min_length=3, max_length=1000)


class Refusal(BaseModel):
    at: datetime
    signal: str
    actor_id: str
    reason: str


class StageChange(BaseModel):
    at: datetime
    stage: Stage
    note: str


class OnboardingState(BaseModel):
    trader_id: str
    brand_id: str
    account_type: str
    stage: Stage = Stage.DOCUMENTS
    kyc_status: str = "NOT_STARTED"
    kyc_applicant_id: str | None = None
    documents: dict[str, list[str]] = Field(default_factory=dict)  # kind -> document ids
    kyc_attempts: int = 0
    duplicate_identity: bool = False
    manual_review_reason: str | None = None
    screening_decision: str | None = None
    screening_score: float | None = None
    screening_record_id: str | None = None
    risk_category: str | None = None
    risk_reasons: list[str] = Field(default_factory=list)
    effective_account_type: str | None = None
    login: int | None = None
    rejection_reason: str | None = None
    reminders_sent: int = 0
    refusals: list[Refusal] = Field(default_factory=list)
    history: list[StageChange] = Field(default_factory=list)


class OnboardingResult(BaseModel):
    trader_id: str
    outcome: Stage
    login: int | None = None
    reason: str | None = None


# Activity inputs and outputs.


class TraderRef(BaseModel):
    trader_id: str


class ApplicantRef(BaseModel):
    applicant_id: str


class SubmitDocumentsInput(BaseModel):
    trader_id: str
    document_ids: list[str]


class KycStatusOut(BaseModel):
    status: str
    reasons: list[str] = Field(default_factory=list)
    moderation_comment: str | None = None


class DuplicateIdentityOut(BaseModel):
    duplicate: bool
    other_trader_ids: list[str] = Field(default_factory=list)


class ScreenInput(BaseModel):
    trader_id: str
    screening_key: str


class ScreeningSummary(BaseModel):
    record_id: str
    decision: str  # clear | possible | strong
    top_score: float
    is_pep: bool
    match_count: int


class ComplianceReviewInput(BaseModel):
    record_id: str
    actor: StaffActor
    decision: str
    reason: str


class RiskInput(BaseModel):
    trader_id: str
    screening_decision: str
    screening_score: float
    is_pep: bool
    duplicate_identity: bool


class RiskOutput(BaseModel):
    category: str
    reasons: list[str]
    account_type: str  # effective: pro falls back to retail when appropriateness fails


class OpenAccountInput(BaseModel):
    trader_id: str
    account_type: str
    risk_category: str


class AccountOpened(BaseModel):
    login: int
    server_id: str
    group: str
    leverage: int


class StageUpdate(BaseModel):
    trader_id: str
    workflow_id: str
    seq: int  # makes the audit write idempotent under activity retries
    stage: Stage
    note: str
    kyc_status: str | None = None
    risk_category: str | None = None
    risk_reasons: list[str] | None = None
    rejection_reason: str | None = None
    actor: StaffActor | None = None


class NotifyInput(BaseModel):
    trader_id: str
    key: str
    kind: str
    body: str


class AuditInput(BaseModel):
    workflow_id: str
    key: str
    action: str
    entity_type: str
    entity_id: str
    actor: StaffActor | None = None
    after: dict[str, str] = Field(default_factory=dict)
