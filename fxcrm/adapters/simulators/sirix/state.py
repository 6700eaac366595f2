"""The simulated Sirix server: users, money, positions, and the reads the REST API serves.

Times are aware UTC inside; the app turns them into the server's local time on the wire.
`SirixSimState` is also a `SimulatedPlatform`, so the market engine can trade on it.
"""

from __future__ import annotations

import hmac
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fxcrm.adapters.platforms.sirix import (
    CLOSE_ONLY,
    NOT_TRADABLE,
    SUBTYPE_BALANCE,
    SUBTYPE_BONUS,
    SUBTYPE_CREDIT,
    TRADABLE,
)
from fxcrm.adapters.simulators.market.contract import SimAccountInfo, SimFill
from fxcrm.adapters.simulators.persistence import ThrottledSave
from fxcrm.adapters.simulators.sirix import protocol as p
from fxcrm.adapters.simulators.sirix.config import SirixSimConfig, SirixSimGroup, SirixSimSymbol
from fxcrm.adapters.simulators.sirix.records import (
    SimClosedPosition,
    SimOpenPosition,
    SimTransaction,
    SimUser,
    from_plain,
    to_plain,
)

COMMENT_MAX = 100
TRADABILITIES = (TRADABLE, CLOSE_ONLY, NOT_TRADABLE)
SUB_TYPES = (SUBTYPE_BALANCE, SUBTYPE_CREDIT, SUBTYPE_BONUS)
CENT = Decimal("0.01")


def _now() -> datetime:
    return datetime.now(UTC)


def valid_password(password: object) -> bool:
    """The simulator's rule (Leverate's is not public): 6 to 20 characters, letters and digits."""
    if not isinstance(password, str) or not 6 <= len(password) <= 20:
        return False
    return any(c.isalpha() for c in password) and any(c.isdigit() for c in password)


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


class SirixSimState(ThrottledSave):
    """The simulated server. Public methods take the lock: tests and the market engine may call
    them from other threads while the app serves requests."""

    platform = "sirix"

    def __init__(
        self, config: SirixSimConfig | None = None, *, clock: Callable[[], datetime] = _now
    ) -> None:
        self.config = config or SirixSimConfig()
        self.zone = ZoneInfo(self.config.timezone)
        self.clock = clock
        self.lock = threading.RLock()
        self.users: dict[int, SimUser] = {}
        self.open_positions: dict[int, SimOpenPosition] = {}
        self.closed_positions: list[SimClosedPosition] = []
        self.transactions: list[SimTransaction] = []
        self.prices: dict[str, Decimal] = {}
        self.fail_requests = 0  # test switch: answer this many requests with 503
        self._next_user = self.config.first_user_id
        self._next_order = self.config.first_order_id
        if self.config.state_file and self.config.state_file.exists():
            self._load(self.config.state_file)

    # lookups

    def group(self, name: object) -> SirixSimGroup:
        wanted = str(name or "").lower()
        found = next((g for g in self.config.groups if g.name.lower() == wanted), None)
        if found is None:
            raise p.SirixError(p.GROUP_NOT_FOUND, f"Group {name} does not exist")
        return found

    def symbol(self, name: str) -> SirixSimSymbol:
        found = next((s for s in self.config.symbols if s.name == name), None)
        return found or SirixSimSymbol(name=name)

    def user(self, user_id: int) -> SimUser:
        with self.lock:
            found = self.users.get(user_id)
            if found is None:
                raise p.SirixError(p.USER_NOT_FOUND, f"User {user_id} not found")
            return found

    def token_ok(self, token: str) -> bool:
        return any(hmac.compare_digest(token.encode(), t.encode()) for t in self.config.tokens)

    # users

    def create_user(
        self,
        *,
        group: str,
        full_name: str,
        password: object,
        investor_password: object,
        leverage: int | None = None,
        currency: str | None = None,
        details: Mapping[str, str] | None = None,
        tradability: str = TRADABLE,
        trading_state: str = "Enabled",
        margin_coefficient: Decimal = Decimal(1),
        use_account_margin: bool = True,
        initial_deposit: Decimal = Decimal(0),
        initial_comment: str = "",
    ) -> SimUser:
        with self.lock:
            group_cfg = self.group(group)
            leverage = leverage or group_cfg.default_leverage
            self._check_leverage(group_cfg, leverage)
            for secret in (password, investor_password):
                if not valid_password(secret):
                    raise p.SirixError(p.INVALID_PASSWORD, "Password does not meet the rules")
            if tradability not in TRADABILITIES:
                raise p.SirixError(p.INVALID_REQUEST, f"Unknown Tradability {tradability}")
            user = SimUser(
                user_id=self._next_user,
                group=group_cfg.name,
                leverage=leverage,
                currency=currency or group_cfg.currency,
                full_name=full_name,
                passwords={"main": str(password), "investor": str(investor_password)},
                created=self.clock(),
                details=dict(details or {}),
                tradability=tradability,
                trading_state=trading_state,
                disable_trading=trading_state.lower() == "disabled",
                margin_coefficient=margin_coefficient,
                use_account_margin=use_account_margin,
            )
            self._next_user += 1
            self.users[user.user_id] = user
            if initial_deposit > 0:
                self.balance_op(user.user_id, initial_deposit, initial_comment)
            self.save()
            return user

    def update_user(
        self,
        user_id: int,
        *,
        group: str | None = None,
        leverage: int | None = None,
        passwords: Mapping[str, object] | None = None,
        is_enabled: bool | None = None,
        disable_trading: bool | None = None,
        tradability: str | None = None,
        trading_state: str | None = None,
        full_name: str | None = None,
        details: Mapping[str, str] | None = None,
        margin_coefficient: Decimal | None = None,
        use_account_margin: bool | None = None,
    ) -> SimUser:
        """UpdateUser: every check first, then every change, so a refusal changes nothing."""
        with self.lock:
            user = self.user(user_id)
            target = self.group(group) if group is not None else self.group(user.group)
            # Moving to a group whose maximum is below the current leverage is refused too.
            self._check_leverage(target, leverage if leverage is not None else user.leverage)
            for secret in (passwords or {}).values():
                if not valid_password(secret):
                    raise p.SirixError(p.INVALID_PASSWORD, "Password does not meet the rules")
            if tradability is not None and tradability not in TRADABILITIES:
                raise p.SirixError(p.INVALID_REQUEST, f"Unknown Tradability {tradability}")
            user.group = target.name
            if leverage is not None:
                user.leverage = leverage
            for kind, secret in (passwords or {}).items():
                user.passwords[kind] = str(secret)
            if is_enabled is not None:
                user.is_enabled = is_enabled
            if disable_trading is not None:
                user.disable_trading = disable_trading
            if tradability is not None:
                user.tradability = tradability
            if trading_state is not None:
                user.trading_state = trading_state
            if full_name is not None:
                user.full_name = full_name
            user.details.update(details or {})
            if margin_coefficient is not None:
                user.margin_coefficient = margin_coefficient
            if use_account_margin is not None:
                user.use_account_margin = use_account_margin
            self.save()
            return user

    def disable_user(self, user_id: int) -> None:
        with self.lock:
            self.user(user_id).is_enabled = False
            self.save()

    def archive_user(self, user_id: int, archived: bool = True) -> None:
        """Back-office archiving (no REST call in the spec): archived users cannot log in."""
        with self.lock:
            self.user(user_id).is_archived = archived
            self.save()

    def verify_user(self, user_id: int, password: str) -> int:
        with self.lock:
            user = self.users.get(user_id)
            if user is None:
                return p.VERIFY_UNKNOWN_USER
            if user.is_archived:
                return p.VERIFY_USER_ARCHIVED
            if not user.is_enabled:
                return p.VERIFY_USER_DISABLED
            given = password.encode()
            if hmac.compare_digest(user.passwords["main"].encode(), given):
                return p.VERIFY_OK
            if hmac.compare_digest(user.passwords["investor"].encode(), given):
                return p.VERIFY_INVESTOR
            return p.VERIFY_WRONG_PASSWORD

    def _check_leverage(self, group: SirixSimGroup, leverage: int) -> None:
        if not 1 <= leverage <= group.max_leverage:
            raise p.SirixError(
                p.INVALID_LEVERAGE,
                f"Leverage {leverage} is outside 1..{group.max_leverage} of group {group.name}",
            )

    # money

    def balance_op(
        self, user_id: int, amount: Decimal, comment: str = "", sub_type: int = SUBTYPE_BALANCE
    ) -> SimTransaction:
        """Deposit (amount > 0) or withdrawal (amount < 0); sub_type picks balance or credit."""
        with self.lock:
            user = self.user(user_id)
            if sub_type not in SUB_TYPES:
                raise p.SirixError(p.INVALID_REQUEST, f"Unknown subType {sub_type}")
            amount = _money(amount)
            if amount == 0 or abs(amount) > self.config.max_balance_op:
                raise p.SirixError(p.INVALID_AMOUNT, f"Invalid amount {amount}")
            if amount < 0:
                self._check_funds(user, -amount, sub_type)
            if sub_type == SUBTYPE_CREDIT:
                user.credit += amount
            else:
                user.balance += amount
            row = SimTransaction(
                order_id=self._order_id(),
                user_id=user_id,
                kind="Deposit" if amount > 0 else "Withdrawal",
                sub_type=sub_type,
                amount=abs(amount),
                comment=comment[:COMMENT_MAX],
                time=self.clock(),
            )
            self.transactions.append(row)
            self.save()
            return row

    def _check_funds(self, user: SimUser, out: Decimal, sub_type: int) -> None:
        if sub_type == SUBTYPE_CREDIT:
            if out > user.credit:
                raise p.SirixError(p.INSUFFICIENT_FUNDS, "Insufficient credit")
            return
        free = self.account(user.user_id)["FreeMargin"]
        if out > user.balance or out > free:
            raise p.SirixError(p.INSUFFICIENT_FUNDS, f"Insufficient funds: free margin is {free}")

    def _order_id(self) -> int:
        order = self._next_order
        self._next_order += 1
        return order

    # trading: SimulatedPlatform

    def sim_accounts(self) -> list[SimAccountInfo]:
        with self.lock:
            return [
                SimAccountInfo(
                    login=user.user_id,
                    currency=user.currency,
                    balance=user.balance,
                    leverage=user.leverage,
                    hedging=True,  # Sirix keeps every position apart
                )
                for user in self.users.values()
                if user.is_enabled
                and not user.is_archived
                and not user.disable_trading
                and user.tradability == TRADABLE
            ]

    def sim_apply_fill(self, fill: SimFill) -> str:
        """An entry opens or adds to a position; an exit closes (part of) it into a closed row.
        The balance moves by the fill's profit + commission + swap."""
        with self.lock:
            user = self.user(fill.login)
            user.balance += _money(fill.profit + fill.commission + fill.swap)
            position = self.open_positions.get(fill.position_id)
            if fill.entry == "in":
                order = self._enter(fill, position)
            else:
                order = self._exit(fill, position)
            self.save_now_and_then()
            return str(order)

    def _enter(self, fill: SimFill, position: SimOpenPosition | None) -> int:
        order = self._order_id()
        if position is None:
            self.open_positions[fill.position_id] = SimOpenPosition(
                position_id=fill.position_id,
                user_id=fill.login,
                symbol=fill.symbol,
                side=fill.side,
                lots=fill.lots,
                open_rate=fill.price,
                open_time=fill.time,
                contract_size=fill.contract_size,
                current_rate=fill.price,
                commission=fill.commission,
            )
        else:  # adding to a position: volume-weighted open rate
            total = position.lots + fill.lots
            position.open_rate = (
                position.open_rate * position.lots + fill.price * fill.lots
            ) / total
            position.lots = total
            position.commission += fill.commission
        return order

    def _exit(self, fill: SimFill, position: SimOpenPosition | None) -> int:
        order = self._order_id()
        closing = fill.lots if position is None else min(fill.lots, position.lots)
        share = Decimal(0)
        if position is not None and position.lots:
            # The entry commission, pro rata, is reported with the closed part.
            share = _money(position.commission * closing / position.lots)
            position.commission -= share
        self.closed_positions.append(
            SimClosedPosition(
                order_id=order,
                position_id=fill.position_id,
                user_id=fill.login,
                symbol=fill.symbol,
                side=position.side if position else ("sell" if fill.side == "buy" else "buy"),
                lots=closing,
                open_rate=position.open_rate if position else fill.price,
                close_rate=fill.price,
                open_time=position.open_time if position else fill.time,
                close_time=fill.time,
                profit=_money(fill.profit),
                commission=_money(share + fill.commission),
                swap=_money(fill.swap),
                close_reason=fill.reason,
            )
        )
        if position is not None:
            position.lots -= closing
            if position.lots <= 0:
                del self.open_positions[fill.position_id]
        remainder = fill.lots - closing
        if fill.entry == "inout" and remainder > 0:  # a reversal opens the rest the other way
            self.open_positions[fill.position_id] = SimOpenPosition(
                position_id=fill.position_id,
                user_id=fill.login,
                symbol=fill.symbol,
                side=fill.side,
                lots=remainder,
                open_rate=fill.price,
                open_time=fill.time,
                contract_size=fill.contract_size,
                current_rate=fill.price,
            )
        return order

    def sim_mark_prices(self, prices: dict[str, Decimal]) -> None:
        with self.lock:
            self.prices.update(prices)
            for position in self.open_positions.values():
                if position.symbol in prices:
                    position.current_rate = prices[position.symbol]

    # reads

    def floating(self, position: SimOpenPosition) -> Decimal:
        """Floating profit; simplified: the quote currency taken as the account currency."""
        if position.current_rate is None:
            return Decimal(0)
        direction = 1 if position.side == "buy" else -1
        move = (position.current_rate - position.open_rate) * direction
        return _money(move * position.lots * position.contract_size)

    def margin(self, position: SimOpenPosition) -> Decimal:
        user = self.user(position.user_id)
        rate = position.current_rate or position.open_rate
        return _money(position.lots * position.contract_size * rate / user.leverage)

    def account(self, user_id: int) -> dict[str, Any]:
        """GetAccountBalance: equity = balance + credit + floating, margin from open positions."""
        with self.lock:
            user = self.user(user_id)
            positions = [pos for pos in self.open_positions.values() if pos.user_id == user_id]
            floating = sum((self.floating(pos) + pos.swap for pos in positions), Decimal(0))
            margin = sum((self.margin(pos) for pos in positions), Decimal(0))
            equity = user.balance + user.credit + floating
            return {
                "UserID": user_id,
                "Currency": user.currency,
                "Balance": _money(user.balance),
                "Credit": _money(user.credit),
                "Equity": _money(equity),
                "OpenPnL": _money(floating),
                "Margin": _money(margin),
                "FreeMargin": _money(equity - margin),
                "MarginLevel": _money(equity / margin * 100) if margin else None,
            }

    def users_in(self, groups: Iterable[str] | None) -> list[SimUser]:
        with self.lock:
            if groups is None:
                return list(self.users.values())
            wanted = {g.lower() for g in groups}
            return [u for u in self.users.values() if u.group.lower() in wanted]

    def open_positions_of(self, user_ids: Iterable[int]) -> list[SimOpenPosition]:
        with self.lock:
            wanted = set(user_ids)
            return [pos for pos in self.open_positions.values() if pos.user_id in wanted]

    def closed_positions_of(
        self, user_ids: Iterable[int] | None, start_local: datetime, end_local: datetime
    ) -> list[SimClosedPosition]:
        """Rows whose close time, on the server's wall clock, is in [start, end]: a server that
        keeps local time compares local time."""
        with self.lock:
            wanted = set(user_ids) if user_ids is not None else None
            return [
                row
                for row in self.closed_positions
                if (wanted is None or row.user_id in wanted)
                and start_local <= self.local(row.close_time) <= end_local
            ]

    def transactions_of(self, user_id: int) -> list[SimTransaction]:
        with self.lock:
            return [row for row in self.transactions if row.user_id == user_id]

    def local(self, moment: datetime) -> datetime:
        """A UTC moment as the server's naive wall-clock time."""
        return moment.astimezone(self.zone).replace(tzinfo=None)

    # persistence

    def save(self) -> None:
        path = self.config.state_file
        if path is None:
            return
        with self.lock:
            snapshot = {
                "users": [to_plain(u) for u in self.users.values()],
                "open_positions": [to_plain(x) for x in self.open_positions.values()],
                "closed_positions": [to_plain(x) for x in self.closed_positions],
                "transactions": [to_plain(x) for x in self.transactions],
                "next_user": self._next_user,
                "next_order": self._next_order,
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(snapshot, indent=1))
            os.replace(tmp, path)

    def _load(self, path: Path) -> None:
        snapshot = json.loads(path.read_text())
        users = [from_plain(SimUser, u) for u in snapshot.get("users", [])]
        self.users = {u.user_id: u for u in users}
        opened = [from_plain(SimOpenPosition, x) for x in snapshot.get("open_positions", [])]
        self.open_positions = {x.position_id: x for x in opened}
        self.closed_positions = [
            from_plain(SimClosedPosition, x) for x in snapshot.get("closed_positions", [])
        ]
        self.transactions = [
            from_plain(SimTransaction, x) for x in snapshot.get("transactions", [])
        ]
        self._next_user = snapshot.get("next_user", self._next_user)
        self._next_order = snapshot.get("next_order", self._next_order)
