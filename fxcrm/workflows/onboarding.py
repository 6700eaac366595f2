"""OnboardingWorkflow (`onboarding-{trader}`): registration → KYC → screening → risk → MT5 account.

Pure orchestration. Every wait is bounded: a reminder when documents are still missing after
3 days, and the application expires after 30 days without progress.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from fxcrm.activities.onboarding import OnboardingActivities
    from fxcrm.core.temporal import STAGE
    from fxcrm.workflows.onboarding_types import (
        DOCUMENT_KINDS,
        AuditInput,
        ComplianceDecision,
        ComplianceReviewInput,
        DocumentUploaded,
        KycEvent,
        KycStatusOut,
        NotifyInput,
        OnboardingInput,
        OnboardingResult,
        OnboardingState,
        OpenAccountInput,
        Refusal,
        RiskInput,
        ScreeningSummary,
        ScreenInput,
        StaffActor,
        StaffKycDecision,
        Stage,
        StageChange,
        StageUpdate,
        SubmitDocumentsInput,
        TraderRef,
    )

REMINDER_AFTER = timedelta(days=3)
EXPIRE_AFTER = timedelta(days=30)
ACTIVITY_TIMEOUT = timedelta(seconds=60)
HEARTBEAT_TIMEOUT = timedelta(seconds=5)
HEARTBEATING = {OnboardingActivities.open_trading_account}
KYC_STAFF_ROLES = {"onboarding", "admin"}
COMPLIANCE_ROLES = {"compliance", "admin"}


InT = TypeVar("InT")
OutT = TypeVar("OutT")


class _Expired(Exception):
    """No progress for EXPIRE_AFTER."""


@workflow.defn
class OnboardingWorkflow:
    @workflow.init
    def __init__(self, inp: OnboardingInput) -> None:
        # State exists before run() starts: signals sent with the start are handled first.
        self._state = OnboardingState(
            trader_id=inp.trader_id, brand_id=inp.brand_id, account_type=inp.account_type
        )
        self._last_progress = workflow.now()
        self._kyc_events: list[KycEvent] = []
        self._seen_kyc_keys: set[str] = set()
        self._last_kyc_event_at: datetime | None = None
        self._staff_decision: StaffKycDecision | None = None
        self._compliance: ComplianceDecision | None = None
        self._pending_audit: list[AuditInput] = []
        self._seq = 0

    # ---- the business process -------------------------------------------------------------

    @workflow.run
    async def run(self, inp: OnboardingInput) -> OnboardingResult:
        try:
            await self._set_stage(Stage.DOCUMENTS, "application registered; documents requested")
            applicant = await self._act(
                OnboardingActivities.open_kyc_applicant, TraderRef(trader_id=inp.trader_id)
            )
            self.state.kyc_applicant_id = applicant.applicant_id
            if not await self._pass_kyc():
                return await self._finish(Stage.REJECTED)
            screening = await self._screen()
            if screening.decision == "strong":
                self.state.rejection_reason = (
                    f"strong sanctions match (score {screening.top_score:.2f}); evidence in screening "
                    f"record {screening.record_id}"
                )
                return await self._finish(Stage.REJECTED)
            if screening.decision == "possible" and not await self._compliance_clears(screening):
                return await self._finish(Stage.REJECTED)
            await self._categorize(screening)
            await self._open_account()
            return await self._finish(Stage.ACTIVE)
        except _Expired:
            self.state.rejection_reason = "application expired after 30 days without progress"
            return await self._finish(Stage.EXPIRED)

    async def _pass_kyc(self) -> bool:
        """Documents → provider review → staff decision, until approved or rejected."""
        while True:
            await self._collect_documents()
            ids = [doc for kind in DOCUMENT_KINDS for doc in self.state.documents.get(kind, [])]
            await self._act(
                OnboardingActivities.submit_kyc_documents,
                SubmitDocumentsInput(trader_id=self.state.trader_id, document_ids=ids),
            )
            self.state.kyc_attempts += 1
            duplicate = await self._act(
                OnboardingActivities.check_duplicate_identity,
                TraderRef(trader_id=self.state.trader_id),
            )
            if duplicate.duplicate:
                self.state.duplicate_identity = True
                self.state.manual_review_reason = (
                    "identity document already used by trader(s) "
                    + ", ".join(duplicate.other_trader_ids)
                )
            self.state.kyc_status = "SUBMITTED"
            await self._set_stage(Stage.KYC_REVIEW, "documents submitted to the KYC provider")
            verdict = await self._await_kyc_verdict()
            if verdict == "approved":
                return True
            if verdict == "rejected":
                return False
            # Resubmission: back to documents, with what the reviewer asked for.
            self.state.documents = {}
            await self._set_stage(
                Stage.DOCUMENTS, self.state.manual_review_reason or "resubmission requested"
            )
            await self._notify(
                "kyc-resubmit",
                "Please upload your documents again: "
                + (self.state.manual_review_reason or "the verification could not be completed"),
            )

    async def _collect_documents(self) -> None:
        reminder_at: datetime | None = workflow.now() + REMINDER_AFTER
        while not await self._wait_for(self._documents_complete, reminder_at):
            reminder_at = None
            self.state.reminders_sent += 1
            missing = [k for k in DOCUMENT_KINDS if not self.state.documents.get(k)]
            await self._notify(
                f"docs-reminder-{self.state.kyc_attempts}",
                "Your application is waiting for documents: " + ", ".join(missing),
            )

    async def _await_kyc_verdict(self) -> str:
        """Returns approved | rejected | resubmit, from the provider's result and staff decisions."""
        while True:
            if self._staff_decision is not None:
                decision, self._staff_decision = self._staff_decision, None
                await self._audit_decision(
                    "onboarding.kyc_decision", decision.actor, decision.decision, decision.reason
                )
                if decision.decision == "approve":
                    self.state.kyc_status = "APPROVED"
                    return "approved"
                if decision.decision == "reject":
                    self.state.kyc_status = "REJECTED_FINAL"
                    self.state.rejection_reason = f"KYC rejected by staff: {decision.reason}"
                    return "rejected"
                self.state.manual_review_reason = f"documents requested by staff: {decision.reason}"
                return "resubmit"
            if self._kyc_events:
                self._kyc_events.clear()
                # A webhook is a hint: the provider's current status is the authority.
                status = await self._act(
                    OnboardingActivities.fetch_kyc_status, TraderRef(trader_id=self.state.trader_id)
                )
                verdict = self._apply_kyc_status(status)
                if verdict is not None:
                    return verdict
            await self._wait_for(lambda: bool(self._kyc_events) or self._staff_decision is not None)

    def _apply_kyc_status(self, status: KycStatusOut) -> str | None:
        self.state.kyc_status = status.status
        reasons = ", ".join(status.reasons) or "no reason given"
        if status.status == "APPROVED":
            if self.state.duplicate_identity:
                return None  # a person must look at the re-used identity first
            return "approved"
        if status.status == "REJECTED_FINAL":
            self.state.rejection_reason = f"KYC rejected by the provider: {reasons}"
            return "rejected"
        if status.status == "RESUBMISSION_REQUESTED":
            self.state.manual_review_reason = (
                status.moderation_comment or f"resubmission requested: {reasons}"
            )
            return "resubmit"
        if status.status == "EXPIRED":
            self.state.rejection_reason = "KYC verification expired at the provider"
            return "rejected"
        if status.status == "MANUAL_REVIEW":
            self.state.manual_review_reason = f"provider put the review on hold: {reasons}"
        return None

    async def _screen(self) -> ScreeningSummary:
        await self._set_stage(Stage.SCREENING, "KYC approved; sanctions and PEP screening")
        screening = await self._act(
            OnboardingActivities.screen_trader,
            ScreenInput(
                trader_id=self.state.trader_id,
                screening_key=f"{workflow.info().workflow_id}:onboarding",
            ),
        )
        self.state.screening_decision = screening.decision
        self.state.screening_score = screening.top_score
        self.state.screening_record_id = screening.record_id
        return screening

    async def _compliance_clears(self, screening: ScreeningSummary) -> bool:
        await self._set_stage(
            Stage.COMPLIANCE_REVIEW,
            f"possible sanctions match (score {screening.top_score:.2f}); waiting for compliance",
        )
        await self._wait_for(lambda: self._compliance is not None)
        decision = self._compliance
        assert decision is not None
        await self._act(
            OnboardingActivities.record_compliance_review,
            ComplianceReviewInput(
                record_id=screening.record_id,
                actor=decision.actor,
                decision=decision.decision,
                reason=decision.reason,
            ),
        )
        if decision.decision == "clear":
            return True
        self.state.rejection_reason = f"rejected by compliance: {decision.reason}"
        return False

    async def _categorize(self, screening: ScreeningSummary) -> None:
        risk = await self._act(
            OnboardingActivities.assess_risk,
            RiskInput(
                trader_id=self.state.trader_id,
                screening_decision=screening.decision,
                screening_score=screening.top_score,
                is_pep=screening.is_pep,
                duplicate_identity=self.state.duplicate_identity,
            ),
        )
        self.state.risk_category = risk.category
        self.state.risk_reasons = risk.reasons
        self.state.effective_account_type = risk.account_type

    async def _open_account(self) -> None:
        assert self.state.risk_category is not None
        await self._set_stage(
            Stage.ACCOUNT_OPENING, f"risk {self.state.risk_category}; opening MT5 account"
        )
        opened = await self._act(
            OnboardingActivities.open_trading_account,
            OpenAccountInput(
                trader_id=self.state.trader_id,
                account_type=self.state.effective_account_type or self.state.account_type,
                risk_category=self.state.risk_category,
            ),
        )
        self.state.login = opened.login

    async def _finish(self, stage: Stage) -> OnboardingResult:
        note = {
            Stage.ACTIVE: f"trading account {self.state.login} opened",
            Stage.REJECTED: self.state.rejection_reason or "rejected",
            Stage.EXPIRED: self.state.rejection_reason or "expired",
        }[stage]
        await self._set_stage(stage, note)
        await self._flush_audit()
        if stage == Stage.ACTIVE:
            await self._notify("welcome", f"Your trading account {self.state.login} is ready.")
        elif stage == Stage.REJECTED:
            await self._notify("rejected", "We are unable to open an account for you.")
        return OnboardingResult(
            trader_id=self.state.trader_id,
            outcome=stage,
            login=self.state.login,
            reason=None if stage == Stage.ACTIVE else note,
        )

    # ---- signals and queries ------------------------------------------------------------

    @workflow.signal
    def document_uploaded(self, doc: DocumentUploaded) -> None:
        if self.state.stage != Stage.DOCUMENTS:
            self._refuse(
                "document_uploaded",
                "trader",
                f"documents are not expected in stage {self.state.stage}",
            )
            return
        self.state.documents.setdefault(doc.kind, []).append(doc.document_id)
        self._progress()

    @workflow.signal
    def kyc_event(self, event: KycEvent) -> None:
        if event.event_key in self._seen_kyc_keys:
            return  # redelivered
        self._seen_kyc_keys.add(event.event_key)
        if self._last_kyc_event_at is not None and event.created_at < self._last_kyc_event_at:
            self._refuse(
                "kyc_event", "provider", f"stale event {event.event_type} ignored (out of order)"
            )
            return
        self._last_kyc_event_at = event.created_at
        self._kyc_events.append(event)
        self._progress()

    @workflow.signal
    def staff_kyc_decision(self, decision: StaffKycDecision) -> None:
        if decision.actor.role not in KYC_STAFF_ROLES:
            self._refuse(
                "staff_kyc_decision",
                decision.actor.id,
                f"role {decision.actor.role} may not decide KYC",
            )
        elif self.state.stage != Stage.KYC_REVIEW:
            self._refuse(
                "staff_kyc_decision",
                decision.actor.id,
                f"no KYC decision is due in stage {self.state.stage}",
            )
        elif decision.decision not in {"approve", "reject", "request_documents"}:
            self._refuse(
                "staff_kyc_decision", decision.actor.id, f"unknown decision {decision.decision}"
            )
        else:
            self._staff_decision = decision
            self._progress()

    @workflow.signal
    def compliance_decision(self, decision: ComplianceDecision) -> None:
        if decision.actor.role not in COMPLIANCE_ROLES:
            self._refuse(
                "compliance_decision",
                decision.actor.id,
                f"role {decision.actor.role} may not clear screening",
            )
        elif self.state.stage != Stage.COMPLIANCE_REVIEW or self._compliance is not None:
            self._refuse(
                "compliance_decision",
                decision.actor.id,
                f"no compliance decision is due in stage {self.state.stage}",
            )
        elif decision.decision not in {"clear", "reject"}:
            self._refuse(
                "compliance_decision", decision.actor.id, f"unknown decision {decision.decision}"
            )
        else:
            self._compliance = decision
            self._progress()

    @workflow.query
    def get_state(self) -> OnboardingState:
        return self.state

    # ---- helpers -----------------------------------------------------------------------

    @property
    def state(self) -> OnboardingState:
        return self._state

    def _documents_complete(self) -> bool:
        return all(self.state.documents.get(kind) for kind in DOCUMENT_KINDS)

    def _progress(self) -> None:
        self._last_progress = workflow.now()

    def _refuse(self, signal: str, actor_id: str, reason: str) -> None:
        refusal = Refusal(at=workflow.now(), signal=signal, actor_id=actor_id, reason=reason)
        self.state.refusals.append(refusal)
        workflow.logger.info("signal refused", extra={"signal": signal, "reason": reason})
        self._pending_audit.append(
            AuditInput(
                workflow_id=workflow.info().workflow_id,
                key=f"{workflow.info().workflow_id}:refusal:{len(self.state.refusals)}",
                action=f"onboarding.signal_refused.{signal}",
                entity_type="trader",
                entity_id=self.state.trader_id,
                after={"actor_id": actor_id, "reason": reason},
            )
        )

    async def _wait_for(
        self, condition: Callable[[], bool], reminder_at: datetime | None = None
    ) -> bool:
        """Waits until `condition` holds (True) or `reminder_at` passes (False).

        Refusals are written to the audit log while waiting; EXPIRE_AFTER without progress
        raises _Expired.
        """
        while True:
            await self._flush_audit()
            if condition():
                return True
            now = workflow.now()
            deadline = self._last_progress + EXPIRE_AFTER
            if now >= deadline:
                raise _Expired()
            if reminder_at is not None and now >= reminder_at:
                return False
            wake = deadline if reminder_at is None else min(deadline, reminder_at)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    self._woken(condition, self._last_progress), timeout=wake - now
                )

    def _woken(self, condition: Callable[[], bool], marker: datetime) -> Callable[[], bool]:
        """Wake for the condition, for refusals to write down, or for any progress."""
        return lambda: condition() or bool(self._pending_audit) or self._last_progress != marker

    async def _flush_audit(self) -> None:
        while self._pending_audit:
            entry = self._pending_audit.pop(0)
            await self._act(OnboardingActivities.record_audit, entry)

    async def _audit_decision(
        self, action: str, actor: StaffActor, decision: str, reason: str
    ) -> None:
        self._seq += 1
        self._pending_audit.append(
            AuditInput(
                workflow_id=workflow.info().workflow_id,
                key=f"{workflow.info().workflow_id}:decision:{self._seq}",
                action=action,
                entity_type="trader",
                entity_id=self.state.trader_id,
                actor=actor,
                after={"decision": decision, "reason": reason},
            )
        )
        await self._flush_audit()

    async def _set_stage(self, stage: Stage, note: str) -> None:
        self._seq += 1
        self.state.stage = stage
        self.state.history.append(StageChange(at=workflow.now(), stage=stage, note=note))
        workflow.upsert_search_attributes([STAGE.value_set(stage.value)])
        await self._act(
            OnboardingActivities.record_stage,
            StageUpdate(
                trader_id=self.state.trader_id,
                workflow_id=workflow.info().workflow_id,
                seq=self._seq,
                stage=stage,
                note=note,
                kyc_status=self.state.kyc_status,
                risk_category=self.state.risk_category,
                risk_reasons=self.state.risk_reasons or None,
                rejection_reason=self.state.rejection_reason,
            ),
        )

    async def _notify(self, kind: str, body: str) -> None:
        await self._act(
            OnboardingActivities.notify_trader,
            NotifyInput(
                trader_id=self.state.trader_id,
                key=f"{workflow.info().workflow_id}:{kind}",
                kind=kind,
                body=body,
            ),
        )

    async def _act(self, method: Callable[[Any, InT], Awaitable[OutT]], arg: InT) -> OutT:
        return await workflow.execute_activity_method(
            method,
            arg,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            # Activities that call platforms heartbeat: a dead worker is noticed in seconds.
            heartbeat_timeout=HEARTBEAT_TIMEOUT if method in HEARTBEATING else None,
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
        )
