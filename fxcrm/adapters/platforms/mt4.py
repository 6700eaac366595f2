"""MT4 bridge client: fxcrm's REST contract (docs/mt4-bridge.md) in front of the MT4 Manager API.

MT4 has no web API, so brokers run a bridge sidecar on the Manager API DLL. Every request is signed
(HMAC-SHA256); the bridge keeps a manager session per key that lapses when idle and answers 440
until the client opens it again, which this client does transparently (a 440 guarantees nothing
ran, so the retry is always safe). Units are converted here: `volume` (1/100 lot) to lots, server
time to UTC, doubles to Decimal via their JSON text.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx

from fxcrm.adapters.platforms.base import (
    BALANCE,
    CREDIT,
    AccessLevel,
    AccountState,
    BalanceOpKind,
    BalanceOpResult,
    ClosedDeal,
    NewAccountSpec,
    OpenPosition,
    PlatformAccountRef,
    PlatformBalanceOp,
    PlatformError,
    PlatformErrorKind,
)
from fxcrm.adapters.platforms.tls import ssl_verify

CONTRACT = "fxcrm-mt4-bridge/1"
API_PREFIX = "/v1"

# Request headers of the contract.
HEADER_KEY_ID = "X-Bridge-Key"
HEADER_TIMESTAMP = "X-Bridge-Timestamp"
HEADER_SIGNATURE = "X-Bridge-Signature"
HEADER_IDEMPOTENCY = "Idempotency-Key"
HEADER_REPLAYED = "Idempotent-Replayed"
MAX_SKEW_SECONDS = 300
STATUS_SESSION_EXPIRED = 440

# Manager API values.
TT_BR_BALANCE = 83
OP_BUY, OP_SELL, OP_BALANCE, OP_CREDIT = 0, 1, 6, 7
COMMENT_MAX = 31  # TradeRecord.comment is char[32]
USER_ID_MAX = 31  # UserRecord.id is char[32]
LOTS_PER_VOLUME = Decimal(100)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# kind -> (cmd, sign). MT4 has no bonus operation: brokers book bonuses as credit.
_BALANCE_CMDS: dict[BalanceOpKind, tuple[int, int]] = {
    BalanceOpKind.DEPOSIT: (OP_BALANCE, 1),
    BalanceOpKind.WITHDRAW: (OP_BALANCE, -1),
    BalanceOpKind.CREDIT_IN: (OP_CREDIT, 1),
    BalanceOpKind.CREDIT_OUT: (OP_CREDIT, -1),
    BalanceOpKind.BONUS: (OP_CREDIT, 1),
}

# error.code -> the common meaning (HTTP status decides the rest).
ERROR_KINDS: dict[str, PlatformErrorKind] = {
    "BRIDGE_NOT_FOUND": PlatformErrorKind.NOT_FOUND,
    "BRIDGE_UNKNOWN_GROUP": PlatformErrorKind.UNKNOWN_GROUP,
    "BRIDGE_INVALID_LEVERAGE": PlatformErrorKind.INVALID_LEVERAGE,
    "BRIDGE_BAD_REQUEST": PlatformErrorKind.INVALID_REQUEST,
    "BRIDGE_CONFLICT": PlatformErrorKind.CONFLICT,
    "BRIDGE_IDEMPOTENCY_CONFLICT": PlatformErrorKind.CONFLICT,
    "BRIDGE_AUTH": PlatformErrorKind.AUTH,
    "BRIDGE_SESSION_EXPIRED": PlatformErrorKind.UNAVAILABLE,
    "RET_ERROR": PlatformErrorKind.ERROR,
    "RET_INVALID_DATA": PlatformErrorKind.INVALID_REQUEST,
    "RET_TECH_PROBLEM": PlatformErrorKind.UNAVAILABLE,
    "RET_NO_CONNECT": PlatformErrorKind.UNAVAILABLE,
    "RET_NOT_ENOUGH_RIGHTS": PlatformErrorKind.PERMISSION,
    "RET_TOO_FREQUENT": PlatformErrorKind.RATE_LIMITED,
    "RET_MALFUNCTION": PlatformErrorKind.UNAVAILABLE,
    "RET_ACCOUNT_DISABLED": PlatformErrorKind.INVALID_REQUEST,
    "RET_TRADE_TIMEOUT": PlatformErrorKind.UNAVAILABLE,
    "RET_TRADE_DISABLE": PlatformErrorKind.INVALID_REQUEST,
    "RET_TRADE_NO_MONEY": PlatformErrorKind.INSUFFICIENT_FUNDS,
}
_STATUS_KINDS = {
    400: PlatformErrorKind.INVALID_REQUEST,
    401: PlatformErrorKind.AUTH,
    403: PlatformErrorKind.PERMISSION,
    404: PlatformErrorKind.NOT_FOUND,
    409: PlatformErrorKind.CONFLICT,
    422: PlatformErrorKind.INVALID_REQUEST,
    429: PlatformErrorKind.RATE_LIMITED,
}


def string_to_sign(method: str, target: bytes, timestamp: str, body: bytes) -> bytes:
    """METHOD, request target (raw path and query, as sent), timestamp, body: newline-joined."""
    return b"\n".join([method.upper().encode(), target, timestamp.encode(), body])


def sign(secret: str, method: str, target: bytes, timestamp: str, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of `string_to_sign` with the key's secret."""
    message = string_to_sign(method, target, timestamp, body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def client_key(client_id: str) -> str:
    """fxcrm's client id as kept in `UserRecord.id` (char[32]: 31 characters).

    fxcrm ids are UUIDs (32 hex digits), one too many, so a UUID is stored as `u:` plus its 22
    base64url characters; anything else of at most 31 characters is stored as it is.
    """
    try:
        raw = uuid.UUID(client_id).bytes
    except ValueError:
        if len(client_id) > USER_ID_MAX:
            raise ValueError("client id longer than the 31 characters of UserRecord.id") from None
        return client_id
    return "u:" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def client_id_from_key(value: str) -> str | None:
    """Reverse of `client_key`: a UUID comes back as 32 hex digits (fxcrm's id form)."""
    if not value:
        return None
    if value.startswith("u:") and len(value) == 24:
        try:
            return uuid.UUID(bytes=base64.urlsafe_b64decode(value[2:] + "==")).hex
        except (ValueError, binascii.Error):
            return value
    return value


def access_of(user: Mapping[str, Any]) -> AccessLevel:
    # MT4 has one switch against trading (read-only), so NO_TRADING reads back as READ_ONLY.
    if not _int(user.get("enable", 0)):
        return AccessLevel.DISABLED
    if _int(user.get("enable_read_only", 0)):
        return AccessLevel.READ_ONLY
    return AccessLevel.FULL


def access_fields(access: AccessLevel) -> dict[str, int]:
    if access is AccessLevel.DISABLED:
        return {"enable": 0}
    if access is AccessLevel.FULL:
        return {"enable": 1, "enable_read_only": 0}
    return {"enable": 1, "enable_read_only": 1}


class Mt4BridgeClient:
    """`TradingPlatformGateway` for one MT4 bridge and one API key."""

    platform = "mt4"
    # Charged at the opening, reported again on the closed TradeRecord (see base.py).
    open_commission_reported_on_close = True

    def __init__(
        self,
        base_url: str,
        key_id: str,
        secret: str,
        *,
        verify: bool | str | Path = True,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
        page_size: int = 500,
        client_search_group: str = "*",
    ) -> None:
        self._key_id = key_id
        self._secret = secret
        self._page_size = page_size
        self._client_search_group = client_search_group
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            verify=ssl_verify(verify),
            timeout=timeout,
            transport=transport,
        )
        self._session_lock = asyncio.Lock()
        self._generation = 0
        self._session: int | None = None
        self._offset = timedelta(0)  # server time minus UTC, from the session answer
        self._currencies: dict[str, str] = {}

    async def __aenter__(self) -> Mt4BridgeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- transport -------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, object] | None = None,
        body: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        content = b"" if body is None else json.dumps(body, default=_json_default).encode()
        request = self._http.build_request(
            method,
            API_PREFIX + path,
            params={k: str(v) for k, v in (params or {}).items()},
            content=content,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        timestamp = str(int(time.time()))
        request.headers[HEADER_KEY_ID] = self._key_id
        request.headers[HEADER_TIMESTAMP] = timestamp
        request.headers[HEADER_SIGNATURE] = sign(
            self._secret, method, request.url.raw_path, timestamp, content
        )
        try:
            return await self._http.send(request)
        except httpx.TimeoutException as exc:
            raise PlatformError(
                f"MT4 bridge {method} {path}: timeout",
                code="timeout",
                kind=PlatformErrorKind.UNAVAILABLE,
            ) from exc
        except httpx.TransportError as exc:
            raise PlatformError(
                f"MT4 bridge {method} {path}: connection failed: {exc!r}",
                code="network",
                kind=PlatformErrorKind.UNAVAILABLE,
            ) from exc

    async def _open_session(self, stale: int | None) -> int:
        """The live session's generation; opens one when there is none or it is the stale one."""
        async with self._session_lock:
            if self._session is None or self._session == stale:
                self._session = None
                answer = _decode(await self._send("POST", "/session"), "POST /session")
                self._offset = timedelta(seconds=_int(answer.get("utc_offset_seconds", 0)))
                self._generation += 1
                self._session = self._generation
            return self._session

    async def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, object] | None = None,
        body: object = None,
        headers: Mapping[str, str] | None = None,
        *,
        resend_safe: bool | None = None,
    ) -> Any:
        """One request in the session: re-opens the session once on 440 (nothing ran then), and
        resends once after a dropped connection when that cannot apply an operation twice (reads
        and idempotency-keyed writes); other writes are reconciled by the caller instead."""
        safe = method == "GET" if resend_safe is None else resend_safe
        stale: int | None = None
        for attempt in range(2):
            session = await self._open_session(stale)
            try:
                response = await self._send(method, path, params, body, headers)
            except PlatformError as exc:
                if attempt == 0 and safe and exc.code == "network":
                    continue
                raise
            if response.status_code == STATUS_SESSION_EXPIRED and attempt == 0:
                stale = session
                continue
            return _decode(response, f"{method} {path}")
        raise AssertionError("unreachable")

    # --- time ------------------------------------------------------------------------------

    def _to_utc(self, server_seconds: object) -> datetime:
        return _EPOCH + timedelta(seconds=_int(server_seconds)) - self._offset

    def _to_server(self, moment: datetime) -> int:
        if moment.tzinfo is None:
            raise ValueError("naive datetime: pass UTC-aware datetimes")
        return int((moment + self._offset).timestamp())

    # --- gateway ---------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._call("POST", "/ping", resend_safe=True)

    async def create_account(self, spec: NewAccountSpec) -> PlatformAccountRef:
        body = {
            "login": 0,  # the server picks the next free login
            "group": spec.group,
            "leverage": spec.leverage,
            "name": f"{spec.first_name} {spec.last_name}".strip(),
            "email": spec.email,
            "country": spec.country,
            "phone": spec.phone,
            "id": client_key(spec.client_id),
            "enable": 1,
            "enable_change_password": 1,
            "enable_read_only": 0,
            # Passwords only ever travel in the body (never in the URL: logs, proxies).
            "password": spec.main_password,
            "password_investor": spec.investor_password,
        }
        user = await self._call("POST", "/users", body=body)
        return _account_ref(user)

    async def get_account(self, login: int) -> AccountState:
        user = await self._call("GET", f"/users/{login}")
        margin = await self._call("GET", f"/users/{login}/margin")
        return await self._account_state(user, margin)

    async def find_accounts_by_client(self, client_id: str) -> list[PlatformAccountRef]:
        key = client_key(client_id)
        answer = await self._call("GET", "/users", {"group": self._client_search_group, "id": key})
        return [_account_ref(user) for user in _list(answer, "users") if user.get("id") == key]

    async def balance_op(
        self, login: int, kind: BalanceOpKind, amount: Decimal, ref: str
    ) -> BalanceOpResult:
        if amount <= 0:
            raise ValueError("amount must be positive; the kind gives the direction")
        if not ref or len(ref) > COMMENT_MAX:
            raise ValueError(f"ref must be 1..{COMMENT_MAX} characters (the MT4 comment)")
        cmd, sign_ = _BALANCE_CMDS[kind]
        body = {
            "type": TT_BR_BALANCE,
            "cmd": cmd,
            "orderby": login,
            "price": amount * sign_,
            "comment": ref,
        }
        # The key makes a resend harmless: the bridge answers the original record.
        record = await self._call(
            "POST",
            "/trades/balance",
            body=body,
            headers={HEADER_IDEMPOTENCY: ref},
            resend_safe=True,
        )
        return self._balance_result(record)

    async def find_balance_op(
        self, login: int, ref: str, since: datetime
    ) -> BalanceOpResult | None:
        # Slack on both ends: the broker's clock and ours are never quite the same.
        start = self._to_server(since) - 60
        end = self._to_server(datetime.now(UTC)) + 60
        async for record in self._history({"login": login}, start, end):
            if _int(record.get("cmd")) in (OP_BALANCE, OP_CREDIT) and record.get("comment") == ref:
                return self._balance_result(record)
        return None

    async def set_group(self, login: int, group: str) -> None:
        await self._call("PATCH", f"/users/{login}", body={"group": group})

    async def set_leverage(self, login: int, leverage: int) -> None:
        await self._call("PATCH", f"/users/{login}", body={"leverage": leverage})

    async def set_access(self, login: int, access: AccessLevel) -> None:
        await self._call("PATCH", f"/users/{login}", body=access_fields(access))

    async def set_password(self, login: int, password: str, *, investor: bool = False) -> None:
        """UserPasswordSet; not part of the common gateway, offered for the MT4 back office."""
        await self._call(
            "POST",
            f"/users/{login}/password",
            body={"password": password, "investor": investor, "clean_pubkey": False},
        )

    async def list_groups(self) -> list[str]:
        groups = _list(await self._call("GET", "/groups"), "groups")
        for group in groups:
            self._currencies[str(group["group"])] = str(group.get("currency", "USD"))
        return [str(group["group"]) for group in groups]

    async def list_open_positions(
        self, logins: list[int] | None, group: str | None
    ) -> list[OpenPosition]:
        answer = await self._call("GET", "/trades/open", _scope(logins, group, allow_all=True))
        positions = []
        for record in _list(answer, "trades"):
            cmd = _int(record.get("cmd"))
            if cmd not in (OP_BUY, OP_SELL):  # pending orders are not positions
                continue
            positions.append(
                OpenPosition(
                    position_id=str(record["order"]),
                    login=_int(record["login"]),
                    symbol=str(record.get("symbol", "")),
                    side="buy" if cmd == OP_BUY else "sell",
                    volume_lots=Decimal(_int(record.get("volume", 0))) / LOTS_PER_VOLUME,
                    open_price=_dec(record.get("open_price", 0)),
                    # An open TradeRecord's close_price is the current price.
                    current_price=_dec(record["close_price"])
                    if record.get("close_price")
                    else None,
                    profit=_dec(record.get("profit", 0)),
                    swap=_dec(record.get("storage", 0)),
                    commission=_dec(record.get("commission", 0)),
                    opened_at=self._to_utc(record.get("open_time", 0)),
                )
            )
        return positions

    async def list_accounts(self, group: str | None) -> list[AccountState]:
        params = {"group": group or "*"}
        users = _list(await self._call("GET", "/users", params), "users")
        margins = {
            _int(m["login"]): m
            for m in _list(await self._call("GET", "/margins", params), "margins")
        }
        states = []
        for user in users:
            margin = margins.get(_int(user["login"]))
            if margin is None:  # created between the two reads
                margin = await self._call("GET", f"/users/{user['login']}/margin")
            states.append(await self._account_state(user, margin))
        return states

    async def iter_closed_deals(
        self,
        logins: list[int] | None,
        group: str | None,
        since: datetime,
        until: datetime,
        *,
        openings: bool = False,
    ) -> AsyncIterator[ClosedDeal]:
        """Closed trades, as closing deals. MT4 has no deals, only orders: there are no opening
        deals to read (`openings` changes nothing); the commission charged at the opening is on
        the open trade, and then on its closed record."""
        if (logins is None) == (group is None):
            raise ValueError("pass either logins or a group mask")
        scope = _scope(logins, group, allow_all=False)
        async for record in self._history(scope, self._to_server(since), self._to_server(until)):
            deal = self._closed_deal(record)
            if deal is not None:
                yield deal

    async def iter_balance_ops(
        self, logins: list[int] | None, group: str | None, since: datetime, until: datetime
    ) -> AsyncIterator[PlatformBalanceOp]:
        """Balance (cmd 6) and credit (cmd 7) records of the history."""
        if (logins is None) == (group is None):
            raise ValueError("pass either logins or a group mask")
        scope = _scope(logins, group, allow_all=False)
        async for record in self._history(scope, self._to_server(since), self._to_server(until)):
            cmd = _int(record.get("cmd"))
            if cmd not in (OP_BALANCE, OP_CREDIT):
                continue
            result = self._balance_result(record)
            yield PlatformBalanceOp(
                ticket=result.ticket,
                login=_int(record["login"]),
                kind=CREDIT if cmd == OP_CREDIT else BALANCE,
                amount=result.amount,
                comment=result.comment,
                time=result.time,
                raw=dict(record),
            )

    async def close(self) -> None:
        if self._session is not None:
            # Frees the manager seat on the bridge now rather than at the idle timeout.
            with contextlib.suppress(PlatformError):
                await self._send("DELETE", "/session")
            self._session = None
        await self._http.aclose()

    # --- helpers ---------------------------------------------------------------------------

    async def _history(
        self, scope: Mapping[str, object], start: int, end: int
    ) -> AsyncIterator[dict[str, Any]]:
        """Closed trades (and balance records) with close_time in [start, end], page by page."""
        offset = 0
        while True:
            params = {**scope, "from": start, "to": end, "offset": offset, "limit": self._page_size}
            answer = await self._call("GET", "/trades/history", params)
            page = _list(answer, "trades")
            for record in page:
                yield record
            offset += len(page)
            if not page or offset >= _int(answer.get("total", 0)):
                return

    def _closed_deal(self, record: Mapping[str, Any]) -> ClosedDeal | None:
        """A closed buy or sell, as its closing deal; None for balance, credit and pending."""
        cmd = _int(record.get("cmd"))
        if cmd not in (OP_BUY, OP_SELL) or not _int(record.get("close_time", 0)):
            return None
        opened = _int(record.get("open_time", 0))
        return ClosedDeal(
            deal_id=str(record["order"]),
            login=_int(record["login"]),
            position_id=str(record["order"]),
            symbol=str(record.get("symbol", "")),
            # The closing deal goes the other way, as MT5 reports it.
            side="sell" if cmd == OP_BUY else "buy",
            entry="out",
            volume_lots=Decimal(_int(record.get("volume", 0))) / LOTS_PER_VOLUME,
            price=_dec(record.get("close_price", 0)),
            profit=_dec(record.get("profit", 0)),
            commission=_dec(record.get("commission", 0)),
            swap=_dec(record.get("storage", 0)),
            time=self._to_utc(record.get("close_time", 0)),
            opened_at=self._to_utc(opened) if opened else None,
            raw=dict(record),
        )

    def _balance_result(self, record: Mapping[str, Any]) -> BalanceOpResult:
        return BalanceOpResult(
            ticket=str(record["order"]),
            amount=_dec(record.get("profit", 0)),
            comment=str(record.get("comment", "")),
            time=self._to_utc(record.get("open_time", 0)),
        )

    async def _account_state(
        self, user: Mapping[str, Any], margin: Mapping[str, Any]
    ) -> AccountState:
        group = str(user["group"])
        used = _dec(margin.get("margin", 0))
        return AccountState(
            login=_int(user["login"]),
            group=group,
            leverage=_int(user.get("leverage", 0)),
            currency=await self._group_currency(group),
            balance=_dec(user.get("balance", 0)),
            credit=_dec(user.get("credit", 0)),
            equity=_dec(margin.get("equity", 0)),
            margin=used,
            free_margin=_dec(margin.get("margin_free", 0)),
            margin_level=_dec(margin.get("margin_level", 0)) if used else None,
            access=access_of(user),
            client_id=client_id_from_key(str(user.get("id", ""))),
        )

    async def _group_currency(self, group: str) -> str:
        if group not in self._currencies:
            await self.list_groups()
        return self._currencies.get(group, "USD")


def _decode(response: httpx.Response, what: str) -> Any:
    status = response.status_code
    try:
        data = json.loads(response.content, parse_float=Decimal) if response.content else {}
    except ValueError as exc:
        raise PlatformError(
            f"MT4 bridge {what}: HTTP {status}, answer is not JSON",
            code=f"http_{status}",
            kind=PlatformErrorKind.UNAVAILABLE if status >= 500 else PlatformErrorKind.PROTOCOL,
        ) from exc
    if 200 <= status < 300:
        return data
    error = data.get("error") if isinstance(data, dict) else None
    code = str(error.get("code", "")) if isinstance(error, dict) else ""
    message = str(error.get("message", "")) if isinstance(error, dict) else ""
    kind = ERROR_KINDS.get(code) or _STATUS_KINDS.get(status)
    if kind is None:
        kind = PlatformErrorKind.UNAVAILABLE if status >= 500 else PlatformErrorKind.ERROR
    raise PlatformError(
        f"MT4 bridge {what}: HTTP {status} {code} {message}".rstrip(),
        code=code or f"http_{status}",
        kind=kind,
    )


def _scope(logins: list[int] | None, group: str | None, *, allow_all: bool) -> dict[str, object]:
    if logins is not None:
        return {"login": ",".join(str(login) for login in logins)}
    if group is not None:
        return {"group": group}
    if allow_all:
        return {"group": "*"}
    raise ValueError("pass either logins or a group mask")


def _list(answer: Any, field: str) -> list[dict[str, Any]]:
    items = answer.get(field) if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise PlatformError(
            f"MT4 bridge: answer without '{field}'",
            code="protocol",
            kind=PlatformErrorKind.PROTOCOL,
        )
    return items


def _account_ref(user: Mapping[str, Any]) -> PlatformAccountRef:
    return PlatformAccountRef(
        login=_int(user["login"]), group=str(user["group"]), leverage=_int(user.get("leverage", 0))
    )


def _dec(value: object) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise PlatformError(
            f"MT4 bridge: not a number: {value!r}", code="protocol", kind=PlatformErrorKind.PROTOCOL
        ) from exc


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError as exc:
        raise PlatformError(
            f"MT4 bridge: not an integer: {value!r}",
            code="protocol",
            kind=PlatformErrorKind.PROTOCOL,
        ) from exc


def _json_default(value: object) -> object:
    # Doubles on the wire, as the Manager API's records hold them.
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
