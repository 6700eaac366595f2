"""All ORM tables, imported here so Alembic and create_all see them."""

from fxcrm.models.audit import AuditEvent, AuditHead
from fxcrm.models.base import Base
from fxcrm.models.compliance import Notification, ProviderWebhook, ScreeningRecord
from fxcrm.models.ib import (
    IbAccrual,
    IbAccrualCursor,
    IbAttribution,
    IbParentLink,
    IbPlan,
    IbPlanAssignment,
    IbPlanVersion,
    IbReferralLink,
    IbSettlement,
    IbUnpaidDeal,
)
from fxcrm.models.ib_settlement import IbCpaEvent, IbSettlementPeriod
from fxcrm.models.identity import Brand, IbPartner, StaffBrand, StaffUser
from fxcrm.models.ledger import LedgerAccount, LedgerTransfer
from fxcrm.models.payments import (
    Payment,
    PaymentAlert,
    PaymentApproval,
    ReconciliationBreak,
    ReconciliationRun,
)
from fxcrm.models.platform_sync import (
    AccountMirror,
    IngestedBalanceOp,
    IngestedDeal,
    RiskAlert,
    SyncCursor,
)
from fxcrm.models.traders import KycDocument, PlatformServer, Trader, TradingAccount

__all__ = [
    "AccountMirror",
    "AuditEvent",
    "AuditHead",
    "Base",
    "Brand",
    "IbAccrual",
    "IbAccrualCursor",
    "IbAttribution",
    "IbCpaEvent",
    "IbParentLink",
    "IbPartner",
    "IbPlan",
    "IbPlanAssignment",
    "IbPlanVersion",
    "IbReferralLink",
    "IbSettlement",
    "IbSettlementPeriod",
    "IbUnpaidDeal",
    "IngestedBalanceOp",
    "IngestedDeal",
    "KycDocument",
    "LedgerAccount",
    "LedgerTransfer",
    "Notification",
    "Payment",
    "PaymentAlert",
    "PaymentApproval",
    "PlatformServer",
    "ProviderWebhook",
    "ReconciliationBreak",
    "ReconciliationRun",
    "RiskAlert",
    "ScreeningRecord",
    "StaffBrand",
    "StaffUser",
    "SyncCursor",
    "Trader",
    "TradingAccount",
]
