"""Balance operations that are safe to retry on every platform.

Only cTrader has an idempotency key (externalId); elsewhere the reference rides in the comment.
So: look for an operation with our reference first, post only if there is none, and read it back
afterwards. A retried activity that crashed after the platform did the work finds it and stops.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from fxcrm.adapters.platforms.base import (
    BalanceOpKind,
    BalanceOpResult,
    PlatformError,
    PlatformErrorKind,
    TradingPlatformGateway,
)

# MT4/MT5 keep 31 characters of a comment: references are made to fit.
MAX_REF = 31


async def safe_balance_op(
    gateway: TradingPlatformGateway,
    login: int,
    kind: BalanceOpKind,
    amount: Decimal,
    ref: str,
    *,
    since: datetime,
) -> tuple[BalanceOpResult, bool]:
    """Returns (the operation, whether this call posted it)."""
    if len(ref) > MAX_REF:
        raise ValueError(f"reference {ref!r} is longer than {MAX_REF} characters")
    if amount <= 0:
        raise PlatformError("amount must be positive", kind=PlatformErrorKind.INVALID_REQUEST)
    existing = await gateway.find_balance_op(login, ref, since)
    if existing is not None:
        return existing, False
    posted = await gateway.balance_op(login, kind, amount, ref)
    found = await gateway.find_balance_op(login, ref, since - timedelta(minutes=1))
    if found is None:
        # Posted but not visible: say so loudly; a retry will look again before posting.
        raise PlatformError(
            f"balance operation {posted.ticket} ({ref}) is not visible after posting",
            kind=PlatformErrorKind.UNAVAILABLE,
        )
    return found, True
