"""One handler per Web API command, with the manager's permission checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fxcrm.adapters.simulators.mt5.config import Mt5SimGroup, Mt5SimManager
from fxcrm.adapters.simulators.mt5.params import Params
from fxcrm.adapters.simulators.mt5.protocol import USER_TEXT_FIELDS, Mt5Error
from fxcrm.adapters.simulators.mt5.records import (
    SimDeal,
    SimPosition,
    SimUser,
    deal_record,
    group_record,
    position_record,
)
from fxcrm.adapters.simulators.mt5.state import Mt5SimState, group_matches


@dataclass
class Ctx:
    state: Mt5SimState
    manager: Mt5SimManager
    params: Params

    def require(self, *, accountant: bool = False, edit: bool = False) -> None:
        if (accountant and not self.manager.accountant) or (edit and not self.manager.edit_users):
            raise Mt5Error(8)

    def in_scope(self, group: str) -> bool:
        return group_matches(self.manager.group_masks, group)

    def require_scope(self, group: str) -> None:
        if not self.in_scope(group):
            raise Mt5Error(8, f"no permission over group {group}")

    def scoped_user(self, login: int) -> SimUser:
        user = self.state.user(login)
        self.require_scope(user.group)
        return user

    def logins_or_group(self) -> tuple[list[int] | None, str | None]:
        """Exactly one of `login` (list) and `group` (mask), as the real server insists."""
        logins = self.params.int_list("login")
        if logins is None and self.params.body_list is not None:
            logins = [int(str(item)) for item in self.params.body_list]
        group = self.params.text("group")
        if (logins is None) == (group is None):
            raise Mt5Error(3, "give login or group, not both")
        return logins, group

    def scoped_users(self) -> list[SimUser]:
        logins, mask = self.logins_or_group()
        if logins is not None:
            users = [self.state.users[login] for login in logins if login in self.state.users]
        else:
            users = [u for u in self.state.users.values() if group_matches(str(mask), u.group)]
        return sorted((u for u in users if self.in_scope(u.group)), key=lambda u: u.login)

    def deal_range(self) -> tuple[int, int]:
        start, end = self.params.integer("from"), self.params.integer("to")
        if start is None or end is None:
            raise Mt5Error(3, "from and to are required")
        return start, end

    def scoped_deals(self) -> list[SimDeal]:
        logins, mask = self.logins_or_group()
        start, end = self.deal_range()
        deals = self.state.deals_for(
            logins=logins, mask=mask, start=start, end=end, symbol=self.params.text("symbol")
        )
        return [d for d in deals if self.in_scope(self.state.user(d.login).group)]

    def scoped_positions(self) -> list[SimPosition]:
        users = {u.login for u in self.scoped_users()}
        symbol = self.params.text("symbol")
        found = sorted(
            (
                p
                for p in self.state.positions.values()
                if p.login in users and (not symbol or p.symbol == symbol)
            ),
            key=lambda p: p.position,
        )
        for position in found:
            self.state.refresh_position(position)
        return found

    def page(self, items: list[Any]) -> list[Any]:
        offset = self.params.integer("offset") or 0
        total = self.params.integer("total")
        if offset < 0 or (total is not None and total < 0):
            raise Mt5Error(3, "negative offset or total")
        return items[offset : offset + total] if total is not None else items[offset:]

    def visible_groups(self) -> list[Mt5SimGroup]:
        return [g for g in self.state.config.groups if self.in_scope(g.name)]

    def profile(self) -> dict[str, str]:
        return {
            name: str(self.params.text(name)) for name in USER_TEXT_FIELDS if self.params.has(name)
        }

    def api_data(self) -> list[dict[str, str]] | None:
        cells = self.params.body.get("ApiData")
        if cells is None:
            return None
        if not isinstance(cells, list) or len(cells) > 16:
            raise Mt5Error(3, "ApiData is a list of at most 16 cells")
        return [{str(k): str(v) for k, v in dict(cell).items()} for cell in cells]


def _common_get(ctx: Ctx) -> Any:
    config = ctx.state.config
    return {
        "Name": config.server_name,
        "Owner": config.company,
        "OwnerID": "fxcrm-sim",
        "Product": "MetaTrader 5 Web API simulator",
        "Build": config.build,
        "TimeZone": int(config.server_utc_offset_hours * 60),  # minutes, as in MT5's time config
    }


def _user_add(ctx: Ctx) -> Any:
    ctx.require(edit=True)
    group = ctx.params.text("group")
    if not group:
        raise Mt5Error(3, "group is required")
    group_cfg = ctx.state.group(group)
    ctx.require_scope(group_cfg.name)
    leverage = ctx.params.integer("leverage")
    user = ctx.state.add_user(
        group=group_cfg.name,
        leverage=leverage if leverage is not None else min(100, group_cfg.leverage_max),
        # Passwords are read from the body only: a URL ends up in logs.
        password_main=ctx.params.body_text("PassMain"),
        password_investor=ctx.params.body_text("PassInvestor"),
        password_api=ctx.params.body_text("PassApi"),
        login=ctx.params.integer("login") or 0,
        rights=ctx.params.integer("rights"),
        agent=ctx.params.integer("agent") or 0,
        profile=ctx.profile(),
        api_data=ctx.api_data(),
    )
    return ctx.state.user_record(user)


def _user_update(ctx: Ctx) -> Any:
    ctx.require(edit=True)
    user = ctx.scoped_user(ctx.params.required_int("login"))
    group = ctx.params.text("group")
    if group is not None:
        ctx.require_scope(ctx.state.group(group).name)
    updated = ctx.state.update_user(
        user.login,
        group=group,
        leverage=ctx.params.integer("leverage"),
        rights=ctx.params.integer("rights"),
        agent=ctx.params.integer("agent"),
        profile=ctx.profile(),
        api_data=ctx.api_data(),
    )
    return ctx.state.user_record(updated)


def _user_get(ctx: Ctx) -> Any:
    return ctx.state.user_record(ctx.scoped_user(ctx.params.required_int("login")))


def _user_get_batch(ctx: Ctx) -> Any:
    return [ctx.state.user_record(u) for u in ctx.scoped_users()]


def _password_args(ctx: Ctx) -> tuple[int, str, str | None]:
    login = ctx.params.required_int("login")
    kind = (ctx.params.text("type") or "main").lower()
    return login, kind, ctx.params.text("password")


def _user_change_password(ctx: Ctx) -> Any:
    ctx.require(edit=True)
    login, kind, password = _password_args(ctx)
    ctx.scoped_user(login)
    ctx.state.set_password(login, kind, password)
    return None


def _user_check_password(ctx: Ctx) -> Any:
    login, kind, password = _password_args(ctx)
    ctx.scoped_user(login)
    if not ctx.state.check_password(login, kind, password):
        raise Mt5Error(3006)
    return None


def _account_get(ctx: Ctx) -> Any:
    return ctx.state.account(ctx.scoped_user(ctx.params.required_int("login")).login)


def _account_get_batch(ctx: Ctx) -> Any:
    return [ctx.state.account(u.login) for u in ctx.scoped_users()]


def _trade_balance(ctx: Ctx) -> Any:
    ctx.require(accountant=True)
    user = ctx.scoped_user(ctx.params.required_int("login"))
    amount = ctx.params.decimal("balance")
    if amount is None:
        raise Mt5Error(3, "balance is required")
    check_margin = ctx.params.integer("check_margin")
    deal = ctx.state.balance_op(
        user.login,
        ctx.params.required_int("type"),
        amount,
        ctx.params.text("comment") or "",
        check_margin=check_margin != 0,
        dealer=ctx.manager.login,
    )
    return {"Ticket": deal.deal}


def _deal_get(ctx: Ctx) -> Any:
    deal = ctx.state.deals.get(ctx.params.required_int("ticket"))
    if deal is None:
        raise Mt5Error(13)
    ctx.scoped_user(deal.login)
    return deal_record(deal)


def _deal_get_batch(ctx: Ctx) -> Any:
    tickets = ctx.params.int_list("ticket")
    if tickets is not None:
        if ctx.params.has("login") or ctx.params.has("group"):
            raise Mt5Error(3, "give one of ticket, login and group")
        deals = [ctx.state.deals[t] for t in tickets if t in ctx.state.deals]
        return [deal_record(d) for d in deals if ctx.in_scope(ctx.state.user(d.login).group)]
    return [deal_record(d) for d in ctx.scoped_deals()]


def _deal_get_total(ctx: Ctx) -> Any:
    return {"total": len(ctx.scoped_deals())}


def _deal_get_page(ctx: Ctx) -> Any:
    return [deal_record(d) for d in ctx.page(ctx.scoped_deals())]


def _position_get(ctx: Ctx) -> Any:
    user = ctx.scoped_user(ctx.params.required_int("login"))
    symbol = ctx.params.text("symbol")
    for position in ctx.state.positions.values():
        if position.login == user.login and position.symbol == symbol:
            ctx.state.refresh_position(position)
            return position_record(position)
    raise Mt5Error(13)


def _position_get_batch(ctx: Ctx) -> Any:
    return [position_record(p) for p in ctx.scoped_positions()]


def _position_get_total(ctx: Ctx) -> Any:
    return {"total": len(ctx.scoped_positions())}


def _position_get_page(ctx: Ctx) -> Any:
    return [position_record(p) for p in ctx.page(ctx.scoped_positions())]


def _group_get(ctx: Ctx) -> Any:
    name = ctx.params.text("group")
    if not name:
        raise Mt5Error(3, "group is required")
    try:
        group = ctx.state.group(name)
    except Mt5Error:
        raise Mt5Error(13) from None
    ctx.require_scope(group.name)
    return group_record(group, ctx.state.config.company)


def _group_total(ctx: Ctx) -> Any:
    return {"total": len(ctx.visible_groups())}


def _group_next(ctx: Ctx) -> Any:
    index = ctx.params.required_int("index")
    groups = ctx.visible_groups()
    if not 0 <= index < len(groups):
        raise Mt5Error(13)
    return group_record(groups[index], ctx.state.config.company)


HANDLERS: dict[str, Callable[[Ctx], Any]] = {
    "test/access": lambda ctx: None,
    "common/get": _common_get,
    "user/add": _user_add,
    "user/update": _user_update,
    "user/get": _user_get,
    "user/get_batch": _user_get_batch,
    "user/change_password": _user_change_password,
    "user/check_password": _user_check_password,
    "user/account/get": _account_get,
    "user/account/get_batch": _account_get_batch,
    "trade/balance": _trade_balance,
    "deal/get": _deal_get,
    "deal/get_batch": _deal_get_batch,
    "deal/get_total": _deal_get_total,
    "deal/get_page": _deal_get_page,
    "position/get": _position_get,
    "position/get_batch": _position_get_batch,
    "position/get_total": _position_get_total,
    "position/get_page": _position_get_page,
    "group/get": _group_get,
    "group/total": _group_total,
    "group/next": _group_next,
}
