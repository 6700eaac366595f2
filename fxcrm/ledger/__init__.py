"""The double-entry ledger on the database (rules in fxcrm.domain.ledger)."""

from fxcrm.ledger.invariants import check_invariants, compare_platform_mirrors
from fxcrm.ledger.schemas import (
    AccountSpec,
    AccountView,
    FxConversion,
    FxRequest,
    InvariantReport,
    TransferRequest,
    TransferView,
)
from fxcrm.ledger.service import (
    LedgerService,
    account_by_code,
    convert_currency,
    get_account,
    open_account,
    post_pending,
    reverse,
    transfer,
    transfer_linked,
    transfer_many,
    void_expired,
    void_pending,
)

__all__ = [
    "AccountSpec",
    "AccountView",
    "FxConversion",
    "FxRequest",
    "InvariantReport",
    "LedgerService",
    "TransferRequest",
    "TransferView",
    "account_by_code",
    "check_invariants",
    "compare_platform_mirrors",
    "convert_currency",
    "get_account",
    "open_account",
    "post_pending",
    "reverse",
    "transfer",
    "transfer_linked",
    "transfer_many",
    "void_expired",
    "void_pending",
]
