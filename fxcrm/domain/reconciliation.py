"""Pure PSP reconciliation: match a provider's settlement lines for one day with the ledger.

No I/O. `fxcrm.activities.reconciliation` loads both sides and stores what `match_day` returns.

Amounts are signed minor units seen from the PSP clearing account (money the provider holds for
us): a deposit is +, a refund, chargeback or payout is -. A settlement line's `gross` already has
that sign; a ledger entry's amount is given the same sign by the loader.

How lines and entries meet: each belongs to a flow (payment, refund, chargeback, payout). A line
names our id (`our_id`) and the provider's reference; an entry knows ours and, except for refunds
(whose provider reference is the refunded payment's, shared by every refund of it), the provider's.
A line links to the entries that share its our_id, or its reference when its our_id is unknown to
the ledger. Linked lines and entries form a group, compared as totals, so a crypto payment booked
in two deltas matches one ledger credit.

Timing: a PSP books by its own clock, the ledger by the time we posted. Entries count for the day
of their posting (UTC). A group with entries but no line that day is not a break when a line of
the day before or after matches within `tolerance` of the entry's time (a payment credited at
23:58 and booked by the PSP at 00:03): the caller passes those neighbouring days' lines as
`nearby`. Any other entry with no line is missing at the PSP.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

DEFAULT_TOLERANCE = timedelta(hours=2)


class BreakKind(StrEnum):
    MISSING_IN_LEDGER = "missing_in_ledger"  # the PSP moved money the ledger does not know
    MISSING_AT_PSP = "missing_at_psp"  # the ledger booked money the PSP never moved
    DUPLICATE = "duplicate"  # one movement booked twice, on either side
    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    PLATFORM_MISMATCH = "platform_mismatch"  # ledger fine, trading-account credit missing


class Flow(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"
    CHARGEBACK = "chargeback"  # a chargeback reversal is a chargeback line with a + gross
    PAYOUT = "payout"


# Settlement line types → flows; "settlement" (the PSP paying us out) and "other" are not matched.
LINE_FLOWS = {
    "payment": Flow.PAYMENT,
    "refund": Flow.REFUND,
    "chargeback": Flow.CHARGEBACK,
    "chargeback_reversal": Flow.CHARGEBACK,
    "payout": Flow.PAYOUT,
}


@dataclass(frozen=True)
class PspLine:
    flow: Flow
    provider_ref: str
    our_id: str | None
    gross: int  # signed minor units
    fee: int  # minor units the PSP kept (negative: a fee given back)
    currency: str
    booked_at: datetime


@dataclass(frozen=True)
class LedgerEntry:
    flow: Flow
    our_id: str  # payment id (payments, chargebacks, payouts) or refund id
    payment_id: str
    provider_ref: str | None
    amount: int  # signed minor units
    currency: str
    at: datetime  # when the ledger booked it
    # A deposit to a trading account: the platform credit (its ledger mirror) must exist too.
    platform_expected: bool = False
    platform_done: bool = False


@dataclass(frozen=True)
class Break:
    kind: BreakKind
    key: str  # unique within a run: re-runs upsert on it
    flow: Flow
    provider_ref: str | None
    payment_id: str | None
    expected: dict[str, object] | None  # ledger side
    actual: dict[str, object] | None  # PSP side


@dataclass(frozen=True)
class FeeDue:
    """The PSP kept `amount` (minor units) on a matched movement: book it as broker expense."""

    key: str
    payment_id: str
    provider_ref: str
    currency: str
    amount: int


@dataclass
class MatchResult:
    lines: int = 0  # lines of the day that take part in matching
    matched: int = 0  # groups whose totals agree
    deferred: int = 0  # entries matched by a neighbouring day within the tolerance
    ignored: int = 0  # settlement and other lines: shown as they are, not matched
    breaks: list[Break] = field(default_factory=list)
    fees: list[FeeDue] = field(default_factory=list)


@dataclass
class _Group:
    lines: list[PspLine] = field(default_factory=list)
    entries: list[LedgerEntry] = field(default_factory=list)


def _day_bounds(day: date, tz_of: datetime) -> tuple[datetime, datetime]:
    start = datetime.combine(day, datetime.min.time(), tzinfo=tz_of.tzinfo)
    return start, start + timedelta(days=1)


def _entry_ids(entry: LedgerEntry) -> list[tuple[Flow, str]]:
    ids = [(entry.flow, f"id:{entry.our_id}")]
    if entry.provider_ref and entry.flow is not Flow.REFUND:
        ids.append((entry.flow, f"ref:{entry.provider_ref}"))
    return ids


def _line_id(line: PspLine, known: set[tuple[Flow, str]]) -> tuple[Flow, str]:
    if line.our_id and (line.flow, f"id:{line.our_id}") in known:
        return (line.flow, f"id:{line.our_id}")
    if (line.flow, f"ref:{line.provider_ref}") in known:
        return (line.flow, f"ref:{line.provider_ref}")
    # Unknown to the ledger: group its lines by our id if it has one, else by reference.
    return (line.flow, f"id:{line.our_id}" if line.our_id else f"ref:{line.provider_ref}")


class _Groups:
    """Union-find over identifiers: an entry joins its ids; a line joins the group of its id."""

    def __init__(self) -> None:
        self._parent: dict[tuple[Flow, str], tuple[Flow, str]] = {}

    def find(self, ident: tuple[Flow, str]) -> tuple[Flow, str]:
        self._parent.setdefault(ident, ident)
        while self._parent[ident] != ident:
            self._parent[ident] = self._parent[self._parent[ident]]
            ident = self._parent[ident]
        return ident

    def union(self, a: tuple[Flow, str], b: tuple[Flow, str]) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)


def _side(items: list[PspLine] | list[LedgerEntry]) -> dict[str, object]:
    amounts: dict[str, int] = defaultdict(int)
    for item in items:
        amounts[item.currency] += item.gross if isinstance(item, PspLine) else item.amount
    if len(amounts) == 1:
        ((currency, amount),) = amounts.items()
        record: dict[str, object] = {"currency": currency, "amount": amount}
    else:
        record = {"amounts": dict(sorted(amounts.items()))}
    record["count"] = len(items)
    times = [item.booked_at if isinstance(item, PspLine) else item.at for item in items]
    record["booked_at" if items and isinstance(items[0], PspLine) else "at"] = [
        moment.isoformat() for moment in times
    ]
    return record


def _ident(group: _Group) -> tuple[str | None, str]:
    """(provider_ref, a readable unique id) of a group, for its break key."""
    ref = next((line.provider_ref for line in group.lines), None) or next(
        (e.provider_ref for e in group.entries if e.provider_ref), None
    )
    our = next((e.our_id for e in group.entries), None) or next(
        (line.our_id for line in group.lines if line.our_id), None
    )
    return ref, our or ref or "?"


def _compare(group: _Group) -> BreakKind | None:
    line_ccy = {line.currency for line in group.lines}
    entry_ccy = {entry.currency for entry in group.entries}
    if line_ccy != entry_ccy:
        return BreakKind.CURRENCY_MISMATCH
    psp = sum(line.gross for line in group.lines)
    ours = sum(entry.amount for entry in group.entries)
    if psp == ours:
        return None
    if len(group.lines) > 1 and any(line.gross == ours for line in group.lines):
        return BreakKind.DUPLICATE  # the PSP booked one movement more than once
    if len(group.entries) > 1 and any(entry.amount == psp for entry in group.entries):
        return BreakKind.DUPLICATE  # we credited one PSP movement twice
    return BreakKind.AMOUNT_MISMATCH


def _near(entry: LedgerEntry, nearby: list[PspLine], tolerance: timedelta) -> bool:
    ids = set(_entry_ids(entry))
    return any(
        ((line.flow, f"id:{line.our_id}") in ids or (line.flow, f"ref:{line.provider_ref}") in ids)
        and abs(line.booked_at - entry.at) <= tolerance
        for line in nearby
    )


def _break(kind: BreakKind, group: _Group) -> Break:
    flow = group.lines[0].flow if group.lines else group.entries[0].flow
    ref, ident = _ident(group)
    return Break(
        kind=kind,
        key=f"{kind.value}:{flow.value}:{ident}",
        flow=flow,
        provider_ref=ref,
        payment_id=next((e.payment_id for e in group.entries), None),
        expected=_side(group.entries) if group.entries else None,
        actual=_side(group.lines) if group.lines else None,
    )


def _fee(group: _Group, day: date, prefix: str) -> FeeDue | None:
    fee = sum(line.fee for line in group.lines)
    currencies = {line.currency for line in group.lines}
    if not fee or not group.entries or len(currencies) != 1:
        return None
    ref, ident = _ident(group)
    return FeeDue(
        key=f"{prefix}:{group.lines[0].flow.value}:{ident}:{day.isoformat()}",
        payment_id=group.entries[0].payment_id,
        provider_ref=ref or ident,
        currency=group.lines[0].currency,
        amount=fee,
    )


def match_day(
    day: date,
    lines: list[PspLine],
    entries: list[LedgerEntry],
    *,
    nearby: list[PspLine] | None = None,
    ignored: int = 0,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    fee_key_prefix: str = "psp-fee",
) -> MatchResult:
    """Compare one day's settlement lines with ledger entries (those posted that day, and any
    other the lines refer to). Deterministic: the same input gives the same breaks and keys."""
    result = MatchResult(lines=len(lines), ignored=ignored)
    groups = _Groups()
    known: set[tuple[Flow, str]] = set()
    for entry in entries:
        ids = _entry_ids(entry)
        known.update(ids)
        for ident in ids[1:]:
            groups.union(ids[0], ident)
    by_root: dict[tuple[Flow, str], _Group] = defaultdict(_Group)
    for entry in entries:
        by_root[groups.find(_entry_ids(entry)[0])].entries.append(entry)
    for line in lines:
        by_root[groups.find(_line_id(line, known))].lines.append(line)

    for _, group in sorted(by_root.items()):
        if not group.lines:
            # Only entries posted on this day are this run's business; each is checked once.
            start, end = _day_bounds(day, group.entries[0].at)
            own = [e for e in group.entries if start <= e.at < end]
            if not own:
                continue
            if all(_near(e, nearby or [], tolerance) for e in own):
                result.deferred += 1
                continue
            result.breaks.append(_break(BreakKind.MISSING_AT_PSP, _Group(entries=own)))
            continue
        if not group.entries:
            result.breaks.append(_break(BreakKind.MISSING_IN_LEDGER, group))
            continue
        kind = _compare(group)
        if kind is not None:
            result.breaks.append(_break(kind, group))
        else:
            result.matched += 1
        if any(e.platform_expected and not e.platform_done for e in group.entries):
            result.breaks.append(_break(BreakKind.PLATFORM_MISMATCH, group))
        fee = _fee(group, day, fee_key_prefix)
        if fee is not None:
            result.fees.append(fee)
    return result


# ---------------------------------------------------------------- resolving a break


class Resolution(StrEnum):
    POST_CORRECTION = "post_correction"  # move the difference: the client's wallet or suspense
    WRITE_OFF = "write_off"  # the broker absorbs it: expense or revenue
    NO_ACTION = "no_action"  # explained, nothing to post (timing, a platform fix elsewhere)


class Counterparty(StrEnum):
    WALLET = "wallet"  # the client is owed
    SUSPENSE = "suspense"  # parked until finance knows whose it is
    EXPENSE = "expense"
    REVENUE = "revenue"


@dataclass(frozen=True)
class CorrectionLeg:
    """Move `amount` (minor units, > 0) between PSP clearing and `counterparty`: into clearing
    (debit clearing) when the PSP holds more than the ledger says, out of it otherwise."""

    currency: str
    amount: int
    into_clearing: bool
    counterparty: Counterparty


class CorrectionError(ValueError):
    pass


def side_amounts(side: dict[str, object] | None) -> dict[str, int]:
    """The signed amounts per currency of a break's expected or actual side."""
    if not side:
        return {}
    if "amounts" in side:
        return {str(k): int(v) for k, v in dict(side["amounts"]).items()}  # type: ignore[call-overload]
    return {str(side["currency"]): int(side["amount"])}  # type: ignore[call-overload]


def correction_legs(
    kind: BreakKind,
    flow: Flow,
    expected: dict[str, object] | None,
    actual: dict[str, object] | None,
    action: Resolution,
    amount: int | None = None,
    client_known: bool = False,
) -> list[CorrectionLeg]:
    """What a resolution posts so that PSP clearing equals what the PSP holds.

    The difference per currency is actual (PSP) - expected (ledger), from clearing's side. A
    deposit the PSP received but the ledger under-credited is owed to the client (wallet, when the
    client is known); anything else goes to suspense, or to expense/revenue for a write-off.
    `amount` overrides the size of a single-currency difference (finance's judgement)."""
    if action is Resolution.NO_ACTION:
        return []
    if kind is BreakKind.PLATFORM_MISMATCH:
        raise CorrectionError(
            "a platform mismatch is fixed on the trading account (dealing), not in PSP clearing"
        )
    ours, theirs = side_amounts(expected), side_amounts(actual)
    deltas = {
        ccy: theirs.get(ccy, 0) - ours.get(ccy, 0)
        for ccy in sorted(set(ours) | set(theirs))
        if theirs.get(ccy, 0) != ours.get(ccy, 0)
    }
    if amount is not None:
        if len(deltas) != 1:
            raise CorrectionError("an amount can only be given for a single-currency difference")
        if amount <= 0:
            raise CorrectionError("amount must be positive")
        ((ccy, delta),) = deltas.items()
        deltas = {ccy: amount if delta > 0 else -amount}
    if not deltas:
        raise CorrectionError("nothing to correct: use no_action")
    owed = (
        client_known
        and flow is Flow.PAYMENT
        and kind in (BreakKind.MISSING_IN_LEDGER, BreakKind.AMOUNT_MISMATCH)
    )
    legs = []
    for ccy, delta in deltas.items():
        into = delta > 0
        if action is Resolution.WRITE_OFF:
            party = Counterparty.REVENUE if into else Counterparty.EXPENSE
        else:
            party = Counterparty.WALLET if into and owed else Counterparty.SUSPENSE
        legs.append(CorrectionLeg(ccy, abs(delta), into, party))
    return legs
