"""Pure withdrawal rules: instrument fingerprints and the refund-to-card-first split of a payout.

No I/O, no secrets of its own: the caller passes the pepper (a secret key) for fingerprints.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from fxcrm.domain.payments import PaymentError

METHODS = ("card", "crypto", "bank_wire", "local")


def normalize_instrument(method: str, instrument: str) -> str:
    """One spelling per instrument, whichever way the client typed it: letters and digits only,
    upper-cased ("4242 4242-..." = "42424242...", "de89 3704..." = "DE893704...")."""
    if method not in METHODS:
        raise PaymentError("unsupported_method", f"unknown method {method!r}")
    normalized = "".join(ch for ch in instrument if ch.isalnum()).upper()
    if not normalized:
        raise PaymentError("invalid_destination", f"an empty {method} instrument")
    return f"v1|{method}|{normalized}"


def instrument_fingerprint(pepper: bytes, method: str, instrument: str) -> str:
    """HMAC-SHA256 (hex, 64 characters) of the normalized instrument. Deposits and withdrawals
    must use this same function (with the same pepper: the settings' secret key), so that a
    withdrawal's destination can be compared with the instruments the client deposited from
    without keeping those in the clear; an HMAC, because a card number is short enough to
    brute-force a plain hash."""
    message = normalize_instrument(method, instrument).encode()
    return hmac.new(pepper, message, hashlib.sha256).hexdigest()


def destination_instrument(method: str, fields: dict[str, str | None]) -> str | None:
    """The one field of a payout destination that names the instrument (as a deposit's
    `instrument` would): the card token, the crypto address, the IBAN, the provider account."""
    key = {
        "card": "card_token",
        "crypto": "crypto_address",
        "bank_wire": "iban",
        "local": "provider_account",
    }.get(method)
    return fields.get(key) if key else None


# ---------------------------------------------------------------- refund to the card first


@dataclass(frozen=True)
class CardDeposit:
    """A card deposit that can still be refunded: `refundable` minor units of the withdrawal's
    currency are left (what arrived, minus earlier refunds)."""

    payment_id: str
    provider_ref: str
    refundable: int
    created_at: datetime


@dataclass(frozen=True)
class RefundPart:
    deposit_id: str
    provider_ref: str
    amount: int  # minor units


@dataclass(frozen=True)
class PayoutSplit:
    refunds: tuple[RefundPart, ...]
    payout: int  # minor units left for the chosen method

    @property
    def refunded(self) -> int:
        return sum(part.amount for part in self.refunds)


def split_payout(amount: int, card_deposits: Sequence[CardDeposit]) -> PayoutSplit:
    """Card deposits are returned to the card they came from before anything goes elsewhere
    (card schemes' and regulators' rule against laundering through a broker): the withdrawal
    refunds the newest card deposits first (the least likely to be past the refund window),
    each up to what is left to refund, and the rest goes by the method the client chose."""
    if amount <= 0:
        raise ValueError("the amount must be positive")
    left = amount
    parts: list[RefundPart] = []
    for deposit in sorted(card_deposits, key=lambda d: (d.created_at, d.payment_id), reverse=True):
        if left == 0:
            break
        take = min(left, deposit.refundable)
        if take <= 0:
            continue
        parts.append(RefundPart(deposit.payment_id, deposit.provider_ref, take))
        left -= take
    return PayoutSplit(refunds=tuple(parts), payout=left)
