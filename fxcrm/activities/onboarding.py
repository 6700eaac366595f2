"""Activities of the onboarding workflow. Each is idempotent: safe to retry after any crash."""

from __future__ import annotations

import asyncio
import json
from datetime import date

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from fxcrm.activities.heartbeat import heartbeating
from fxcrm.activities.screening import ScreeningService
from fxcrm.adapters.kyc.base import KycProvider, KycProviderError
from fxcrm.adapters.platforms.base import NewAccountSpec, PlatformError
from fxcrm.adapters.platforms.registry import PlatformRegistry
from fxcrm.core.audit import SYSTEM, Actor, append_audit
from fxcrm.core.db import transaction
from fxcrm.domain.brand import BrandConfig
from fxcrm.domain.passwords import generate_platform_password
from fxcrm.domain.risk import Questionnaire, assess_appropriateness, categorize
from fxcrm.domain.screening import ScreeningSubject
from fxcrm.models import (
    Brand,
    KycDocument,
    Notification,
    ScreeningRecord,
    Trader,
    TradingAccount,
)
from fxcrm.workflows.onboarding_types import (
    AccountOpened,
    ApplicantRef,
    AuditInput,
    ComplianceReviewInput,
    DuplicateIdentityOut,
    KycStatusOut,
    NotifyInput,
    OpenAccountInput,
    RiskInput,
    RiskOutput,
    ScreeningSummary,
    ScreenInput,
    Stage,
    StageUpdate,
    SubmitDocumentsInput,
    TraderRef,
)

log = structlog.get_logger(__name__)

FINAL_STATUS = {Stage.ACTIVE: "active", Stage.REJECTED: "rejected", Stage.EXPIRED: "expired"}


def _staff_actor(update_actor: object) -> Actor:
    if update_actor is None:
        return SYSTEM
    return Actor(type="staff", id=update_actor.id, role=update_actor.role)  # type: ignore[attr-defined]


async def _trader(session: AsyncSession, trader_id: str) -> Trader:
    trader = await session.get(Trader, trader_id)
    if trader is None:
        raise ApplicationError(f"trader {trader_id} not found", type="NotFound", non_retryable=True)
    return trader


async def _brand_config(session: AsyncSession, brand_id: str) -> BrandConfig:
    brand = await session.get(Brand, brand_id)
    if brand is None:
        raise ApplicationError(f"brand {brand_id} not found", type="NotFound", non_retryable=True)
    return BrandConfig.model_validate(brand.config)


class OnboardingActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        kyc: KycProvider,
        platforms: PlatformRegistry,
        screening: ScreeningService,
        kyc_level: str,
    ) -> None:
        self._sessions = sessions
        self._kyc = kyc
        self._platforms = platforms
        self._screening = screening
        self._kyc_level = kyc_level

    @activity.defn
    async def open_kyc_applicant(self, ref: TraderRef) -> ApplicantRef:
        async with transaction(self._sessions) as session:
            trader = await _trader(session, ref.trader_id)
            if trader.kyc_applicant_id:
                return ApplicantRef(applicant_id=trader.kyc_applicant_id)
            person = (trader.id, trader.first_name, trader.last_name, trader.date_of_birth)
            country, email = trader.country, trader.email
        try:
            applicant_id = await self._kyc.create_applicant(
                external_user_id=person[0],
                level=self._kyc_level,
                first_name=person[1],
                last_name=person[2],
                dob=date.fromisoformat(person[3]),
                country=country,
                email=email,
            )
        except KycProviderError as exc:
            raise ApplicationError(
                str(exc), type="KycProviderError", non_retryable=not exc.retryable
            ) from exc
        async with transaction(self._sessions) as session:
            trader = await _trader(session, ref.trader_id)
            trader.kyc_applicant_id = applicant_id
            trader.kyc_status = "APPLICANT_CREATED"
            await append_audit(
                session,
                actor=SYSTEM,
                action="kyc.applicant_created",
                entity_type="trader",
                entity_id=trader.id,
                brand_id=trader.brand_id,
                after={"applicant_id": applicant_id},
                event_key=f"kyc-applicant:{trader.id}",
            )
        log.info("kyc applicant created", trader_id=ref.trader_id, applicant_id=applicant_id)
        return ApplicantRef(applicant_id=applicant_id)

    @activity.defn
    async def submit_kyc_documents(self, inp: SubmitDocumentsInput) -> None:
        async with self._sessions() as session:
            trader = await _trader(session, inp.trader_id)
            applicant_id = trader.kyc_applicant_id
            docs = (
                await session.scalars(
                    select(KycDocument).where(
                        KycDocument.trader_id == inp.trader_id, KycDocument.id.in_(inp.document_ids)
                    )
                )
            ).all()
        if applicant_id is None:
            raise ApplicationError("no KYC applicant yet", type="KycNotStarted", non_retryable=True)
        try:
            for doc in docs:
                if doc.provider_image_id:
                    continue  # uploaded by an earlier attempt
                image_id = await self._kyc.upload_document(
                    applicant_id,
                    doc.doc_type,
                    doc.issuing_country,
                    doc.filename,
                    doc.content,
                    doc.content_type,
                )
                async with transaction(self._sessions) as session:
                    stored = await session.get(KycDocument, doc.id)
                    assert stored is not None
                    stored.provider_image_id = image_id
            await self._kyc.submit(applicant_id)
        except KycProviderError as exc:
            raise ApplicationError(
                str(exc), type="KycProviderError", non_retryable=not exc.retryable
            ) from exc

    @activity.defn
    async def fetch_kyc_status(self, ref: TraderRef) -> KycStatusOut:
        async with self._sessions() as session:
            trader = await _trader(session, ref.trader_id)
            applicant_id = trader.kyc_applicant_id
        if applicant_id is None:
            return KycStatusOut(status="NOT_STARTED")
        try:
            result = await self._kyc.fetch_status(applicant_id)
        except KycProviderError as exc:
            raise ApplicationError(
                str(exc), type="KycProviderError", non_retryable=not exc.retryable
            ) from exc
        status = str(result.status)
        # The workflow adopts this status as it is; the trader's record, which the portal reads,
        # says the same now rather than at the next stage change.
        async with transaction(self._sessions) as session:
            trader = await _trader(session, ref.trader_id)
            trader.kyc_status = status
        return KycStatusOut(
            status=status,
            reasons=list(result.reasons),
            moderation_comment=result.moderation_comment,
        )

    @activity.defn
    async def check_duplicate_identity(self, ref: TraderRef) -> DuplicateIdentityOut:
        async with self._sessions() as session:
            mine = set(
                (
                    await session.scalars(
                        select(KycDocument.identity_fingerprint).where(
                            KycDocument.trader_id == ref.trader_id,
                            KycDocument.identity_fingerprint.is_not(None),
                        )
                    )
                ).all()
            )
            if not mine:
                return DuplicateIdentityOut(duplicate=False)
            others = sorted(
                set(
                    (
                        await session.scalars(
                            select(KycDocument.trader_id).where(
                                KycDocument.identity_fingerprint.in_(mine),
                                KycDocument.trader_id != ref.trader_id,
                            )
                        )
                    ).all()
                )
            )
        return DuplicateIdentityOut(duplicate=bool(others), other_trader_ids=others)

    @activity.defn
    async def screen_trader(self, inp: ScreenInput) -> ScreeningSummary:
        async with transaction(self._sessions) as session:
            existing = await session.scalar(
                select(ScreeningRecord).where(
                    ScreeningRecord.trader_id == inp.trader_id,
                    ScreeningRecord.screening_key == inp.screening_key,
                )
            )
            if existing is not None:
                return _summary(existing)
            trader = await _trader(session, inp.trader_id)
            subject = ScreeningSubject(
                first_name=trader.first_name,
                middle_name=trader.middle_name,
                last_name=trader.last_name,
                date_of_birth=date.fromisoformat(trader.date_of_birth),
                country=trader.country,
            )
            is_pep_declared = trader.is_pep_declared
        screener = await self._screening.screener()
        outcome = await asyncio.to_thread(screener.screen, subject)
        log.info(
            "screened",
            trader_id=inp.trader_id,
            decision=outcome.decision,
            top_score=round(outcome.top_score, 3),
            list_version=screener.list_version,
        )
        record = ScreeningRecord(
            trader_id=inp.trader_id,
            screening_key=inp.screening_key,
            list_version=screener.list_version,
            decision=outcome.decision,
            top_score=outcome.top_score,
            matches=[m.model_dump(mode="json") for m in outcome.matches],
            is_pep=is_pep_declared,
        )
        try:
            async with transaction(self._sessions) as session:
                session.add(record)
                await session.flush()
                trader = await _trader(session, inp.trader_id)
                await append_audit(
                    session,
                    actor=SYSTEM,
                    action="screening.completed",
                    entity_type="trader",
                    entity_id=inp.trader_id,
                    brand_id=trader.brand_id,
                    after={
                        "decision": outcome.decision,
                        "top_score": round(outcome.top_score, 4),
                        "list_version": screener.list_version,
                        "record_id": record.id,
                    },
                    workflow_id=activity.info().workflow_id,
                    event_key=f"screening:{inp.screening_key}",
                )
        except IntegrityError:
            # A concurrent attempt stored it first: return that one.
            async with self._sessions() as session:
                existing = await session.scalar(
                    select(ScreeningRecord).where(
                        ScreeningRecord.trader_id == inp.trader_id,
                        ScreeningRecord.screening_key == inp.screening_key,
                    )
                )
                assert existing is not None
                return _summary(existing)
        return _summary(record)

    @activity.defn
    async def record_compliance_review(self, inp: ComplianceReviewInput) -> None:
        async with transaction(self._sessions) as session:
            record = await session.get(ScreeningRecord, inp.record_id)
            if record is None:
                raise ApplicationError(
                    "screening record not found", type="NotFound", non_retryable=True
                )
            if record.review_decision is not None:
                return
            trader = await _trader(session, record.trader_id)
            record.reviewed_by = inp.actor.id
            record.review_decision = inp.decision
            record.review_reason = inp.reason
            from fxcrm.models.base import utcnow

            record.reviewed_at = utcnow()
            await append_audit(
                session,
                actor=Actor(type="staff", id=inp.actor.id, role=inp.actor.role),
                action="screening.reviewed",
                entity_type="screening_record",
                entity_id=record.id,
                brand_id=trader.brand_id,
                before={"decision": record.decision},
                after={"review_decision": inp.decision, "reason": inp.reason},
                workflow_id=activity.info().workflow_id,
                event_key=f"screening-review:{record.id}",
            )

    @activity.defn
    async def assess_risk(self, inp: RiskInput) -> RiskOutput:
        async with transaction(self._sessions) as session:
            trader = await _trader(session, inp.trader_id)
            brand = await _brand_config(session, trader.brand_id)
            appropriateness = None
            account_type = trader.account_type
            extra: list[str] = []
            if trader.account_type == "pro":
                answers = Questionnaire.model_validate(trader.questionnaire or {})
                appropriateness = assess_appropriateness(answers)
                if not appropriateness.passed:
                    account_type = "retail"
                    extra.append(
                        "account type: Pro refused by the appropriateness test, opened as Retail ("
                        + "; ".join(appropriateness.reasons)
                        + ")"
                    )
            risk = categorize(
                country=trader.country,
                screening_decision=inp.screening_decision,
                top_score=inp.screening_score,
                is_pep=inp.is_pep,
                account_type=account_type,
                appropriateness=appropriateness,
                duplicate_identity=inp.duplicate_identity,
                brand=brand,
            )
            reasons = risk.reasons + extra
            before = {"risk_category": trader.risk_category}
            trader.risk_category = risk.category
            trader.risk_reasons = reasons
            await append_audit(
                session,
                actor=SYSTEM,
                action="risk.categorized",
                entity_type="trader",
                entity_id=trader.id,
                brand_id=trader.brand_id,
                before=before,
                after={
                    "risk_category": risk.category,
                    "reasons": reasons,
                    "account_type": account_type,
                },
                workflow_id=activity.info().workflow_id,
                event_key=f"risk:{activity.info().workflow_id}",
            )
        return RiskOutput(category=risk.category, reasons=reasons, account_type=account_type)

    @activity.defn
    async def open_trading_account(self, inp: OpenAccountInput) -> AccountOpened:
        async with heartbeating():
            return await self._open_trading_account(inp)

    async def _open_trading_account(self, inp: OpenAccountInput) -> AccountOpened:
        opening_key = f"onboarding-{inp.trader_id}"
        account = await self._reserve_account(inp, opening_key)
        if account.status == "open" and account.login is not None:
            return AccountOpened(
                login=account.login,
                server_id=account.server_id,
                group=account.group,
                leverage=account.leverage,
            )
        gateway = await self._platforms.get(account.server_id)
        try:
            # Did an earlier attempt create it before crashing? The client id is on the platform account.
            existing = await gateway.find_accounts_by_client(inp.trader_id)
            if existing:
                log.warning(
                    "account found on the platform: an earlier attempt created it",
                    trader_id=inp.trader_id,
                    login=existing[0].login,
                )
                ref = existing[0]
            else:
                async with self._sessions() as session:
                    trader = await _trader(session, inp.trader_id)
                    creds = json.loads(account.initial_credentials or "{}")
                    spec = NewAccountSpec(
                        group=account.group,
                        leverage=account.leverage,
                        first_name=trader.first_name,
                        last_name=trader.last_name,
                        email=trader.email,
                        country=trader.country,
                        phone=trader.phone,
                        client_id=trader.id,
                        main_password=creds["main"],
                        investor_password=creds["investor"],
                    )
                ref = await gateway.create_account(spec)
        except PlatformError as exc:
            raise ApplicationError(
                str(exc), type="PlatformError", non_retryable=not exc.retryable
            ) from exc
        async with transaction(self._sessions) as session:
            stored = await session.get(TradingAccount, account.id)
            assert stored is not None
            stored.login = ref.login
            stored.group = ref.group
            stored.leverage = ref.leverage
            stored.status = "open"
            await append_audit(
                session,
                actor=SYSTEM,
                action="trading_account.opened",
                entity_type="trading_account",
                entity_id=stored.id,
                brand_id=stored.brand_id,
                after={
                    "trader_id": inp.trader_id,
                    "server_id": stored.server_id,
                    "login": ref.login,
                    "group": ref.group,
                    "leverage": ref.leverage,
                },
                workflow_id=activity.info().workflow_id,
                event_key=f"account-opened:{opening_key}",
            )
        return AccountOpened(
            login=ref.login, server_id=account.server_id, group=ref.group, leverage=ref.leverage
        )

    async def _reserve_account(self, inp: OpenAccountInput, opening_key: str) -> TradingAccount:
        """The account row, with its passwords, is written before the platform is called."""
        async with transaction(self._sessions) as session:
            account = await session.scalar(
                select(TradingAccount).where(TradingAccount.opening_key == opening_key)
            )
            if account is not None:
                return account
            trader = await _trader(session, inp.trader_id)
            brand = await _brand_config(session, trader.brand_id)
            choice = brand.group_for(inp.account_type, inp.risk_category)
            account = TradingAccount(
                trader_id=trader.id,
                brand_id=trader.brand_id,
                server_id=brand.platform_server,
                platform="mt5",
                opening_key=opening_key,
                status="opening",
                group=choice.group,
                leverage=choice.leverage,
                currency=brand.currency,
                account_type=inp.account_type,
                initial_credentials=json.dumps(
                    {"main": generate_platform_password(), "investor": generate_platform_password()}
                ),
            )
            session.add(account)
            await session.flush()
            return account

    @activity.defn
    async def record_stage(self, update: StageUpdate) -> None:
        async with transaction(self._sessions) as session:
            trader = await _trader(session, update.trader_id)
            before = {"stage": trader.stage, "status": trader.status}
            trader.stage = update.stage.value
            if update.kyc_status:
                trader.kyc_status = update.kyc_status
            if update.stage in FINAL_STATUS:
                trader.status = FINAL_STATUS[update.stage]
            if update.rejection_reason and update.stage in {Stage.REJECTED, Stage.EXPIRED}:
                trader.rejection_reason = update.rejection_reason
            await append_audit(
                session,
                actor=_staff_actor(update.actor),
                action=f"onboarding.stage.{update.stage.value}",
                entity_type="trader",
                entity_id=trader.id,
                brand_id=trader.brand_id,
                before=before,
                after={"stage": trader.stage, "status": trader.status, "note": update.note},
                workflow_id=update.workflow_id,
                event_key=f"{update.workflow_id}:stage:{update.seq}",
            )

    @activity.defn
    async def notify_trader(self, inp: NotifyInput) -> None:
        try:
            async with transaction(self._sessions) as session:
                exists = await session.scalar(
                    select(Notification.id).where(Notification.notification_key == inp.key)
                )
                if exists is None:
                    session.add(
                        Notification(
                            notification_key=inp.key,
                            trader_id=inp.trader_id,
                            kind=inp.kind,
                            body=inp.body,
                        )
                    )
        except IntegrityError:
            return  # sent by a concurrent attempt

    @activity.defn
    async def record_audit(self, inp: AuditInput) -> None:
        async with transaction(self._sessions) as session:
            trader = (
                await session.get(Trader, inp.entity_id) if inp.entity_type == "trader" else None
            )
            await append_audit(
                session,
                actor=_staff_actor(inp.actor),
                action=inp.action,
                entity_type=inp.entity_type,
                entity_id=inp.entity_id,
                brand_id=trader.brand_id if trader else None,
                after=dict(inp.after),
                workflow_id=inp.workflow_id,
                event_key=inp.key,
            )


def _summary(record: ScreeningRecord) -> ScreeningSummary:
    return ScreeningSummary(
        record_id=record.id,
        decision=record.decision,
        top_score=record.top_score,
        is_pep=record.is_pep,
        match_count=len(record.matches),
    )
