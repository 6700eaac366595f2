"""The Broker API v1 as an ASGI app: API-key auth, the rate limit, REST routes, JSON errors."""

from __future__ import annotations

import hmac
import json
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fxcrm.adapters.simulators.matchtrader.config import MatchTraderSimConfig
from fxcrm.adapters.simulators.matchtrader.records import MtrError, parse_rfc3339
from fxcrm.adapters.simulators.matchtrader.state import MatchTraderSimState

Handler = Callable[[Request, dict[str, Any]], Any]


class RateLimiter:
    """Sliding 60-second window per API key, like the documented 500 requests/minute."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> float | None:
        """Counts this request; seconds to wait when it is over the limit, else None."""
        now = time.monotonic()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return hits[0] + self.window - now
        hits.append(now)
        return None


def _error(status: int, code: str, message: str, **headers: str) -> Response:
    body = {"status": status, "code": code, "message": message}
    return JSONResponse(body, status_code=status, headers=headers or None)


def _paged(rows: list[Any], request: Request, max_size: int) -> dict[str, Any]:
    """Spring-style page: `content`, `totalElements`, `totalPages`, `number`, `size`, ..."""
    page = max(_int(request.query_params.get("page"), 0, "page"), 0)
    size = min(max(_int(request.query_params.get("size"), 100, "size"), 1), max_size)
    content = rows[page * size : (page + 1) * size]
    total_pages = math.ceil(len(rows) / size) if rows else 0
    return {
        "content": content,
        "totalElements": len(rows),
        "totalPages": total_pages,
        "number": page,
        "size": size,
        "numberOfElements": len(content),
        "first": page == 0,
        "last": page >= total_pages - 1,
    }


def _int(value: object, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError as exc:
        raise MtrError(400, "INVALID_PARAMETER", f"{name} must be an integer") from exc


def _required(body: dict[str, Any], name: str) -> Any:
    value = body.get(name)
    if value is None or value == "":
        raise MtrError(400, "MISSING_PARAMETER", f"{name} is required")
    return value


def _amount(body: dict[str, Any]) -> Decimal:
    try:
        return Decimal(str(_required(body, "amount")))
    except InvalidOperation as exc:
        raise MtrError(400, "INVALID_AMOUNT", "amount must be a number") from exc


def _time(value: object, name: str) -> Any:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise MtrError(400, "INVALID_DATE", f"{name} must be an RFC 3339 string")
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise MtrError(400, "INVALID_DATE", f"{name} is not RFC 3339") from exc


def _list(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name) or []
    if not isinstance(value, list):
        raise MtrError(400, "INVALID_PARAMETER", f"{name} must be a list")
    return value


class BrokerApi:
    """Routes over a `MatchTraderSimState`; swap `state` (and the limiter) for a fresh one."""

    def __init__(self, state: MatchTraderSimState) -> None:
        self.state = state
        self.limiter = RateLimiter(state.config.rate_limit_per_minute)

    @property
    def config(self) -> MatchTraderSimConfig:
        return self.state.config

    def reset(self, state: MatchTraderSimState) -> None:
        self.state = state
        self.limiter = RateLimiter(state.config.rate_limit_per_minute)

    def _api_key(self, request: Request) -> str | None:
        """The key, bare or after `Bearer `, when it is one of the configured keys."""
        header = request.headers.get("authorization", "").strip()
        if header[:7].lower() == "bearer ":
            header = header[7:].strip()
        for key in self.config.api_keys:
            if header and hmac.compare_digest(header.encode(), key.encode()):
                return key
        return None

    def route(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            key = self._api_key(request)
            if key is None:
                return _error(401, "UNAUTHORIZED", "missing or invalid API key")
            wait = self.limiter.retry_after(key)
            if wait is not None:
                return _error(
                    429,
                    "TOO_MANY_REQUESTS",
                    "request limit exceeded",
                    **{"Retry-After": str(max(1, math.ceil(wait)))},
                )
            try:
                body = await _json_body(request)
                with self.state.lock:
                    self.state.settle()
                    result = handler(request, body)
            except MtrError as exc:
                return _error(exc.status, exc.code, exc.message)
            return JSONResponse(result)

        return endpoint

    # --- handlers ------------------------------------------------------------------------------

    def service_info(self, request: Request, body: dict[str, Any]) -> Any:
        return {
            "name": "fxcrm Match-Trader Broker API simulator",
            "version": "1.25",
            "status": "UP",
        }

    def offers(self, request: Request, body: dict[str, Any]) -> Any:
        rows = [self.state.offer_wire(o) for o in self.state.offers()]
        return _paged(rows, request, self.config.max_page_size)

    def gateways(self, request: Request, body: dict[str, Any]) -> Any:
        rows = [
            {"uuid": g.uuid, "name": g.name, "currency": g.currency, "type": "MANUAL"}
            for g in self.config.gateways
        ]
        return _paged(rows, request, self.config.max_page_size)

    def create_account(self, request: Request, body: dict[str, Any]) -> Any:
        personal = body.get("personalDetails") or {}
        if not isinstance(personal, dict):
            raise MtrError(400, "INVALID_PARAMETER", "personalDetails must be an object")
        account, trading = self.state.create_account(
            email=str(_required(body, "email")),
            password=str(_required(body, "password")),
            offer_uuid=str(_required(body, "offerUuid")),
            personal={str(k): str(v) for k, v in personal.items() if v is not None},
            external_id=body.get("externalId"),
        )
        return {
            **self.state.account_wire(account),
            "tradingAccount": self.state.trading_account_wire(trading),
        }

    def list_accounts(self, request: Request, body: dict[str, Any]) -> Any:
        accounts = self.state.search_accounts(request.query_params.get("query"))
        rows = [self.state.account_wire(a) for a in accounts]
        return _paged(rows, request, self.config.max_page_size)

    def account_by_email(self, request: Request, body: dict[str, Any]) -> Any:
        return self.state.account_wire(self.state.account_by_email(request.path_params["email"]))

    def account(self, request: Request, body: dict[str, Any]) -> Any:
        return self.state.account_wire(self.state.account(request.path_params["uuid"]))

    def account_trading_accounts(self, request: Request, body: dict[str, Any]) -> Any:
        account_uuid = request.path_params["uuid"]
        if request.method == "POST":
            trading = self.state.add_trading_account(
                account_uuid, str(_required(body, "offerUuid"))
            )
            return self.state.trading_account_wire(trading)
        rows = [
            self.state.trading_account_wire(t) for t in self.state.trading_accounts_of(account_uuid)
        ]
        return _paged(rows, request, self.config.max_page_size)

    def account_trading_account(self, request: Request, body: dict[str, Any]) -> Any:
        account_uuid = request.path_params["uuid"]
        login = _int(request.path_params["login"], 0, "login")
        if request.method == "PUT":
            trading = self.state.update_trading_account(
                account_uuid, login, access=body.get("access"), group=body.get("group")
            )
        else:
            trading = self.state.trading_account(login, account_uuid)
        return self.state.trading_account_wire(trading)

    def change_leverage(self, request: Request, body: dict[str, Any]) -> Any:
        login = _int(request.path_params["login"], 0, "login")
        leverage = _int(_required(body, "leverage"), 0, "leverage")
        trading = self.state.change_leverage(request.path_params["uuid"], login, leverage)
        return self.state.trading_account_wire(trading)

    def trading_account(self, request: Request, body: dict[str, Any]) -> Any:
        self.state.check_system(request.query_params.get("systemUuid"))
        login = _int(request.query_params.get("login"), 0, "login")
        return self.state.trading_account_wire(self.state.trading_account(login))

    def trading_accounts(self, request: Request, body: dict[str, Any]) -> Any:
        found = self.state.search_trading_accounts(request.query_params.get("query"))
        rows = [self.state.trading_account_wire(t) for t in found]
        return _paged(rows, request, self.config.max_page_size)

    def _manual(self, kind: str, body: dict[str, Any]) -> Any:
        self.state.check_system(_required(body, "systemUuid"))
        op = self.state.create_manual(
            kind,
            login=_int(_required(body, "login"), 0, "login"),
            gateway_uuid=str(_required(body, "paymentGatewayUuid")),
            amount=_amount(body),
            comment=str(body.get("comment") or ""),
        )
        return self.state.manual_wire(op)

    def deposit(self, request: Request, body: dict[str, Any]) -> Any:
        return self._manual("DEPOSIT", body)

    def withdrawal(self, request: Request, body: dict[str, Any]) -> Any:
        return self._manual("WITHDRAWAL", body)

    def _manual_list(self, kind: str, request: Request) -> Any:
        params = request.query_params
        ops = self.state.manual_list(
            kind,
            _time(params.get("from"), "from"),
            _time(params.get("to"), "to"),
            params.get("query"),
        )
        rows = [self.state.manual_wire(op) for op in ops]
        return _paged(rows, request, self.config.max_page_size)

    def deposits(self, request: Request, body: dict[str, Any]) -> Any:
        return self._manual_list("DEPOSIT", request)

    def withdrawals(self, request: Request, body: dict[str, Any]) -> Any:
        return self._manual_list("WITHDRAWAL", request)

    def _credit(self, kind: str, body: dict[str, Any]) -> Any:
        self.state.check_system(_required(body, "systemUuid"))
        entry = self.state.credit(
            kind,
            login=_int(_required(body, "login"), 0, "login"),
            amount=_amount(body),
            comment=str(body.get("comment") or ""),
        )
        return {
            **self.state.ledger_wire(entry),
            "status": "DONE",
            "created": self.state.ledger_wire(entry)["time"],
        }

    def credit_in(self, request: Request, body: dict[str, Any]) -> Any:
        return self._credit("CREDIT_IN", body)

    def credit_out(self, request: Request, body: dict[str, Any]) -> Any:
        return self._credit("CREDIT_OUT", body)

    def _limit(self, body: dict[str, Any]) -> int:
        limit = _int(body.get("limit"), self.config.max_page_size, "limit")
        return min(max(limit, 1), self.config.max_page_size)

    def _scope(self, body: dict[str, Any]) -> tuple[list[int], list[str]]:
        self.state.check_system(_required(body, "systemUuid"))
        logins = [_int(v, 0, "logins") for v in _list(body, "logins")]
        groups = [str(g) for g in _list(body, "groups")]
        return logins, groups

    def closed_positions(self, request: Request, body: dict[str, Any]) -> Any:
        logins, groups = self._scope(body)
        rows = self.state.closed_position_list(
            logins=logins,
            groups=groups,
            start=_time(body.get("from"), "from"),
            end=_time(body.get("to"), "to"),
            limit=self._limit(body),
        )
        content = [self.state.closed_position_wire(r) for r in rows]
        return {"content": content, "totalElements": len(content)}

    def open_positions(self, request: Request, body: dict[str, Any]) -> Any:
        logins, groups = self._scope(body)
        content = [
            self.state.position_wire(p) for p in self.state.open_position_list(logins, groups)
        ]
        return {"content": content, "totalElements": len(content)}

    def ledgers(self, request: Request, body: dict[str, Any]) -> Any:
        logins, _groups = self._scope(body)
        entries = self.state.ledger_list(
            types=[str(t) for t in _list(body, "types")],
            logins=logins,
            start=_time(body.get("from"), "from"),
            end=_time(body.get("to"), "to"),
            limit=self._limit(body),
        )
        content = [self.state.ledger_wire(e) for e in entries]
        return {"content": content, "totalElements": len(content)}


async def _json_body(request: Request) -> dict[str, Any]:
    if request.method not in ("POST", "PUT", "PATCH"):
        return {}
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise MtrError(400, "INVALID_JSON", "body is not JSON") from exc
    if not isinstance(data, dict):
        raise MtrError(400, "INVALID_JSON", "body must be a JSON object")
    return data


def create_matchtrader_simulator(
    config: MatchTraderSimConfig | None = None, *, state: MatchTraderSimState | None = None
) -> Starlette:
    """The ASGI app. `app.state.matchtrader` is the state behind it; `app.state.matchtrader_api`
    may be given a fresh one (`BrokerApi.reset`)."""
    state = state or MatchTraderSimState(config)
    api = BrokerApi(state)
    r = api.route
    accounts = "/v1/accounts/{uuid}"
    trading_data = "/v1/trading-accounts/trading-data"
    routes = [
        Route("/service-info", r(api.service_info), methods=["GET"]),
        Route("/v1/offers", r(api.offers), methods=["GET"]),
        Route("/v1/payment-gateways", r(api.gateways), methods=["GET"]),
        Route("/v1/accounts", r(api.create_account), methods=["POST"]),
        Route("/v1/accounts", r(api.list_accounts), methods=["GET"]),
        Route("/v1/accounts/by-email/{email}", r(api.account_by_email), methods=["GET"]),
        Route(accounts, r(api.account), methods=["GET"]),
        Route(
            f"{accounts}/trading-accounts",
            r(api.account_trading_accounts),
            methods=["GET", "POST"],
        ),
        Route(
            f"{accounts}/trading-accounts/{{login}}",
            r(api.account_trading_account),
            methods=["GET", "PUT"],
        ),
        Route(
            f"{accounts}/trading-accounts/{{login}}/change-leverage",
            r(api.change_leverage),
            methods=["PUT"],
        ),
        Route("/v1/trading-account", r(api.trading_account), methods=["GET"]),
        Route("/v1/trading-accounts", r(api.trading_accounts), methods=["GET"]),
        Route("/v1/deposits/manual", r(api.deposit), methods=["POST"]),
        Route("/v1/withdrawals/manual", r(api.withdrawal), methods=["POST"]),
        Route("/v1/deposits", r(api.deposits), methods=["GET"]),
        Route("/v1/withdrawals", r(api.withdrawals), methods=["GET"]),
        Route("/v1/credit-in", r(api.credit_in), methods=["POST"]),
        Route("/v1/credit-out", r(api.credit_out), methods=["POST"]),
        Route(f"{trading_data}/closed-positions", r(api.closed_positions), methods=["POST"]),
        Route(f"{trading_data}/open-positions", r(api.open_positions), methods=["POST"]),
        Route(f"{trading_data}/ledgers", r(api.ledgers), methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.matchtrader = state
    app.state.matchtrader_api = api
    return app
