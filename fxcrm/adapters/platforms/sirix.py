"""Sirix (Leverate) REST client: every call is a POST with a JSON body and a Bearer token.

Units are converted here: doubles to Decimal, `Volume` to lots (volume / 100000, for every symbol:
the one public client that reads volumes does so [verify on a live server]), and the server clock
(local time of `Asia/Jerusalem`, DST included) to UTC, both ways.

Choices the spec leaves open, made here and mirrored by the simulator:
- fxcrm's client id lives in `UserDetails.Comment` as `fxcrm:<client id>` (`Source` says "fxcrm").
  The comment is free text no report or terminal depends on; the prefix keeps a dealer's own note
  from passing for an id. `find_accounts_by_client` scans `GetAllUsers` for it.
- Money kinds ride on `subType` of Deposit/WithdrawBalanceWithResult: 0 balance, 1 credit (the
  credit column, not withdrawable), 2 bonus (lands on the balance like MT5's bonus deal, but
  tagged so reports can tell it from a deposit).
- Access: DISABLED is `DisableUser`; the rest is `UpdateUser` with `IsEnabled`, `DisableTrading`
  and `Tradability` (READ_ONLY: trading disabled; NO_TRADING: close-only).
- No idempotency key: the ref goes into `comment` and `find_balance_op` looks for it among the
  `MonetaryTransactions` of `UserStatus/GetUserTransactions`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

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

SERVER_TIMEZONE = "Asia/Jerusalem"
LOTS_PER_VOLUME = Decimal(100_000)
COMMENT_MAX = 100  # Sirix's limit is not published; fxcrm refs are 31 characters at most

MANAGEMENT = "ManagementService"
USER_ACTIONS = "UserActions"
USER_STATUS = "UserStatus"

# subType of DepositBalanceWithResult / WithdrawBalanceWithResult.
SUBTYPE_BALANCE = 0
SUBTYPE_CREDIT = 1
SUBTYPE_BONUS = 2

# Tradability values (strings on the simulator's wire; numbers 0..2 are read the same way).
TRADABLE = "Tradable"
CLOSE_ONLY = "CloseOnly"
NOT_TRADABLE = "NotTradable"
_TRADABILITY_NUMBERS = {0: TRADABLE, 1: CLOSE_ONLY, 2: NOT_TRADABLE}

CLIENT_TAG = "fxcrm:"
SOURCE = "fxcrm"

# kind -> (method, subType, sign)
_BALANCE_CALLS: dict[BalanceOpKind, tuple[str, int, int]] = {
    BalanceOpKind.DEPOSIT: ("DepositBalanceWithResult", SUBTYPE_BALANCE, 1),
    BalanceOpKind.WITHDRAW: ("WithdrawBalanceWithResult", SUBTYPE_BALANCE, -1),
    BalanceOpKind.CREDIT_IN: ("DepositBalanceWithResult", SUBTYPE_CREDIT, 1),
    BalanceOpKind.CREDIT_OUT: ("WithdrawBalanceWithResult", SUBTYPE_CREDIT, -1),
    BalanceOpKind.BONUS: ("DepositBalanceWithResult", SUBTYPE_BONUS, 1),
}

# Error names (ours and plausible spellings of a real server) -> meaning.
_ERROR_CODES: dict[str, PlatformErrorKind] = {
    "usernotfound": PlatformErrorKind.NOT_FOUND,
    "invaliduserid": PlatformErrorKind.NOT_FOUND,
    "unknownuser": PlatformErrorKind.NOT_FOUND,
    "groupnotfound": PlatformErrorKind.UNKNOWN_GROUP,
    "unknowngroup": PlatformErrorKind.UNKNOWN_GROUP,
    "invalidgroup": PlatformErrorKind.UNKNOWN_GROUP,
    "invalidleverage": PlatformErrorKind.INVALID_LEVERAGE,
    "leverageexceeded": PlatformErrorKind.INVALID_LEVERAGE,
    "insufficientfunds": PlatformErrorKind.INSUFFICIENT_FUNDS,
    "notenoughmoney": PlatformErrorKind.INSUFFICIENT_FUNDS,
    "insufficientmargin": PlatformErrorKind.INSUFFICIENT_FUNDS,
    "invalidamount": PlatformErrorKind.INVALID_REQUEST,
    "invalidpassword": PlatformErrorKind.INVALID_REQUEST,
    "invalidrequest": PlatformErrorKind.INVALID_REQUEST,
    "alreadyexists": PlatformErrorKind.CONFLICT,
    "unauthorized": PlatformErrorKind.AUTH,
    "forbidden": PlatformErrorKind.PERMISSION,
    "unknownmethod": PlatformErrorKind.PROTOCOL,
    "serviceunavailable": PlatformErrorKind.UNAVAILABLE,
}
_STATUS_KINDS = {
    401: PlatformErrorKind.AUTH,
    403: PlatformErrorKind.PERMISSION,
    404: PlatformErrorKind.NOT_FOUND,
    409: PlatformErrorKind.CONFLICT,
    429: PlatformErrorKind.RATE_LIMITED,
}
_CODE_KEYS = ("ErrorCode", "errorCode", "Code", "code", "Error", "error")
_MESSAGE_KEYS = ("Message", "message", "ErrorMessage", "errorMessage", "detail", "title", "error")
_NET_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")


# --- conversions ------------------------------------------------------------------------------


def to_server_time(moment: datetime, zone: ZoneInfo) -> str:
    """An aware datetime as the server's local wall-clock time (ISO, no offset)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass UTC-aware datetimes")
    return moment.astimezone(zone).replace(tzinfo=None).isoformat(timespec="milliseconds")


def from_server_time(value: object, zone: ZoneInfo) -> datetime:
    """A server time as aware UTC. Local times without an offset are read in `zone`; in the hour
    repeated when DST ends they are ambiguous and read as the first (summer) one."""
    text = str(value).strip()
    match = _NET_DATE.fullmatch(text)  # WCF-style "/Date(ms)/" from older .NET serializers
    if match:
        return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PlatformError(
            f"Sirix: not a time: {value!r}", code="protocol", kind=PlatformErrorKind.PROTOCOL
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def to_decimal(value: object) -> Decimal:
    if value is None or value == "":
        return Decimal(0)
    try:
        # str() of a float is its shortest repr: 1234.56 stays 1234.56.
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise PlatformError(
            f"Sirix: not a number: {value!r}", code="protocol", kind=PlatformErrorKind.PROTOCOL
        ) from exc


def to_int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError as exc:
        raise PlatformError(
            f"Sirix: not an integer: {value!r}", code="protocol", kind=PlatformErrorKind.PROTOCOL
        ) from exc


def volume_to_lots(volume: object) -> Decimal:
    return to_decimal(volume) / LOTS_PER_VOLUME


def client_comment(client_id: str) -> str:
    return f"{CLIENT_TAG}{client_id}"


def client_id_of(user: Mapping[str, Any]) -> str | None:
    """fxcrm's client id from `UserDetails.Comment`, None when the comment is not ours."""
    details = user.get("UserDetails")
    comment = details.get("Comment") if isinstance(details, Mapping) else None
    if comment is None:
        comment = user.get("Comment")
    text = str(comment or "").strip()
    if text.startswith(CLIENT_TAG) and len(text) > len(CLIENT_TAG):
        return text[len(CLIENT_TAG) :]
    return None


def tradability_of(value: object) -> str:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return _TRADABILITY_NUMBERS.get(int(value), NOT_TRADABLE)
    text = str(value or TRADABLE).replace(" ", "").lower()
    for name in (TRADABLE, CLOSE_ONLY, NOT_TRADABLE):
        if text == name.lower():
            return name
    return NOT_TRADABLE  # unknown restriction: assume the stricter reading


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def access_of(user: Mapping[str, Any]) -> AccessLevel:
    if not _flag(user.get("IsEnabled", True)) or _flag(user.get("IsArchived", False)):
        return AccessLevel.DISABLED
    tradability = tradability_of(user.get("Tradability"))
    if _flag(user.get("DisableTrading", False)) or tradability == NOT_TRADABLE:
        return AccessLevel.READ_ONLY
    if tradability == CLOSE_ONLY:
        return AccessLevel.NO_TRADING
    return AccessLevel.FULL


def access_update(access: AccessLevel) -> dict[str, object]:
    """UpdateUser fields for a level other than DISABLED (which is DisableUser)."""
    return {
        AccessLevel.FULL: {"IsEnabled": True, "DisableTrading": False, "Tradability": TRADABLE},
        AccessLevel.NO_TRADING: {
            "IsEnabled": True,
            "DisableTrading": False,
            "Tradability": CLOSE_ONLY,
        },
        AccessLevel.READ_ONLY: {
            "IsEnabled": True,
            "DisableTrading": True,
            "Tradability": NOT_TRADABLE,
        },
    }[access]


def side_of(value: object) -> str:
    """ActionType: "Buy"/"Sell" or 0/1."""
    text = str(value).strip().lower()
    if text in ("buy", "0"):
        return "buy"
    if text in ("sell", "1"):
        return "sell"
    raise PlatformError(
        f"Sirix: unknown ActionType {value!r}", code="protocol", kind=PlatformErrorKind.PROTOCOL
    )


def leverage_of(user: Mapping[str, Any]) -> int:
    margin = user.get("MarginRequirements")
    if isinstance(margin, Mapping) and margin.get("Leverage") is not None:
        return to_int(margin["Leverage"])
    return to_int(user.get("Leverage", 0))


def _first(record: Mapping[str, Any], *keys: str, default: object = None) -> Any:
    for key in keys:
        if record.get(key) is not None:
            return record[key]
    return default


# --- errors -----------------------------------------------------------------------------------


def _error_fields(body: object) -> tuple[str, str]:
    """(error code, message) from whatever error body the server sent."""
    if isinstance(body, Mapping):
        code_value = _first(body, *_CODE_KEYS, default="")
        message_value = _first(body, *_MESSAGE_KEYS, default="")
        if isinstance(code_value, Mapping):  # {"Error": {"Code": ..., "Message": ...}}
            return _error_fields(code_value)
        return str(code_value), str(message_value or code_value)
    if isinstance(body, str):
        return "", body.strip()[:300]
    return "", ""


def _kind_from_message(message: str) -> PlatformErrorKind | None:
    text = message.lower()
    missing = any(word in text for word in ("not found", "unknown", "does not exist", "invalid"))
    if "leverage" in text:
        return PlatformErrorKind.INVALID_LEVERAGE
    if any(word in text for word in ("insufficient", "free margin", "not enough")):
        return PlatformErrorKind.INSUFFICIENT_FUNDS
    if "group" in text and missing:
        return PlatformErrorKind.UNKNOWN_GROUP
    if "user" in text and missing:
        return PlatformErrorKind.NOT_FOUND
    return None


def error_for(method: str, status: int, body: object) -> PlatformError:
    """A PlatformError for a refused call: the error code, then the status, then the wording."""
    code, message = _error_fields(body)
    kind = _ERROR_CODES.get(code.replace(" ", "").lower()) if code else None
    if kind is None and status >= 500:
        kind = PlatformErrorKind.UNAVAILABLE
    if kind is None and status in (401, 403, 429):
        kind = _STATUS_KINDS[status]
    if kind is None:
        kind = _kind_from_message(message)
    if kind is None:
        kind = _STATUS_KINDS.get(status) or (
            PlatformErrorKind.INVALID_REQUEST if 400 <= status < 500 else PlatformErrorKind.ERROR
        )
    detail = f": {code or ''} {message}".rstrip() if (code or message) else ""
    return PlatformError(
        f"Sirix {method}: HTTP {status}{detail}", code=code or f"http_{status}", kind=kind
    )


# --- client -----------------------------------------------------------------------------------


class SirixClient:
    """`TradingPlatformGateway` for one Leverate REST server and one API token."""

    platform = "sirix"
    # Charged at the opening, reported again on the closed positions (see base.py).
    open_commission_reported_on_close = True

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        verify: bool | str | Path = True,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
        server_timezone: str = SERVER_TIMEZONE,
        currency: str | None = None,
        deal_window: timedelta = timedelta(days=1),
    ) -> None:
        self._zone = ZoneInfo(server_timezone)
        self._currency = currency  # None: the group's currency decides
        self._deal_window = deal_window
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            verify=ssl_verify(verify),
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    async def __aenter__(self) -> SirixClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- transport -----------------------------------------------------------------------------

    async def _post(self, service: str, method: str, body: Mapping[str, object]) -> dict[str, Any]:
        """One call; {} for 204. No retries here: mutating calls are reconciled by the caller
        (find_balance_op, find_accounts_by_client) and Temporal retries the retryable kinds."""
        name = f"{service}/{method}"
        try:
            response = await self._http.post(f"/api/{name}", json=dict(body))
        except httpx.TimeoutException as exc:
            raise PlatformError(
                f"Sirix {name}: timeout", code="timeout", kind=PlatformErrorKind.UNAVAILABLE
            ) from exc
        except httpx.TransportError as exc:
            raise PlatformError(
                f"Sirix {name}: connection failed: {exc!r}",
                code="network",
                kind=PlatformErrorKind.UNAVAILABLE,
            ) from exc
        status = response.status_code
        if status == 204 or (200 <= status < 300 and not response.content.strip()):
            return {}
        try:
            data: object = response.json()
        except ValueError:
            if 200 <= status < 300:
                raise PlatformError(
                    f"Sirix {name}: answer is not JSON",
                    code="protocol",
                    kind=PlatformErrorKind.PROTOCOL,
                ) from None
            data = response.text
        if not 200 <= status < 300:
            raise error_for(name, status, data)
        if not isinstance(data, dict):
            raise PlatformError(
                f"Sirix {name}: answer is not an object",
                code="protocol",
                kind=PlatformErrorKind.PROTOCOL,
            )
        # Some servers answer 200 with an error inside; a non-empty ErrorCode means a refusal.
        embedded = data.get("ErrorCode")
        if embedded not in (None, "", 0, "0", "None", "Ok", "OK"):
            raise error_for(name, status, data)
        return data

    async def _management(self, method: str, body: Mapping[str, object] | None = None) -> Any:
        return await self._post(MANAGEMENT, method, body or {})

    async def _user(self, login: int) -> dict[str, Any]:
        answer = await self._management("GetUser", {"userID": login})
        user = answer.get("User")
        if not isinstance(user, dict):
            raise PlatformError(
                f"Sirix GetUser: no user {login} in the answer",
                code="protocol",
                kind=PlatformErrorKind.PROTOCOL,
            )
        return user

    async def _all_users(self) -> list[dict[str, Any]]:
        users = (await self._management("GetAllUsers")).get("Users") or []
        return [user for user in users if isinstance(user, dict)]

    async def _balance(self, login: int) -> dict[str, Any]:
        answer = await self._management("GetAccountBalance", {"userID": login})
        balance = answer.get("AccountBalance")
        return balance if isinstance(balance, dict) else {}

    async def _update_user(self, login: int, fields: Mapping[str, object]) -> None:
        await self._post(USER_ACTIONS, "UpdateUser", {"UserID": login, **fields})

    # --- extras --------------------------------------------------------------------------------

    async def platform_time(self) -> datetime:
        """The server clock, as UTC."""
        answer = await self._management("GetPlatformTime")
        return from_server_time(answer.get("PlatformTime"), self._zone)

    async def verify_user(self, login: int, password: str) -> int:
        """`UserVerificationResult` of a trader's credentials (0 = ok)."""
        answer = await self._management("VerifyUser", {"userID": login, "password": password})
        return to_int(answer.get("UserVerificationResult", -1))

    # --- gateway -------------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._management("Ping")

    async def create_account(self, spec: NewAccountSpec) -> PlatformAccountRef:
        full_name = f"{spec.first_name} {spec.last_name}".strip()
        body: dict[str, object] = {
            "GroupName": spec.group,
            "FullName": full_name,
            "UserDetails": {
                "FullName": full_name,
                "Phone": spec.phone,
                "Email": spec.email,
                "CreationTime": to_server_time(datetime.now(UTC), self._zone),
                "Source": SOURCE,
                "Comment": client_comment(spec.client_id),
                "Country": spec.country,
                "State": "",
                "City": "",
                "Address": "",
                "ZipCode": "",
            },
            "TradingState": "Enabled",
            "Tradability": TRADABLE,
            "Passwords": {
                "Password": spec.main_password,
                "InvestorPassword": spec.investor_password,
            },
            "MarginRequirements": {
                "Leverage": spec.leverage,
                "MarginCoefficient": 1,
                "UseAccountMarginRequirements": True,
            },
            "InitialDepositRequestDetails": {"Balance": 0, "InitialDepositComment": ""},
        }
        if self._currency:
            body["Currency"] = self._currency
        answer = await self._post(USER_ACTIONS, "CreateUser", body)
        user = answer.get("User")
        if not isinstance(user, dict) or user.get("UserID") is None:
            raise PlatformError(
                "Sirix CreateUser: answer without User.UserID",
                code="protocol",
                kind=PlatformErrorKind.PROTOCOL,
            )
        return PlatformAccountRef(
            login=to_int(user["UserID"]), group=spec.group, leverage=spec.leverage
        )

    async def get_account(self, login: int) -> AccountState:
        user = await self._user(login)
        return self._account_state(user, await self._balance(login))

    def _account_state(self, user: Mapping[str, Any], balance: Mapping[str, Any]) -> AccountState:
        margin = to_decimal(_first(balance, "Margin", "UsedMargin", default=0))
        equity = to_decimal(balance.get("Equity", 0))
        level = balance.get("MarginLevel")
        return AccountState(
            login=to_int(user["UserID"]),
            group=str(user.get("GroupName", "")),
            leverage=leverage_of(user),
            currency=str(_first(balance, "Currency", default=user.get("Currency", "USD"))),
            balance=to_decimal(balance.get("Balance", 0)),
            credit=to_decimal(balance.get("Credit", 0)),
            equity=equity,
            margin=margin,
            free_margin=to_decimal(
                _first(balance, "FreeMargin", "MarginFree", default=equity - margin)
            ),
            margin_level=(to_decimal(level) if level is not None else equity / margin * 100)
            if margin
            else None,
            access=access_of(user),
            client_id=client_id_of(user),
        )

    async def find_accounts_by_client(self, client_id: str) -> list[PlatformAccountRef]:
        return [
            PlatformAccountRef(
                login=to_int(user["UserID"]),
                group=str(user.get("GroupName", "")),
                leverage=leverage_of(user),
            )
            for user in await self._all_users()
            if client_id_of(user) == client_id
        ]

    async def balance_op(
        self, login: int, kind: BalanceOpKind, amount: Decimal, ref: str
    ) -> BalanceOpResult:
        if amount <= 0:
            raise ValueError("amount must be positive; the kind gives the direction")
        if not ref or len(ref) > COMMENT_MAX:
            raise ValueError(f"ref must be 1..{COMMENT_MAX} characters (the Sirix comment)")
        method, sub_type, sign = _BALANCE_CALLS[kind]
        before = datetime.now(UTC)
        answer = await self._management(
            method,
            {"userID": login, "amount": float(amount), "comment": ref, "subType": sub_type},
        )
        order_id = answer.get("OrderID")
        if order_id in (None, "", 0):
            raise PlatformError(
                f"Sirix {method}: answer without OrderID",
                code="protocol",
                kind=PlatformErrorKind.PROTOCOL,
            )
        try:
            transactions = await self._transactions(login)
        except PlatformError:
            # The money moved; the server's time of it is a nicety, not worth failing for.
            transactions = []
        for row in transactions:
            if str(row.get("OrderID")) == str(order_id):
                return self._balance_result(row)
        return BalanceOpResult(ticket=str(order_id), amount=amount * sign, comment=ref, time=before)

    async def _transactions(self, login: int) -> list[dict[str, Any]]:
        answer = await self._post(
            USER_STATUS,
            "GetUserTransactions",
            {
                "UserID": login,
                "GetOpenPositions": False,
                "GetPendingPositions": False,
                "GetClosePositions": False,
                "GetMonetaryTransactions": True,
            },
        )
        rows = answer.get("MonetaryTransactions") or []
        return [row for row in rows if isinstance(row, dict)]

    def _balance_result(self, row: Mapping[str, Any]) -> BalanceOpResult:
        amount = to_decimal(row.get("Amount", 0))
        kind = str(_first(row, "Type", "TransactionType", default="")).lower()
        if amount > 0 and kind.startswith("withdraw"):
            amount = -amount
        return BalanceOpResult(
            ticket=str(row.get("OrderID")),
            amount=amount,
            comment=str(row.get("Comment", "")),
            time=from_server_time(_first(row, "Time", "Date", "CreationTime"), self._zone),
        )

    async def find_balance_op(
        self, login: int, ref: str, since: datetime
    ) -> BalanceOpResult | None:
        if since.tzinfo is None:
            raise ValueError("naive datetime: pass UTC-aware datetimes")
        # Slack: the broker's clock and ours are never quite the same.
        earliest = since - timedelta(minutes=1)
        for row in await self._transactions(login):
            if str(row.get("Comment", "")) != ref:
                continue
            result = self._balance_result(row)
            if result.time >= earliest:
                return result
        return None

    async def set_group(self, login: int, group: str) -> None:
        await self._update_user(login, {"GroupName": group})

    async def set_leverage(self, login: int, leverage: int) -> None:
        # UpdateUser + MarginRequirements: the dedicated leverage call is unreliable in the wild.
        await self._update_user(
            login,
            {"MarginRequirements": {"Leverage": leverage, "UseAccountMarginRequirements": True}},
        )

    async def set_access(self, login: int, access: AccessLevel) -> None:
        if access is AccessLevel.DISABLED:
            await self._management("DisableUser", {"userID": login})
        else:
            await self._update_user(login, access_update(access))

    async def list_groups(self) -> list[str]:
        # GetAllGroups is not among the calls public clients use [verify]; without it, the groups
        # that hold users are the best answer available.
        try:
            groups = (await self._management("GetAllGroups")).get("Groups") or []
        except PlatformError as exc:
            if exc.kind not in (PlatformErrorKind.NOT_FOUND, PlatformErrorKind.PROTOCOL):
                raise
            users = await self._all_users()
            return sorted({str(u["GroupName"]) for u in users if u.get("GroupName")})
        return [
            str(group.get("GroupName") if isinstance(group, dict) else group) for group in groups
        ]

    async def list_open_positions(
        self, logins: list[int] | None, group: str | None
    ) -> list[OpenPosition]:
        rows: list[dict[str, Any]] = []
        if logins is not None:
            for login in logins:
                answer = await self._management("GetOpenPositionsForUser", {"userID": login})
                rows.extend(answer.get("OpenPositions") or [])
            if group is not None:  # both given: the logins, narrowed to the group
                rows = [row for row in rows if str(row.get("GroupName", group)) == group]
        else:
            groups = [group] if group is not None else await self.list_groups()
            answer = await self._management("GetOpenPositionsForGroups", {"groups": groups})
            rows.extend(answer.get("OpenPositions") or [])
        return [self._open_position(row) for row in rows if isinstance(row, dict)]

    def _open_position(self, row: Mapping[str, Any]) -> OpenPosition:
        current = _first(row, "CurrentRate", "ClosePrice")
        return OpenPosition(
            position_id=str(row.get("PositionID")),
            login=to_int(row.get("UserID")),
            symbol=str(_first(row, "Symbol", "InstrumentName", default="")),
            side=side_of(row.get("ActionType")),
            volume_lots=volume_to_lots(_first(row, "Volume", "Amount", default=0)),
            open_price=to_decimal(_first(row, "OpenRate", "OpenPrice", default=0)),
            current_price=to_decimal(current) if current is not None else None,
            profit=to_decimal(_first(row, "Profit", "ProfitInAccountCurrency", default=0)),
            swap=to_decimal(_first(row, "Swap", "Rollover", default=0)),
            commission=to_decimal(row.get("Commission", 0)),
            opened_at=from_server_time(row.get("OpenTime"), self._zone),
        )

    async def list_accounts(self, group: str | None) -> list[AccountState]:
        states = []
        for user in await self._all_users():
            if group is not None and str(user.get("GroupName", "")) != group:
                continue
            balance = await self._balance(to_int(user["UserID"]))
            states.append(self._account_state(user, balance))
        return states

    async def iter_balance_ops(
        self, logins: list[int] | None, group: str | None, since: datetime, until: datetime
    ) -> AsyncIterator[PlatformBalanceOp]:
        """Monetary transactions in [since, until] (UTC). GetUserTransactions is per user and has
        no time filter: each account's list is read and cut here. Sub-type 1 is credit; balance
        and bonus move the balance."""
        if logins is None:
            users = await self._all_users()
            logins = [
                to_int(user["UserID"])
                for user in users
                if group in (None, ALL_GROUPS) or str(user.get("GroupName", "")) == group
            ]
        for login in logins:
            try:
                rows = await self._transactions(login)
            except PlatformError as exc:
                if exc.kind is PlatformErrorKind.NOT_FOUND:
                    continue  # gone since the list was read: no operations to miss
                raise
            for row in rows:
                result = self._balance_result(row)
                if not since <= result.time <= until:
                    continue
                sub_type = to_int(row.get("SubType", SUBTYPE_BALANCE))
                yield PlatformBalanceOp(
                    ticket=result.ticket,
                    login=login,
                    kind=CREDIT if sub_type == SUBTYPE_CREDIT else BALANCE,
                    amount=result.amount,
                    comment=result.comment,
                    time=result.time,
                    raw=dict(row),
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
        """Closed positions in [since, until] (UTC), by logins, by group, or (neither) all of them.
        Sirix reports positions, not deals: there are no opening deals to read (`openings`
        changes nothing); the commission charged at the opening is on the open position, then
        pro rata on each closed row.

        Windows are cut in UTC and each request is widened by an hour on both sides: local times
        carry no offset, so a window edge in the repeated autumn hour could otherwise miss rows.
        Rows are then kept by their UTC close time and yielded once.
        """
        if group == ALL_GROUPS:
            group = None
        if logins is not None and group is not None:
            raise ValueError("pass logins or a group, not both")
        if since.tzinfo is None or until.tzinfo is None:
            raise ValueError("naive datetime: pass UTC-aware datetimes")
        seen: set[str] = set()
        slack = timedelta(hours=1)
        window_start = since
        while window_start <= until:
            window_end = min(until, window_start + self._deal_window)
            span = {
                "startTime": to_server_time(window_start - slack, self._zone),
                "endTime": to_server_time(window_end + slack, self._zone),
            }
            for row in await self._closed_rows(logins, group, span):
                deal = self._closed_deal(row)
                if deal.deal_id in seen or not window_start <= deal.time <= window_end:
                    continue
                seen.add(deal.deal_id)
                yield deal
            if window_end >= until:
                break
            window_start = window_end

    async def _closed_rows(
        self, logins: list[int] | None, group: str | None, span: dict[str, str]
    ) -> list[dict[str, Any]]:
        rows: list[Any] = []
        if logins is not None:
            for login in logins:
                answer = await self._management(
                    "GetClosedPositionsForUser", {"userID": login, **span}
                )
                rows.extend(answer.get("ClosedPositions") or [])
        elif group is not None:
            answer = await self._management(
                "GetClosedPositionsForGroups", {"groups": [group], **span}
            )
            rows.extend(answer.get("ClosedPositions") or [])
        else:
            # Sic: the server's own spelling of the "all closed positions" call.
            answer = await self._management("GetClosedPoistions", span)
            rows.extend(answer.get("ClosedPositions") or [])
        return [row for row in rows if isinstance(row, dict)]

    def _closed_deal(self, row: Mapping[str, Any]) -> ClosedDeal:
        """A closed-position row as the closing deal: its side is the opposite of the position's,
        as on MT5, so the same IB rules read every platform alike."""
        position_side = side_of(row.get("ActionType"))
        position_id = str(row.get("PositionID", ""))
        opened = row.get("OpenTime")
        return ClosedDeal(
            deal_id=str(_first(row, "OrderID", "CloseOrderID", "PositionID", default="")),
            login=to_int(row.get("UserID")),
            position_id=position_id,
            symbol=str(_first(row, "Symbol", "InstrumentName", default="")),
            side="sell" if position_side == "buy" else "buy",
            entry="out",
            volume_lots=volume_to_lots(_first(row, "Volume", "Amount", default=0)),
            price=to_decimal(_first(row, "CloseRate", "ClosePrice", default=0)),
            profit=to_decimal(_first(row, "Profit", "ProfitInAccountCurrency", default=0)),
            commission=to_decimal(row.get("Commission", 0)),
            swap=to_decimal(_first(row, "Swap", "Rollover", default=0)),
            time=from_server_time(row.get("CloseTime"), self._zone),
            opened_at=from_server_time(opened, self._zone) if opened else None,
            raw=dict(row),
        )

    async def close(self) -> None:
        await self._http.aclose()
