"""Composition root of the worker: settings, logging, client, adapters, activities, one Worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from fxcrm.activities.chargebacks import ChargebackActivities
from fxcrm.activities.deposits import DepositActivities
from fxcrm.activities.ib_accrual import IbAccrualActivities
from fxcrm.activities.ib_settlement import IbSettlementActivities
from fxcrm.activities.money import MoneyActivities
from fxcrm.activities.onboarding import OnboardingActivities
from fxcrm.activities.platform_sync import PlatformSyncActivities
from fxcrm.activities.reconciliation import ReconciliationActivities
from fxcrm.activities.screening import ScreeningService
from fxcrm.activities.trading_pnl import TradingPnlActivities
from fxcrm.activities.transfers import TransferActivities
from fxcrm.activities.withdrawals import WithdrawalActivities
from fxcrm.adapters.kyc.base import KycProvider
from fxcrm.adapters.platforms.base import TradingPlatformGateway
from fxcrm.adapters.platforms.factory import build_gateway
from fxcrm.adapters.platforms.registry import GatewayFactory, PlatformRegistry
from fxcrm.adapters.psp.registry import PspRegistry, build_psps
from fxcrm.core import temporal
from fxcrm.core.config import Settings
from fxcrm.core.db import create_engine, session_factory
from fxcrm.core.fields import configure_field_cipher
from fxcrm.core.log_context import LogContextInterceptor
from fxcrm.core.logging import configure_logging
from fxcrm.models import PlatformServer
from fxcrm.workflows.account_change import AccountChangeWorkflow
from fxcrm.workflows.chargeback import ChargebackWorkflow, RefundWorkflow
from fxcrm.workflows.deposit import DepositWorkflow
from fxcrm.workflows.ib_accrual import IbAccrualWorkflow
from fxcrm.workflows.ib_settlement import IbSettlementWorkflow, ScheduledIbSettlementWorkflow
from fxcrm.workflows.onboarding import OnboardingWorkflow
from fxcrm.workflows.platform_sync import PlatformSyncWorkflow
from fxcrm.workflows.reconciliation import (
    ReconciliationWorkflow,
    ScheduledReconciliationWorkflow,
)
from fxcrm.workflows.transfer import TransferWorkflow
from fxcrm.workflows.withdrawal import WithdrawalWorkflow

log = structlog.get_logger(__name__)


def platform_factory(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> GatewayFactory:
    """Builds the gateway of a platform server from its row; secrets come from settings."""

    async def build(server_id: str) -> TradingPlatformGateway:
        async with sessions() as session:
            server = await session.get(PlatformServer, server_id)
        if server is None:
            raise LookupError(f"unknown platform server {server_id}")
        return build_gateway(server.platform, server.base_url, server.config, settings)

    return build


def build_kyc(settings: Settings) -> KycProvider:
    from fxcrm.adapters.kyc.sumsub import SumsubClient

    return SumsubClient(
        base_url=settings.kyc_base_url,
        app_token=settings.kyc_app_token,
        secret_key=settings.kyc_secret_key,
        webhook_secret=settings.kyc_webhook_secret,
    )


def build_worker(
    client: Client,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    kyc: KycProvider,
    platforms: PlatformRegistry,
    screening: ScreeningService,
    *,
    psps: PspRegistry | None = None,
) -> Worker:
    """`psps`: the payment providers (built from settings when not given; the caller closes
    the ones it passes)."""
    psps = psps or build_psps(settings)
    onboarding = OnboardingActivities(sessions, kyc, platforms, screening, settings.kyc_level)
    sync = PlatformSyncActivities(sessions, platforms)
    pnl = TradingPnlActivities(sessions)
    ib_accrual = IbAccrualActivities(sessions)
    money = MoneyActivities(platforms)
    withdrawals = WithdrawalActivities(sessions, platforms, psps)
    deposits = DepositActivities(sessions, psps)
    reconciliation = ReconciliationActivities(sessions, psps)
    chargebacks = ChargebackActivities(sessions, psps)
    transfers = TransferActivities(sessions)
    ib_settlement = IbSettlementActivities(sessions)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[
            OnboardingWorkflow,
            PlatformSyncWorkflow,
            IbAccrualWorkflow,
            AccountChangeWorkflow,
            ReconciliationWorkflow,
            ScheduledReconciliationWorkflow,
            ChargebackWorkflow,
            RefundWorkflow,
            WithdrawalWorkflow,
            DepositWorkflow,
            TransferWorkflow,
            IbSettlementWorkflow,
            ScheduledIbSettlementWorkflow,
        ],
        interceptors=[LogContextInterceptor()],
        activities=[
            onboarding.open_kyc_applicant,
            onboarding.submit_kyc_documents,
            onboarding.fetch_kyc_status,
            onboarding.check_duplicate_identity,
            onboarding.screen_trader,
            onboarding.record_compliance_review,
            onboarding.assess_risk,
            onboarding.open_trading_account,
            onboarding.record_stage,
            onboarding.notify_trader,
            onboarding.record_audit,
            sync.ingest_deals,
            sync.sync_accounts,
            sync.change_account,
            pnl.post_trading_pnl,
            ib_accrual.accrue_deals,
            money.move_platform_balance,
            money.find_platform_balance,
            reconciliation.fetch_settlement_report,
            reconciliation.reconcile_day,
            chargebacks.assess_reversal,
            chargebacks.book_reversal,
            chargebacks.hold_refund,
            chargebacks.request_psp_refund,
            chargebacks.settle_refund,
            withdrawals.check_account_funds,
            withdrawals.move_account_to_wallet,
            withdrawals.hold_funds,
            withdrawals.set_status,
            withdrawals.record_audit,
            withdrawals.escalate,
            withdrawals.alert_payout_stuck,
            withdrawals.plan_payout,
            withdrawals.refund_to_card,
            withdrawals.create_payout,
            withdrawals.payout_status,
            withdrawals.release_hold,
            withdrawals.keep_in_wallet,
            deposits.create_psp_payment,
            deposits.fetch_psp_payment,
            deposits.credit_deposit,
            deposits.complete_account_deposit,
            deposits.mark_credit_failed,
            deposits.finish_unpaid,
            transfers.hold_transfer,
            transfers.settle_transfer,
            ib_settlement.close_ib_period,
            ib_settlement.settle_ib_period,
        ],
    )


def sanctions_paths(settings: Settings) -> list[Path]:
    return [Path(p) for p in settings.sanctions_paths.split(",") if p.strip()]


async def run_worker(settings: Settings) -> None:
    configure_logging(settings.log_json)
    configure_field_cipher(settings.field_encryption_keys)
    client = await temporal.connect(settings)
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    kyc = build_kyc(settings)
    platforms = PlatformRegistry(platform_factory(sessions, settings))
    psps = build_psps(settings)
    screening = ScreeningService.from_paths(sanctions_paths(settings))
    await screening.screener()  # load the lists before taking work
    worker = build_worker(client, settings, sessions, kyc, platforms, screening, psps=psps)
    log.info("worker started", task_queue=settings.task_queue)
    try:
        await worker.run()
    finally:
        await platforms.close()
        await psps.close()
        await kyc.close()
        await engine.dispose()


def main() -> None:
    from fxcrm.core.config import get_settings

    asyncio.run(run_worker(get_settings()))
