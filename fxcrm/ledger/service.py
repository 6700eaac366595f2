"""The ledger on the database: open accounts, post transfers, two-phase holds, reversals, FX.

Every function works inside the caller's transaction (so a payment row and its transfer commit
together); `LedgerService` runs each call in its own transaction for activities.

How a write stays exactly-once and correct under concurrency:
- look the idempotency key up first: a replay returns the stored transfer, or IdempotencyConflict
  when the fields differ;
- otherwise, in a SAVEPOINT, lock the accounts (`SELECT .. FOR UPDATE`, in id order so two
  transfers never deadlock; SQLite is already serialized by BEGIN IMMEDIATE), check the rules of
  fxcrm.domain.ledger, update the running balances and insert the transfer;
- if a concurrent writer inserted the same key first, the UNIQUE constraint fails: roll back to
  the savepoint and answer as a replay. The CHECK constraints are a last line behind the rules.

`transfer_many` posts a batch of independent transfers (a month's IB payouts) by the same rules
and idempotency in a few statements instead of a few per transfer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fxcrm.core.db import transaction
from fxcrm.domain import ledger as rules
from fxcrm.domain.ledger import (
    ACCOUNT_RULES,
    AccountState,
    Balances,
    IdempotencyConflict,
    InvalidAmount,
    InvalidTransfer,
    NormalBalance,
    TransferKind,
    TransferPhase,
    TransferState,
)
from fxcrm.domain.money import Money
from fxcrm.ledger.invariants import check_invariants
from fxcrm.ledger.schemas import (
    AccountSpec,
    AccountView,
    FxConversion,
    FxRequest,
    InvariantReport,
    TransferRequest,
    TransferView,
)
from fxcrm.models.base import new_id
from fxcrm.models.ledger import LedgerAccount, LedgerTransfer

# The fields a replay must repeat exactly (the key aside).
_COMPARED = (
    "kind",
    "phase",
    "debit_account_id",
    "credit_account_id",
    "currency",
    "amount",
    "pending_id",
    "reversal_of",
    "group_id",
    "timeout_at",
    "reference",
    "details",
)
_TOTALS = ("debits_posted", "credits_posted", "debits_pending", "credits_pending")
_IN_BATCH = 1000  # ids per IN (...) list


# ---------------------------------------------------------------- accounts


async def open_account(session: AsyncSession, spec: AccountSpec) -> AccountView:
    """Open an account, or return the existing one with the same (brand, code) and attributes."""
    rule = ACCOUNT_RULES[spec.kind]
    currency = rules.check_currency(spec.currency)
    wanted = {
        "kind": spec.kind.value,
        "currency": currency,
        "owner_id": spec.owner_id,
        "normal_balance": rule.normal_balance.value,
        "must_not_go_negative": rule.must_not_go_negative,
    }
    existing = await _account_by_code(session, spec.brand_id, spec.code)
    if existing is None:
        try:
            async with session.begin_nested():
                row = LedgerAccount(brand_id=spec.brand_id, code=spec.code, **wanted)
                _store(row, Balances())
                session.add(row)
                await session.flush()
            return AccountView.model_validate(row)
        except IntegrityError:
            existing = await _account_by_code(session, spec.brand_id, spec.code)
            if existing is None:
                raise
    if any(getattr(existing, name) != value for name, value in wanted.items()):
        raise IdempotencyConflict(f"account {spec.code} exists with other attributes")
    return AccountView.model_validate(existing)


async def get_account(session: AsyncSession, account_id: str) -> AccountView:
    row = await session.get(LedgerAccount, account_id, populate_existing=True)
    if row is None:
        raise rules.UnknownAccount(account_id)
    return AccountView.model_validate(row)


async def account_by_code(session: AsyncSession, brand_id: str, code: str) -> AccountView:
    row = await _account_by_code(session, brand_id, code)
    if row is None:
        raise rules.UnknownAccount(code)
    return AccountView.model_validate(row)


async def _account_by_code(session: AsyncSession, brand_id: str, code: str) -> LedgerAccount | None:
    return await session.scalar(
        select(LedgerAccount)
        .where(LedgerAccount.brand_id == brand_id, LedgerAccount.code == code)
        .execution_options(populate_existing=True)
    )


async def _lock_accounts(session: AsyncSession, ids: Iterable[str]) -> dict[str, LedgerAccount]:
    wanted = sorted(set(ids))
    rows = (
        await session.scalars(
            select(LedgerAccount)
            .where(LedgerAccount.id.in_(wanted))
            .order_by(LedgerAccount.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).all()
    found = {row.id: row for row in rows}
    for account_id in wanted:
        if account_id not in found:
            raise rules.UnknownAccount(account_id)
    return found


def _state(row: LedgerAccount) -> AccountState:
    balances = Balances(
        row.debits_posted, row.credits_posted, row.debits_pending, row.credits_pending
    )
    return AccountState(NormalBalance(row.normal_balance), row.must_not_go_negative, balances)


def _store(row: LedgerAccount, balances: Balances) -> None:
    row.debits_posted = balances.debits_posted
    row.credits_posted = balances.credits_posted
    row.debits_pending = balances.debits_pending
    row.credits_pending = balances.credits_pending


def _change(row: LedgerAccount, new: Balances) -> None:
    rules.check_not_negative(row.code, _state(row), new)
    _store(row, new)


# ---------------------------------------------------------------- idempotent writes


def _minor(amount: Money) -> int:
    try:
        return rules.check_amount(amount.to_minor())
    except ValueError as exc:
        raise InvalidAmount(str(exc)) from exc


def _canonical(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _fields(source: LedgerTransfer | dict[str, Any]) -> dict[str, Any]:
    get = source.get if isinstance(source, dict) else lambda name: getattr(source, name)
    fields = {name: get(name) for name in _COMPARED}
    fields["details"] = _canonical(fields["details"] or {})
    return fields


def _batches(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _IN_BATCH):
        yield items[start : start + _IN_BATCH]


async def _find(session: AsyncSession, keys: list[str]) -> dict[str, LedgerTransfer]:
    found = {}
    for batch in _batches(keys):
        rows = await session.scalars(
            select(LedgerTransfer)
            .where(LedgerTransfer.idempotency_key.in_(batch))
            .execution_options(populate_existing=True)
        )
        found.update({row.idempotency_key: row for row in rows})
    return found


def _replay(found: dict[str, LedgerTransfer], expected: list[dict[str, Any]]) -> list[TransferView]:
    views = []
    for wanted in expected:
        row = found.get(wanted["idempotency_key"])
        if row is None or _fields(row) != _fields(wanted):
            raise IdempotencyConflict(
                f"idempotency key {wanted['idempotency_key']} was used for a different transfer"
            )
        views.append(TransferView.model_validate(row))
    return views


def _keys(expected: list[dict[str, Any]]) -> list[str]:
    return [fields["idempotency_key"] for fields in expected]


async def _idempotent(
    session: AsyncSession,
    expected: list[dict[str, Any]],
    apply: Callable[[], Awaitable[list[LedgerTransfer]]],
) -> list[TransferView]:
    keys = [wanted["idempotency_key"] for wanted in expected]
    found = await _find(session, keys)
    if found:
        return _replay(found, expected)
    try:
        async with session.begin_nested():
            rows = await apply()
            await session.flush()
    except IntegrityError:
        # A concurrent writer won the race for one of the keys: answer as a replay.
        found = await _find(session, keys)
        if not found:
            raise
        return _replay(found, expected)
    return [TransferView.model_validate(row) for row in rows]


def _new_row(fields: dict[str, Any], brand_id: str, state: TransferState) -> LedgerTransfer:
    return LedgerTransfer(brand_id=brand_id, state=state.value, **fields)


# ---------------------------------------------------------------- single and linked transfers


def _expected(request: TransferRequest, group_id: str | None = None) -> dict[str, Any]:
    if request.timeout_at is not None and not request.pending:
        raise InvalidTransfer("only a pending transfer can have a timeout")
    return {
        "idempotency_key": request.idempotency_key,
        "kind": request.kind.value,
        "phase": (TransferPhase.PENDING if request.pending else TransferPhase.SINGLE).value,
        "debit_account_id": request.debit_account_id,
        "credit_account_id": request.credit_account_id,
        "currency": request.amount.currency,
        "amount": _minor(request.amount),
        "pending_id": None,
        "reversal_of": None,
        "group_id": group_id,
        "timeout_at": request.timeout_at.astimezone(UTC) if request.timeout_at else None,
        "reference": request.reference,
        "details": _canonical(request.details),
    }


class _Side(Protocol):
    """What the pair checks read of an account (an ORM row, or a `_Locked` in a batch)."""

    @property
    def id(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def brand_id(self) -> str: ...
    @property
    def currency(self) -> str: ...


def _check_pair(fields: dict[str, Any], debit: _Side, credit: _Side) -> None:
    if debit.id == credit.id:
        raise InvalidTransfer("debit and credit accounts must differ")
    if debit.currency != fields["currency"] or credit.currency != fields["currency"]:
        raise rules.CurrencyMismatch(
            f"{fields['currency']} transfer between {debit.currency} account {debit.code} "
            f"and {credit.currency} account {credit.code}"
        )
    if debit.brand_id != credit.brand_id:
        raise rules.BrandMismatch("a transfer stays within one brand")


def _apply_new(fields: dict[str, Any], accounts: dict[str, LedgerAccount]) -> LedgerTransfer:
    """Check and apply a SINGLE or PENDING transfer on locked accounts; returns the new row."""
    debit, credit = accounts[fields["debit_account_id"]], accounts[fields["credit_account_id"]]
    _check_pair(fields, debit, credit)
    phase, amount = TransferPhase(fields["phase"]), fields["amount"]
    _change(debit, rules.debit(_state(debit).balances, amount, phase))
    _change(credit, rules.credit(_state(credit).balances, amount, phase))
    state = TransferState.PENDING if phase is TransferPhase.PENDING else TransferState.POSTED
    return _new_row(fields, debit.brand_id, state)


async def transfer(session: AsyncSession, request: TransferRequest) -> TransferView:
    """Post one transfer (or reserve it, when `pending`)."""
    return (await transfer_linked(session, [request], group_id=None))[0]


async def transfer_linked(
    session: AsyncSession, requests: list[TransferRequest], group_id: str | None
) -> list[TransferView]:
    """Post several transfers all-or-nothing: if any is refused, none is written."""
    if not requests:
        raise InvalidTransfer("no transfers given")
    expected = [_expected(request, group_id) for request in requests]

    async def apply() -> list[LedgerTransfer]:
        ids = [f[side] for f in expected for side in ("debit_account_id", "credit_account_id")]
        accounts = await _lock_accounts(session, ids)
        rows = [_apply_new(fields, accounts) for fields in expected]
        session.add_all(rows)
        return rows

    return await _idempotent(session, expected, apply)


# ---------------------------------------------------------------- many independent transfers


@dataclass
class _Locked:
    """An account locked for a bulk posting; `balances` moves in memory as transfers apply."""

    id: str
    code: str
    brand_id: str
    currency: str
    normal_balance: NormalBalance
    must_not_go_negative: bool
    before: Balances
    balances: Balances

    def change(self, new: Balances) -> None:
        state = AccountState(self.normal_balance, self.must_not_go_negative, self.balances)
        rules.check_not_negative(self.code, state, new)
        self.balances = new


async def _lock_many(session: AsyncSession, ids: Iterable[str]) -> dict[str, _Locked]:
    """`_lock_accounts` without ORM objects: plain rows, locked in id order (batch after batch
    of the sorted ids, so the order stays global)."""
    wanted = sorted(set(ids))
    found: dict[str, _Locked] = {}
    for batch in _batches(wanted):
        rows = await session.execute(
            select(
                LedgerAccount.id,
                LedgerAccount.code,
                LedgerAccount.brand_id,
                LedgerAccount.currency,
                LedgerAccount.normal_balance,
                LedgerAccount.must_not_go_negative,
                *(getattr(LedgerAccount, name) for name in _TOTALS),
            )
            .where(LedgerAccount.id.in_(batch))
            .order_by(LedgerAccount.id)
            .with_for_update()
        )
        for row in rows:
            balances = Balances(*(getattr(row, name) for name in _TOTALS))
            found[row.id] = _Locked(
                row.id,
                row.code,
                row.brand_id,
                row.currency,
                NormalBalance(row.normal_balance),
                row.must_not_go_negative,
                balances,
                balances,
            )
    for account_id in wanted:
        if account_id not in found:
            raise rules.UnknownAccount(account_id)
    return found


async def _post_many(session: AsyncSession, fresh: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check every transfer in order on the locked balances, then write them all at once."""
    sides = ("debit_account_id", "credit_account_id")
    accounts = await _lock_many(session, [fields[side] for fields in fresh for side in sides])
    now = datetime.now(UTC)
    rows = []
    for fields in fresh:
        debit, credit = accounts[fields["debit_account_id"]], accounts[fields["credit_account_id"]]
        _check_pair(fields, debit, credit)
        phase, amount = TransferPhase(fields["phase"]), fields["amount"]
        debit.change(rules.debit(debit.balances, amount, phase))
        credit.change(rules.credit(credit.balances, amount, phase))
        state = TransferState.PENDING if phase is TransferPhase.PENDING else TransferState.POSTED
        rows.append(
            {
                **fields,
                "id": new_id(),
                "brand_id": debit.brand_id,
                "state": state.value,
                "created_at": now,
            }
        )
    # Core statements: one executemany each, without the ORM's per-row bookkeeping.
    await session.execute(insert(cast(Table, LedgerTransfer.__table__)), rows)
    # One UPDATE per account, by the sum of its changes (the lock makes them exact).
    table = cast(Table, LedgerAccount.__table__)
    changes = [
        {"account": account.id}
        | {
            f"add_{name}": getattr(account.balances, name) - getattr(account.before, name)
            for name in _TOTALS
        }
        for account in sorted(accounts.values(), key=lambda a: a.id)
        if account.balances != account.before
    ]
    await session.execute(
        update(table)
        .where(table.c.id == bindparam("account"))
        .values({name: table.c[name] + bindparam(f"add_{name}") for name in _TOTALS}),
        changes,
    )
    return rows


async def transfer_many(
    session: AsyncSession, requests: list[TransferRequest]
) -> list[TransferView]:
    """Post many independent transfers (a month's payouts) with the rules and idempotency of
    `transfer`, at the cost of a few statements: the accounts locked by one SELECT .. FOR UPDATE
    (id order), the checks in memory in request order, one multi-row INSERT of the transfers
    and one UPDATE per account with its summed change.

    A key already used answers as a replay (the stored transfer, or IdempotencyConflict when the
    fields differ) and the other requests are posted; a key twice in one batch is refused. If
    any new transfer is refused, none is written. Views come back in request order."""
    if not requests:
        raise InvalidTransfer("no transfers given")
    expected = [_expected(request) for request in requests]
    keys = _keys(expected)
    if len(set(keys)) != len(keys):
        raise InvalidTransfer("an idempotency key appears twice in the batch")
    # Concurrent writers may take some of the keys first: each time that happens at least one
    # more key is found stored and answered as a replay, so this ends within len(keys) rounds.
    for _ in range(len(keys) + 1):
        found = await _find(session, keys)
        replays = [fields for fields in expected if fields["idempotency_key"] in found]
        views = dict(zip(_keys(replays), _replay(found, replays), strict=True))
        fresh = [fields for fields in expected if fields["idempotency_key"] not in found]
        if not fresh:
            break
        try:
            async with session.begin_nested():
                posted = await _post_many(session, fresh)
        except IntegrityError:
            if not await _find(session, _keys(fresh)):
                raise  # not a key taken by another writer: a real constraint violation
            continue
        views |= {row["idempotency_key"]: TransferView.model_validate(row) for row in posted}
        break
    return [views[key] for key in keys]


# ---------------------------------------------------------------- two-phase


async def _transfer_row(session: AsyncSession, transfer_id: str, lock: bool) -> LedgerTransfer:
    query = select(LedgerTransfer).where(LedgerTransfer.id == transfer_id)
    if lock:
        query = query.with_for_update()
    row = await session.scalar(query.execution_options(populate_existing=True))
    if row is None:
        raise rules.UnknownTransfer(transfer_id)
    return row


async def _resolve(
    session: AsyncSession,
    pending_id: str,
    idempotency_key: str,
    amount: Money | None,
    void: bool,
    now: datetime | None,
) -> TransferView:
    pending = await _transfer_row(session, pending_id, lock=False)
    if pending.phase != TransferPhase.PENDING:
        raise rules.TransferNotPending(f"transfer {pending_id} is not a pending transfer")
    if amount is not None and amount.currency != pending.currency:
        raise rules.CurrencyMismatch(f"{pending_id} is in {pending.currency}")
    posted = (
        0 if void else rules.check_post_amount(pending.amount, _minor(amount) if amount else None)
    )
    fields = {
        "idempotency_key": idempotency_key,
        "kind": pending.kind,
        "phase": (TransferPhase.VOID if void else TransferPhase.POST).value,
        "debit_account_id": pending.debit_account_id,
        "credit_account_id": pending.credit_account_id,
        "currency": pending.currency,
        # A void row carries the released amount (amounts are always positive).
        "amount": pending.amount if void else posted,
        "pending_id": pending.id,
        "reversal_of": None,
        "group_id": pending.group_id,
        "timeout_at": None,
        "reference": pending.reference,
        "details": {},
    }

    async def apply() -> list[LedgerTransfer]:
        accounts = await _lock_accounts(
            session, [pending.debit_account_id, pending.credit_account_id]
        )
        locked = await _transfer_row(session, pending_id, lock=True)  # accounts first, always
        if locked.state != TransferState.PENDING:
            raise rules.TransferNotPending(f"transfer {pending_id} is already {locked.state}")
        moment = now or datetime.now(UTC)
        if not void and locked.timeout_at is not None and moment >= locked.timeout_at:
            raise rules.PendingExpired(f"transfer {pending_id} expired at {locked.timeout_at}")
        debit, credit = accounts[locked.debit_account_id], accounts[locked.credit_account_id]
        _change(debit, rules.resolve_debit(_state(debit).balances, locked.amount, posted))
        _change(credit, rules.resolve_credit(_state(credit).balances, locked.amount, posted))
        locked.state = (TransferState.VOIDED if void else TransferState.POSTED).value
        final = TransferState.VOIDED if void else TransferState.POSTED
        row = _new_row(fields, locked.brand_id, final)
        session.add(row)
        return [row]

    return (await _idempotent(session, [fields], apply))[0]


async def post_pending(
    session: AsyncSession,
    pending_id: str,
    idempotency_key: str,
    amount: Money | None = None,
    *,
    now: datetime | None = None,
) -> TransferView:
    """Post a pending transfer in full (amount None) or in part; the rest is released."""
    return await _resolve(session, pending_id, idempotency_key, amount, void=False, now=now)


async def void_pending(
    session: AsyncSession, pending_id: str, idempotency_key: str
) -> TransferView:
    """Release a pending transfer entirely."""
    return await _resolve(session, pending_id, idempotency_key, None, void=True, now=None)


async def void_expired(
    session: AsyncSession, now: datetime, limit: int = 100
) -> list[TransferView]:
    """Void pending transfers whose timeout has passed (key `expire:{id}`, so reruns are safe)."""
    ids = (
        await session.scalars(
            select(LedgerTransfer.id)
            .where(
                LedgerTransfer.state == TransferState.PENDING.value,
                LedgerTransfer.timeout_at <= now,
            )
            .order_by(LedgerTransfer.timeout_at)
            .limit(limit)
        )
    ).all()
    return [await void_pending(session, pending_id, f"expire:{pending_id}") for pending_id in ids]


# ---------------------------------------------------------------- corrections


async def reverse(
    session: AsyncSession,
    transfer_id: str,
    idempotency_key: str,
    details: dict[str, Any] | None = None,
) -> TransferView:
    """Undo posted money with the opposite transfer, linked to the original. Only once."""
    original = await _transfer_row(session, transfer_id, lock=False)
    if original.phase not in (TransferPhase.SINGLE, TransferPhase.POST):
        raise rules.NotReversible(f"{transfer_id} moved no posted money: void it instead")
    fields = {
        "idempotency_key": idempotency_key,
        "kind": TransferKind.REVERSAL.value,
        "phase": TransferPhase.SINGLE.value,
        "debit_account_id": original.credit_account_id,
        "credit_account_id": original.debit_account_id,
        "currency": original.currency,
        "amount": original.amount,
        "pending_id": None,
        "reversal_of": original.id,
        "group_id": None,
        "timeout_at": None,
        "reference": original.reference,
        "details": _canonical(details or {}),
    }

    async def apply() -> list[LedgerTransfer]:
        accounts = await _lock_accounts(
            session, [original.debit_account_id, original.credit_account_id]
        )
        await _transfer_row(session, transfer_id, lock=True)  # serializes reversals
        already = await session.scalar(
            select(LedgerTransfer.id).where(LedgerTransfer.reversal_of == transfer_id)
        )
        if already is not None:
            raise rules.NotReversible(f"{transfer_id} is already reversed by {already}")
        row = _apply_new(fields, accounts)
        session.add(row)
        return [row]

    return (await _idempotent(session, [fields], apply))[0]


# ---------------------------------------------------------------- FX


async def _house_account(
    session: AsyncSession, brand_id: str, kind: rules.AccountKind, code: str, currency: str
) -> str:
    spec = AccountSpec(brand_id=brand_id, code=code, kind=kind, currency=currency)
    return (await open_account(session, spec)).id


async def convert_currency(session: AsyncSession, request: FxRequest) -> FxConversion:
    """Convert client money through the FX accounts, as linked transfers (all or nothing):
    from-account → fx:{source} (source amount), fx:{target} → to-account (net amount), and
    fx:{target} → broker:revenue:{target} (the spread, when not zero). See rules.fx_quote."""
    quote = rules.fx_quote(
        _minor(request.amount),
        request.amount.currency,
        request.target_currency,
        request.rate,
        request.spread,
    )
    src, dst, brand = quote.source_currency, quote.target_currency, request.brand_id
    fx_src = await _house_account(session, brand, rules.AccountKind.FX, rules.fx_code(src), src)
    fx_dst = await _house_account(session, brand, rules.AccountKind.FX, rules.fx_code(dst), dst)
    details = {"fx": quote.as_record()}
    key = request.idempotency_key

    def leg(suffix: str, debit: str, credit: str, minor: int, currency: str) -> TransferRequest:
        return TransferRequest(
            idempotency_key=f"{key}:{suffix}",
            debit_account_id=debit,
            credit_account_id=credit,
            amount=Money.from_minor(minor, currency),
            kind=TransferKind.FX,
            reference=request.reference,
            details=details,
        )

    legs = [
        leg("sell", request.from_account_id, fx_src, quote.source_amount, src),
        leg("buy", fx_dst, request.to_account_id, quote.net_amount, dst),
    ]
    if quote.spread_amount > 0:
        revenue = await _house_account(
            session, brand, rules.AccountKind.BROKER_REVENUE, rules.broker_revenue_code(dst), dst
        )
        legs.append(leg("spread", fx_dst, revenue, quote.spread_amount, dst))
    transfers = await transfer_linked(session, legs, group_id=key)
    return FxConversion(quote=quote.as_record(), transfers=transfers)


# ---------------------------------------------------------------- one transaction per call


class LedgerService:
    """The ledger for callers without a transaction of their own (activities, benchmarks)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def open_account(self, spec: AccountSpec) -> AccountView:
        async with transaction(self._sessions) as session:
            return await open_account(session, spec)

    async def get_account(self, account_id: str) -> AccountView:
        async with self._sessions() as session:
            return await get_account(session, account_id)

    async def transfer(self, request: TransferRequest) -> TransferView:
        async with transaction(self._sessions) as session:
            return await transfer(session, request)

    async def transfer_linked(
        self, requests: list[TransferRequest], group_id: str | None
    ) -> list[TransferView]:
        async with transaction(self._sessions) as session:
            return await transfer_linked(session, requests, group_id)

    async def transfer_many(self, requests: list[TransferRequest]) -> list[TransferView]:
        async with transaction(self._sessions) as session:
            return await transfer_many(session, requests)

    async def post_pending(
        self, pending_id: str, idempotency_key: str, amount: Money | None = None
    ) -> TransferView:
        async with transaction(self._sessions) as session:
            return await post_pending(session, pending_id, idempotency_key, amount)

    async def void_pending(self, pending_id: str, idempotency_key: str) -> TransferView:
        async with transaction(self._sessions) as session:
            return await void_pending(session, pending_id, idempotency_key)

    async def reverse(
        self, transfer_id: str, idempotency_key: str, details: dict[str, Any] | None = None
    ) -> TransferView:
        async with transaction(self._sessions) as session:
            return await reverse(session, transfer_id, idempotency_key, details)

    async def convert_currency(self, request: FxRequest) -> FxConversion:
        async with transaction(self._sessions) as session:
            return await convert_currency(session, request)

    async def check_invariants(self) -> InvariantReport:
        async with self._sessions() as session:
            return await check_invariants(session)
