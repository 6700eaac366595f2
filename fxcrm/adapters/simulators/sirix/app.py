"""The Leverate REST API as an ASGI app: POST-only JSON, a Bearer token, method dispatch."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fxcrm.adapters.simulators.sirix import protocol as p
from fxcrm.adapters.simulators.sirix.config import SirixSimConfig
from fxcrm.adapters.simulators.sirix.state import SirixSimState
from fxcrm.adapters.simulators.sirix.wire import (
    Params,
    closed_record,
    open_record,
    to_json,
    transaction_record,
    user_record,
    wire_time,
)

# An answer, or None for 204 No Content.
Handler = Callable[[SirixSimState, Params], dict[str, Any] | None]
HANDLERS: dict[tuple[str, str], Handler] = {}


def handler(service: str, *methods: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        for method in methods:
            HANDLERS[(service.lower(), method.lower())] = func
        return func

    return register


# --- ManagementService ------------------------------------------------------------------------

MS = "ManagementService"


@handler(MS, "Ping")
def _ping(state: SirixSimState, params: Params) -> dict[str, Any]:
    return {"Result": "Pong"}


@handler(MS, "GetPlatformTime")
def _platform_time(state: SirixSimState, params: Params) -> dict[str, Any]:
    return {"PlatformTime": wire_time(state, state.clock()), "TimeZone": state.config.timezone}


@handler(MS, "VerifyUser")
def _verify_user(state: SirixSimState, params: Params) -> dict[str, Any]:
    result = state.verify_user(params.integer("userID"), params.text("password"))
    return {"UserVerificationResult": result}


@handler(MS, "GetUser")
def _get_user(state: SirixSimState, params: Params) -> dict[str, Any]:
    return {"User": user_record(state, state.user(params.integer("userID")))}


@handler(MS, "GetAllUsers")
def _all_users(state: SirixSimState, params: Params) -> dict[str, Any]:
    groups = params.strings("groups") if params.has("groups") else None
    return {"Users": [user_record(state, u) for u in state.users_in(groups)]}


@handler(MS, "GetAllGroups")
def _all_groups(state: SirixSimState, params: Params) -> dict[str, Any]:
    groups = [
        {
            "GroupName": g.name,
            "Currency": g.currency,
            "MaxLeverage": g.max_leverage,
            "DefaultLeverage": g.default_leverage,
        }
        for g in state.config.groups
    ]
    return {"Groups": groups}


@handler(MS, "DisableUser")
def _disable_user(state: SirixSimState, params: Params) -> None:
    state.disable_user(params.integer("userID"))


@handler(MS, "GetAccountBalance")
def _account_balance(state: SirixSimState, params: Params) -> dict[str, Any]:
    return {"AccountBalance": state.account(params.integer("userID"))}


def _money_op(state: SirixSimState, params: Params, sign: int) -> dict[str, Any]:
    amount = params.decimal("amount")
    if amount <= 0:
        raise p.SirixError(p.INVALID_AMOUNT, "amount must be positive")
    row = state.balance_op(
        params.integer("userID"),
        amount * sign,
        params.text("comment"),
        params.optional_int("subType") or 0,
    )
    return {"OrderID": row.order_id}


@handler(MS, "DepositBalanceWithResult")
def _deposit(state: SirixSimState, params: Params) -> dict[str, Any]:
    return _money_op(state, params, 1)


@handler(MS, "WithdrawBalanceWithResult")
def _withdraw(state: SirixSimState, params: Params) -> dict[str, Any]:
    return _money_op(state, params, -1)


@handler(MS, "GetUserVolume")
def _user_volume(state: SirixSimState, params: Params) -> dict[str, Any]:
    user_id = state.user(params.integer("userID")).user_id
    lots = sum((r.lots for r in state.closed_positions if r.user_id == user_id), Decimal(0))
    return {"UserVolume": lots * 100_000}


@handler(MS, "GetOpenPositionsForUser")
def _open_for_user(state: SirixSimState, params: Params) -> dict[str, Any]:
    user_id = state.user(params.integer("userID")).user_id
    return {"OpenPositions": [open_record(state, r) for r in state.open_positions_of([user_id])]}


def _group_users(state: SirixSimState, params: Params) -> list[int]:
    groups = params.strings("groups")
    for name in groups:
        state.group(name)  # unknown groups are refused
    return [u.user_id for u in state.users_in(groups)]


@handler(MS, "GetOpenPositionsForGroups")
def _open_for_groups(state: SirixSimState, params: Params) -> dict[str, Any]:
    rows = state.open_positions_of(_group_users(state, params))
    return {"OpenPositions": [open_record(state, r) for r in rows]}


def _closed(state: SirixSimState, params: Params, user_ids: list[int] | None) -> dict[str, Any]:
    start = params.local_time("startTime", state)
    end = params.local_time("endTime", state)
    rows = state.closed_positions_of(user_ids, start, end)
    return {"ClosedPositions": [closed_record(state, r) for r in rows]}


@handler(MS, "GetClosedPositionsForUser")
def _closed_for_user(state: SirixSimState, params: Params) -> dict[str, Any]:
    return _closed(state, params, [state.user(params.integer("userID")).user_id])


@handler(MS, "GetClosedPositionsForGroups")
def _closed_for_groups(state: SirixSimState, params: Params) -> dict[str, Any]:
    return _closed(state, params, _group_users(state, params))


# Sic: Leverate's own spelling; the correct one is not a route on the real server either.
@handler(MS, "GetClosedPoistions")
def _closed_all(state: SirixSimState, params: Params) -> dict[str, Any]:
    return _closed(state, params, None)


def _instrument(spec: Any) -> dict[str, Any]:
    return {"Symbol": spec.name, "Digits": spec.digits, "ContractSize": spec.contract_size}


@handler(MS, "GetAllInstruments")
def _instruments(state: SirixSimState, params: Params) -> dict[str, Any]:
    return {"Instruments": [_instrument(s) for s in state.config.symbols]}


@handler(MS, "GetInstrument")
def _get_instrument(state: SirixSimState, params: Params) -> dict[str, Any]:
    name = params.text("instrumentName") or params.text("symbol")
    found = next((s for s in state.config.symbols if s.name == name), None)
    if found is None:
        raise p.SirixError(p.INVALID_REQUEST, f"Unknown instrument {name}")
    return {"Instrument": _instrument(found)}


# --- UserActions ------------------------------------------------------------------------------

UA = "UserActions"
DETAIL_KEYS = [
    "Phone",
    "Email",
    "Source",
    "Comment",
    "Country",
    "State",
    "City",
    "Address",
    "ZipCode",
]


@handler(UA, "CreateUser")
def _create_user(state: SirixSimState, params: Params) -> dict[str, Any]:
    details = params.obj("UserDetails")
    passwords = params.obj("Passwords")
    margin = params.obj("MarginRequirements")
    deposit = params.obj("InitialDepositRequestDetails")
    full_name = params.text("FullName") or details.text("FullName")
    user = state.create_user(
        group=params.text("GroupName"),
        full_name=full_name,
        password=passwords.get("Password"),
        investor_password=passwords.get("InvestorPassword"),
        leverage=margin.optional_int("Leverage"),
        currency=params.text("Currency") or None,
        details={key: details.text(key) for key in DETAIL_KEYS if details.has(key)},
        tradability=params.text("Tradability", "Tradable"),
        trading_state=params.text("TradingState", "Enabled"),
        margin_coefficient=margin.decimal("MarginCoefficient", Decimal(1)),
        use_account_margin=margin.optional_bool("UseAccountMarginRequirements") is not False,
        initial_deposit=deposit.decimal("Balance", Decimal(0)),
        initial_comment=deposit.text("InitialDepositComment"),
    )
    return {"User": {"UserID": user.user_id}}


@handler(UA, "UpdateUser")
def _update_user(state: SirixSimState, params: Params) -> None:
    passwords = params.obj("Passwords")
    margin = params.obj("MarginRequirements")
    details = params.obj("UserDetails")
    new_passwords = {
        kind: passwords.get(key)
        for kind, key in (("main", "Password"), ("investor", "InvestorPassword"))
        if passwords.has(key)
    }
    state.update_user(
        params.integer("UserID"),
        group=params.text("GroupName") or None,
        leverage=margin.optional_int("Leverage"),
        passwords=new_passwords,
        is_enabled=params.optional_bool("IsEnabled"),
        disable_trading=params.optional_bool("DisableTrading"),
        tradability=params.text("Tradability") or None,
        trading_state=params.text("TradingState") or None,
        full_name=params.text("FullName") or None,
        details={
            key: details.text(key) for key in ("Phone", "Email", "Comment") if details.has(key)
        },
        margin_coefficient=(
            margin.decimal("MarginCoefficient") if margin.has("MarginCoefficient") else None
        ),
        use_account_margin=margin.optional_bool("UseAccountMarginRequirements"),
    )


# --- UserStatus -------------------------------------------------------------------------------


@handler("UserStatus", "GetUserTransactions")
def _user_transactions(state: SirixSimState, params: Params) -> dict[str, Any]:
    user = state.user(params.integer("UserID"))
    wanted = {
        name: params.optional_bool(name) is not False
        for name in (
            "GetOpenPositions",
            "GetPendingPositions",
            "GetClosePositions",
            "GetMonetaryTransactions",
        )
    }
    closed = [r for r in state.closed_positions if r.user_id == user.user_id]
    return {
        "UserData": {**user_record(state, user), "AccountBalance": state.account(user.user_id)},
        "OpenPositions": [open_record(state, r) for r in state.open_positions_of([user.user_id])]
        if wanted["GetOpenPositions"]
        else [],
        "PendingOrders": [],  # the simulator has no pending orders
        "ClosedPositions": [closed_record(state, r) for r in closed]
        if wanted["GetClosePositions"]
        else [],
        "MonetaryTransactions": [
            transaction_record(state, r) for r in state.transactions_of(user.user_id)
        ]
        if wanted["GetMonetaryTransactions"]
        else [],
    }


# --- the app ----------------------------------------------------------------------------------


def _json(payload: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(to_json(payload), ensure_ascii=False),
        status_code=status,
        media_type="application/json",
    )


def _error(exc: p.SirixError) -> Response:
    response = _json(exc.body(), exc.status)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    elif exc.status == 405:
        response.headers["Allow"] = "POST"
    return response


class SirixRestApi:
    def __init__(self, state: SirixSimState) -> None:
        self.state = state

    async def endpoint(self, request: Request) -> Response:
        if request.method != "POST":
            return _error(p.SirixError(p.METHOD_NOT_ALLOWED, "Only POST is supported"))
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not self.state.token_ok(token.strip()):
            return _error(p.SirixError(p.UNAUTHORIZED, "Authorization has been denied"))
        key = (request.path_params["service"].lower(), request.path_params["method"].lower())
        func = HANDLERS.get(key)
        if func is None:
            name = f"{request.path_params['service']}/{request.path_params['method']}"
            return _error(p.SirixError(p.UNKNOWN_METHOD, f"No method {name}"))
        if self.state.fail_requests > 0:
            self.state.fail_requests -= 1
            return _error(p.SirixError(p.SERVICE_UNAVAILABLE, "Service is temporarily down"))
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return _error(p.SirixError(p.INVALID_REQUEST, "The body is not valid JSON"))
        try:
            params = Params(body)
            with self.state.lock:
                answer = func(self.state, params)
        except p.SirixError as exc:
            return _error(exc)
        if answer is None:
            return Response(status_code=204)
        return _json(answer)


def create_sirix_simulator(
    config: SirixSimConfig | None = None, *, state: SirixSimState | None = None
) -> Starlette:
    """The ASGI app. `app.state.sirix` is the `SirixSimState` behind it (`app.state.sirix_api.state`
    may be swapped for a fresh one)."""
    state = state or SirixSimState(config)
    api = SirixRestApi(state)
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(routes=[Route("/api/{service}/{method}", api.endpoint, methods=methods)])
    app.state.sirix = state
    app.state.sirix_api = api
    return app
