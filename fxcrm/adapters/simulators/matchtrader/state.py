"""The simulated Match-Trader backend: accounts, trading accounts, money, positions, ledgers.

Every public method takes the lock, so tests and the market engine may call it from another
thread while the app serves requests. Refusals raise `MtrError` (HTTP status + code).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from fxcrm.adapters.simulators.market.contract import SimAccountInfo, SimFill
from fxcrm.adapters.simulators.matchtrader.config import (
    MatchTraderSimConfig,
    MtrSimGateway,
    MtrSimOffer,
)
from fxcrm.adapters.simulators.matchtrader.records import (
    ACCESS_VALUES,
    FINAL_FAILED_STATUSES,
    PENDING_STATUSES,
    MtrError,
    SimAccount,
    SimClosedPosition,
    SimLedger,
    SimManualOp,
    SimPosition,
    SimTradingAccount,
    from_plain,
    money,
    rfc3339,
    to_plain,
)
from fxcrm.adapters.simulators.persistence import ThrottledSave

CENT = Decimal("0.01")


def _round(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _to_ms(moment: datetime) -> datetime:
    """UTC, cut to the millisecond the wire carries: what is stored is what is read back."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _new_uuid() -> str:
    return str(uuid.uuid4())


class MatchTraderSimState(ThrottledSave):
    """One Match-Trader trading system behind the Broker API; also a `SimulatedPlatform`."""

    platform = "matchtrader"

    def __init__(
        self,
        config: MatchTraderSimConfig | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.config = config or MatchTraderSimConfig()
        self.clock = clock
        self.lock = threading.RLock()
        self.accounts: dict[str, SimAccount] = {}
        self.trading_accounts: dict[int, SimTradingAccount] = {}
        self.manual_ops: dict[str, SimManualOp] = {}
        self.ledgers: list[SimLedger] = []
        self.positions: dict[tuple[int, str], SimPosition] = {}
        self.closed_positions: list[SimClosedPosition] = []
        self._next_login = self.config.first_login
        self._next_deal = 1
        if self.config.state_file and self.config.state_file.exists():
            self._load(self.config.state_file)

    def now(self) -> datetime:
        return _to_ms(self.clock())

    # --- configuration lookups ---------------------------------------------------------------

    def offers(self) -> list[MtrSimOffer]:
        return list(self.config.offers)

    def offer(self, offer_uuid: str) -> MtrSimOffer:
        found = next((o for o in self.config.offers if o.uuid == offer_uuid), None)
        if found is None:
            raise MtrError(404, "OFFER_NOT_FOUND", f"offer {offer_uuid} not found")
        return found

    def gateway(self, gateway_uuid: str) -> MtrSimGateway:
        found = next((g for g in self.config.gateways if g.uuid == gateway_uuid), None)
        if found is None:
            raise MtrError(404, "PAYMENT_GATEWAY_NOT_FOUND", f"gateway {gateway_uuid} not found")
        return found

    def check_system(self, system_uuid: str | None) -> None:
        if system_uuid is not None and system_uuid != self.config.system_uuid:
            raise MtrError(404, "SYSTEM_NOT_FOUND", f"system {system_uuid} not found")

    def contract_size(self, symbol: str) -> Decimal:
        found = next((s for s in self.config.symbols if s.name == symbol), None)
        return found.contract_size if found else Decimal(100_000)

    # --- accounts ------------------------------------------------------------------------------

    def account(self, account_uuid: str) -> SimAccount:
        with self.lock:
            found = self.accounts.get(account_uuid)
            if found is None:
                raise MtrError(404, "ACCOUNT_NOT_FOUND", f"account {account_uuid} not found")
            return found

    def account_by_email(self, email: str) -> SimAccount:
        with self.lock:
            wanted = email.strip().lower()
            found = next((a for a in self.accounts.values() if a.email.lower() == wanted), None)
            if found is None:
                raise MtrError(404, "ACCOUNT_NOT_FOUND", f"no account for {email}")
            return found

    def search_accounts(self, query: str | None) -> list[SimAccount]:
        """Accounts whose email, uuid, names or external id contain `query` (all when empty)."""
        with self.lock:
            rows = sorted(self.accounts.values(), key=lambda a: a.created)
            if not query:
                return rows
            needle = query.lower()
            return [a for a in rows if needle in _account_text(a)]

    def create_account(
        self,
        *,
        email: str,
        password: str,
        offer_uuid: str,
        personal: dict[str, str] | None = None,
        external_id: str | None = None,
    ) -> tuple[SimAccount, SimTradingAccount]:
        with self.lock:
            if not email or "@" not in email:
                raise MtrError(400, "INVALID_EMAIL", "a valid email is required")
            if not password or len(password) < 6:
                raise MtrError(400, "INVALID_PASSWORD", "password too short")
            offer = self.offer(offer_uuid)
            if any(a.email.lower() == email.lower() for a in self.accounts.values()):
                raise MtrError(409, "ACCOUNT_ALREADY_EXISTS", f"account {email} already exists")
            account = SimAccount(
                uuid=_new_uuid(),
                email=email,
                password=password,
                created=self.now(),
                personal=dict(personal or {}),
                external_id=external_id or None,
            )
            self.accounts[account.uuid] = account
            trading = self._open_trading_account(account, offer)
            self.save()
            return account, trading

    def add_trading_account(self, account_uuid: str, offer_uuid: str) -> SimTradingAccount:
        with self.lock:
            account = self.account(account_uuid)
            trading = self._open_trading_account(account, self.offer(offer_uuid))
            self.save()
            return trading

    def _open_trading_account(self, account: SimAccount, offer: MtrSimOffer) -> SimTradingAccount:
        login = self._next_login
        self._next_login += 1
        trading = SimTradingAccount(
            login=login,
            uuid=_new_uuid(),
            account_uuid=account.uuid,
            offer_uuid=offer.uuid,
            group=offer.group_name,
            currency=offer.currency,
            leverage=offer.leverage,
            created=self.now(),
        )
        self.trading_accounts[login] = trading
        return trading

    def trading_account(self, login: int, account_uuid: str | None = None) -> SimTradingAccount:
        with self.lock:
            found = self.trading_accounts.get(login)
            if found is None or (account_uuid is not None and found.account_uuid != account_uuid):
                raise MtrError(404, "TRADING_ACCOUNT_NOT_FOUND", f"login {login} not found")
            return found

    def trading_accounts_of(self, account_uuid: str) -> list[SimTradingAccount]:
        with self.lock:
            self.account(account_uuid)
            return [t for t in self._sorted_trading() if t.account_uuid == account_uuid]

    def search_trading_accounts(self, query: str | None) -> list[SimTradingAccount]:
        with self.lock:
            rows = self._sorted_trading()
            if not query:
                return rows
            needle = query.lower()
            return [
                t
                for t in rows
                if needle == str(t.login) or needle in _account_text(self.accounts[t.account_uuid])
            ]

    def _sorted_trading(self) -> list[SimTradingAccount]:
        return [self.trading_accounts[login] for login in sorted(self.trading_accounts)]

    def update_trading_account(
        self, account_uuid: str, login: int, *, access: str | None, group: str | None
    ) -> SimTradingAccount:
        """PUT: access and/or group; a group change moves the account to that group's offer."""
        with self.lock:
            trading = self.trading_account(login, account_uuid)
            if access is not None and access not in ACCESS_VALUES:
                raise MtrError(400, "INVALID_ACCESS", f"access must be one of {ACCESS_VALUES}")
            if group is not None and group != trading.group:
                offer = self._offer_for_group(group, trading.currency)
                if trading.leverage > offer.max_leverage:
                    raise MtrError(
                        400,
                        "INVALID_LEVERAGE",
                        f"leverage {trading.leverage} above {offer.max_leverage} of {group}",
                    )
                trading.group, trading.offer_uuid = offer.group_name, offer.uuid
            if access is not None:
                trading.access = access
            self.save()
            return trading

    def _offer_for_group(self, group: str, currency: str) -> MtrSimOffer:
        candidates = [o for o in self.config.offers if o.group_name == group]
        if not candidates:
            raise MtrError(400, "GROUP_NOT_FOUND", f"group {group} not found")
        same_currency = [o for o in candidates if o.currency == currency]
        if not same_currency:
            raise MtrError(400, "CURRENCY_MISMATCH", f"group {group} is not in {currency}")
        return same_currency[0]

    def change_leverage(self, account_uuid: str, login: int, leverage: int) -> SimTradingAccount:
        with self.lock:
            trading = self.trading_account(login, account_uuid)
            offer = self.offer(trading.offer_uuid)
            if not 1 <= leverage <= offer.max_leverage:
                raise MtrError(
                    400,
                    "INVALID_LEVERAGE",
                    f"leverage {leverage} outside 1..{offer.max_leverage} of the offer",
                )
            trading.leverage = leverage
            self.save()
            return trading

    # --- money ---------------------------------------------------------------------------------

    def create_manual(
        self,
        kind: str,
        *,
        login: int,
        gateway_uuid: str,
        amount: Decimal,
        comment: str,
    ) -> SimManualOp:
        """A manual deposit or withdrawal: NEW now, booked (DONE) after `settle_seconds`."""
        with self.lock:
            trading = self.trading_account(login)
            gateway = self.gateway(gateway_uuid)
            if gateway.currency != trading.currency:
                raise MtrError(
                    400,
                    "CURRENCY_MISMATCH",
                    f"gateway currency {gateway.currency} differs from account {trading.currency}",
                )
            amount = self._check_amount(amount)
            if kind == "WITHDRAWAL":
                self._check_withdrawable(trading, amount)
            op = SimManualOp(
                uuid=_new_uuid(),
                kind=kind,
                login=login,
                gateway_uuid=gateway_uuid,
                amount=amount,
                comment=comment,
                created=self.now(),
            )
            self.manual_ops[op.uuid] = op
            self.settle()
            self.save()
            return op

    def settle(self) -> None:
        """Move pending manual operations along their lifecycle (called on every request)."""
        with self.lock:
            now = self.now()
            due = timedelta(seconds=self.config.settle_seconds)
            changed = False
            for op in self.manual_ops.values():
                if op.status not in PENDING_STATUSES:
                    continue
                age = now - op.created
                if age >= due:
                    self._book(op)
                    changed = True
                elif age >= due / 2 and op.status == "NEW":
                    op.status, op.updated = "PROCESSING", now
                    changed = True
            if changed:
                self.save()

    def _book(self, op: SimManualOp) -> None:
        trading = self.trading_accounts[op.login]
        if op.kind == "WITHDRAWAL":
            try:
                self._check_withdrawable(trading, op.amount)
            except MtrError:
                op.status, op.updated = "FAILED", self.now()
                return
            trading.balance -= op.amount
            self._ledger(op.login, "WITHDRAWAL", -op.amount, op.comment, ledger_uuid=op.uuid)
        else:
            trading.balance += op.amount
            self._ledger(op.login, "DEPOSIT", op.amount, op.comment, ledger_uuid=op.uuid)
        op.status, op.updated = "DONE", self.now()

    def set_manual_status(self, op_uuid: str, status: str) -> SimManualOp:
        """Back-office decision on a pending operation (tests): REJECTED, FAILED, CANCELLED..."""
        with self.lock:
            op = self.manual_ops.get(op_uuid)
            if op is None:
                raise MtrError(404, "OPERATION_NOT_FOUND", op_uuid)
            if op.status not in PENDING_STATUSES:
                raise MtrError(409, "OPERATION_FINAL", f"operation is {op.status}")
            if status == "DONE":
                self._book(op)
            elif status in FINAL_FAILED_STATUSES or status in PENDING_STATUSES:
                op.status, op.updated = status, self.now()
            else:
                raise MtrError(400, "INVALID_STATUS", status)
            self.save()
            return op

    def manual_list(
        self, kind: str, start: datetime | None, end: datetime | None, query: str | None
    ) -> list[SimManualOp]:
        with self.lock:
            self.settle()
            rows = [
                op
                for op in self.manual_ops.values()
                if op.kind == kind
                and (start is None or op.created >= start)
                and (end is None or op.created <= end)
                and (not query or query in (op.uuid, str(op.login), op.comment))
            ]
            return sorted(rows, key=lambda op: op.created)

    def credit(self, kind: str, *, login: int, amount: Decimal, comment: str) -> SimLedger:
        """CREDIT_IN / CREDIT_OUT: immediate, one ledger entry."""
        with self.lock:
            trading = self.trading_account(login)
            amount = self._check_amount(amount)
            if kind == "CREDIT_OUT":
                if amount > trading.credit:
                    raise MtrError(400, "INSUFFICIENT_CREDIT", "credit out exceeds the credit")
                if amount > self.finance(trading)["free_margin"]:
                    raise MtrError(400, "INSUFFICIENT_FUNDS", "credit out exceeds free margin")
                trading.credit -= amount
                entry = self._ledger(login, "CREDIT_OUT", -amount, comment)
            else:
                trading.credit += amount
                entry = self._ledger(login, "CREDIT_IN", amount, comment)
            self.save()
            return entry

    def _check_amount(self, amount: Decimal) -> Decimal:
        if not amount.is_finite() or amount <= 0:
            raise MtrError(400, "INVALID_AMOUNT", "amount must be positive")
        if amount > self.config.max_operation_amount:
            raise MtrError(400, "AMOUNT_TOO_HIGH", "amount above the operation limit")
        return _round(amount)

    def _check_withdrawable(self, trading: SimTradingAccount, amount: Decimal) -> None:
        finance = self.finance(trading)
        if amount > trading.balance or amount > finance["free_margin"]:
            raise MtrError(
                400,
                "INSUFFICIENT_FUNDS",
                f"withdrawal {amount} exceeds free margin {finance['free_margin']}",
            )

    def _ledger(
        self,
        login: int,
        kind: str,
        amount: Decimal,
        comment: str,
        *,
        ledger_uuid: str | None = None,
        time: datetime | None = None,
    ) -> SimLedger:
        entry = SimLedger(
            uuid=ledger_uuid or _new_uuid(),
            login=login,
            type=kind,
            amount=_round(amount),
            comment=comment,
            time=time or self.now(),
        )
        self.ledgers.append(entry)
        return entry

    def ledger_list(
        self,
        *,
        types: Iterable[str] | None,
        logins: Iterable[int] | None,
        start: datetime | None,
        end: datetime | None,
        limit: int,
    ) -> list[SimLedger]:
        """Oldest first within [start, end], at most `limit` (the caller pages on `from`)."""
        with self.lock:
            self.settle()
            wanted_types = set(types) if types else None
            wanted_logins = set(logins) if logins else None
            rows = [
                e
                for e in self.ledgers
                if (wanted_types is None or e.type in wanted_types)
                and (wanted_logins is None or e.login in wanted_logins)
                and (start is None or e.time >= start)
                and (end is None or e.time <= end)
            ]
            rows.sort(key=lambda e: e.time)  # stable: same instant keeps booking order
            return rows[:limit]

    # --- reads ---------------------------------------------------------------------------------

    def finance(self, trading: SimTradingAccount) -> dict[str, Decimal]:
        """equity = balance + credit + floating; margin from open positions (quote = account ccy)."""
        with self.lock:
            positions = [p for p in self.positions.values() if p.login == trading.login]
            floating = sum((p.profit + p.swap for p in positions), Decimal(0))
            margin = sum((self._margin(p, trading) for p in positions), Decimal(0))
            equity = trading.balance + trading.credit + floating
            return {
                "balance": _round(trading.balance),
                "credit": _round(trading.credit),
                "equity": _round(equity),
                "margin": _round(margin),
                "free_margin": _round(equity - margin),
                "profit": _round(floating),
                "margin_level": _round(equity / margin * 100) if margin else Decimal(0),
            }

    @staticmethod
    def _margin(position: SimPosition, trading: SimTradingAccount) -> Decimal:
        price = position.current_price or position.open_price
        return position.volume * position.contract_size * price / max(trading.leverage, 1)

    def in_scope(self, login: int, logins: set[int] | None, groups: set[str] | None) -> bool:
        """Filter of the trading-data endpoints: logins and groups (either matching; none: all)."""
        if not logins and not groups:
            return True
        trading = self.trading_accounts.get(login)
        return bool(
            (logins and login in logins) or (groups and trading and trading.group in groups)
        )

    def open_position_list(
        self, logins: Iterable[int] | None, groups: Iterable[str] | None
    ) -> list[SimPosition]:
        with self.lock:
            wanted_logins, wanted_groups = set(logins or ()), set(groups or ())
            rows = [
                p
                for p in self.positions.values()
                if self.in_scope(p.login, wanted_logins, wanted_groups)
            ]
            return sorted(rows, key=lambda p: p.open_time)

    def closed_position_list(
        self,
        *,
        logins: Iterable[int] | None,
        groups: Iterable[str] | None,
        start: datetime | None,
        end: datetime | None,
        limit: int,
    ) -> list[SimClosedPosition]:
        """Oldest close first within [start, end], at most `limit`."""
        with self.lock:
            wanted_logins, wanted_groups = set(logins or ()), set(groups or ())
            rows = [
                c
                for c in self.closed_positions
                if self.in_scope(c.login, wanted_logins, wanted_groups)
                and (start is None or c.close_time >= start)
                and (end is None or c.close_time <= end)
            ]
            rows.sort(key=lambda c: c.close_time)  # stable: booking order
            return rows[:limit]

    # --- SimulatedPlatform ---------------------------------------------------------------------

    def sim_accounts(self) -> list[SimAccountInfo]:
        with self.lock:
            return [
                SimAccountInfo(
                    login=t.login,
                    currency=t.currency,
                    balance=t.balance,
                    leverage=t.leverage,
                    hedging=True,  # Match-Trader accounts hedge: several positions per symbol
                )
                for t in self._sorted_trading()
                if t.access == "FULL"
            ]

    def sim_apply_fill(self, fill: SimFill) -> str:
        """Open, add to, reduce or close a position; exits leave a closed-position row and ledger
        entries, and profit + commission + swap land on the balance."""
        with self.lock:
            trading = self.trading_account(fill.login)
            key = (fill.login, str(fill.position_id))
            time = _to_ms(fill.time)
            deal_id = str(self._next_deal)
            self._next_deal += 1
            position = self.positions.get(key)
            if fill.entry == "in" or (position is None and fill.entry == "inout"):
                self._enter(key, fill, time, position)
            else:
                if position is None:
                    raise MtrError(404, "POSITION_NOT_FOUND", f"position {fill.position_id}")
                closing = min(fill.lots, position.volume)
                self._exit(deal_id, position, fill, closing, time)
                rest = fill.lots - closing
                if fill.entry == "inout" and rest > 0:  # a reversal: the remainder opens anew
                    reversed_fill = SimFill(
                        login=fill.login,
                        position_id=fill.position_id,
                        symbol=fill.symbol,
                        side=fill.side,
                        entry="in",
                        lots=rest,
                        price=fill.price,
                        time=fill.time,
                        contract_size=fill.contract_size,
                    )
                    self._enter(key, reversed_fill, time, self.positions.get(key))
            trading.balance += _round(fill.profit + fill.commission + fill.swap)
            self.save_now_and_then()
            return deal_id

    def _enter(
        self,
        key: tuple[int, str],
        fill: SimFill,
        time: datetime,
        position: SimPosition | None,
    ) -> None:
        if position is None:
            self.positions[key] = SimPosition(
                id=key[1],
                login=fill.login,
                symbol=fill.symbol,
                side=fill.side.upper(),
                volume=fill.lots,
                open_price=fill.price,
                open_time=time,
                contract_size=fill.contract_size,
                current_price=fill.price,
                commission=_round(fill.commission),
            )
        else:  # adding to a position: volume-weighted open price
            total = position.volume + fill.lots
            position.open_price = (
                position.open_price * position.volume + fill.price * fill.lots
            ) / total
            position.volume = total
            position.commission += _round(fill.commission)
        if fill.commission:
            self._ledger(fill.login, "COMMISSION", fill.commission, f"#{key[1]}", time=time)

    def _exit(
        self,
        deal_id: str,
        position: SimPosition,
        fill: SimFill,
        lots: Decimal,
        time: datetime,
    ) -> None:
        self.closed_positions.append(
            SimClosedPosition(
                id=deal_id,
                position_id=position.id,
                login=position.login,
                symbol=position.symbol,
                side=position.side,
                volume=lots,
                open_price=position.open_price,
                close_price=fill.price,
                open_time=position.open_time,
                close_time=time,
                profit=_round(fill.profit),
                commission=_round(fill.commission),
                swap=_round(fill.swap),
                reason=fill.reason.upper(),
            )
        )
        for kind, amount in (
            ("CLOSED_POSITION", fill.profit),
            ("COMMISSION", fill.commission),
            ("SWAP", fill.swap),
        ):
            if amount:
                self._ledger(position.login, kind, amount, f"#{position.id}", time=time)
        position.volume -= lots
        if position.volume <= 0:
            del self.positions[(position.login, position.id)]
        else:
            position.profit = self._floating(position, position.current_price)

    def sim_mark_prices(self, prices: dict[str, Decimal]) -> None:
        with self.lock:
            for position in self.positions.values():
                price = prices.get(position.symbol)
                if price is not None:
                    position.current_price = price
                    position.profit = self._floating(position, price)

    @staticmethod
    def _floating(position: SimPosition, price: Decimal | None) -> Decimal:
        if price is None:
            return Decimal(0)
        direction = 1 if position.side == "BUY" else -1
        return _round(
            (price - position.open_price) * position.volume * position.contract_size * direction
        )

    # --- wire forms ----------------------------------------------------------------------------

    def offer_wire(self, offer: MtrSimOffer) -> dict[str, Any]:
        return {
            "offerUuid": offer.uuid,
            "name": offer.name,
            "partnerId": 0,
            "groupName": offer.group_name,
            "systemUuid": offer.system_uuid,
            "currency": offer.currency,
            "leverage": offer.leverage,
            "maxLeverage": offer.max_leverage,
            "accountType": offer.account_type,
            "branchUuid": "default",
            "operationUuid": "default",
        }

    def account_wire(self, account: SimAccount) -> dict[str, Any]:
        return {
            "uuid": account.uuid,
            "email": account.email,
            "created": rfc3339(account.created),
            "externalId": account.external_id,
            "personalDetails": dict(account.personal),
            "tradingAccounts": [
                self.trading_account_wire(t) for t in self.trading_accounts_of(account.uuid)
            ],
        }

    def trading_account_wire(self, trading: SimTradingAccount) -> dict[str, Any]:
        finance = self.finance(trading)
        offer = self.offer(trading.offer_uuid)
        return {
            "uuid": trading.uuid,
            "login": trading.login,
            "accountUuid": trading.account_uuid,
            "email": self.accounts[trading.account_uuid].email,
            "created": rfc3339(trading.created),
            "accountInfo": {
                "group": trading.group,
                "leverage": trading.leverage,
                "access": trading.access,
                "accountType": offer.account_type,
                "offerUuid": trading.offer_uuid,
                "systemUuid": offer.system_uuid,
            },
            "financeInfo": {
                "balance": money(finance["balance"]),
                "credit": money(finance["credit"]),
                "equity": money(finance["equity"]),
                "margin": money(finance["margin"]),
                "freeMargin": money(finance["free_margin"]),
                "marginLevel": money(finance["margin_level"]),
                "profit": money(finance["profit"]),
                "currency": trading.currency,
            },
        }

    @staticmethod
    def manual_wire(op: SimManualOp) -> dict[str, Any]:
        return {
            "uuid": op.uuid,
            "login": op.login,
            "paymentGatewayUuid": op.gateway_uuid,
            "amount": money(op.amount),
            "comment": op.comment,
            "status": op.status,
            "created": rfc3339(op.created),
            "updated": rfc3339(op.updated or op.created),
        }

    @staticmethod
    def ledger_wire(entry: SimLedger) -> dict[str, Any]:
        return {
            "uuid": entry.uuid,
            "login": entry.login,
            "type": entry.type,
            "amount": money(entry.amount),
            "comment": entry.comment,
            "time": rfc3339(entry.time),
        }

    @staticmethod
    def position_wire(position: SimPosition) -> dict[str, Any]:
        return {
            "id": position.id,
            "login": position.login,
            "symbol": position.symbol,
            "side": position.side,
            "volume": money(position.volume),
            "openPrice": money(position.open_price),
            "currentPrice": money(position.current_price) if position.current_price else None,
            "profit": money(position.profit),
            "commission": money(position.commission),
            "swap": money(position.swap),
            "openTime": rfc3339(position.open_time),
        }

    @staticmethod
    def closed_position_wire(row: SimClosedPosition) -> dict[str, Any]:
        return {
            "id": row.id,
            "positionId": row.position_id,
            "login": row.login,
            "symbol": row.symbol,
            "side": row.side,
            "volume": money(row.volume),
            "openPrice": money(row.open_price),
            "closePrice": money(row.close_price),
            "openTime": rfc3339(row.open_time),
            "closeTime": rfc3339(row.close_time),
            "profit": money(row.profit),
            "commission": money(row.commission),
            "swap": money(row.swap),
            "reason": row.reason,
        }

    # --- persistence ---------------------------------------------------------------------------

    def save(self) -> None:
        path = self.config.state_file
        if path is None:
            return
        with self.lock:
            snapshot = {
                "accounts": [to_plain(a) for a in self.accounts.values()],
                "trading_accounts": [to_plain(t) for t in self.trading_accounts.values()],
                "manual_ops": [to_plain(o) for o in self.manual_ops.values()],
                "ledgers": [to_plain(e) for e in self.ledgers],
                "positions": [to_plain(p) for p in self.positions.values()],
                "closed_positions": [to_plain(c) for c in self.closed_positions],
                "next_login": self._next_login,
                "next_deal": self._next_deal,
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(snapshot, indent=1))
            os.replace(tmp, path)

    def _load(self, path: Path) -> None:
        data = json.loads(path.read_text())
        accounts = [from_plain(SimAccount, a) for a in data.get("accounts", [])]
        self.accounts = {a.uuid: a for a in accounts}
        trading = [from_plain(SimTradingAccount, t) for t in data.get("trading_accounts", [])]
        self.trading_accounts = {t.login: t for t in trading}
        ops = [from_plain(SimManualOp, o) for o in data.get("manual_ops", [])]
        self.manual_ops = {o.uuid: o for o in ops}
        self.ledgers = [from_plain(SimLedger, e) for e in data.get("ledgers", [])]
        positions = [from_plain(SimPosition, p) for p in data.get("positions", [])]
        self.positions = {(p.login, p.id): p for p in positions}
        self.closed_positions = [
            from_plain(SimClosedPosition, c) for c in data.get("closed_positions", [])
        ]
        self._next_login = data.get("next_login", self._next_login)
        self._next_deal = data.get("next_deal", self._next_deal)


def _account_text(account: SimAccount) -> str:
    parts = [account.email, account.uuid, account.external_id or "", *account.personal.values()]
    return " ".join(parts).lower()
