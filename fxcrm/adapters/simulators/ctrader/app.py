"""The Web Services REST API as an ASGI app: token login, `?token=` checks, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fxcrm.adapters.platforms.ctrader import (
    CLOSED_POSITION_HEADERS,
    OPEN_POSITION_HEADERS,
    format_time,
    from_millis,
    parse_time,
)
from fxcrm.adapters.simulators.ctrader.config import CTraderSimConfig, CTraderSimManager
from fxcrm.adapters.simulators.ctrader.records import CTraderError, SimBalanceChange
from fxcrm.adapters.simulators.ctrader.state import CTraderSimState, to_ms

API = "/v2/webserv"
Handler = Callable[[Request, CTraderSimManager], Awaitable[Response]]


def _error(exc: CTraderError) -> Response:
    return JSONResponse({"errorCode": exc.code, "description": exc.description}, exc.status)


def _bad(description: str) -> CTraderError:
    return CTraderError(400, "INVALID_REQUEST", description)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        # Decimals stay exact: preciseAmount may carry up to eight decimals.
        data = json.loads(raw or b"{}", parse_float=Decimal)
    except ValueError as exc:
        raise _bad("body is not JSON") from exc
    if not isinstance(data, dict):
        raise _bad("body must be a JSON object")
    return data


def _int(data: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise _bad(f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{name} must be an integer")
    return value


def _str(data: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise _bad(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise _bad(f"{name} must be a string")
    return value


def _query_time(request: Request, name: str) -> int:
    text = request.query_params.get(name)
    if not text:
        raise _bad(f"{name} is required (yyyy-MM-ddTHH:mm:ss.SSS)")
    try:
        return to_ms(parse_time(text))
    except ValueError as exc:
        raise _bad(f"{name} must be yyyy-MM-ddTHH:mm:ss.SSS") from exc


def _query_int(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise _bad(f"{name} must be an integer") from exc


def _login(request: Request) -> int:
    return int(request.path_params["login"])


def _csv(headers: list[str], rows: list[list[object]]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return Response(out.getvalue(), media_type="text/csv")


def _num(value: Decimal, places: int | None = None) -> str:
    if places is not None:
        return f"{value:.{places}f}"
    return format(value.normalize(), "f")


class CTraderWebServices:
    """Routes and handlers; `state` may be swapped for a fresh one between tests."""

    def __init__(self, state: CTraderSimState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        def secured(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                try:
                    manager = self.state.manager_for_token(request.query_params.get("token"))
                    return await handler(request, manager)
                except CTraderError as exc:
                    return _error(exc)

            return endpoint

        return [
            Route(f"{API}/managers/token", self.token, methods=["POST"]),
            Route(f"{API}/traders", secured(self.create_trader), methods=["POST"]),
            Route(f"{API}/traders/", secured(self.list_traders), methods=["GET"]),
            Route(f"{API}/traders/{{login:int}}", secured(self.get_trader), methods=["GET"]),
            Route(f"{API}/traders/{{login:int}}", secured(self.patch_trader), methods=["PATCH"]),
            Route(
                f"{API}/traders/{{login:int}}/changebalance",
                secured(self.change_balance),
                methods=["POST"],
            ),
            Route(
                f"{API}/traders/{{login:int}}/balancehistory",
                secured(self.balance_history),
                methods=["GET"],
            ),
            Route(f"{API}/closedPositions", secured(self.closed_positions), methods=["GET"]),
            Route(f"{API}/openPositions", secured(self.open_positions), methods=["GET"]),
            Route(f"{API}/tradergroups", secured(self.trader_groups), methods=["GET"]),
            Route(f"{API}/symbols", secured(self.symbols), methods=["GET"]),
        ]

    async def token(self, request: Request) -> Response:
        try:
            body = await _body(request)
            login = _int(body, "login")
            hashed = _str(body, "hashedPassword")
            token = self.state.issue_token(int(login or 0), str(hashed))
        except CTraderError as exc:
            return _error(exc)
        return JSONResponse({"webservToken": token})

    async def create_trader(self, request: Request, manager: CTraderSimManager) -> Response:
        body = await _body(request)
        contact = body.get("contactDetails") or {}
        if not isinstance(contact, dict):
            raise _bad("contactDetails must be an object")
        trader = self.state.create_trader(
            group=str(_str(body, "groupName")),
            leverage_in_cents=int(_int(body, "leverageInCents") or 0),
            access_rights=str(_str(body, "accessRights")),
            account_type=str(_str(body, "accountType")),
            currency=str(_str(body, "depositCurrency")),
            broker_name=str(_str(body, "brokerName")),
            hashed_password=str(_str(body, "hashedPassword")),
            margin_calculation=str(_str(body, "totalMarginCalculationType")),
            balance=int(_int(body, "balance") or 0),
            name=_str(body, "name", required=False) or "",
            last_name=_str(body, "lastName", required=False) or "",
            description=_str(body, "description", required=False) or "",
            swap_free=bool(body.get("swapFree", False)),
            contact=contact,
        )
        return JSONResponse(self.state.trader_record(trader), 201)

    async def list_traders(self, request: Request, manager: CTraderSimManager) -> Response:
        start, end = _query_time(request, "from"), _query_time(request, "to")
        traders = self.state.traders_between(start, end, _query_int(request, "groupId"))
        return JSONResponse({"trader": [self.state.trader_record(t) for t in traders]})

    async def get_trader(self, request: Request, manager: CTraderSimManager) -> Response:
        return JSONResponse(self.state.trader_record(self.state.trader(_login(request))))

    async def patch_trader(self, request: Request, manager: CTraderSimManager) -> Response:
        body = await _body(request)
        changes: dict[str, Any] = {}
        for wire, name in (
            ("name", "name"),
            ("lastName", "last_name"),
            ("description", "description"),
        ):
            value = _str(body, wire, required=False)
            if value is not None:
                changes[name] = value
        if "hashedPassword" in body:
            changes["hashed_password"] = str(_str(body, "hashedPassword")).lower()
        if isinstance(body.get("contactDetails"), dict):
            changes["contact"] = body["contactDetails"]
        self.state.update_trader(
            _login(request),
            group=_str(body, "groupName", required=False),
            leverage_in_cents=_int(body, "leverageInCents", required=False),
            access_rights=_str(body, "accessRights", required=False),
            changes=changes,
        )
        return Response(status_code=204)

    async def change_balance(self, request: Request, manager: CTraderSimManager) -> Response:
        if not manager.may_change_balance:
            raise CTraderError(403, "ACCESS_DENIED", "manager may not change balances")
        body = await _body(request)
        login = _login(request)
        if body.get("login") not in (None, login):
            raise _bad("login in the body differs from the path")
        amount = body.get("preciseAmount")
        if isinstance(amount, bool) or not isinstance(amount, int | Decimal):
            raise _bad("preciseAmount must be a number")
        change = self.state.change_balance(
            login,
            str(_str(body, "type")),
            Decimal(amount),
            external_id=_str(body, "externalId", required=False) or "",
            comment=_str(body, "comment", required=False) or "",
            external_note=_str(body, "externalNote", required=False) or "",
            source=_str(body, "source", required=False) or "",
        )
        return JSONResponse({"balanceHistoryId": change.id})

    async def balance_history(self, request: Request, manager: CTraderSimManager) -> Response:
        start, end = _query_time(request, "from"), _query_time(request, "to")
        external_id = request.query_params.get("externalId") or None
        changes = self.state.history(_login(request), start, end, external_id)
        return JSONResponse({"balanceHistory": [self._change(c) for c in changes]})

    def _change(self, change: SimBalanceChange) -> dict[str, Any]:
        digits = self.state.config.money_digits
        return {
            "balanceHistoryId": change.id,
            "login": change.login,
            "changeType": change.type,
            "delta": int(change.delta.scaleb(digits)),
            "balance": int(change.balance.scaleb(digits)),
            "moneyDigits": digits,
            "externalId": change.external_id,
            "comment": change.comment,
            "externalNote": change.external_note,
            "source": change.source,
            "changeTimestamp": change.time_ms,
        }

    async def closed_positions(self, request: Request, manager: CTraderSimManager) -> Response:
        start, end = _query_time(request, "from"), _query_time(request, "to")
        limit = timedelta(days=self.state.config.max_report_days) / timedelta(milliseconds=1)
        if end < start:
            raise _bad("to is before from")
        if end - start > limit:
            raise CTraderError(400, "INVALID_REQUEST", "from and to must be two days apart at most")
        digits = self.state.config.money_digits
        rows = self.state.closed_between(start, end, _query_int(request, "login"))
        return _csv(
            CLOSED_POSITION_HEADERS,
            [
                [
                    r.login,
                    r.position_id,
                    r.deal_id,
                    format_time(from_millis(r.open_ms)),
                    format_time(from_millis(r.close_ms)),
                    _num(r.entry_price),
                    _num(r.close_price),
                    r.direction,
                    _num(r.volume, 2),
                    r.symbol,
                    _num(r.commission, digits),
                    _num(r.swap, digits),
                    _num(r.pnl, digits),
                    "1",
                    "1",
                    "BOOK_B",
                    "0.00",
                    "false",
                ]
                for r in rows
            ],
        )

    async def open_positions(self, request: Request, manager: CTraderSimManager) -> Response:
        digits = self.state.config.money_digits
        rows = []
        for p in self.state.open_positions(_query_int(request, "login")):
            leverage = Decimal(self.state.trader(p.login).leverage_in_cents) / 100
            rows.append(
                [
                    p.login,
                    p.position_id,
                    format_time(from_millis(p.open_ms)),
                    _num(p.entry_price),
                    p.direction,
                    _num(p.volume, 2),
                    p.symbol,
                    _num(p.commission, digits),
                    _num(p.swap, digits),
                    "BOOK_B",
                    "0.00",
                    "false",
                    _num(p.volume * p.entry_price / leverage, digits),
                ]
            )
        return _csv(OPEN_POSITION_HEADERS, rows)

    async def trader_groups(self, request: Request, manager: CTraderSimManager) -> Response:
        groups = [
            {"id": g.id, "name": g.name, "description": g.description}
            for g in self.state.config.groups
        ]
        return JSONResponse({"traderGroup": groups})

    async def symbols(self, request: Request, manager: CTraderSimManager) -> Response:
        symbols = [
            {
                "id": index,
                "name": s.name,
                "description": s.name,
                "assetClass": "FOREX" if s.contract_size == 100_000 else "OTHER",
                "category": "",
                "quotesEnabled": True,
                "showInCtrader": True,
            }
            for index, s in enumerate(self.state.config.symbols, start=1)
        ]
        return JSONResponse({"symbol": symbols})


def create_ctrader_simulator(
    config: CTraderSimConfig | None = None, *, state: CTraderSimState | None = None
) -> Starlette:
    """The ASGI app. `app.state.ctrader` is the `CTraderSimState` behind it
    (`app.state.ctrader_api.state` may be swapped for a fresh one)."""
    state = state or CTraderSimState(config)
    api = CTraderWebServices(state)
    app = Starlette(routes=api.routes())
    app.state.ctrader = state
    app.state.ctrader_api = api
    return app
