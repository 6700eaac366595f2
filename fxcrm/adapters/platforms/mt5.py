"""MT5 Manager Web API client (REST over HTTPS).

The access server binds a manager session to one keep-alive TCP connection, so the client pins a
single connection and logs in again when the server answers 403 or the connection drops. Units are
converted here: JSON strings to Decimal and int, Volume (1/10000 lot) to lots, server time to UTC.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
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

# EnUsersRights bits that fxcrm reads and writes.
RIGHT_ENABLED = 0x1
RIGHT_TRADE_DISABLED = 0x4

# EnDealAction / EnDealEntry values that matter here.
ACTION_BUY = 0
ACTION_SELL = 1
MONEY_ACTIONS = frozenset({2, 3, 4, 5, 6})
# Buy, sell and their cancelled forms are trades; every other action is a money operation, and
# credit (3) and the stop-out compensation of credit (20) move the credit, not the balance.
TRADE_ACTIONS = frozenset({ACTION_BUY, ACTION_SELL, 13, 14})
CREDIT_ACTIONS = frozenset({3, 20})
ENTRY_IN = 0
ENTRY_NAMES = {ENTRY_IN: "in", 1: "out", 2: "inout", 3: "out_by"}
CLOSING_ENTRIES = frozenset({1, 2, 3})

COMMENT_MAX = 31  # longer deal comments are cut by the server, which would break ref matching
LOTS_PER_VOLUME = Decimal(10000)
LOTS_PER_VOLUME_EXT = Decimal(100_000_000)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# fxcrm's ApiData application id (MT5 keeps per-application integers on each user): "FX".
FXCRM_API_APP_ID = 0x4658

# kind -> (trade/balance type, sign)
_BALANCE_TYPES: dict[BalanceOpKind, tuple[int, int]] = {
    BalanceOpKind.DEPOSIT: (2, 1),
    BalanceOpKind.WITHDRAW: (2, -1),
    BalanceOpKind.CREDIT_IN: (3, 1),
    BalanceOpKind.CREDIT_OUT: (3, -1),
    BalanceOpKind.BONUS: (6, 1),
}

# Retcodes that describe a busy or unreachable server rather than a refusal: worth trying again.
RETRYABLE_RETCODES = frozenset({5, 6, 7, 9, 10, 11, 12, 15})

_RETCODE_KINDS: dict[int, PlatformErrorKind] = {
    3: PlatformErrorKind.INVALID_REQUEST,
    4: PlatformErrorKind.INVALID_REQUEST,
    5: PlatformErrorKind.UNAVAILABLE,
    6: PlatformErrorKind.UNAVAILABLE,
    7: PlatformErrorKind.UNAVAILABLE,
    8: PlatformErrorKind.PERMISSION,
    9: PlatformErrorKind.UNAVAILABLE,
    10: PlatformErrorKind.UNAVAILABLE,
    11: PlatformErrorKind.UNAVAILABLE,
    12: PlatformErrorKind.RATE_LIMITED,
    13: PlatformErrorKind.NOT_FOUND,
    15: PlatformErrorKind.UNAVAILABLE,
    3002: PlatformErrorKind.ERROR,  # no free login left in the group range: configuration
    3003: PlatformErrorKind.UNKNOWN_GROUP,
    3004: PlatformErrorKind.CONFLICT,
    3006: PlatformErrorKind.INVALID_REQUEST,
    4005: PlatformErrorKind.INVALID_REQUEST,
    10019: PlatformErrorKind.INSUFFICIENT_FUNDS,
}


def retcode_kind(code: int, text: str = "") -> PlatformErrorKind:
    """The common meaning of a retcode. Retcode 3 says only "invalid parameters"; the text (the
    simulator's, and servers that add one) tells a bad leverage or an unknown group apart."""
    if code == 3:
        lowered = text.lower()
        if "leverage" in lowered:
            return PlatformErrorKind.INVALID_LEVERAGE
        if "group" in lowered and ("unknown" in lowered or "not found" in lowered):
            return PlatformErrorKind.UNKNOWN_GROUP
    return _RETCODE_KINDS.get(code, PlatformErrorKind.ERROR)


def password_hash(password: str) -> bytes:
    """MD5(MD5(UTF-16LE password) || "WebAPI"), raw bytes: the secret behind both auth answers."""
    # MD5 is what the MT5 protocol mandates; it is not our choice of hash.
    inner = hashlib.md5(password.encode("utf-16-le")).digest()  # noqa: S324
    return hashlib.md5(inner + b"WebAPI").digest()  # noqa: S324


def challenge_answer(pw_hash: bytes, rand: bytes) -> str:
    """Lower-case hex MD5(password_hash || random bytes): answers srv_rand and cli_rand alike."""
    return hashlib.md5(pw_hash + rand).hexdigest()  # noqa: S324


def parse_retcode(value: object) -> tuple[int, str]:
    """'0 Done' -> (0, '0 Done')."""
    text = str(value).strip()
    head = text.split(" ", 1)[0]
    try:
        return int(head), text
    except ValueError as exc:
        raise PlatformError(
            f"MT5: malformed retcode {text!r}", code="protocol", kind=PlatformErrorKind.PROTOCOL
        ) from exc


def retcode_error(command: str, code: int, text: str) -> PlatformError:
    return PlatformError(
        f"MT5 {command}: {text}",
        code=str(code),
        retryable=code in RETRYABLE_RETCODES,
        kind=retcode_kind(code, text),
    )


def to_decimal(value: object) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise PlatformError(
            f"MT5: not a number: {value!r}", code="protocol", kind=PlatformErrorKind.PROTOCOL
        ) from exc


def to_int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError as exc:
        raise PlatformError(
            f"MT5: not an integer: {value!r}", code="protocol", kind=PlatformErrorKind.PROTOCOL
        ) from exc


def client_key(client_id: str) -> str:
    """The form of fxcrm's client id kept in the user's `ID` field (32 chars at most on MT5)."""
    try:
        return uuid.UUID(client_id).hex
    except ValueError:
        pass
    if len(client_id) > 32:
        raise ValueError("client id longer than the 32 characters MT5 keeps in a user's ID")
    return client_id


def client_id_cells(client_id: str, app_id: int = FXCRM_API_APP_ID) -> list[dict[str, str]]:
    """The client id as ApiData cells (integers only): one for a number, two for a UUID."""
    if client_id.isdigit() and int(client_id) < 2**63:
        return [{"AppID": str(app_id), "ID": "0", "ValueInt": client_id}]
    try:
        value = uuid.UUID(client_id).int
    except ValueError:
        return []
    return [
        {"AppID": str(app_id), "ID": "1", "ValueUInt": str(value >> 64)},
        {"AppID": str(app_id), "ID": "2", "ValueUInt": str(value & (2**64 - 1))},
    ]


def client_id_from_cells(cells: object, app_id: int = FXCRM_API_APP_ID) -> str | None:
    """Reverse of `client_id_cells`; None when the user carries no fxcrm cells."""
    if not isinstance(cells, list):
        return None
    ours: dict[int, Mapping[str, Any]] = {}
    for cell in cells:
        if isinstance(cell, Mapping) and str(cell.get("AppID")) == str(app_id):
            ours[to_int(cell.get("ID", 0))] = cell
    if 0 in ours:
        return str(to_int(ours[0].get("ValueInt", 0)))
    if 1 in ours and 2 in ours:
        high, low = to_int(ours[1].get("ValueUInt", 0)), to_int(ours[2].get("ValueUInt", 0))
        return str(uuid.UUID(int=(high << 64) | low))
    return None


def access_from_rights(rights: int) -> AccessLevel:
    # MT5 has one "trading disabled" bit, so READ_ONLY reads back as NO_TRADING.
    if not rights & RIGHT_ENABLED:
        return AccessLevel.DISABLED
    if rights & RIGHT_TRADE_DISABLED:
        return AccessLevel.NO_TRADING
    return AccessLevel.FULL


def rights_for_access(rights: int, access: AccessLevel) -> int:
    if access is AccessLevel.DISABLED:
        return rights & ~RIGHT_ENABLED
    if access is AccessLevel.FULL:
        return (rights | RIGHT_ENABLED) & ~RIGHT_TRADE_DISABLED
    return rights | RIGHT_ENABLED | RIGHT_TRADE_DISABLED


class Mt5WebApiClient:
    """`TradingPlatformGateway` for one MT5 access server and one manager login."""

    platform = "mt5"
    # Opening deals carry their own commission (see base.py).
    open_commission_reported_on_close = False

    def __init__(
        self,
        base_url: str,
        manager_login: int,
        password: str,
        *,
        server_utc_offset_hours: float = 0.0,
        verify: bool | str | Path = True,
        timeout: float = 15.0,
        agent: str = "fxcrm",
        version: int = 4000,
        api_app_id: int = FXCRM_API_APP_ID,
        client_search_mask: str = "*",
        deal_page_size: int = 1000,
        deal_window: timedelta = timedelta(days=1),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._login = manager_login
        self._pw_hash = password_hash(password)
        self._offset = timedelta(hours=server_utc_offset_hours)
        self._agent = agent
        self._version = version
        self._app_id = api_app_id
        self._client_search_mask = client_search_mask
        self._page_size = deal_page_size
        self._deal_window = deal_window
        # One pinned keep-alive connection: the session lives and dies with it.
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            verify=ssl_verify(verify),
            timeout=timeout,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            transport=transport,
        )
        self._auth_lock = asyncio.Lock()
        self._generation = 0
        self._session: int | None = None  # generation of the live session, None when logged out
        self._currencies: dict[str, str] = {}
        # Ingestion reads a window's trades, then the same window's money operations: the deal
        # answers hold both, so the money deals of the last full read are kept for that second
        # call instead of asking the server again.
        self._money_deals: tuple[tuple[object, ...], list[dict[str, Any]]] | None = None

    async def __aenter__(self) -> Mt5WebApiClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- session -----------------------------------------------------------------------------

    async def _authenticate(self) -> None:
        start = await self._raw(
            "auth/start",
            {
                "version": self._version,
                "agent": self._agent,
                "login": self._login,
                "type": "manager",
            },
        )
        srv_rand_hex = str(self._decode(start, "auth/start").get("srv_rand", ""))
        try:
            srv_rand = bytes.fromhex(srv_rand_hex)
        except ValueError as exc:
            raise PlatformError(
                "MT5 auth/start: malformed srv_rand",
                code="protocol",
                kind=PlatformErrorKind.PROTOCOL,
            ) from exc
        cli_rand = secrets.token_bytes(16)
        answer = await self._raw(
            "auth/answer",
            {
                "srv_rand_answer": challenge_answer(self._pw_hash, srv_rand),
                "cli_rand": cli_rand.hex(),
            },
        )
        if answer.status_code == 403:
            raise PlatformError(
                "MT5 manager login refused: wrong login or password, or Web API access not allowed",
                code="auth",
                kind=PlatformErrorKind.AUTH,
            )
        data = self._decode(answer, "auth/answer")
        # The server proves it knows the password too; anything else may be an impostor.
        expected = challenge_answer(self._pw_hash, cli_rand)
        if not hmac.compare_digest(str(data.get("cli_rand_answer", "")).lower(), expected):
            raise PlatformError(
                "MT5 server failed the mutual authentication check (cli_rand_answer)",
                code="auth_server",
                kind=PlatformErrorKind.AUTH,
            )

    async def _session_for(self, stale: int | None) -> int:
        """The live session's generation; logs in when there is none or it is the stale one."""
        async with self._auth_lock:
            if self._session is None or self._session == stale:
                self._session = None
                await self._authenticate()
                self._generation += 1
                self._session = self._generation
            return self._session

    async def _raw(self, command: str, params: Mapping[str, object]) -> httpx.Response:
        """One GET without session handling (the auth steps)."""
        try:
            return await self._http.get(f"/api/{command}", params=_query(params))
        except httpx.TimeoutException as exc:
            raise _unavailable(command, "timeout", "timeout") from exc
        except httpx.TransportError as exc:
            raise _unavailable(command, f"connection failed: {exc!r}", "network") from exc

    async def _call(
        self,
        method: str,
        command: str,
        params: Mapping[str, object] | None = None,
        body: object = None,
        *,
        mutating: bool = False,
    ) -> dict[str, Any]:
        """One command in the session; logs in again once on 403 or a dropped connection.

        `mutating` calls are not resent after a failure in flight: the server may have applied them,
        so the caller reconciles instead (find_balance_op, find_accounts_by_client).
        """
        stale: int | None = None
        for attempt in range(2):
            session = await self._session_for(stale)
            try:
                response = await self._http.request(
                    method, f"/api/{command}", params=_query(params or {}), json=body
                )
            except httpx.TimeoutException as exc:
                raise _unavailable(command, "timeout", "timeout") from exc
            except httpx.TransportError as exc:
                stale = session
                if attempt == 0 and (not mutating or isinstance(exc, httpx.ConnectError)):
                    continue
                raise _unavailable(command, f"connection failed: {exc!r}", "network") from exc
            if response.status_code == 403:
                stale = session
                if attempt == 0:
                    continue
                raise PlatformError(
                    f"MT5 {command}: HTTP 403 after logging in again",
                    code="http_403",
                    kind=PlatformErrorKind.AUTH,
                )
            return self._decode(response, command)
        raise AssertionError("unreachable")

    @staticmethod
    def _decode(response: httpx.Response, command: str) -> dict[str, Any]:
        status = response.status_code
        if status != 200:
            if status == 429:
                kind = PlatformErrorKind.RATE_LIMITED
            elif status >= 500:
                kind = PlatformErrorKind.UNAVAILABLE
            elif status in (401, 403):
                kind = PlatformErrorKind.AUTH
            elif status == 404:
                kind = PlatformErrorKind.PROTOCOL  # no such command on this server
            else:
                kind = PlatformErrorKind.ERROR
            raise PlatformError(f"MT5 {command}: HTTP {status}", code=f"http_{status}", kind=kind)
        try:
            data = response.json()
        except ValueError as exc:
            raise PlatformError(
                f"MT5 {command}: answer is not JSON",
                code="protocol",
                kind=PlatformErrorKind.PROTOCOL,
            ) from exc
        if not isinstance(data, dict) or "retcode" not in data:
            raise PlatformError(
                f"MT5 {command}: answer without retcode",
                code="protocol",
                kind=PlatformErrorKind.PROTOCOL,
            )
        code, text = parse_retcode(data["retcode"])
        if code != 0:
            raise retcode_error(command, code, text)
        return data

    async def _answer(
        self,
        method: str,
        command: str,
        params: Mapping[str, object] | None = None,
        body: object = None,
        *,
        mutating: bool = False,
    ) -> Any:
        return (await self._call(method, command, params, body, mutating=mutating)).get("answer")

    # --- time ----------------------------------------------------------------------------------

    def _to_utc(self, server_seconds: object, server_msc: object = None) -> datetime:
        """Trade-server unix time (TimeMsc preferred when present) as an aware UTC datetime."""
        millis = to_int(server_msc) if server_msc not in (None, "") else 0
        if not millis:
            millis = to_int(server_seconds) * 1000
        return _EPOCH + timedelta(milliseconds=millis) - self._offset

    def _to_server(self, moment: datetime) -> int:
        if moment.tzinfo is None:
            raise ValueError("naive datetime: pass UTC-aware datetimes")
        return int((moment + self._offset).timestamp())

    # --- gateway -------------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._call("GET", "test/access")

    async def create_account(self, spec: NewAccountSpec) -> PlatformAccountRef:
        body: dict[str, object] = {
            "Group": spec.group,
            "Leverage": str(spec.leverage),
            "FirstName": spec.first_name,
            "LastName": spec.last_name,
            "Name": f"{spec.first_name} {spec.last_name}".strip(),
            "Email": spec.email,
            "Country": spec.country,
            "Phone": spec.phone,
            "ID": client_key(spec.client_id),
            "ApiData": client_id_cells(spec.client_id, self._app_id),
            # Passwords travel in the body only, never in the URL (logs, proxies).
            "PassMain": spec.main_password,
            "PassInvestor": spec.investor_password,
        }
        user = await self._answer(
            "POST",
            "user/add",
            {"group": spec.group, "leverage": spec.leverage},
            body,
            mutating=True,
        )
        return _account_ref(user)

    async def get_account(self, login: int) -> AccountState:
        user = await self._answer("GET", "user/get", {"login": login})
        account = await self._answer("GET", "user/account/get", {"login": login})
        return await self._account_state(user, account)

    async def find_accounts_by_client(self, client_id: str) -> list[PlatformAccountRef]:
        key = client_key(client_id)
        users = await self._answer("GET", "user/get_batch", {"group": self._client_search_mask})
        return [_account_ref(user) for user in users or [] if self._client_id_of(user) == key]

    async def balance_op(
        self, login: int, kind: BalanceOpKind, amount: Decimal, ref: str
    ) -> BalanceOpResult:
        if amount <= 0:
            raise ValueError("amount must be positive; the kind gives the direction")
        if not ref or len(ref) > COMMENT_MAX:
            raise ValueError(f"ref must be 1..{COMMENT_MAX} characters (the MT5 deal comment)")
        deal_type, sign = _BALANCE_TYPES[kind]
        signed = amount * sign
        answer = await self._answer(
            "GET",
            "trade/balance",
            {
                "login": login,
                "type": deal_type,
                "balance": format(signed, "f"),
                "comment": ref,
                "check_margin": 1,
            },
            mutating=True,
        )
        ticket = str(answer["Ticket"])
        try:
            deal = await self._answer("GET", "deal/get", {"ticket": ticket})
        except PlatformError:
            # The money moved; the deal time is a nicety, not worth failing the activity for.
            return BalanceOpResult(
                ticket=ticket, amount=signed, comment=ref, time=datetime.now(UTC)
            )
        return _balance_result(deal, self._to_utc(deal.get("Time", 0), deal.get("TimeMsc")))

    async def find_balance_op(
        self, login: int, ref: str, since: datetime
    ) -> BalanceOpResult | None:
        # Slack on both ends: the broker's clock and ours are never quite the same.
        params = {
            "login": login,
            "from": self._to_server(since) - 60,
            "to": self._to_server(datetime.now(UTC)) + 60,
        }
        for deal in await self._answer("GET", "deal/get_batch", params) or []:
            if _action(deal) in MONEY_ACTIONS and str(deal.get("Comment", "")) == ref:
                return _balance_result(deal, self._to_utc(deal.get("Time", 0), deal.get("TimeMsc")))
        return None

    async def set_group(self, login: int, group: str) -> None:
        await self._call("POST", "user/update", {"login": login, "group": group})

    async def set_leverage(self, login: int, leverage: int) -> None:
        await self._call("POST", "user/update", {"login": login, "leverage": leverage})

    async def set_access(self, login: int, access: AccessLevel) -> None:
        user = await self._answer("GET", "user/get", {"login": login})
        rights = rights_for_access(to_int(user.get("Rights", 0)), access)
        await self._call("POST", "user/update", {"login": login, "rights": rights})

    async def list_groups(self) -> list[str]:
        total = to_int((await self._answer("GET", "group/total") or {}).get("total", 0))
        names = []
        for index in range(total):
            group = await self._answer("GET", "group/next", {"index": index})
            names.append(str(group["Group"]))
        return names

    async def list_open_positions(
        self, logins: list[int] | None, group: str | None
    ) -> list[OpenPosition]:
        """Open positions of some logins or of a group mask, paged (position/get_total+get_page)."""
        if (logins is None) == (group is None):
            raise ValueError("pass either logins or a group mask")
        selector: dict[str, object] = (
            {"login": ",".join(str(login) for login in logins)}
            if logins is not None
            else {"group": str(group)}
        )
        if logins == []:
            return []
        total = to_int(
            (await self._answer("GET", "position/get_total", selector) or {}).get("total", 0)
        )
        positions: list[OpenPosition] = []
        for offset in range(0, total, self._page_size):
            page = await self._answer(
                "GET",
                "position/get_page",
                {**selector, "offset": offset, "total": self._page_size},
            )
            positions.extend(self._open_position(raw) for raw in page or [])
        return positions

    def _open_position(self, raw: Mapping[str, Any]) -> OpenPosition:
        volume_ext = to_int(raw.get("VolumeExt", 0) or 0)
        lots = (
            Decimal(volume_ext) / LOTS_PER_VOLUME_EXT
            if volume_ext
            else Decimal(to_int(raw.get("Volume", 0))) / LOTS_PER_VOLUME
        )
        current = raw.get("PriceCurrent")
        return OpenPosition(
            position_id=str(raw["Position"]),
            login=to_int(raw["Login"]),
            symbol=str(raw.get("Symbol", "")),
            side="buy" if to_int(raw.get("Action", 0)) == ACTION_BUY else "sell",
            volume_lots=lots,
            open_price=to_decimal(raw.get("PriceOpen", 0)),
            current_price=to_decimal(current) if current not in (None, "") else None,
            profit=to_decimal(raw.get("Profit", 0)),
            swap=to_decimal(raw.get("Storage", 0)),
            commission=to_decimal(raw.get("Commission", 0) or 0),
            opened_at=self._to_utc(raw.get("TimeCreate", 0), raw.get("TimeCreateMsc")),
        )

    async def list_accounts(self, group: str | None) -> list[AccountState]:
        """Every account of a group mask (all the manager sees when None): users and their trade
        accounts in two batch calls, or one account call per login on servers without
        user/account/get_batch."""
        mask = group or self._client_search_mask
        users = await self._answer("GET", "user/get_batch", {"group": mask}) or []
        accounts: dict[int, Mapping[str, Any]] = {}
        try:
            batch = await self._answer("GET", "user/account/get_batch", {"group": mask}) or []
            accounts = {to_int(a["Login"]): a for a in batch}
        except PlatformError as exc:
            if exc.kind not in (PlatformErrorKind.PROTOCOL, PlatformErrorKind.INVALID_REQUEST):
                raise
            for user in users:
                login = to_int(user["Login"])
                accounts[login] = await self._answer("GET", "user/account/get", {"login": login})
        states = []
        for user in users:
            login = to_int(user["Login"])
            account = accounts.get(login)
            if account is None:
                continue
            states.append(await self._account_state(user, account))
        return states

    async def _account_state(
        self, user: Mapping[str, Any], account: Mapping[str, Any]
    ) -> AccountState:
        group = str(user["Group"])
        margin = to_decimal(account.get("Margin", 0))
        return AccountState(
            login=to_int(user["Login"]),
            group=group,
            leverage=to_int(user.get("Leverage", 0)),
            currency=await self._group_currency(group),
            balance=to_decimal(account.get("Balance", 0)),
            credit=to_decimal(account.get("Credit", 0)),
            equity=to_decimal(account.get("Equity", 0)),
            margin=margin,
            free_margin=to_decimal(account.get("MarginFree", 0)),
            margin_level=to_decimal(account.get("MarginLevel", 0)) if margin else None,
            access=access_from_rights(to_int(user.get("Rights", 0))),
            client_id=self._client_id_of(user),
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
        """The closing deals in [since, until], and with `openings` the opening ones (entry in:
        MT5 charges their commission to the balance). Opening deals also give `opened_at` to the
        closing deals of their position read in the same call (the earliest, as a netting
        position can be added to). A position opened before `since` keeps `opened_at` None: the
        Web API cannot look a position's deals up."""
        if (logins is None) == (group is None):
            raise ValueError("pass either logins or a group mask")
        start, end = self._to_server(since), self._to_server(until)
        openings_at: dict[str, datetime] = {}  # position id -> its opening deal's time, this call
        money: list[dict[str, Any]] = []
        self._money_deals = None
        async for answer in self._deal_answers(logins, group, start, end):
            # Openings first: an answer's order is the server's, not necessarily by time.
            for raw in answer:
                self._note_opening(raw, openings_at)
            for raw in answer:
                deal = self._trade_deal(raw, openings_at, openings_too=openings)
                if deal is not None:
                    yield deal
                elif _action(raw) not in TRADE_ACTIONS:
                    money.append(raw)
        self._money_deals = (_deal_scope(logins, group, start, end), money)

    async def iter_balance_ops(
        self, logins: list[int] | None, group: str | None, since: datetime, until: datetime
    ) -> AsyncIterator[PlatformBalanceOp]:
        """Every deal in [since, until] that is not a trade: balance, credit, bonus, charge,
        correction, commissions charged apart, interest, dividends, taxes, compensations."""
        if (logins is None) == (group is None):
            raise ValueError("pass either logins or a group mask")
        start, end = self._to_server(since), self._to_server(until)
        read, self._money_deals = self._money_deals, None
        scope = _deal_scope(logins, group, start, end)
        answers = (
            _once(read[1])
            if read and read[0] == scope
            else self._deal_answers(logins, group, start, end)
        )
        async for answer in answers:
            for raw in answer:
                action = _action(raw)
                if action is None or action in TRADE_ACTIONS:
                    continue
                yield PlatformBalanceOp(
                    ticket=str(raw["Deal"]),
                    login=to_int(raw["Login"]),
                    kind=CREDIT if action in CREDIT_ACTIONS else BALANCE,
                    amount=to_decimal(raw.get("Profit", 0)),
                    comment=str(raw.get("Comment", "")),
                    time=self._to_utc(raw.get("Time", 0), raw.get("TimeMsc")),
                    raw=dict(raw),
                )

    async def _deal_answers(
        self, logins: list[int] | None, group: str | None, start: int, end: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        if logins is not None:
            for login in logins:
                async for page in self._deals_of_login(login, start, end):
                    yield page
        else:
            async for window in self._deals_of_group(str(group), start, end):
                yield window

    async def _deals_of_login(
        self, login: int, start: int, end: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Paged: a busy account can have more deals than one answer should carry."""
        span = {"login": login, "from": start, "to": end}
        total = to_int((await self._answer("GET", "deal/get_total", span) or {}).get("total", 0))
        for offset in range(0, total, self._page_size):
            page = await self._answer(
                "GET", "deal/get_page", {**span, "offset": offset, "total": self._page_size}
            )
            yield list(page or [])

    async def _deals_of_group(
        self, mask: str, start: int, end: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Windowed: cutting the range (ends inclusive) bounds the size of a group answer."""
        step = max(1, int(self._deal_window.total_seconds()))
        window_start = start
        while window_start <= end:
            window_end = min(end, window_start + step - 1)
            params = {"group": mask, "from": window_start, "to": window_end}
            yield list(await self._answer("GET", "deal/get_batch", params) or [])
            window_start = window_end + 1

    def _note_opening(self, raw: dict[str, Any], openings: dict[str, datetime]) -> None:
        """Remembers when a position opened, if `raw` is a buy or sell that opens one."""
        if _action(raw) not in (ACTION_BUY, ACTION_SELL) or _entry(raw) != ENTRY_IN:
            return
        position = str(raw.get("PositionID", ""))
        at = self._to_utc(raw.get("Time", 0), raw.get("TimeMsc"))
        if position not in openings or at < openings[position]:
            openings[position] = at

    def _trade_deal(
        self, raw: dict[str, Any], openings: Mapping[str, datetime], *, openings_too: bool
    ) -> ClosedDeal | None:
        """A closing trade (or an opening one, if wanted), or None for anything else (money
        moves, unknown actions)."""
        action = _action(raw)
        entry = _entry(raw)
        wanted = CLOSING_ENTRIES | {ENTRY_IN} if openings_too else CLOSING_ENTRIES
        if action not in (ACTION_BUY, ACTION_SELL) or entry is None or entry not in wanted:
            return None
        volume_ext = to_int(raw.get("VolumeExt", 0) or 0)
        lots = (
            Decimal(volume_ext) / LOTS_PER_VOLUME_EXT
            if volume_ext
            else Decimal(to_int(raw.get("Volume", 0))) / LOTS_PER_VOLUME
        )
        position_id = str(raw.get("PositionID", ""))
        return ClosedDeal(
            deal_id=str(raw["Deal"]),
            login=to_int(raw["Login"]),
            position_id=position_id,
            symbol=str(raw.get("Symbol", "")),
            side="buy" if action == ACTION_BUY else "sell",
            entry=ENTRY_NAMES[entry],
            volume_lots=lots,
            price=to_decimal(raw.get("Price", 0)),
            profit=to_decimal(raw.get("Profit", 0)),
            commission=to_decimal(raw.get("Commission", 0)),
            swap=to_decimal(raw.get("Storage", 0)),
            time=self._to_utc(raw.get("Time", 0), raw.get("TimeMsc")),
            opened_at=openings.get(position_id),
            raw=dict(raw),
        )

    async def _group_currency(self, group: str) -> str:
        if group not in self._currencies:
            answer = await self._answer("GET", "group/get", {"group": group})
            self._currencies[group] = str(answer.get("Currency", "USD"))
        return self._currencies[group]

    def _client_id_of(self, user: Mapping[str, Any]) -> str | None:
        """The client id in `client_key` form: the ID field, else the ApiData cells."""
        if user.get("ID"):
            return str(user["ID"])
        from_cells = client_id_from_cells(user.get("ApiData"), self._app_id)
        return client_key(from_cells) if from_cells else None

    async def close(self) -> None:
        if self._session is not None:
            # The session ends with the connection anyway; quit is a courtesy.
            with contextlib.suppress(httpx.HTTPError):
                await self._http.get("/api/quit")
            self._session = None
        await self._http.aclose()


def _unavailable(command: str, what: str, code: str) -> PlatformError:
    return PlatformError(
        f"MT5 {command}: {what}", code=code, retryable=True, kind=PlatformErrorKind.UNAVAILABLE
    )


def _query(params: Mapping[str, object]) -> dict[str, str]:
    return {key: str(value) for key, value in params.items()}


def _deal_scope(
    logins: list[int] | None, group: str | None, start: int, end: int
) -> tuple[object, ...]:
    return (tuple(logins) if logins is not None else None, group, start, end)


async def _once(answer: list[dict[str, Any]]) -> AsyncIterator[list[dict[str, Any]]]:
    yield answer


def _entry(deal: Mapping[str, Any]) -> int | None:
    try:
        return int(str(deal.get("Entry")))
    except ValueError:
        return None


def _action(deal: Mapping[str, Any]) -> int | None:
    try:
        return int(str(deal.get("Action")))
    except ValueError:
        return None


def _account_ref(user: Mapping[str, Any]) -> PlatformAccountRef:
    return PlatformAccountRef(
        login=to_int(user["Login"]),
        group=str(user["Group"]),
        leverage=to_int(user.get("Leverage", 0)),
    )


def _balance_result(deal: Mapping[str, Any], time: datetime) -> BalanceOpResult:
    return BalanceOpResult(
        ticket=str(deal["Deal"]),
        amount=to_decimal(deal.get("Profit", 0)),
        comment=str(deal.get("Comment", "")),
        time=time,
    )
