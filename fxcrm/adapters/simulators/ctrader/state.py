"""The simulated cTrader server: managers' tokens, traders, money, positions and reports."""

from __future__ import annotations

import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from fxcrm.adapters.platforms.ctrader import hash_password
from fxcrm.adapters.simulators.ctrader.config import (
    CTraderSimConfig,
    CTraderSimGroup,
    CTraderSimManager,
    CTraderSimSymbol,
)
from fxcrm.adapters.simulators.ctrader.records import (
    CTraderError,
    SimBalanceChange,
    SimClosedRow,
    SimOpenPosition,
    SimTrader,
    from_plain,
    to_plain,
)
from fxcrm.adapters.simulators.market.contract import SimAccountInfo, SimFill
from fxcrm.adapters.simulators.persistence import ThrottledSave

ACCESS_RIGHTS = ("FULL_ACCESS", "CLOSE_ONLY", "NO_TRADING", "NO_LOGIN")
ACCOUNT_TYPES = ("HEDGED", "NETTED", "SPREAD_BETTING")
MARGIN_CALCULATIONS = ("MAX", "SUM", "NET")
BALANCE_TYPES = (
    "DEPOSIT",
    "WITHDRAW",
    "DEPOSIT_NONWITHDRAWABLE_BONUS",
    "WITHDRAW_NONWITHDRAWABLE_BONUS",
)


class CTraderSimState(ThrottledSave):
    """The simulated server. Public methods take the lock: tests may call them from another
    thread while the app serves requests."""

    platform = "ctrader"

    def __init__(
        self, config: CTraderSimConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config or CTraderSimConfig()
        self.clock = clock
        self.lock = threading.RLock()
        self.tokens: dict[str, tuple[int, float]] = {}  # token -> (manager login, expiry)
        self.traders: dict[int, SimTrader] = {}
        self.balance_history: dict[int, SimBalanceChange] = {}
        self.positions: dict[int, SimOpenPosition] = {}
        self.closed: dict[int, SimClosedRow] = {}
        self.prices: dict[str, Decimal] = {}
        self._next_login = self.config.first_login
        self._next_history = 5_000_001
        self._next_deal = 9_000_001
        if self.config.state_file and self.config.state_file.exists():
            self._load(self.config.state_file)

    # time and lookups

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def manager(self, login: int) -> CTraderSimManager | None:
        return next((m for m in self.config.managers if m.login == login), None)

    def group(self, name: str) -> CTraderSimGroup:
        found = next((g for g in self.config.groups if g.name.lower() == name.lower()), None)
        if found is None:
            raise CTraderError(400, "GROUP_NOT_FOUND", f"trader group {name!r} does not exist")
        return found

    def group_by_id(self, group_id: int) -> CTraderSimGroup:
        found = next((g for g in self.config.groups if g.id == group_id), None)
        if found is None:
            raise CTraderError(400, "GROUP_NOT_FOUND", f"trader group {group_id} does not exist")
        return found

    def symbol(self, name: str) -> CTraderSimSymbol:
        found = next((s for s in self.config.symbols if s.name == name), None)
        return found or CTraderSimSymbol(name=name)

    def trader(self, login: int) -> SimTrader:
        with self.lock:
            found = self.traders.get(login)
            if found is None:
                raise CTraderError(404, "TRADER_NOT_FOUND", f"trader {login} not found")
            return found

    # managers' tokens

    def issue_token(self, login: int, hashed_password: str) -> str:
        with self.lock:
            manager = self.manager(login)
            expected = hash_password(manager.password) if manager else ""
            if manager is None or not hmac.compare_digest(
                hashed_password.lower().encode(), expected.encode()
            ):
                raise CTraderError(401, "CH_CLIENT_AUTH_FAILURE", "wrong login or password")
            token = secrets.token_hex(24)
            self.tokens[token] = (login, time.monotonic() + self.config.token_ttl_seconds)
            return token

    def manager_for_token(self, token: str | None) -> CTraderSimManager:
        with self.lock:
            entry = self.tokens.get(token or "")
            if entry is None:
                raise CTraderError(401, "INVALID_TOKEN", "missing or unknown token")
            login, expiry = entry
            manager = self.manager(login)
            if time.monotonic() > expiry or manager is None:
                del self.tokens[token or ""]
                raise CTraderError(401, "TOKEN_EXPIRED", "token expired")
            return manager

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (tests of the client's re-login)."""
        with self.lock:
            self.tokens.clear()

    # traders

    def create_trader(
        self,
        *,
        group: str,
        leverage_in_cents: int,
        access_rights: str,
        account_type: str,
        currency: str,
        broker_name: str,
        hashed_password: str,
        margin_calculation: str,
        balance: int = 0,
        name: str = "",
        last_name: str = "",
        description: str = "",
        swap_free: bool = False,
        contact: dict[str, Any] | None = None,
    ) -> SimTrader:
        with self.lock:
            group_cfg = self.group(group)
            self._check_leverage(group_cfg, leverage_in_cents)
            _check_enum("accessRights", access_rights, ACCESS_RIGHTS)
            _check_enum("accountType", account_type, ACCOUNT_TYPES)
            _check_enum("totalMarginCalculationType", margin_calculation, MARGIN_CALCULATIONS)
            if broker_name != self.config.broker_name:
                raise CTraderError(400, "INVALID_BROKER_NAME", f"unknown broker {broker_name!r}")
            if currency not in self.config.currencies:
                raise CTraderError(400, "INVALID_CURRENCY", f"currency {currency!r}")
            if len(hashed_password) != 32 or not _is_hex(hashed_password):
                raise CTraderError(400, "INVALID_REQUEST", "hashedPassword must be md5 hex")
            if balance < 0:
                raise CTraderError(400, "INVALID_REQUEST", "balance must not be negative")
            now = self.now_ms()
            trader = SimTrader(
                login=self._next_login,
                group=group_cfg.name,
                leverage_in_cents=leverage_in_cents,
                access_rights=access_rights,
                account_type=account_type,
                currency=currency,
                broker_name=broker_name,
                hashed_password=hashed_password.lower(),
                margin_calculation=margin_calculation,
                registration_ms=now,
                last_update_ms=now,
                balance=Decimal(balance).scaleb(-self.config.money_digits),
                name=name,
                last_name=last_name,
                description=description,
                swap_free=swap_free,
                contact=dict(contact or {}),
            )
            self._next_login += 1
            self.traders[trader.login] = trader
            self.save()
            return trader

    def update_trader(
        self,
        login: int,
        *,
        group: str | None = None,
        leverage_in_cents: int | None = None,
        access_rights: str | None = None,
        changes: dict[str, Any] | None = None,
    ) -> SimTrader:
        with self.lock:
            trader = self.trader(login)
            target = self.group(group if group is not None else trader.group)
            leverage = leverage_in_cents if leverage_in_cents is not None else None
            # Moving to a group whose maximum is below the current leverage is refused too.
            self._check_leverage(target, leverage or trader.leverage_in_cents)
            if access_rights is not None:
                _check_enum("accessRights", access_rights, ACCESS_RIGHTS)
                trader.access_rights = access_rights
            trader.group = target.name
            if leverage is not None:
                trader.leverage_in_cents = leverage
            for name, value in (changes or {}).items():
                if name == "contact":
                    trader.contact.update(value)
                else:
                    setattr(trader, name, value)
            trader.last_update_ms = self.now_ms()
            self.save()
            return trader

    def _check_leverage(self, group: CTraderSimGroup, leverage_in_cents: int) -> None:
        if not 100 <= leverage_in_cents <= group.max_leverage * 100:
            raise CTraderError(
                400,
                "INVALID_LEVERAGE",
                f"leverageInCents {leverage_in_cents} outside 100..{group.max_leverage * 100}"
                f" of group {group.name}",
            )

    # money

    def change_balance(
        self,
        login: int,
        change_type: str,
        amount: Decimal,
        *,
        external_id: str = "",
        comment: str = "",
        external_note: str = "",
        source: str = "",
    ) -> SimBalanceChange:
        """changebalance; a repeated externalId replays the first change instead of applying
        it again (cTrader's idempotency key), unless it differs: then 409."""
        with self.lock:
            trader = self.trader(login)
            _check_enum("type", change_type, BALANCE_TYPES)
            digits = self.config.money_digits
            if amount <= 0 or amount > self.config.max_balance_op:
                raise CTraderError(400, "INVALID_AMOUNT", f"preciseAmount {amount}")
            if amount != _round(amount, digits):
                raise CTraderError(400, "INVALID_AMOUNT", f"more than {digits} decimals")
            withdrawal = change_type.startswith("WITHDRAW")
            delta = -amount if withdrawal else amount
            if external_id:
                previous = self._by_external_id(login, external_id)
                if previous is not None:
                    if previous.type != change_type or previous.delta != delta:
                        raise CTraderError(
                            409, "DUPLICATE_EXTERNAL_ID", f"externalId {external_id} was used"
                        )
                    return previous
            bonus = change_type.endswith("NONWITHDRAWABLE_BONUS")
            if bonus:
                if withdrawal and amount > trader.bonus:
                    raise CTraderError(400, "NOT_ENOUGH_MONEY", "more than the bonus")
                trader.bonus += delta
                after = trader.bonus
            else:
                if withdrawal:
                    free = self.account_money(login)["freeMargin"]
                    if amount > min(trader.balance, free):
                        raise CTraderError(
                            400, "NOT_ENOUGH_MONEY", "withdrawal exceeds balance or free margin"
                        )
                trader.balance += delta
                after = trader.balance
            change = SimBalanceChange(
                id=self._next_history,
                login=login,
                type=change_type,
                delta=delta,
                balance=after,
                time_ms=self.now_ms(),
                external_id=external_id,
                comment=comment,
                external_note=external_note,
                source=source,
            )
            self._next_history += 1
            self.balance_history[change.id] = change
            trader.last_update_ms = change.time_ms
            self.save()
            return change

    def _by_external_id(self, login: int, external_id: str) -> SimBalanceChange | None:
        return next(
            (
                c
                for c in self.balance_history.values()
                if c.login == login and c.external_id == external_id
            ),
            None,
        )

    def history(
        self, login: int, start_ms: int, end_ms: int, external_id: str | None = None
    ) -> list[SimBalanceChange]:
        with self.lock:
            self.trader(login)
            return [
                c
                for c in sorted(self.balance_history.values(), key=lambda c: c.id)
                if c.login == login
                and start_ms <= c.time_ms <= end_ms
                and (external_id is None or c.external_id == external_id)
            ]

    # reads

    def account_money(self, login: int) -> dict[str, Decimal]:
        """Balance, bonus and what open positions make of them at the last marked prices."""
        with self.lock:
            trader = self.trader(login)
            digits = self.config.money_digits
            leverage = Decimal(trader.leverage_in_cents) / 100
            floating = margin = Decimal(0)
            for position in self.positions.values():
                if position.login == login:
                    floating += _floating(position) + position.swap
                    margin += position.volume * position.entry_price / leverage
            equity = trader.balance + trader.bonus + floating
            return {
                "balance": _round(trader.balance, digits),
                "bonus": _round(trader.bonus, digits),
                "equity": _round(equity, digits),
                "usedMargin": _round(margin, digits),
                "freeMargin": _round(equity - margin, digits),
                "cashEquity": _round(trader.balance + floating, digits),
            }

    def trader_record(self, trader: SimTrader) -> dict[str, Any]:
        """The trader as `GET /v2/webserv/traders/{login}` shows it: money as ints."""
        digits = self.config.money_digits
        money = {
            name: int(value.scaleb(digits))
            for name, value in self.account_money(trader.login).items()
        }
        return {
            "login": trader.login,
            "groupName": trader.group,
            "depositCurrency": trader.currency,
            "accessRights": trader.access_rights,
            "accountType": trader.account_type,
            "brokerName": trader.broker_name,
            "totalMarginCalculationType": trader.margin_calculation,
            "leverageInCents": trader.leverage_in_cents,
            "moneyDigits": digits,
            "balance": money["balance"],
            "bonus": money["bonus"],
            "nonWithdrawableBonus": money["bonus"],
            "equity": money["equity"],
            "usedMargin": money["usedMargin"],
            "freeMargin": money["freeMargin"],
            "cashEquity": money["cashEquity"],
            "registrationTimestamp": trader.registration_ms,
            "lastUpdateTimestamp": trader.last_update_ms,
            "swapFree": trader.swap_free,
            "isLimitedRisk": False,
            "name": trader.name,
            "lastName": trader.last_name,
            "description": trader.description,
            "contactDetails": dict(trader.contact),
        }

    def traders_between(
        self, start_ms: int, end_ms: int, group_id: int | None = None
    ) -> list[SimTrader]:
        with self.lock:
            group = self.group_by_id(group_id).name if group_id is not None else None
            return [
                t
                for t in sorted(self.traders.values(), key=lambda t: t.login)
                if start_ms <= t.registration_ms <= end_ms and (group is None or t.group == group)
            ]

    def closed_between(
        self, start_ms: int, end_ms: int, login: int | None = None
    ) -> list[SimClosedRow]:
        with self.lock:
            return [
                row
                for row in sorted(self.closed.values(), key=lambda r: r.deal_id)
                if start_ms <= row.close_ms <= end_ms and (login is None or row.login == login)
            ]

    def open_positions(self, login: int | None = None) -> list[SimOpenPosition]:
        with self.lock:
            return [
                p
                for p in sorted(self.positions.values(), key=lambda p: p.position_id)
                if login is None or p.login == login
            ]

    # SimulatedPlatform: what the market engine trades on

    def sim_accounts(self) -> list[SimAccountInfo]:
        with self.lock:
            return [
                SimAccountInfo(
                    login=t.login,
                    currency=t.currency,
                    balance=t.balance,
                    leverage=t.leverage_in_cents // 100,
                    hedging=t.account_type != "NETTED",
                )
                for t in self.traders.values()
                if t.access_rights == "FULL_ACCESS"
            ]

    def sim_apply_fill(self, fill: SimFill) -> str:
        """Entries open or grow a position; exits add a closed-position row (a partial close
        repeats the position id) and shrink it. Profit, commission and swap move the balance."""
        with self.lock:
            trader = self.trader(fill.login)
            digits = self.config.money_digits
            when = int(fill.time.timestamp() * 1000)
            units = fill.lots * fill.contract_size
            trader.balance += _round(fill.profit + fill.commission + fill.swap, digits)
            trader.last_update_ms = max(trader.last_update_ms, when)
            deal_id = self._next_deal
            self._next_deal += 1
            if fill.entry == "in":
                self._enter(fill, units, when)
            else:
                self._exit(fill, units, when, deal_id)
            self.save_now_and_then()
            return str(deal_id)

    def _enter(self, fill: SimFill, units: Decimal, when: int) -> None:
        position = self.positions.get(fill.position_id)
        if position is None:
            self.positions[fill.position_id] = SimOpenPosition(
                position_id=fill.position_id,
                login=fill.login,
                symbol=fill.symbol,
                direction=fill.side.upper(),
                volume=units,
                entry_price=fill.price,
                open_ms=when,
                contract_size=fill.contract_size,
                current_price=self.prices.get(fill.symbol, fill.price),
                commission=fill.commission,
            )
            return
        total = position.volume + units
        # Adding to a position moves its entry price to the volume-weighted average.
        position.entry_price = (position.entry_price * position.volume + fill.price * units) / total
        position.volume = total
        position.commission += fill.commission

    def _exit(self, fill: SimFill, units: Decimal, when: int, deal_id: int) -> None:
        position = self.positions.get(fill.position_id)
        direction = "SELL" if fill.side == "buy" else "BUY"  # the exit trades against it
        closed = units
        share = Decimal(0)
        if position is not None:
            closed = position.volume if fill.entry == "inout" else min(units, position.volume)
            direction = position.direction
            # The row reports the commission of the closed volume: its share of what the opening
            # charged (already off the balance) and what this deal charges.
            if position.volume:
                share = _round(
                    position.commission * closed / position.volume, self.config.money_digits
                )
                position.commission -= share
        self.closed[deal_id] = SimClosedRow(
            deal_id=deal_id,
            login=fill.login,
            position_id=fill.position_id,
            open_ms=position.open_ms if position else when,
            close_ms=when,
            entry_price=position.entry_price if position else fill.price,
            close_price=fill.price,
            direction=direction,
            volume=closed,
            symbol=fill.symbol,
            commission=share + fill.commission,
            swap=fill.swap,
            pnl=fill.profit,
        )
        if position is None:
            return
        position.volume -= closed
        if position.volume <= 0:
            del self.positions[fill.position_id]
        if fill.entry == "inout" and units > closed:
            # A netting reversal: what is left over opens the other way, same position id.
            self.positions[fill.position_id] = SimOpenPosition(
                position_id=fill.position_id,
                login=fill.login,
                symbol=fill.symbol,
                direction=fill.side.upper(),
                volume=units - closed,
                entry_price=fill.price,
                open_ms=when,
                contract_size=fill.contract_size,
                current_price=fill.price,
            )

    def sim_mark_prices(self, prices: dict[str, Decimal]) -> None:
        with self.lock:
            self.prices.update(prices)
            for position in self.positions.values():
                if position.symbol in prices:
                    position.current_price = prices[position.symbol]

    def position_profit(self, position: SimOpenPosition) -> Decimal:
        return _round(_floating(position), self.config.money_digits)

    # persistence

    def save(self) -> None:
        path = self.config.state_file
        if path is None:
            return
        with self.lock:
            snapshot = {
                "traders": [to_plain(t) for t in self.traders.values()],
                "balance_history": [to_plain(c) for c in self.balance_history.values()],
                "positions": [to_plain(p) for p in self.positions.values()],
                "closed": [to_plain(r) for r in self.closed.values()],
                "prices": {k: str(v) for k, v in self.prices.items()},
                "next_login": self._next_login,
                "next_history": self._next_history,
                "next_deal": self._next_deal,
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(snapshot, default=str, indent=1))
            os.replace(tmp, path)

    def _load(self, path: Path) -> None:
        snapshot = json.loads(path.read_text())
        self.traders = {t["login"]: from_plain(SimTrader, t) for t in snapshot.get("traders", [])}
        self.balance_history = {
            c["id"]: from_plain(SimBalanceChange, c) for c in snapshot.get("balance_history", [])
        }
        self.positions = {
            p["position_id"]: from_plain(SimOpenPosition, p) for p in snapshot.get("positions", [])
        }
        self.closed = {
            r["deal_id"]: from_plain(SimClosedRow, r) for r in snapshot.get("closed", [])
        }
        self.prices = {k: Decimal(v) for k, v in snapshot.get("prices", {}).items()}
        self._next_login = snapshot.get("next_login", self._next_login)
        self._next_history = snapshot.get("next_history", self._next_history)
        self._next_deal = snapshot.get("next_deal", self._next_deal)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _floating(position: SimOpenPosition) -> Decimal:
    # Simplified: the quote currency is taken as the account currency.
    sign = 1 if position.direction == "BUY" else -1
    return (position.current_price - position.entry_price) * position.volume * sign


def _round(value: Decimal, digits: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _check_enum(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise CTraderError(400, "INVALID_REQUEST", f"{name} must be one of {', '.join(allowed)}")
