"""What goes into and comes out of the ledger service: pydantic models, never ORM rows."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fxcrm.domain.ledger import (
    AccountKind,
    Balances,
    NormalBalance,
    TransferKind,
    TransferPhase,
    TransferState,
)
from fxcrm.domain.money import Money


class AccountSpec(BaseModel):
    """An account to open; opening is idempotent on (brand_id, code)."""

    brand_id: str
    code: str = Field(min_length=1, max_length=200)
    kind: AccountKind
    currency: str
    owner_id: str | None = None


class AccountView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    brand_id: str
    code: str
    kind: AccountKind
    currency: str
    owner_id: str | None
    normal_balance: NormalBalance
    must_not_go_negative: bool
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int

    @property
    def balances(self) -> Balances:
        return Balances(
            self.debits_posted, self.credits_posted, self.debits_pending, self.credits_pending
        )

    @property
    def posted(self) -> Money:
        return Money.from_minor(self.balances.posted(self.normal_balance), self.currency)

    @property
    def available(self) -> Money:
        return Money.from_minor(self.balances.available(self.normal_balance), self.currency)


class TransferRequest(BaseModel):
    """One transfer. `idempotency_key` is chosen by the caller from a business key
    (e.g. `deposit:{payment}`): re-sending the same request returns the first result."""

    idempotency_key: str = Field(min_length=1, max_length=200)
    debit_account_id: str
    credit_account_id: str
    amount: Money
    kind: TransferKind
    pending: bool = False  # reserve now, post or void later
    timeout_at: datetime | None = None  # only for pending transfers
    reference: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class TransferView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    idempotency_key: str
    brand_id: str
    kind: TransferKind
    phase: TransferPhase
    state: TransferState
    debit_account_id: str
    credit_account_id: str
    currency: str
    amount: int  # minor units
    pending_id: str | None
    reversal_of: str | None
    group_id: str | None
    timeout_at: datetime | None
    reference: str | None
    details: dict[str, Any]
    created_at: datetime

    @property
    def money(self) -> Money:
        return Money.from_minor(self.amount, self.currency)


class FxRequest(BaseModel):
    """Convert `amount` from one client account into another in `target_currency`."""

    idempotency_key: str = Field(min_length=1, max_length=190)
    brand_id: str
    from_account_id: str
    to_account_id: str
    amount: Money
    target_currency: str
    rate: Decimal  # mid rate: target units per source unit
    spread: Decimal = Decimal(0)  # fraction of the converted amount the broker keeps
    reference: str | None = None


class FxConversion(BaseModel):
    quote: dict[str, str | int]
    transfers: list[TransferView]


class CurrencyTotals(BaseModel):
    currency: str
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int

    @property
    def balanced(self) -> bool:
        return (
            self.debits_posted == self.credits_posted
            and self.debits_pending == self.credits_pending
        )


class AccountProblem(BaseModel):
    account_id: str
    code: str
    currency: str
    problem: str
    recorded: dict[str, int]
    computed: dict[str, int] | None = None


class MirrorGap(BaseModel):
    """A trading account whose ledger mirror differs from its platform balance (as last synced)."""

    server_id: str
    login: int
    account_id: str
    code: str
    currency: str
    platform_balance: Decimal
    ledger_balance: Decimal
    gap: Decimal  # platform minus ledger
    synced_at: datetime


class PlatformComparison(BaseModel):
    """Every ledger mirror against the balance the platform sync last read for its account."""

    ok: bool
    accounts_compared: int
    mismatched: list[MirrorGap]


class InvariantReport(BaseModel):
    ok: bool  # the ledger's own invariants (the platform comparison has its own `ok`)
    accounts_checked: int
    currencies: list[CurrencyTotals]
    unbalanced_currencies: list[str]
    negative_balances: list[AccountProblem]
    mismatched_balances: list[AccountProblem]
    platform: PlatformComparison | None = None
