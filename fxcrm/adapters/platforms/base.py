"""The one interface fxcrm uses for every trading platform (MT5, MT4, cTrader, Match-Trader, Sirix).

Clients convert units at this boundary: money to Decimal, volume to lots, server time to UTC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel


class PlatformErrorKind(StrEnum):
    """What went wrong, the same for every platform: the API maps these to 4xx answers."""

    NOT_FOUND = "not_found"  # unknown login or account
    UNKNOWN_GROUP = "unknown_group"
    INVALID_LEVERAGE = "invalid_leverage"  # outside the group's limits
    INSUFFICIENT_FUNDS = "insufficient_funds"  # exceeds free margin / balance / credit
    INVALID_REQUEST = "invalid_request"  # other bad parameters (amount, password rules, ...)
    CONFLICT = "conflict"  # already exists
    PERMISSION = "permission"  # the manager/API key lacks the right
    AUTH = "auth"  # credentials refused
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"  # down, timeout, network: retry
    PROTOCOL = "protocol"  # the platform answered something we cannot read
    ERROR = "error"


RETRYABLE_KINDS = {PlatformErrorKind.RATE_LIMITED, PlatformErrorKind.UNAVAILABLE}


class PlatformError(Exception):
    """A platform refused or failed a request. `retryable` says whether trying again may help.

    `code` is the platform's own code (MT5 retcode, HTTP status, ...); `kind` is the common meaning.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        retryable: bool = False,
        kind: PlatformErrorKind = PlatformErrorKind.ERROR,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable or kind in RETRYABLE_KINDS
        self.kind = kind


class BalanceOpKind(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAW = "withdraw"
    CREDIT_IN = "credit_in"
    CREDIT_OUT = "credit_out"
    BONUS = "bonus"


class AccessLevel(StrEnum):
    FULL = "full"
    READ_ONLY = "read_only"
    NO_TRADING = "no_trading"
    DISABLED = "disabled"


class NewAccountSpec(BaseModel):
    group: str
    leverage: int
    first_name: str
    last_name: str
    email: str
    country: str  # ISO 3166-1 alpha-2
    phone: str = ""
    client_id: str  # fxcrm's trader id, stored on the platform account
    main_password: str
    investor_password: str


class PlatformAccountRef(BaseModel):
    login: int
    group: str
    leverage: int


class AccountState(BaseModel):
    login: int
    group: str
    leverage: int
    currency: str
    balance: Decimal
    credit: Decimal
    equity: Decimal
    margin: Decimal
    free_margin: Decimal
    margin_level: Decimal | None
    access: AccessLevel
    client_id: str | None = None


class BalanceOpResult(BaseModel):
    ticket: str
    amount: Decimal
    comment: str
    time: datetime  # UTC


class ClosedDeal(BaseModel):
    deal_id: str
    login: int
    position_id: str
    symbol: str
    side: str  # "buy" | "sell"
    entry: str  # "in" | "out" | "inout" | "out_by"
    volume_lots: Decimal
    price: Decimal
    profit: Decimal
    commission: Decimal
    swap: Decimal
    time: datetime  # UTC
    raw: dict[str, object]
    # When the position opened (UTC), where the platform says; None when unknown (see each client).
    opened_at: datetime | None = None


class PlatformBalanceOp(BaseModel):
    """A money operation as the platform booked it: a deposit, withdrawal, credit, bonus, charge or
    correction, made by fxcrm (its reference in the comment) or by a dealer on the platform."""

    ticket: str  # the platform's id of the operation, unique on the server
    login: int
    kind: str  # "balance" (moves the balance) | "credit" (moves the credit, not the balance)
    amount: Decimal  # signed: negative takes money off the account
    comment: str
    time: datetime  # UTC
    raw: dict[str, object]


BALANCE = "balance"
CREDIT = "credit"


class OpenPosition(BaseModel):
    position_id: str
    login: int
    symbol: str
    side: str  # "buy" | "sell"
    volume_lots: Decimal
    open_price: Decimal
    current_price: Decimal | None
    profit: Decimal  # floating, account currency
    swap: Decimal
    commission: Decimal
    opened_at: datetime  # UTC


# `iter_closed_deals(None, ALL_GROUPS, ...)`: every account on the server (ingestion reads this way).
ALL_GROUPS = "*"


class TradingPlatformGateway(Protocol):
    platform: str
    # The platform takes a position's opening commission off the balance at once and reports it
    # again, pro rata, on the closing record (MT4, cTrader, Sirix): the commission of the open
    # positions is then mirrored apart (`list_open_positions`), and given back as they close.
    # False where opening deals carry it (MT5, Match-Trader's ledger).
    open_commission_reported_on_close: bool

    async def ping(self) -> None: ...

    async def create_account(self, spec: NewAccountSpec) -> PlatformAccountRef: ...

    async def get_account(self, login: int) -> AccountState: ...

    async def find_accounts_by_client(self, client_id: str) -> list[PlatformAccountRef]: ...

    async def balance_op(
        self, login: int, kind: BalanceOpKind, amount: Decimal, ref: str
    ) -> BalanceOpResult: ...

    async def find_balance_op(
        self, login: int, ref: str, since: datetime
    ) -> BalanceOpResult | None: ...

    async def set_group(self, login: int, group: str) -> None: ...

    async def set_leverage(self, login: int, leverage: int) -> None: ...

    async def set_access(self, login: int, access: AccessLevel) -> None: ...

    async def list_groups(self) -> list[str]: ...

    async def list_open_positions(
        self, logins: list[int] | None, group: str | None
    ) -> list[OpenPosition]: ...

    async def list_accounts(self, group: str | None) -> list[AccountState]: ...

    def iter_closed_deals(
        self,
        logins: list[int] | None,
        group: str | None,
        since: datetime,
        until: datetime,
        *,
        openings: bool = False,
    ) -> AsyncIterator[ClosedDeal]:
        """Closing deals in the window; with `openings`, also the deals that open (or add to) a
        position (entry "in"), where the platform books money on them (a commission)."""
        ...

    def iter_balance_ops(
        self, logins: list[int] | None, group: str | None, since: datetime, until: datetime
    ) -> AsyncIterator[PlatformBalanceOp]:
        """Every balance and credit operation booked in the window, fxcrm's and a dealer's."""
        ...

    async def close(self) -> None: ...
