"""cTrader Web Services client (the broker-side REST API, "webserv" host).

Auth is a manager token from `POST /v2/webserv/managers/token` (md5-hex password) passed as
`?token=` on every call; an expired token answers 401/403 and the client logs in again once.
Units are converted here: money ints x 10^moneyDigits to Decimal, leverageInCents to leverage,
`yyyy-MM-ddTHH:mm:ss.SSS` UTC strings and epoch milliseconds to aware datetimes, CSV volumes
(units of the base asset) to lots.

fxcrm's client id is kept in the trader's `contactDetails.documentId`: it is returned by the
trader reads (the free-text `description` is not, as far as the public clients show), so
`find_accounts_by_client` can scan the trader list for it.

Balance operations carry fxcrm's ref as `externalId`, cTrader's idempotency key. They are found
again through the balance history endpoint (`balance_history_path`; the public sources do not
show its exact shape [verify]), filtered by `externalId`.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx
import pycountry

from fxcrm.adapters.platforms.base import (
    ALL_GROUPS,
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

API = "/v2/webserv"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
MAX_REPORT_WINDOW = timedelta(days=2)  # closedPositions refuses wider windows
DEFAULT_CONTRACT_SIZE = Decimal(100_000)
DEFAULT_BALANCE_HISTORY_PATH = API + "/traders/{login}/balancehistory"
# Trader lists are by registration time: this start covers every account of a broker.
DEFAULT_REGISTRY_SINCE = datetime(2000, 1, 1, tzinfo=UTC)

CLOSED_POSITION_HEADERS = [
    "login",
    "positionId",
    "dealId",
    "openTimestamp",
    "closeTimestamp",
    "entryPrice",
    "closePrice",
    "direction",
    "volume",
    "symbol",
    "commission",
    "swap",
    "pnl",
    "depositConversionRate",
    "usdConversionRate",
    "bookType",
    "stake",
    "spreadBetting",
]
OPEN_POSITION_HEADERS = [
    "login",
    "positionId",
    "openTimestamp",
    "entryPrice",
    "direction",
    "volume",
    "symbol",
    "commission",
    "swap",
    "bookType",
    "stake",
    "spreadBetting",
    "usedMargin",
]

ACCESS_RIGHTS: dict[AccessLevel, str] = {
    AccessLevel.FULL: "FULL_ACCESS",
    # cTrader's CLOSE_ONLY (reduce exposure, open nothing) is the nearest to read-only.
    AccessLevel.READ_ONLY: "CLOSE_ONLY",
    AccessLevel.NO_TRADING: "NO_TRADING",
    AccessLevel.DISABLED: "NO_LOGIN",
}
ACCESS_LEVELS = {right: level for level, right in ACCESS_RIGHTS.items()}

# kind -> changebalance type; cTrader has no credit, only (non-withdrawable) bonus.
BALANCE_TYPES: dict[BalanceOpKind, str] = {
    BalanceOpKind.DEPOSIT: "DEPOSIT",
    BalanceOpKind.WITHDRAW: "WITHDRAW",
    BalanceOpKind.BONUS: "DEPOSIT_NONWITHDRAWABLE_BONUS",
}
WITHDRAWAL_TYPES = frozenset({"WITHDRAW", "WITHDRAW_NONWITHDRAWABLE_BONUS"})

# Error codes in the answer body; the exact names are not public [verify], so words decide.
_CODE_WORDS: tuple[tuple[tuple[str, ...], PlatformErrorKind], ...] = (
    (("GROUP",), PlatformErrorKind.UNKNOWN_GROUP),
    (("LEVERAGE",), PlatformErrorKind.INVALID_LEVERAGE),
    (("NOT_ENOUGH", "INSUFFICIENT", "NO_MONEY"), PlatformErrorKind.INSUFFICIENT_FUNDS),
    (("NOT_FOUND",), PlatformErrorKind.NOT_FOUND),
    (("DUPLICATE", "ALREADY_EXISTS"), PlatformErrorKind.CONFLICT),
)


# --- wire helpers (shared with the simulator) ---------------------------------------------------


def hash_password(password: str) -> str:
    """Lower-case md5 hex of the UTF-8 password: what cTrader expects as `hashedPassword`."""
    # MD5 is mandated by the cTrader protocol, not our choice of hash.
    return hashlib.md5(password.encode("utf-8")).hexdigest()  # noqa: S324


def format_time(moment: datetime) -> str:
    """An aware datetime as `yyyy-MM-ddTHH:mm:ss.SSS` in UTC."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass UTC-aware datetimes")
    utc = moment.astimezone(UTC)
    return f"{utc.strftime(TIME_FORMAT)}.{utc.microsecond // 1000:03d}"


def parse_time(text: str) -> datetime:
    """`yyyy-MM-ddTHH:mm:ss[.SSS]` (UTC) as an aware datetime."""
    value = text.strip()
    fmt = f"{TIME_FORMAT}.%f" if "." in value else TIME_FORMAT
    return datetime.strptime(value, fmt).replace(tzinfo=UTC)


def from_millis(value: object) -> datetime:
    return datetime.fromtimestamp(to_int(value) / 1000, tz=UTC)


def to_decimal(value: object) -> Decimal:
    try:
        return Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise PlatformError(
            f"cTrader: not a number: {value!r}", code="protocol", kind=PlatformErrorKind.PROTOCOL
        ) from exc


def to_int(value: object) -> int:
    try:
        return int(str(value).strip())
    except ValueError as exc:
        raise PlatformError(
            f"cTrader: not an integer: {value!r}", code="protocol", kind=PlatformErrorKind.PROTOCOL
        ) from exc


def money_from_wire(value: object, digits: int) -> Decimal:
    """An int x 10^moneyDigits as Decimal: 1234512 with 2 digits is 12345.12."""
    return Decimal(to_int(value or 0)).scaleb(-digits)


def money_to_wire(amount: Decimal, digits: int) -> int:
    scaled = amount.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more than {digits} decimals")
    return int(scaled)


def parse_csv(text: str, headers: list[str]) -> list[dict[str, str]]:
    """CSV rows as dicts; refuses a header row other than the documented one."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if reader.fieldnames is None:
        return []
    if [name.strip() for name in reader.fieldnames] != headers:
        raise PlatformError(
            f"cTrader: unexpected CSV header {reader.fieldnames}",
            code="protocol",
            kind=PlatformErrorKind.PROTOCOL,
        )
    return [dict(row) for row in reader]


def error_kind(status: int, code: str) -> PlatformErrorKind:
    """The common meaning of an error answer (status, body errorCode)."""
    if status == 429:
        return PlatformErrorKind.RATE_LIMITED
    if status >= 500:
        return PlatformErrorKind.UNAVAILABLE
    upper = code.upper()
    for words, kind in _CODE_WORDS:
        if any(word in upper for word in words):
            return kind
    if status == 404:
        return PlatformErrorKind.NOT_FOUND
    if status == 409:
        return PlatformErrorKind.CONFLICT
    if status == 401:
        return PlatformErrorKind.AUTH
    if status == 403:
        return PlatformErrorKind.PERMISSION
    if status in (400, 422):
        return PlatformErrorKind.INVALID_REQUEST
    return PlatformErrorKind.ERROR


def country_id(alpha2: str) -> int | None:
    """ISO 3166-1 numeric code for `contactDetails.countryId` [verify: cTrader's own ids?]."""
    country = pycountry.countries.get(alpha_2=alpha2.upper()) if alpha2 else None
    return int(country.numeric) if country is not None else None


def _symbol_key(symbol: str) -> str:
    # Reports may write "AUD/USD" where the symbol list says "AUDUSD".
    return symbol.replace("/", "").upper()


# --- client ---------------------------------------------------------------------------------------


class CTraderWebServicesClient:
    """`TradingPlatformGateway` for one cTrader server (broker) and one manager login."""

    platform = "ctrader"
    # Charged at the opening, reported again on the closed-position rows (see base.py).
    open_commission_reported_on_close = True

    def __init__(
        self,
        base_url: str,
        manager_login: int,
        password: str,
        *,
        broker_name: str,
        verify: bool | str | Path = True,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
        deposit_currency: str = "USD",
        account_type: str = "HEDGED",
        margin_calculation: str = "MAX",
        contract_sizes: Mapping[str, Decimal | int | str] | None = None,
        default_contract_size: Decimal = DEFAULT_CONTRACT_SIZE,
        report_window: timedelta = MAX_REPORT_WINDOW,
        registry_since: datetime = DEFAULT_REGISTRY_SINCE,
        balance_history_path: str = DEFAULT_BALANCE_HISTORY_PATH,
    ) -> None:
        if report_window > MAX_REPORT_WINDOW or report_window <= timedelta(0):
            raise ValueError("report_window must be positive and at most two days")
        self._login = manager_login
        self._hashed_password = hash_password(password)
        self._broker_name = broker_name
        self._currency = deposit_currency
        self._account_type = account_type
        self._margin_calculation = margin_calculation
        self._contract_sizes = {
            _symbol_key(name): Decimal(str(size)) for name, size in (contract_sizes or {}).items()
        }
        self._default_contract_size = default_contract_size
        self._window = report_window
        self._registry_since = registry_since
        self._history_path = balance_history_path
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            verify=ssl_verify(verify),
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._auth_lock = asyncio.Lock()
        self._token: str | None = None
        self._group_ids: dict[str, int] = {}

    async def __aenter__(self) -> CTraderWebServicesClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- transport -------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, object] | None = None,
        body: object = None,
    ) -> httpx.Response:
        query = {key: str(value) for key, value in (params or {}).items() if value is not None}
        content = json.dumps(body, default=_json_default) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            return await self._http.request(
                method, path, params=query, content=content, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise PlatformError(
                f"cTrader {method} {path}: timeout",
                code="timeout",
                kind=PlatformErrorKind.UNAVAILABLE,
            ) from exc
        except httpx.TransportError as exc:
            raise PlatformError(
                f"cTrader {method} {path}: connection failed: {exc!r}",
                code="network",
                kind=PlatformErrorKind.UNAVAILABLE,
            ) from exc

    async def _token_for(self, stale: str | None) -> str:
        """The live token; asks for a new one when there is none or it is the stale one."""
        async with self._auth_lock:
            if self._token is None or self._token == stale:
                self._token = None
                response = await self._send(
                    "POST",
                    f"{API}/managers/token",
                    body={"login": self._login, "hashedPassword": self._hashed_password},
                )
                if response.status_code in (401, 403):
                    raise PlatformError(
                        "cTrader manager login refused: wrong login or password",
                        code=f"http_{response.status_code}",
                        kind=PlatformErrorKind.AUTH,
                    )
                data = _check(response, "managers/token")
                token = data.get("webservToken") if isinstance(data, dict) else None
                if not token:
                    raise PlatformError(
                        "cTrader managers/token: answer without webservToken",
                        code="protocol",
                        kind=PlatformErrorKind.PROTOCOL,
                    )
                self._token = str(token)
            return self._token

    async def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, object] | None = None,
        body: object = None,
    ) -> httpx.Response:
        """One call with `?token=`; logs in again once when the token is refused (expired).

        A refused token means the server applied nothing, so even mutating calls are resent.
        """
        stale: str | None = None
        for attempt in range(2):
            token = await self._token_for(stale)
            response = await self._send(
                method, path, params={**(params or {}), "token": token}, body=body
            )
            if response.status_code in (401, 403) and attempt == 0:
                stale = token
                continue
            if response.status_code == 401:
                raise PlatformError(
                    f"cTrader {method} {path}: token refused after logging in again",
                    code="http_401",
                    kind=PlatformErrorKind.AUTH,
                )
            return response
        raise AssertionError("unreachable")

    async def _json(
        self,
        method: str,
        path: str,
        params: Mapping[str, object] | None = None,
        body: object = None,
    ) -> Any:
        return _check(await self._request(method, path, params, body), path)

    async def _csv(self, path: str, params: Mapping[str, object], headers: list[str]) -> Any:
        response = await self._request("GET", path, params)
        _check(response, path, expect_json=False)
        return parse_csv(response.text, headers)

    # --- helpers ---------------------------------------------------------------------------------

    def _lots(self, symbol: str, volume: object) -> Decimal:
        size = self._contract_sizes.get(_symbol_key(symbol), self._default_contract_size)
        return to_decimal(volume) / size

    async def _traders(self, group: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, object] = {
            "from": format_time(self._registry_since),
            "to": format_time(datetime.now(UTC) + timedelta(days=1)),
        }
        if group is not None:
            params["groupId"] = await self._group_id(group)
        data = await self._json("GET", f"{API}/traders/", params)
        traders = data.get("trader", []) if isinstance(data, dict) else []
        if group is not None:
            # The group filter is applied here too, in case the server ignores groupId.
            traders = [t for t in traders if str(t.get("groupName", "")).lower() == group.lower()]
        return list(traders)

    async def _group_id(self, name: str) -> int:
        if name.lower() not in self._group_ids:
            await self.list_groups()
        found = self._group_ids.get(name.lower())
        if found is None:
            raise PlatformError(
                f"cTrader: unknown group {name!r}",
                code="group",
                kind=PlatformErrorKind.UNKNOWN_GROUP,
            )
        return found

    # --- gateway ---------------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._json("GET", f"{API}/tradergroups")

    async def create_account(self, spec: NewAccountSpec) -> PlatformAccountRef:
        contact: dict[str, object] = {
            "email": spec.email,
            "phone": spec.phone,
            "documentId": spec.client_id,  # fxcrm's client id: see the module docstring
        }
        country = country_id(spec.country)
        if country is not None:
            contact["countryId"] = country
        body = {
            "accessRights": ACCESS_RIGHTS[AccessLevel.FULL],
            "accountType": self._account_type,
            "balance": 0,
            "brokerName": self._broker_name,
            "depositCurrency": self._currency,
            "groupName": spec.group,
            # Web Services keeps one trader password; the investor password has no field here.
            "hashedPassword": hash_password(spec.main_password),
            "leverageInCents": spec.leverage * 100,
            "totalMarginCalculationType": self._margin_calculation,
            "contactDetails": contact,
            "name": spec.first_name,
            "lastName": spec.last_name,
        }
        trader = await self._json("POST", f"{API}/traders", body=body)
        return PlatformAccountRef(
            login=to_int(trader["login"]), group=spec.group, leverage=spec.leverage
        )

    async def get_account(self, login: int) -> AccountState:
        return _account_state(await self._json("GET", f"{API}/traders/{login}"))

    async def find_accounts_by_client(self, client_id: str) -> list[PlatformAccountRef]:
        return [
            _account_ref(trader)
            for trader in await self._traders()
            if _client_id_of(trader) == client_id
        ]

    async def balance_op(
        self, login: int, kind: BalanceOpKind, amount: Decimal, ref: str
    ) -> BalanceOpResult:
        if amount <= 0:
            raise ValueError("amount must be positive; the kind gives the direction")
        if not ref:
            raise ValueError("ref (the externalId) is required")
        change = BALANCE_TYPES.get(kind)
        if change is None:
            raise PlatformError(
                f"cTrader has no credit: {kind.value} is not possible (use BONUS for a "
                "non-withdrawable bonus)",
                code="no_credit",
                kind=PlatformErrorKind.INVALID_REQUEST,
            )
        body = {
            "login": login,
            "preciseAmount": amount,
            "type": change,
            "comment": ref,
            "externalId": ref,
        }
        answer = await self._json("POST", f"{API}/traders/{login}/changebalance", body=body)
        ticket = str(answer["balanceHistoryId"])
        signed = -amount if change in WITHDRAWAL_TYPES else amount
        try:
            found = await self.find_balance_op(login, ref, datetime.now(UTC) - timedelta(days=1))
        except PlatformError:
            found = None  # the money moved; the server time is a nicety
        if found is not None and found.ticket == ticket:
            return found
        return BalanceOpResult(ticket=ticket, amount=signed, comment=ref, time=datetime.now(UTC))

    async def find_balance_op(
        self, login: int, ref: str, since: datetime
    ) -> BalanceOpResult | None:
        # Slack on both ends: the broker's clock and ours are never quite the same.
        params = {
            "from": format_time(since - timedelta(minutes=1)),
            "to": format_time(datetime.now(UTC) + timedelta(minutes=1)),
            "externalId": ref,
        }
        data = await self._json("GET", self._history_path.format(login=login), params)
        for entry in data.get("balanceHistory", []) if isinstance(data, dict) else []:
            if str(entry.get("externalId", "")) == ref:
                digits = to_int(entry.get("moneyDigits", 2))
                return BalanceOpResult(
                    ticket=str(entry["balanceHistoryId"]),
                    amount=money_from_wire(entry.get("delta", 0), digits),
                    comment=ref,
                    time=from_millis(entry.get("changeTimestamp", 0)),
                )
        return None

    async def set_group(self, login: int, group: str) -> None:
        await self._json("PATCH", f"{API}/traders/{login}", body={"groupName": group})

    async def set_leverage(self, login: int, leverage: int) -> None:
        await self._json(
            "PATCH", f"{API}/traders/{login}", body={"leverageInCents": leverage * 100}
        )

    async def set_access(self, login: int, access: AccessLevel) -> None:
        await self._json(
            "PATCH", f"{API}/traders/{login}", body={"accessRights": ACCESS_RIGHTS[access]}
        )

    async def list_groups(self) -> list[str]:
        data = await self._json("GET", f"{API}/tradergroups")
        groups = data.get("traderGroup", []) if isinstance(data, dict) else []
        self._group_ids = {str(g["name"]).lower(): to_int(g["id"]) for g in groups}
        return [str(g["name"]) for g in groups]

    async def list_accounts(self, group: str | None) -> list[AccountState]:
        return [_account_state(trader) for trader in await self._traders(group)]

    async def list_open_positions(
        self, logins: list[int] | None, group: str | None
    ) -> list[OpenPosition]:
        rows: list[dict[str, str]] = []
        path = f"{API}/openPositions"
        if logins is not None:
            for login in logins:
                rows += await self._csv(path, {"login": login}, OPEN_POSITION_HEADERS)
        else:
            members = None
            if group is not None:
                members = {to_int(t["login"]) for t in await self._traders(group)}
            rows = [
                row
                for row in await self._csv(path, {}, OPEN_POSITION_HEADERS)
                if members is None or to_int(row["login"]) in members
            ]
        return [self._open_position(row) for row in rows]

    async def iter_balance_ops(
        self, logins: list[int] | None, group: str | None, since: datetime, until: datetime
    ) -> AsyncIterator[PlatformBalanceOp]:
        """The balance history of each account (the endpoint is per trader): deposits and
        withdrawals move the balance, the non-withdrawable bonus is kept apart (our credit)."""
        if (logins is None) == (group is None):
            raise ValueError("pass either logins or a group")
        if logins is None:
            scope = None if group == ALL_GROUPS else group
            logins = [to_int(t["login"]) for t in await self._traders(scope)]
        window = {"from": format_time(since), "to": format_time(until)}
        for login in logins:
            try:
                data = await self._json("GET", self._history_path.format(login=login), window)
            except PlatformError as exc:
                if exc.kind is PlatformErrorKind.NOT_FOUND:
                    continue  # gone since the list was read: no operations to miss
                raise
            for entry in data.get("balanceHistory", []) if isinstance(data, dict) else []:
                change = str(entry.get("changeType", ""))
                yield PlatformBalanceOp(
                    ticket=str(entry["balanceHistoryId"]),
                    login=to_int(entry.get("login", login)),
                    kind=CREDIT if change.endswith("NONWITHDRAWABLE_BONUS") else BALANCE,
                    amount=money_from_wire(
                        entry.get("delta", 0), to_int(entry.get("moneyDigits", 2))
                    ),
                    comment=str(entry.get("externalId") or entry.get("comment") or ""),
                    time=from_millis(entry.get("changeTimestamp", 0)),
                    raw=dict(entry),
                )

    async def iter_closed_deals(
        self,
        logins: list[int] | None,
        group: str | None,
        since: datetime,
        until: datetime,
        *,
        openings: bool = False,
    ) -> AsyncIterator[ClosedDeal]:
        """Closing deals from the closed-positions report. There are no opening deals to read
        (`openings` changes nothing): the commission charged at the opening is reported again,
        pro rata, on each closing row, and while the position is open on the open positions."""
        if (logins is None) == (group is None):
            raise ValueError("pass either logins or a group")
        if since.tzinfo is None or until.tzinfo is None:
            raise ValueError("naive datetime: pass UTC-aware datetimes")
        members: set[int] | None = None
        if group is not None and group != ALL_GROUPS:
            members = {to_int(t["login"]) for t in await self._traders(group)}
        seen: set[str] = set()  # windows share their edges: one deal may come twice
        start = since
        while start < until:
            end = min(until, start + self._window)
            for login in logins if logins is not None else [None]:
                params: dict[str, object] = {"from": format_time(start), "to": format_time(end)}
                if login is not None:
                    params["login"] = login
                path = f"{API}/closedPositions"
                for row in await self._csv(path, params, CLOSED_POSITION_HEADERS):
                    if members is not None and to_int(row["login"]) not in members:
                        continue
                    if row["dealId"] in seen:
                        continue
                    seen.add(row["dealId"])
                    yield self._closed_deal(row)
            start = end

    def _closed_deal(self, row: Mapping[str, str]) -> ClosedDeal:
        direction = row["direction"].strip().upper()
        opened = row.get("openTimestamp", "").strip()
        return ClosedDeal(
            deal_id=row["dealId"].strip(),
            login=to_int(row["login"]),
            position_id=row["positionId"].strip(),
            symbol=row["symbol"].strip(),
            # The closing deal trades against the position's direction.
            side="sell" if direction == "BUY" else "buy",
            entry="out",
            volume_lots=self._lots(row["symbol"], row["volume"]),
            price=to_decimal(row["closePrice"]),
            profit=to_decimal(row["pnl"]),
            commission=to_decimal(row["commission"]),
            swap=to_decimal(row["swap"]),
            time=parse_time(row["closeTimestamp"]),
            opened_at=parse_time(opened) if opened else None,
            raw=dict(row),
        )

    def _open_position(self, row: Mapping[str, str]) -> OpenPosition:
        # The report carries no current price or floating profit.
        return OpenPosition(
            position_id=row["positionId"].strip(),
            login=to_int(row["login"]),
            symbol=row["symbol"].strip(),
            side="buy" if row["direction"].strip().upper() == "BUY" else "sell",
            volume_lots=self._lots(row["symbol"], row["volume"]),
            open_price=to_decimal(row["entryPrice"]),
            current_price=None,
            profit=Decimal(0),
            swap=to_decimal(row["swap"]),
            commission=to_decimal(row["commission"]),
            opened_at=parse_time(row["openTimestamp"]),
        )

    async def close(self) -> None:
        # Tokens expire on their own; there is no logout call.
        self._token = None
        await self._http.aclose()


# --- module helpers -------------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        # JSON numbers go through float; refuse amounts that a float would not carry exactly.
        number = float(value)
        if Decimal(repr(number)) != value:
            raise ValueError(f"amount {value} cannot be sent exactly")
        return number
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _check(response: httpx.Response, what: str, *, expect_json: bool = True) -> Any:
    """The decoded answer of a 2xx response; a `PlatformError` for anything else."""
    status = response.status_code
    if 200 <= status < 300:
        if not expect_json or status == 204 or not response.content.strip():
            return {}
        try:
            return response.json()
        except ValueError as exc:
            raise PlatformError(
                f"cTrader {what}: answer is not JSON",
                code="protocol",
                kind=PlatformErrorKind.PROTOCOL,
            ) from exc
    code, description = "", response.text[:300]
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        code = str(data.get("errorCode") or data.get("code") or "")
        description = str(data.get("description") or data.get("message") or description)
    raise PlatformError(
        f"cTrader {what}: HTTP {status} {code} {description}".strip(),
        code=code or f"http_{status}",
        kind=error_kind(status, code),
    )


def _client_id_of(trader: Mapping[str, Any]) -> str | None:
    contact = trader.get("contactDetails")
    if isinstance(contact, Mapping) and contact.get("documentId"):
        return str(contact["documentId"])
    return None


def _account_ref(trader: Mapping[str, Any]) -> PlatformAccountRef:
    return PlatformAccountRef(
        login=to_int(trader["login"]),
        group=str(trader.get("groupName", "")),
        leverage=to_int(trader.get("leverageInCents", 0)) // 100,
    )


def _account_state(trader: Mapping[str, Any]) -> AccountState:
    digits = to_int(trader.get("moneyDigits", 2))

    def money(name: str) -> Decimal:
        return money_from_wire(trader.get(name, 0), digits)

    margin, equity = money("usedMargin"), money("equity")
    return AccountState(
        login=to_int(trader["login"]),
        group=str(trader.get("groupName", "")),
        leverage=to_int(trader.get("leverageInCents", 0)) // 100,
        currency=str(trader.get("depositCurrency", "")),
        balance=money("balance"),
        # No credit on cTrader: the non-withdrawable bonus plays its part.
        credit=money("nonWithdrawableBonus"),
        equity=equity,
        margin=margin,
        free_margin=money("freeMargin"),
        margin_level=(equity / margin * 100).quantize(Decimal("0.01")) if margin else None,
        access=ACCESS_LEVELS.get(str(trader.get("accessRights", "")), AccessLevel.DISABLED),
        client_id=_client_id_of(trader),
    )
