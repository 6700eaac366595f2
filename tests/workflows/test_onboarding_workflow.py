"""OnboardingWorkflow with fake activities, on the time-skipping test server (3-day and 30-day timers)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from fxcrm.core.temporal import register_search_attributes
from fxcrm.workflows.onboarding import OnboardingWorkflow
from fxcrm.workflows.onboarding_types import (
    AccountOpened,
    ApplicantRef,
    AuditInput,
    ComplianceDecision,
    ComplianceReviewInput,
    DocumentUploaded,
    DuplicateIdentityOut,
    KycEvent,
    KycStatusOut,
    NotifyInput,
    OnboardingInput,
    OnboardingResult,
    OnboardingState,
    OpenAccountInput,
    RiskInput,
    RiskOutput,
    ScreeningSummary,
    ScreenInput,
    StaffActor,
    StaffKycDecision,
    Stage,
    StageUpdate,
    SubmitDocumentsInput,
    TraderRef,
)
from tests.conftest import temporal_test_server
from tests.workflows.histories import record


class FakeActivities:
    """Stands in for OnboardingActivities: same activity names, scripted answers, recorded calls."""

    def __init__(self) -> None:
        self.kyc_statuses: list[str] = ["APPROVED"]
        self.screening = "clear"
        self.duplicate = False
        self.calls: list[str] = []
        self.notifications: list[str] = []
        self.audits: list[AuditInput] = []
        self.stages: list[Stage] = []
        self.accounts_opened = 0

    def activities(self) -> list[object]:
        @activity.defn(name="open_kyc_applicant")
        async def open_kyc_applicant(ref: TraderRef) -> ApplicantRef:
            self.calls.append("open_kyc_applicant")
            return ApplicantRef(applicant_id="app-1")

        @activity.defn(name="submit_kyc_documents")
        async def submit_kyc_documents(inp: SubmitDocumentsInput) -> None:
            self.calls.append(f"submit:{len(inp.document_ids)}")

        @activity.defn(name="fetch_kyc_status")
        async def fetch_kyc_status(ref: TraderRef) -> KycStatusOut:
            status = (
                self.kyc_statuses.pop(0) if len(self.kyc_statuses) > 1 else self.kyc_statuses[0]
            )
            return KycStatusOut(
                status=status, reasons=["UNSATISFACTORY_PHOTOS"], moderation_comment="blurry"
            )

        @activity.defn(name="check_duplicate_identity")
        async def check_duplicate_identity(ref: TraderRef) -> DuplicateIdentityOut:
            return DuplicateIdentityOut(
                duplicate=self.duplicate, other_trader_ids=["t-other"] if self.duplicate else []
            )

        @activity.defn(name="screen_trader")
        async def screen_trader(inp: ScreenInput) -> ScreeningSummary:
            score = {"clear": 0.2, "possible": 0.8, "strong": 0.97}[self.screening]
            return ScreeningSummary(
                record_id="scr-1",
                decision=self.screening,
                top_score=score,
                is_pep=False,
                match_count=0 if self.screening == "clear" else 1,
            )

        @activity.defn(name="record_compliance_review")
        async def record_compliance_review(inp: ComplianceReviewInput) -> None:
            self.calls.append(f"compliance:{inp.decision}:{inp.actor.id}")

        @activity.defn(name="assess_risk")
        async def assess_risk(inp: RiskInput) -> RiskOutput:
            return RiskOutput(
                category="high" if inp.screening_decision == "possible" else "low",
                reasons=["test"],
                account_type="retail",
            )

        @activity.defn(name="open_trading_account")
        async def open_trading_account(inp: OpenAccountInput) -> AccountOpened:
            self.accounts_opened += 1
            return AccountOpened(
                login=500001, server_id="mt5-demo", group="real\\retail\\std", leverage=30
            )

        @activity.defn(name="record_stage")
        async def record_stage(update: StageUpdate) -> None:
            self.stages.append(update.stage)

        @activity.defn(name="notify_trader")
        async def notify_trader(inp: NotifyInput) -> None:
            self.notifications.append(inp.kind)

        @activity.defn(name="record_audit")
        async def record_audit(inp: AuditInput) -> None:
            self.audits.append(inp)

        return [
            open_kyc_applicant,
            submit_kyc_documents,
            fetch_kyc_status,
            check_duplicate_identity,
            screen_trader,
            record_compliance_review,
            assess_risk,
            open_trading_account,
            record_stage,
            notify_trader,
            record_audit,
        ]


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=temporal_test_server()
    ) as environment:
        await register_search_attributes(environment.client)
        yield environment


async def _start(
    env: WorkflowEnvironment, fake: FakeActivities
) -> tuple[Worker, WorkflowHandle[OnboardingWorkflow, OnboardingResult]]:
    queue = f"onboarding-{uuid.uuid4()}"
    worker = Worker(
        env.client, task_queue=queue, workflows=[OnboardingWorkflow], activities=fake.activities()
    )
    handle = await env.client.start_workflow(
        OnboardingWorkflow.run,
        OnboardingInput(trader_id="t-1", brand_id="b-1", account_type="retail"),
        id=f"onboarding-{uuid.uuid4()}",
        task_queue=queue,
    )
    return worker, handle


ONBOARDING = StaffActor(id="staff-onb", role="onboarding")
COMPLIANCE = StaffActor(id="staff-cmp", role="compliance")


def _kyc(status: str, key: str, minutes: int = 0) -> KycEvent:
    return KycEvent(
        event_key=key,
        event_type="applicantReviewed",
        status=status,
        created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes),
    )


async def _upload_both(handle: WorkflowHandle[OnboardingWorkflow, OnboardingResult]) -> None:
    await handle.signal(
        OnboardingWorkflow.document_uploaded, DocumentUploaded(document_id="d1", kind="identity")
    )
    await handle.signal(
        OnboardingWorkflow.document_uploaded, DocumentUploaded(document_id="d2", kind="address")
    )


async def _wait_stage(
    handle: WorkflowHandle[OnboardingWorkflow, OnboardingResult], stage: Stage
) -> OnboardingState:
    for _ in range(200):
        state = await handle.query(OnboardingWorkflow.get_state)
        if state.stage == stage:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {stage}; at {state.stage}")


async def test_clean_trader_becomes_active_with_one_account(env: WorkflowEnvironment) -> None:
    fake = FakeActivities()
    worker, handle = await _start(env, fake)
    async with worker:
        await _upload_both(handle)
        await _wait_stage(handle, Stage.KYC_REVIEW)
        await handle.signal(OnboardingWorkflow.kyc_event, _kyc("APPROVED", "e1"))
        await handle.signal(OnboardingWorkflow.kyc_event, _kyc("APPROVED", "e1"))  # redelivery
        result = await handle.result()
        await record(handle, "onboarding_active")
    assert result.outcome == Stage.ACTIVE
    assert result.login == 500001
    assert fake.accounts_opened == 1
    assert fake.stages == [
        Stage.DOCUMENTS,
        Stage.KYC_REVIEW,
        Stage.SCREENING,
        Stage.ACCOUNT_OPENING,
        Stage.ACTIVE,
    ]
    assert "welcome" in fake.notifications


async def test_reminder_after_three_days_then_expiry_after_thirty(env: WorkflowEnvironment) -> None:
    fake = FakeActivities()
    worker, handle = await _start(env, fake)
    async with worker:
        result = await handle.result()  # time skips: nobody uploads anything
        state = await handle.query(OnboardingWorkflow.get_state)
        await record(handle, "onboarding_expired")
    assert result.outcome == Stage.EXPIRED
    assert fake.notifications.count("docs-reminder-0") == 1
    assert state.reminders_sent == 1
    # Expired 30 days after the last progress (the start), not earlier.
    started, ended = state.history[0].at, state.history[-1].at
    assert timedelta(days=30) <= ended - started < timedelta(days=30, hours=1)
    assert fake.accounts_opened == 0


async def test_upload_resets_the_expiry_clock(env: WorkflowEnvironment) -> None:
    fake = FakeActivities()
    worker, handle = await _start(env, fake)
    async with worker:
        await env.sleep(timedelta(days=20))
        await handle.signal(
            OnboardingWorkflow.document_uploaded,
            DocumentUploaded(document_id="d1", kind="identity"),
        )
        await env.sleep(timedelta(days=20))  # 40 days since start, 20 since progress
        state = await handle.query(OnboardingWorkflow.get_state)
        assert state.stage == Stage.DOCUMENTS
        result = await handle.result()
    assert result.outcome == Stage.EXPIRED


async def test_possible_match_waits_for_compliance_and_refuses_wrong_role(
    env: WorkflowEnvironment,
) -> None:
    fake = FakeActivities()
    fake.screening = "possible"
    worker, handle = await _start(env, fake)
    async with worker:
        await _upload_both(handle)
        await _wait_stage(handle, Stage.KYC_REVIEW)
        await handle.signal(OnboardingWorkflow.kyc_event, _kyc("APPROVED", "e1"))
        await _wait_stage(handle, Stage.COMPLIANCE_REVIEW)
        # An onboarding officer may not clear a sanctions hit: refused and recorded.
        await handle.signal(
            OnboardingWorkflow.compliance_decision,
            ComplianceDecision(actor=ONBOARDING, decision="clear", reason="looks fine"),
        )
        state = await handle.query(OnboardingWorkflow.get_state)
        assert state.stage == Stage.COMPLIANCE_REVIEW
        assert state.refusals and state.refusals[-1].signal == "compliance_decision"
        await handle.signal(
            OnboardingWorkflow.compliance_decision,
            ComplianceDecision(
                actor=COMPLIANCE, decision="clear", reason="different DOB and country"
            ),
        )
        result = await handle.result()
        await record(handle, "onboarding_compliance_cleared")
    assert result.outcome == Stage.ACTIVE
    assert "compliance:clear:staff-cmp" in fake.calls
    assert any(a.action == "onboarding.signal_refused.compliance_decision" for a in fake.audits)


async def test_strong_match_rejects_without_account(env: WorkflowEnvironment) -> None:
    fake = FakeActivities()
    fake.screening = "strong"
    worker, handle = await _start(env, fake)
    async with worker:
        await _upload_both(handle)
        await _wait_stage(handle, Stage.KYC_REVIEW)
        await handle.signal(OnboardingWorkflow.kyc_event, _kyc("APPROVED", "e1"))
        result = await handle.result()
    assert result.outcome == Stage.REJECTED
    assert result.reason and "strong sanctions match" in result.reason
    assert fake.accounts_opened == 0


async def test_resubmission_goes_back_to_documents(env: WorkflowEnvironment) -> None:
    fake = FakeActivities()
    fake.kyc_statuses = ["RESUBMISSION_REQUESTED", "APPROVED"]
    worker, handle = await _start(env, fake)
    async with worker:
        await _upload_both(handle)
        await _wait_stage(handle, Stage.KYC_REVIEW)
        await handle.signal(OnboardingWorkflow.kyc_event, _kyc("RESUBMISSION_REQUESTED", "e1"))
        state = await _wait_stage(handle, Stage.DOCUMENTS)
        assert state.manual_review_reason == "blurry"
        assert state.documents == {}
        await _upload_both(handle)
        await _wait_stage(handle, Stage.KYC_REVIEW)
        await handle.signal(OnboardingWorkflow.kyc_event, _kyc("APPROVED", "e2", minutes=5))
        result = await handle.result()
    assert result.outcome == Stage.ACTIVE
    assert "kyc-resubmit" in fake.notifications
    assert fake.calls.count("submit:2") == 2


async def test_final_rejection_by_provider(env: WorkflowEnvironment) -> None:
    fake = FakeActivities()
    fake.kyc_statuses = ["REJECTED_FINAL"]
    worker, handle = await _start(env, fake)
    async with worker:
        await _upload_both(handle)
        await _wait_stage(handle, Stage.KYC_REVIEW)
        await handle.signal(OnboardingWorkflow.kyc_event, _kyc("REJECTED_FINAL", "e1"))
        result = await handle.result()
    assert result.outcome == Stage.REJECTED
    assert fake.accounts_opened == 0


async def test_staff_decisions_checked_for_stage_and_role(env: WorkflowEnvironment) -> None:
    fake = FakeActivities()
    fake.kyc_statuses = ["MANUAL_REVIEW"]
    worker, handle = await _start(env, fake)
    async with worker:
        # Too early: nothing to decide while documents are missing.
        await handle.signal(
            OnboardingWorkflow.staff_kyc_decision,
            StaffKycDecision(actor=ONBOARDING, decision="approve", reason="early"),
        )
        await _upload_both(handle)
        await _wait_stage(handle, Stage.KYC_REVIEW)
        await handle.signal(OnboardingWorkflow.kyc_event, _kyc("MANUAL_REVIEW", "e1"))
        # A dealer may not decide KYC.
        await handle.signal(
            OnboardingWorkflow.staff_kyc_decision,
            StaffKycDecision(
                actor=StaffActor(id="d", role="dealer"), decision="approve", reason="x" * 5
            ),
        )
        state = await handle.query(OnboardingWorkflow.get_state)
        assert state.stage == Stage.KYC_REVIEW
        assert [r.signal for r in state.refusals] == ["staff_kyc_decision", "staff_kyc_decision"]
        await handle.signal(
            OnboardingWorkflow.staff_kyc_decision,
            StaffKycDecision(actor=ONBOARDING, decision="reject", reason="document forged"),
        )
        result = await handle.result()
    assert result.outcome == Stage.REJECTED
    assert result.reason and "document forged" in result.reason
    assert any(a.action == "onboarding.kyc_decision" and a.actor == ONBOARDING for a in fake.audits)


async def test_duplicate_identity_needs_staff_even_when_provider_approves(
    env: WorkflowEnvironment,
) -> None:
    fake = FakeActivities()
    fake.duplicate = True
    worker, handle = await _start(env, fake)
    async with worker:
        await _upload_both(handle)
        await _wait_stage(handle, Stage.KYC_REVIEW)
        await handle.signal(OnboardingWorkflow.kyc_event, _kyc("APPROVED", "e1"))
        state = await handle.query(OnboardingWorkflow.get_state)
        assert state.duplicate_identity and state.stage == Stage.KYC_REVIEW
        await handle.signal(
            OnboardingWorkflow.staff_kyc_decision,
            StaffKycDecision(
                actor=ONBOARDING, decision="approve", reason="same person, re-registered"
            ),
        )
        result = await handle.result()
    assert result.outcome == Stage.ACTIVE


async def test_stale_out_of_order_event_is_ignored(env: WorkflowEnvironment) -> None:
    fake = FakeActivities()
    fake.kyc_statuses = ["SUBMITTED", "APPROVED"]
    worker, handle = await _start(env, fake)
    async with worker:
        await _upload_both(handle)
        await _wait_stage(handle, Stage.KYC_REVIEW)
        await handle.signal(OnboardingWorkflow.kyc_event, _kyc("SUBMITTED", "late", minutes=10))
        await handle.signal(OnboardingWorkflow.kyc_event, _kyc("SUBMITTED", "older", minutes=1))
        state = await handle.query(OnboardingWorkflow.get_state)
        assert any("out of order" in r.reason for r in state.refusals)
        await handle.signal(OnboardingWorkflow.kyc_event, _kyc("APPROVED", "final", minutes=20))
        result = await handle.result()
    assert result.outcome == Stage.ACTIVE
