"""The trader portal: register, upload KYC documents, follow onboarding, see accounts."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from typing import Annotated, Literal

import structlog
from fastapi import APIRouter, Depends, File, Form, UploadFile, status
from pydantic import BaseModel, EmailStr, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from temporalio.service import RPCError

from fxcrm.api import onboarding_client as onboarding
from fxcrm.api.deps import SessionDep, SettingsDep, TemporalDep, TraderDep, release
from fxcrm.api.errors import Problem
from fxcrm.api.limits import limit_registration
from fxcrm.api.openapi import problems
from fxcrm.core.audit import Actor, append_audit
from fxcrm.core.security import hash_password, sha256_hex
from fxcrm.domain.brand import BrandConfig
from fxcrm.domain.documents import (
    IDENTITY_DOCUMENT_TYPES,
    MAX_DOCUMENT_BYTES,
    PROOF_OF_ADDRESS_TYPES,
    DocumentRejected,
    identity_document_fingerprint,
    validate_document,
)
from fxcrm.domain.passwords import (
    MAX_LENGTH,
    MIN_LENGTH,
    NewPassword,
    check_password,
    personal_words,
)
from fxcrm.domain.registration import RegistrationRefused, check_registration, known_country
from fxcrm.domain.risk import Questionnaire
from fxcrm.domain.text import CleanText
from fxcrm.ib.attribution import VISITOR_ID, attribute, referrer_by_click, resolve_code
from fxcrm.models import Brand, KycDocument, Trader, TradingAccount
from fxcrm.models.base import utcnow
from fxcrm.workflows.onboarding_types import (
    DocumentUploaded,
    OnboardingInput,
    OnboardingState,
    Stage,
)

router = APIRouter(prefix="/portal", tags=["portal"])
log = structlog.get_logger(__name__)


class Address(BaseModel):
    line1: CleanText = Field(min_length=3, max_length=200)
    city: CleanText = Field(min_length=1, max_length=100)
    postal_code: CleanText = Field(min_length=2, max_length=20)


class RegistrationRequest(BaseModel):
    email: EmailStr
    password: NewPassword = Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH)
    first_name: CleanText = Field(min_length=1, max_length=100)
    last_name: CleanText = Field(min_length=1, max_length=100)
    middle_name: CleanText | None = Field(default=None, max_length=100)
    date_of_birth: date
    country: str = Field(min_length=2, max_length=2)
    phone: str
    address: Address
    account_type: Literal["retail", "pro"]
    is_pep: bool = False
    questionnaire: Questionnaire | None = None
    ib_referral_code: str | None = Field(default=None, max_length=40)
    # Carried from a referral click (POST /portal/{brand}/referral-clicks): attributes by click.
    visitor_id: str | None = Field(default=None, pattern=VISITOR_ID)

    @field_validator("country")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _pro_needs_questionnaire(self) -> RegistrationRequest:
        if self.account_type == "pro" and self.questionnaire is None:
            raise ValueError("a Pro account requires the appropriateness questionnaire")
        return self

    @model_validator(mode="after")
    def _password_is_not_personal(self) -> RegistrationRequest:
        check_password(
            self.password,
            personal_words(self.first_name, self.middle_name, self.last_name, str(self.email)),
        )
        return self


class RegistrationResponse(BaseModel):
    trader_id: str
    workflow_id: str
    stage: str


class Me(BaseModel):
    trader_id: str
    email: str
    first_name: str
    last_name: str
    country: str
    account_type: str
    status: str
    stage: str
    kyc_status: str
    risk_category: str | None
    rejection_reason: str | None


class OnboardingView(BaseModel):
    """What the portal shows: the stage and what the trader must do, no internal evidence."""

    stage: str
    kyc_status: str
    documents_received: list[str]
    documents_missing: list[str]
    message: str | None
    login: int | None


class DocumentReceipt(BaseModel):
    document_id: str
    kind: str
    doc_type: str
    size: int
    sha256: str


class AccountView(BaseModel):
    account_id: str
    platform: str
    server_id: str
    login: int | None
    group: str
    leverage: int
    currency: str
    status: str
    credentials_available: bool


class Credentials(BaseModel):
    login: int
    main_password: str
    investor_password: str
    server_id: str


@router.post(
    "/{brand_code}/register",
    status_code=status.HTTP_201_CREATED,
    response_model=RegistrationResponse,
    dependencies=[Depends(limit_registration)],
    responses=problems(503),
)
async def register(
    brand_code: str,
    body: RegistrationRequest,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> RegistrationResponse:
    brand = await session.scalar(select(Brand).where(Brand.code == brand_code))
    if brand is None:
        raise Problem(404, "Unknown brand", f"no brand {brand_code!r}")
    await release(session)
    config = BrandConfig.model_validate(brand.config)
    try:
        check_registration(
            born=body.date_of_birth,
            country=body.country,
            phone=body.phone,
            brand=config,
            today=datetime.now(UTC).date(),
        )
    except RegistrationRefused as exc:
        raise Problem(
            422, "Registration refused", str(exc), type_="/problems/registration", field=exc.field
        ) from exc
    email = body.email.lower()
    # argon2 is slow on purpose: hash before the transaction, never inside it.
    password_hash = await asyncio.to_thread(hash_password, body.password)
    if await session.scalar(
        select(Trader.id).where(Trader.brand_id == brand.id, Trader.email == email)
    ):
        raise Problem(
            409, "Email already registered", "this email is already registered with the brand"
        )
    referrer = None
    if body.ib_referral_code:
        referrer = await resolve_code(session, brand.id, body.ib_referral_code)
        if referrer is None:
            raise Problem(
                422,
                "Unknown referral code",
                "the IB referral code does not exist",
                type_="/problems/registration",
                field="ib_referral_code",
            )
    if body.visitor_id:
        # A click within the brand's window wins over a typed code (first or last click per brand).
        clicked = await referrer_by_click(session, brand.id, config.ib, body.visitor_id, utcnow())
        referrer = clicked or referrer
    ib_partner_id = referrer.ib_id if referrer else None
    trader = Trader(
        brand_id=brand.id,
        email=email,
        password_hash=password_hash,
        first_name=body.first_name,
        last_name=body.last_name,
        middle_name=body.middle_name or None,  # cleaned; blank means none
        date_of_birth=body.date_of_birth.isoformat(),
        phone=body.phone,
        address=body.address.model_dump_json(),
        country=body.country,
        account_type=body.account_type,
        is_pep_declared=body.is_pep,
        questionnaire=body.questionnaire.model_dump() if body.questionnaire else None,
        ib_referral_code=body.ib_referral_code if ib_partner_id else None,
        ib_partner_id=ib_partner_id,
        stage=Stage.DOCUMENTS.value,
    )
    session.add(trader)
    try:
        await session.flush()
    except IntegrityError:
        raise Problem(
            409, "Email already registered", "this email is already registered with the brand"
        ) from None
    if referrer is not None:
        await attribute(
            session, trader, referrer, trader.created_at, Actor(type="trader", id=trader.id)
        )
    await append_audit(
        session,
        actor=Actor(type="trader", id=trader.id),
        action="trader.registered",
        entity_type="trader",
        entity_id=trader.id,
        brand_id=brand.id,
        after={
            "country": trader.country,
            "account_type": trader.account_type,
            "ib_partner_id": ib_partner_id,
            "is_pep_declared": body.is_pep,
        },
        workflow_id=onboarding.onboarding_workflow_id(trader.id),
    )
    await session.commit()
    await _start(temporal, settings.task_queue, trader, brand_code)
    return RegistrationResponse(
        trader_id=trader.id,
        workflow_id=onboarding.onboarding_workflow_id(trader.id),
        stage=trader.stage,
    )


async def _start(temporal: TemporalDep, task_queue: str, trader: Trader, brand_code: str) -> None:
    try:
        await onboarding.start_onboarding(
            temporal,
            task_queue,
            OnboardingInput(
                trader_id=trader.id, brand_id=trader.brand_id, account_type=trader.account_type
            ),
            brand_code,
        )
    except RPCError as exc:
        log.error("onboarding start failed", trader_id=trader.id, error=exc.message)
        raise Problem(
            503,
            "Onboarding not started",
            "registered, but onboarding could not start; retry POST /portal/me/onboarding",
        ) from exc


@router.post(
    "/me/onboarding",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OnboardingView,
    responses=problems(503),
)
async def resume_onboarding(
    me: TraderDep, session: SessionDep, settings: SettingsDep, temporal: TemporalDep
) -> OnboardingView:
    """Starts the onboarding workflow if registration could not (idempotent)."""
    trader = await _trader(session, me.id)
    brand_code = await session.scalar(select(Brand.code).where(Brand.id == trader.brand_id))
    await release(session)
    await _start(temporal, settings.task_queue, trader, brand_code or "")
    return await onboarding_view(me, session, temporal)


async def _trader(session: SessionDep, trader_id: str) -> Trader:
    trader = await session.get(Trader, trader_id)
    if trader is None:
        raise Problem(404, "Not found", "trader not found")
    return trader


@router.get("/me", response_model=Me)
async def me(me: TraderDep, session: SessionDep) -> Me:
    t = await _trader(session, me.id)
    return Me(
        trader_id=t.id,
        email=t.email,
        first_name=t.first_name,
        last_name=t.last_name,
        country=t.country,
        account_type=t.account_type,
        status=t.status,
        stage=t.stage,
        kyc_status=t.kyc_status,
        risk_category=t.risk_category,
        rejection_reason=t.rejection_reason,
    )


@router.get("/me/onboarding", response_model=OnboardingView)
async def onboarding_view(
    me: TraderDep, session: SessionDep, temporal: TemporalDep
) -> OnboardingView:
    """Stage and KYC status from the trader's record, the one source `/portal/me` reads too; the
    workflow moves its own stage first and records it a moment later, so a view read from both
    could say "active" beside "account_opening". Documents and messages come from the workflow."""
    trader = await _trader(session, me.id)
    stage, kyc_status = trader.stage, trader.kyc_status
    # A client adopted with an existing account (an imported book) has no onboarding workflow.
    adopted_login = await session.scalar(
        select(TradingAccount.login)
        .where(TradingAccount.trader_id == me.id, TradingAccount.login.is_not(None))
        .order_by(TradingAccount.created_at)
        .limit(1)
    )
    await release(session)
    try:
        state: OnboardingState | None = await onboarding.onboarding_state(temporal, me.id)
    except Problem:
        if stage != Stage.ACTIVE:
            raise
        state = None
    if state is None:
        return OnboardingView(
            stage=stage,
            kyc_status=kyc_status,
            documents_received=[],
            documents_missing=[],
            message=None,
            login=adopted_login,
        )
    received = sorted(k for k, ids in state.documents.items() if ids)
    missing = (
        [k for k in ("identity", "address") if k not in received]
        if stage == Stage.DOCUMENTS
        else []
    )
    message = None
    if stage == Stage.DOCUMENTS and state.kyc_attempts:
        message = state.manual_review_reason
    elif stage in {Stage.REJECTED, Stage.EXPIRED}:
        message = (
            "We are unable to open an account for you."
            if stage == Stage.REJECTED
            else ("Your application expired.")
        )
    return OnboardingView(
        stage=stage,
        kyc_status=kyc_status,
        documents_received=received,
        documents_missing=missing,
        message=message,
        login=state.login if stage == Stage.ACTIVE else None,
    )


# The multipart envelope and the form fields around the file.
UPLOAD_OVERHEAD_BYTES = 64 * 1024


@router.post(
    "/me/documents",
    status_code=status.HTTP_201_CREATED,
    response_model=DocumentReceipt,
    max_body_size=MAX_DOCUMENT_BYTES + UPLOAD_OVERHEAD_BYTES,
    responses=problems(413, 415),
)
async def upload_document(
    me: TraderDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    kind: Annotated[Literal["identity", "address"], Form()],
    doc_type: Annotated[str, Form(max_length=20)],
    issuing_country: Annotated[str, Form(min_length=2, max_length=2)],
    file: Annotated[UploadFile, File()],
    document_number: Annotated[str | None, Form(max_length=40)] = None,
) -> DocumentReceipt:
    allowed = IDENTITY_DOCUMENT_TYPES if kind == "identity" else PROOF_OF_ADDRESS_TYPES
    if doc_type not in allowed:
        raise Problem(
            422,
            "Wrong document type",
            f"{doc_type} is not a {kind} document; use one of " + ", ".join(sorted(allowed)),
            type_="/problems/document",
            field="doc_type",
        )
    if not known_country(issuing_country):
        raise Problem(
            422,
            "Unknown country",
            f"unknown issuing country {issuing_country!r}",
            type_="/problems/document",
            field="issuing_country",
        )
    if kind == "identity" and not document_number:
        raise Problem(
            422,
            "Document number required",
            "an identity document needs its number",
            type_="/problems/document",
            field="document_number",
        )
    content = await file.read(MAX_DOCUMENT_BYTES + 1)
    content_type = file.content_type or "application/octet-stream"
    try:
        # Decoding a 10 MiB scan takes a while: off the event loop.
        await asyncio.to_thread(validate_document, doc_type, content_type, content)
        fingerprint = (
            identity_document_fingerprint(
                doc_type,
                issuing_country.upper(),
                document_number,
                pepper=settings.secret_key.encode(),
            )
            if kind == "identity" and document_number
            else None
        )
    except DocumentRejected as exc:
        status_code = {"too_large": 413, "unsupported_type": 415, "type_mismatch": 415}.get(
            exc.reason_code, 422
        )
        raise Problem(
            status_code,
            "Document refused",
            str(exc),
            type_="/problems/document",
            reason=exc.reason_code,
        ) from exc
    state = await onboarding.onboarding_state(temporal, me.id)
    if state.stage != Stage.DOCUMENTS:
        raise Problem(
            409, "Documents not expected", f"the application is in stage {state.stage.value}"
        )
    trader = await _trader(session, me.id)
    doc = KycDocument(
        trader_id=trader.id,
        kind=kind,
        doc_type=doc_type,
        issuing_country=issuing_country.upper(),
        content_type=content_type,
        size=len(content),
        sha256=sha256_hex(content),
        filename=(file.filename or "document")[:200],
        content=content,
        identity_fingerprint=fingerprint,
    )
    session.add(doc)
    await session.flush()
    await append_audit(
        session,
        actor=me.actor,
        action="kyc.document_uploaded",
        entity_type="kyc_document",
        entity_id=doc.id,
        brand_id=trader.brand_id,
        after={
            "trader_id": trader.id,
            "kind": kind,
            "doc_type": doc_type,
            "sha256": doc.sha256,
            "size": doc.size,
        },
        workflow_id=onboarding.onboarding_workflow_id(trader.id),
    )
    await session.commit()
    await onboarding.signal(
        temporal, me.id, "document_uploaded", DocumentUploaded(document_id=doc.id, kind=kind)
    )
    return DocumentReceipt(
        document_id=doc.id, kind=kind, doc_type=doc_type, size=doc.size, sha256=doc.sha256
    )


@router.get("/me/accounts", response_model=list[AccountView])
async def my_accounts(me: TraderDep, session: SessionDep) -> list[AccountView]:
    accounts = (
        await session.scalars(select(TradingAccount).where(TradingAccount.trader_id == me.id))
    ).all()
    return [
        AccountView(
            account_id=a.id,
            platform=a.platform,
            server_id=a.server_id,
            login=a.login,
            group=a.group,
            leverage=a.leverage,
            currency=a.currency,
            status=a.status,
            credentials_available=a.status == "open" and a.initial_credentials is not None,
        )
        for a in accounts
    ]


@router.post("/me/accounts/{account_id}/credentials", response_model=Credentials)
async def reveal_credentials(account_id: str, me: TraderDep, session: SessionDep) -> Credentials:
    """Shows the account's passwords once; they are erased from fxcrm as they are shown."""
    account = await session.get(TradingAccount, account_id)
    if account is None or account.trader_id != me.id:
        raise Problem(404, "Not found", "no such account")
    if account.status != "open" or account.login is None:
        raise Problem(409, "Account not open yet", "the account is still being opened")
    if account.initial_credentials is None:
        raise Problem(
            410, "Credentials already shown", "the passwords were shown once and then erased"
        )
    creds = json.loads(account.initial_credentials)
    account.initial_credentials = None
    account.credentials_revealed_at = utcnow()
    await append_audit(
        session,
        actor=me.actor,
        action="trading_account.credentials_revealed",
        entity_type="trading_account",
        entity_id=account.id,
        brand_id=account.brand_id,
        after={"login": account.login},
    )
    await session.commit()
    return Credentials(
        login=account.login,
        main_password=creds["main"],
        investor_password=creds["investor"],
        server_id=account.server_id,
    )
