"""All ORM tables, imported here so Alembic and create_all see them."""

from fxcrm.models.audit import AuditEvent, AuditHead
from fxcrm.models.base import Base
from fxcrm.models.compliance import Notification, ProviderWebhook, ScreeningRecord
from fxcrm.models.identity import Brand, IbPartner, StaffBrand, StaffUser
from fxcrm.models.traders import KycDocument, PlatformServer, Trader, TradingAccount

__all__ = [
    "AuditEvent",
    "AuditHead",
    "Base",
    "Brand",
    "IbPartner",
    "KycDocument",
    "Notification",
    "PlatformServer",
    "ProviderWebhook",
    "ScreeningRecord",
    "StaffBrand",
    "StaffUser",
    "Trader",
    "TradingAccount",
]
