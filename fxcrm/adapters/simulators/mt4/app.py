"""The bridge contract (docs/mt4-bridge.md) as an ASGI app: signed requests, sessions, routes."""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fxcrm.adapters.platforms.mt4 import (
    CONTRACT,
    HEADER_IDEMPOTENCY,
    HEADER_KEY_ID,
    HEADER_REPLAYED,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    TT_BR_BALANCE,
    sign,
)
from fxcrm.adapters.simulators.mt4.config import (
    RIGHT_MONEY,
    RIGHT_READ,
    RIGHT_USERS,
    Mt4SimConfig,
    Mt4SimKey,
)
from fxcrm.adapters.simulators.mt4.protocol import BridgeError
from fxcrm.adapters.simulators.mt4.records import to_wire
from fxcrm.adapters.simulators.mt4.state import Mt4SimState

MAX_PAGE = 1000
DEFAULT_PAGE = 100

Handler = Callable[["Call"], Awaitable[Any]]


class Call:
    """One authenticated request: the state, the key, the parsed body and query."""

    def __init__(self, state: Mt4SimState, key: Mt4SimKey, request: Request, body: Any) -> None:
        self.state = state
        self.key = key
        self.request = request
        self.body = body
        self.status = 200
        self.headers: dict[str, str] = {}

    def fields(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise BridgeError("BRIDGE_BAD_REQUEST", "a JSON object body is required")
        return self.body

    def login(self) -> int:
        return int(self.request.path_params["login"])

    def query_int(self, name: str, default: int | None = None) -> int:
        raw = self.request.query_params.get(name)
        if raw is None or raw == "":
            if default is None:
                raise BridgeError("BRIDGE_BAD_REQUEST", f"query parameter {name} is required")
            return default
        try:
            return int(raw)
        except ValueError:
            raise BridgeError("BRIDGE_BAD_REQUEST", f"{name}: an integer") from None

    def scope(self) -> tuple[list[int] | None, str | None]:
        """`login=1,2,3` or `group=mask` (one of them)."""
        logins_raw = self.request.query_params.get("login")
        group = self.request.query_params.get("group")
        if logins_raw and group:
            raise BridgeError("BRIDGE_BAD_REQUEST", "login or group, not both")
        if logins_raw:
            try:
                return [int(x) for x in logins_raw.split(",") if x.strip()], None
            except ValueError:
                raise BridgeError("BRIDGE_BAD_REQUEST", "login: comma-separated integers") from None
        return None, group or "*"


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(to_wire(payload), ensure_ascii=False),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _error(error: BridgeError) -> Response:
    return _json(error.payload(), error.status)


class Mt4Bridge:
    """Authentication (HMAC), rights, the manager session, then the operation."""

    def __init__(self, state: Mt4SimState) -> None:
        self.state = state

    def route(
        self,
        path: str,
        method: str,
        handler: Handler,
        right: str,
        *,
        session: bool = True,
    ) -> Route:
        async def endpoint(request: Request) -> Response:
            state = self.state  # one state for the whole request, even if swapped meanwhile
            try:
                raw = await request.body()
                key = self._authenticate(state.config, request, raw)
                if right not in key.rights:
                    raise BridgeError("RET_NOT_ENOUGH_RIGHTS", f"key lacks the {right!r} right")
                if session and not state.touch_session(key.key_id):
                    raise BridgeError(
                        "BRIDGE_SESSION_EXPIRED", "manager session expired: POST /v1/session"
                    )
                body = _parse(raw)
                call = Call(state, key, request, body)
                answer = await handler(call)
            except BridgeError as exc:
                return _error(exc)
            return _json(answer, call.status, call.headers)

        return Route(path, endpoint, methods=[method])

    @staticmethod
    def _authenticate(config: Mt4SimConfig, request: Request, body: bytes) -> Mt4SimKey:
        """401 for an unknown key, a bad signature or a timestamp outside the skew window."""
        key_id = request.headers.get(HEADER_KEY_ID, "")
        timestamp = request.headers.get(HEADER_TIMESTAMP, "")
        signature = request.headers.get(HEADER_SIGNATURE, "")
        key = next((k for k in config.keys if k.key_id == key_id), None)
        if key is None:
            raise BridgeError("BRIDGE_AUTH", "unknown key")
        try:
            skew = abs(time.time() - int(timestamp))
        except ValueError:
            raise BridgeError("BRIDGE_AUTH", "timestamp: unix seconds") from None
        if skew > config.max_skew_seconds:
            raise BridgeError("BRIDGE_AUTH", "timestamp outside the allowed window")
        expected = sign(key.secret, request.method, _target(request), timestamp, body)
        if not hmac.compare_digest(signature.lower(), expected):
            raise BridgeError("BRIDGE_AUTH", "bad signature")
        return key


def _target(request: Request) -> bytes:
    """The request target as sent: raw (percent-encoded) path, then `?query` if any."""
    scope = request.scope
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    return path + (b"?" + query if query else b"")


def _parse(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        # Amounts as Decimal from their text: no binary rounding on the way in.
        return json.loads(raw, parse_float=Decimal)
    except ValueError:
        raise BridgeError("BRIDGE_BAD_REQUEST", "body is not JSON") from None


# --- operations ----------------------------------------------------------------------------


def _server_info(call: Call) -> dict[str, Any]:
    config = call.state.config
    return {
        "contract": CONTRACT,
        "name": config.server_name,
        "company": config.company,
        "build": config.build,
        "time": call.state.server_now(),
        "utc_offset_seconds": call.state.utc_offset_seconds,
        "session_timeout_seconds": config.session_timeout_seconds,
    }


async def get_server(call: Call) -> Any:
    return _server_info(call)


async def open_session(call: Call) -> Any:
    call.state.open_session(call.key.key_id)
    return {**_server_info(call), "manager": call.key.manager_login}


async def close_session(call: Call) -> Any:
    call.state.end_session(call.key.key_id)
    return {}


async def ping(call: Call) -> Any:
    return {"time": call.state.server_now()}


async def list_groups(call: Call) -> Any:
    groups = [
        {
            "group": g.name,
            "enable": g.enable,
            "currency": g.currency,
            "default_leverage": g.default_leverage,
            "max_leverage": g.max_leverage,
            "margin_call": g.margin_call,
            "margin_stopout": g.margin_stopout,
            "margin_type": 0,
        }
        for g in call.state.config.groups
    ]
    return {"groups": groups}


async def list_users(call: Call) -> Any:
    params = call.request.query_params
    users = call.state.users_in(params.get("group") or "*", id_=params.get("id"))
    return {"users": [u.wire() for u in users]}


async def create_user(call: Call) -> Any:
    call.status = 201
    return call.state.create_user(call.fields()).wire()


async def get_user(call: Call) -> Any:
    return call.state.user(call.login()).wire()


async def update_user(call: Call) -> Any:
    return call.state.update_user(call.login(), call.fields()).wire()


async def set_password(call: Call) -> Any:
    fields = call.fields()
    investor = fields.get("investor", False)
    if not isinstance(investor, bool):
        raise BridgeError("BRIDGE_BAD_REQUEST", "investor: true or false")
    call.state.set_password(call.login(), fields.get("password"), investor=investor)
    return {}


async def get_margin(call: Call) -> Any:
    return call.state.margin_level(call.login())


async def list_margins(call: Call) -> Any:
    state = call.state
    mask = call.request.query_params.get("group") or "*"
    with state.lock:
        return {"margins": [state.margin_level(u.login) for u in state.users_in(mask)]}


async def balance(call: Call) -> Any:
    key = call.request.headers.get(HEADER_IDEMPOTENCY, "")
    if not 1 <= len(key) <= 31:
        raise BridgeError("BRIDGE_BAD_REQUEST", "Idempotency-Key header of 1..31 characters")
    info = call.fields()
    if info.get("type") != TT_BR_BALANCE:
        raise BridgeError("RET_INVALID_DATA", "type must be 83 (TT_BR_BALANCE)")
    price = info.get("price")
    if isinstance(price, bool) or not isinstance(price, int | Decimal):
        raise BridgeError("RET_INVALID_DATA", "price: the signed amount")
    login, cmd = info.get("orderby"), info.get("cmd")
    if not isinstance(login, int) or not isinstance(cmd, int):
        raise BridgeError("RET_INVALID_DATA", "orderby and cmd: integers")
    comment = info.get("comment") or ""
    if not isinstance(comment, str):
        raise BridgeError("RET_INVALID_DATA", "comment: text")
    record, replayed = call.state.balance_transaction(login, cmd, Decimal(price), comment, key)
    call.status = 200 if replayed else 201
    call.headers[HEADER_REPLAYED] = "true" if replayed else "false"
    return record.wire()


async def history(call: Call) -> Any:
    logins, mask = call.scope()
    start, end = call.query_int("from"), call.query_int("to")
    offset = max(0, call.query_int("offset", 0))
    limit = min(MAX_PAGE, max(1, call.query_int("limit", DEFAULT_PAGE)))
    trades = call.state.closed_trades(
        logins=logins, mask=None if logins else mask, start=start, end=end
    )
    page = trades[offset : offset + limit]
    return {
        "total": len(trades),
        "offset": offset,
        "limit": limit,
        "trades": [t.wire() for t in page],
    }


async def open_trades(call: Call) -> Any:
    logins, mask = call.scope()
    trades = call.state.open_trades(logins=logins, mask=None if logins else mask)
    return {"trades": [t.wire() for t in trades]}


def create_mt4_simulator(
    config: Mt4SimConfig | None = None, *, state: Mt4SimState | None = None
) -> Starlette:
    """The ASGI app. `app.state.mt4` is the `Mt4SimState` (`app.state.mt4_api.state` may be
    swapped for a fresh one)."""
    state = state or Mt4SimState(config)
    api = Mt4Bridge(state)
    routes = [
        api.route("/v1/server", "GET", get_server, RIGHT_READ, session=False),
        api.route("/v1/session", "POST", open_session, RIGHT_READ, session=False),
        api.route("/v1/session", "DELETE", close_session, RIGHT_READ, session=False),
        api.route("/v1/ping", "POST", ping, RIGHT_READ),
        api.route("/v1/groups", "GET", list_groups, RIGHT_READ),
        api.route("/v1/users", "GET", list_users, RIGHT_READ),
        api.route("/v1/users", "POST", create_user, RIGHT_USERS),
        api.route("/v1/users/{login:int}", "GET", get_user, RIGHT_READ),
        api.route("/v1/users/{login:int}", "PATCH", update_user, RIGHT_USERS),
        api.route("/v1/users/{login:int}/password", "POST", set_password, RIGHT_USERS),
        api.route("/v1/users/{login:int}/margin", "GET", get_margin, RIGHT_READ),
        api.route("/v1/margins", "GET", list_margins, RIGHT_READ),
        api.route("/v1/trades/balance", "POST", balance, RIGHT_MONEY),
        api.route("/v1/trades/history", "GET", history, RIGHT_READ),
        api.route("/v1/trades/open", "GET", open_trades, RIGHT_READ),
    ]
    app = Starlette(routes=routes)
    app.state.mt4 = state
    app.state.mt4_api = api
    return app
