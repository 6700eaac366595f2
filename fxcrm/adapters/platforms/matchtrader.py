"""Match-Trader Broker API v1 client (REST, JSON, API key in `Authorization`).

Concepts: an *account* (one per email, a UUID) owns *trading accounts* (numeric logins), each
opened under an *offer* that names the backend group; `systemUuid` is the trading server. Money is
a JSON number on the wire and Decimal here; times are RFC 3339 UTC both ways.

Choices fxcrm makes here (the Broker API leaves them open):
- fxcrm's client id is stored in the account's `externalId` field [verify on a real server] and
  read back by `find_accounts_by_client` through the account search (`GET /v1/accounts?query=`).
- Deposits and withdrawals go through the manual payment gateway whose currency is the trading
  account's; the operation is followed through its status lifecycle until DONE (or refused).
- BONUS is booked as credit (non-withdrawable, like most brokers' bonuses) with the comment
  `bonus:<ref>`, so it is told apart from plain credit in the ledger.
- No idempotency key exists: the ref is the comment, and `find_balance_op` looks for it in the
  ledgers; a matching operation still in progress is reported as retryable, never as absent.
- Access: FULL and READ_ONLY map one to one; NO_TRADING is CLOSE_ONLY (no new trades, open ones
  may still be closed) and DISABLED is NO_TRADING [verify the exact meaning on a real server].
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote

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

BONUS_PREFIX = "bonus:"
COMMENT_MAX = 255

ACCESS_TO_WIRE = {
    AccessLevel.FULL: "FULL",
    AccessLevel.READ_ONLY: "READ_ONLY",
    AccessLevel.NO_TRADING: "CLOSE_ONLY",
    AccessLevel.DISABLED: "NO_TRADING",
}
ACCESS_FROM_WIRE = {wire: level for level, wire in ACCESS_TO_WIRE.items()}

PENDING_STATUSES = frozenset(
    {"NEW", "AWAITING_CONFIRMATION", "PROCESSING", "BOOKED", "PROCESSING_PAYMENT"}
)
DONE_STATUS = "DONE"

MONEY_LEDGER_TYPES = ["DEPOSIT", "WITHDRAWAL", "CREDIT_IN", "CREDIT_OUT"]
NEGATIVE_LEDGER_TYPES = frozenset({"WITHDRAWAL", "CREDIT_OUT"})
CREDIT_LEDGER_TYPES = frozenset({"CREDIT_IN", "CREDIT_OUT"})

# Clock slack around ledger searches: the platform's clock and ours never quite agree.
CLOCK_SLACK = timedelta(minutes=1)


def to_decimal(value: object) -> Decimal:
    if value is None or value == "":
        return Decimal(0)
    try:
        # Through str: a JSON float like 0.1 becomes Decimal("0.1"), not its binary expansion.
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise PlatformError(
            f"Match-Trader: not a number: {value!r}",
            code="protocol",
            kind=PlatformErrorKind.PROTOCOL,
        ) from exc


def to_int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError as exc:
        raise PlatformError(
            f"Match-Trader: not an integer: {value!r}",
            code="protocol",
            kind=PlatformErrorKind.PROTOCOL,
        ) from exc


def rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass UTC-aware datetimes")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(value: object) -> datetime:
    """RFC 3339 to an aware UTC datetime (a missing offset is read as UTC, the server's zone)."""
    try:
        moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise PlatformError(
            f"Match-Trader: not an RFC 3339 time: {value!r}",
            code="protocol",
            kind=PlatformErrorKind.PROTOCOL,
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def rows_of(data: Any) -> list[dict[str, Any]]:
    """The records of a list answer: a bare list, a page (`content`) or one list-valued field."""
    if isinstance(data, list):
        return [row for row in data if isinstance(row, dict)]
    if isinstance(data, dict):
        if isinstance(data.get("content"), list):
            return rows_of(data["content"])
        lists = [value for value in data.values() if isinstance(value, list)]
        if len(lists) == 1:
            return rows_of(lists[0])
    raise PlatformError(
        "Match-Trader: expected a list answer", code="protocol", kind=PlatformErrorKind.PROTOCOL
    )


def error_kind(status: int, code: str, message: str) -> PlatformErrorKind:
    """HTTP status plus the platform's code/message to the common meaning."""
    if status == 401:
        return PlatformErrorKind.AUTH
    if status == 403:
        return PlatformErrorKind.PERMISSION
    if status == 429:
        return PlatformErrorKind.RATE_LIMITED
    if status >= 500:
        return PlatformErrorKind.UNAVAILABLE
    text = f"{code} {message}".upper().replace(" ", "_")
    if "LEVERAGE" in text:
        return PlatformErrorKind.INVALID_LEVERAGE
    if any(word in text for word in ("INSUFFICIENT", "FREE_MARGIN", "NOT_ENOUGH")):
        return PlatformErrorKind.INSUFFICIENT_FUNDS
    if "GROUP" in text or "OFFER" in text:
        return PlatformErrorKind.UNKNOWN_GROUP
    if status == 404:
        return PlatformErrorKind.NOT_FOUND
    if status == 409 or "ALREADY_EXISTS" in text:
        return PlatformErrorKind.CONFLICT
    if status in (400, 422):
        return PlatformErrorKind.INVALID_REQUEST
    return PlatformErrorKind.ERROR


def _error_body(response: httpx.Response) -> tuple[str, str]:
    try:
        data = response.json()
    except ValueError:
        return "", response.text[:200]
    if not isinstance(data, dict):
        return "", str(data)[:200]
    code = str(data.get("code") or data.get("errorCode") or data.get("error") or "")
    message = str(data.get("message") or data.get("errorMessage") or data.get("detail") or "")
    return code, message


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare enough to fall back on the caller's backoff


class MatchTraderClient:
    """`TradingPlatformGateway` for one Match-Trader trading system through the Broker API v1."""

    platform = "matchtrader"
    # The ledger books the opening commission on its own (see base.py).
    open_commission_reported_on_close = False

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        system_uuid: str | None = None,
        bearer: bool = True,
        verify: bool | str | Path = True,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
        payment_gateway: str | None = None,
        page_size: int = 500,
        max_retry_wait: float = 5.0,
        poll_interval: float = 0.2,
        settle_timeout: float = 10.0,
    ) -> None:
        """`payment_gateway`: uuid or name of the gateway to use (else the first in the account's
        currency); `max_retry_wait`: a 429 whose Retry-After is at most this is waited out once."""
        self._system_uuid = system_uuid
        self._gateway_choice = payment_gateway
        self._page_size = page_size
        self._max_retry_wait = max_retry_wait
        self._poll_interval = poll_interval
        self._settle_timeout = settle_timeout
        auth = f"Bearer {api_key}" if bearer else api_key
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            verify=ssl_verify(verify),
            timeout=timeout,
            headers={"Authorization": auth, "Accept": "application/json"},
            transport=transport,
        )
        self._offers: list[dict[str, Any]] | None = None
        self._gateways: list[dict[str, Any]] | None = None

    async def __aenter__(self) -> MatchTraderClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- transport -----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, object] | None = None,
        body: object = None,
    ) -> Any:
        """One call; a 429 with a short Retry-After is waited out once (the request was not
        processed, so resending is safe even for money)."""
        query = {key: str(value) for key, value in (params or {}).items() if value is not None}
        for attempt in range(2):
            try:
                response = await self._http.request(method, path, params=query, json=body)
            except httpx.TimeoutException as exc:
                raise PlatformError(
                    f"Match-Trader {method} {path}: timeout",
                    code="timeout",
                    kind=PlatformErrorKind.UNAVAILABLE,
                ) from exc
            except httpx.TransportError as exc:
                raise PlatformError(
                    f"Match-Trader {method} {path}: connection failed: {exc!r}",
                    code="network",
                    kind=PlatformErrorKind.UNAVAILABLE,
                ) from exc
            if response.status_code == 429:
                wait = _retry_after(response)
                if attempt == 0 and wait is not None and wait <= self._max_retry_wait:
                    await asyncio.sleep(wait)
                    continue
            if response.status_code >= 400:
                raise self._error(method, path, response)
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError as exc:
                raise PlatformError(
                    f"Match-Trader {method} {path}: answer is not JSON",
                    code="protocol",
                    kind=PlatformErrorKind.PROTOCOL,
                ) from exc
        raise AssertionError("unreachable")

    @staticmethod
    def _error(method: str, path: str, response: httpx.Response) -> PlatformError:
        status = response.status_code
        code, message = _error_body(response)
        kind = error_kind(status, code, message)
        text = f"Match-Trader {method} {path}: HTTP {status} {code} {message}".strip()
        wait = _retry_after(response)
        if wait is not None:
            text += f" (retry after {wait:g} s)"
        error = PlatformError(text, code=code or f"http_{status}", kind=kind)
        error.retry_after = wait  # type: ignore[attr-defined]
        return error

    async def _paged(
        self, path: str, params: Mapping[str, object] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every row of a paged GET list (`content`, `totalPages`/`last`)."""
        page = 0
        while True:
            data = await self._request(
                "GET", path, params={**(params or {}), "page": page, "size": self._page_size}
            )
            rows = rows_of(data)
            for row in rows:
                yield row
            if not isinstance(data, dict) or "content" not in data:
                return  # not paged: everything came at once
            total_pages = data.get("totalPages")
            last = data.get("last")
            if (
                not rows
                or last is True
                or (total_pages is not None and page + 1 >= to_int(total_pages))
            ):
                return
            page += 1

    async def _time_paged(
        self,
        path: str,
        body: Mapping[str, object],
        since: datetime,
        until: datetime,
        time_key: str,
        id_key: str,
    ) -> AsyncIterator[dict[str, Any]]:
        """Rows of a trading-data list paged on `from`/`to`/`limit`, oldest first, each once.

        The next page starts at the last row's time (inclusive), so rows sharing that instant are
        not skipped; the ones already seen are dropped by id.
        """
        seen: set[str] = set()
        start = since
        while True:
            page_body = {
                **body,
                "from": rfc3339(start),
                "to": rfc3339(until),
                "limit": self._page_size,
            }
            rows = rows_of(await self._request("POST", path, body=page_body))
            for row in rows:
                row_id = str(row.get(id_key, ""))
                if row_id in seen:
                    continue
                seen.add(row_id)
                yield row
            if len(rows) < self._page_size:
                return
            last = max(parse_time(row.get(time_key)) for row in rows)
            if last <= start:
                raise PlatformError(
                    f"Match-Trader {path}: a full page at one instant; raise page_size",
                    code="page_size",
                    kind=PlatformErrorKind.PROTOCOL,
                )
            start = last

    # --- offers, gateways, lookups -------------------------------------------------------------

    async def _all_offers(self) -> list[dict[str, Any]]:
        if self._offers is None:
            self._offers = [row async for row in self._paged("/v1/offers")]
        return self._offers

    async def _system(self) -> str:
        """The configured systemUuid, else the one every offer names."""
        if self._system_uuid is None:
            systems = {str(o.get("systemUuid")) for o in await self._all_offers()}
            systems.discard("None")
            if len(systems) != 1:
                raise PlatformError(
                    f"Match-Trader: offers span {len(systems)} systems; pass system_uuid",
                    code="system_uuid",
                    kind=PlatformErrorKind.INVALID_REQUEST,
                )
            self._system_uuid = systems.pop()
        return self._system_uuid

    async def _our_offers(self) -> list[dict[str, Any]]:
        system = await self._system()
        return [o for o in await self._all_offers() if str(o.get("systemUuid")) == system]

    async def _offer_for_group(self, group: str) -> dict[str, Any]:
        for offer in await self._our_offers():
            if offer.get("groupName") == group:
                return offer
        raise PlatformError(
            f"Match-Trader: no offer for group {group}",
            code="unknown_group",
            kind=PlatformErrorKind.UNKNOWN_GROUP,
        )

    async def _gateway_for(self, currency: str) -> str:
        if self._gateways is None:
            self._gateways = [row async for row in self._paged("/v1/payment-gateways")]
        for gateway in self._gateways:
            chosen = self._gateway_choice in (None, gateway.get("uuid"), gateway.get("name"))
            if chosen and gateway.get("currency") == currency:
                return str(gateway["uuid"])
        raise PlatformError(
            f"Match-Trader: no payment gateway in {currency}"
            + (f" named {self._gateway_choice}" if self._gateway_choice else ""),
            code="payment_gateway",
            kind=PlatformErrorKind.INVALID_REQUEST,
        )

    async def _trading(self, login: int) -> dict[str, Any]:
        data = await self._request(
            "GET",
            "/v1/trading-account",
            params={"systemUuid": await self._system(), "login": login},
        )
        if not isinstance(data, dict):
            raise PlatformError(
                "Match-Trader: trading account is not an object",
                code="protocol",
                kind=PlatformErrorKind.PROTOCOL,
            )
        return data

    async def _account_by_email(self, email: str) -> dict[str, Any] | None:
        try:
            data = await self._request("GET", f"/v1/accounts/by-email/{quote(email, safe='@')}")
        except PlatformError as exc:
            if exc.kind is PlatformErrorKind.NOT_FOUND:
                return None
            raise
        return data if isinstance(data, dict) else None

    async def _client_id_of(self, account_uuid: str, cache: dict[str, str | None]) -> str | None:
        if account_uuid not in cache:
            account = await self._request("GET", f"/v1/accounts/{quote(account_uuid)}")
            cache[account_uuid] = _external_id(account)
        return cache[account_uuid]

    def _trading_path(self, trading: Mapping[str, Any]) -> str:
        account_uuid = quote(str(trading["accountUuid"]))
        return f"/v1/accounts/{account_uuid}/trading-accounts/{to_int(trading['login'])}"

    # --- gateway -------------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._request("GET", "/service-info")

    async def create_account(self, spec: NewAccountSpec) -> PlatformAccountRef:
        offer = await self._offer_for_group(spec.group)
        max_leverage = offer.get("maxLeverage")
        if spec.leverage < 1 or (max_leverage is not None and spec.leverage > to_int(max_leverage)):
            raise PlatformError(
                f"Match-Trader: leverage {spec.leverage} outside 1..{max_leverage} of {spec.group}",
                code="leverage",
                kind=PlatformErrorKind.INVALID_LEVERAGE,
            )
        offer_uuid = str(offer.get("offerUuid") or offer.get("uuid"))
        account = await self._account_by_email(spec.email)
        if account is None:
            try:
                trading = await self._open_account(spec, offer_uuid)
            except PlatformError as exc:
                if exc.kind is not PlatformErrorKind.CONFLICT:
                    raise
                account = await self._account_by_email(spec.email)  # created meanwhile
                if account is None:
                    raise
        if account is not None:
            owner = _external_id(account)
            if owner and owner != spec.client_id:
                raise PlatformError(
                    f"Match-Trader: {spec.email} belongs to another client",
                    code="email_taken",
                    kind=PlatformErrorKind.CONFLICT,
                )
            trading = await self._request(
                "POST",
                f"/v1/accounts/{quote(str(account['uuid']))}/trading-accounts",
                body={"offerUuid": offer_uuid},
            )
            trading.setdefault("accountUuid", account["uuid"])
        leverage = to_int(trading.get("accountInfo", {}).get("leverage", 0))
        if leverage != spec.leverage:
            await self._request(
                "PUT",
                f"{self._trading_path(trading)}/change-leverage",
                body={"leverage": spec.leverage},
            )
        return PlatformAccountRef(
            login=to_int(trading["login"]), group=str(offer["groupName"]), leverage=spec.leverage
        )

    async def _open_account(self, spec: NewAccountSpec, offer_uuid: str) -> dict[str, Any]:
        """POST /v1/accounts: the client's account and its first trading account at once."""
        created = await self._request(
            "POST",
            "/v1/accounts",
            body={
                "email": spec.email,
                # Match-Trader has one password per account (no investor password).
                "password": spec.main_password,
                "offerUuid": offer_uuid,
                "externalId": spec.client_id,
                "personalDetails": {
                    "firstname": spec.first_name,
                    "lastname": spec.last_name,
                    "phone": spec.phone,
                    "country": spec.country,
                },
            },
        )
        trading = created.get("tradingAccount")
        if not isinstance(trading, dict):
            accounts = created.get("tradingAccounts") or []
            if not accounts:
                raise PlatformError(
                    "Match-Trader: account created without a trading account",
                    code="protocol",
                    kind=PlatformErrorKind.PROTOCOL,
                )
            trading = max(accounts, key=lambda t: to_int(t["login"]))
        trading.setdefault("accountUuid", created.get("uuid"))
        return dict(trading)

    async def get_account(self, login: int) -> AccountState:
        trading = await self._trading(login)
        client_id = await self._client_id_of(str(trading["accountUuid"]), {})
        return _account_state(trading, client_id)

    async def find_accounts_by_client(self, client_id: str) -> list[PlatformAccountRef]:
        system = await self._system()
        refs: list[PlatformAccountRef] = []
        async for account in self._paged("/v1/accounts", {"query": client_id}):
            if _external_id(account) != client_id:
                continue  # the search matches loosely (emails, names)
            tradings = account.get("tradingAccounts")
            if not isinstance(tradings, list):
                path = f"/v1/accounts/{quote(str(account['uuid']))}/trading-accounts"
                tradings = [row async for row in self._paged(path)]
            for trading in tradings:
                info = trading.get("accountInfo", {})
                if str(info.get("systemUuid", system)) == system:
                    refs.append(_account_ref(trading))
        return sorted(refs, key=lambda ref: ref.login)

    async def balance_op(
        self, login: int, kind: BalanceOpKind, amount: Decimal, ref: str
    ) -> BalanceOpResult:
        if amount <= 0:
            raise ValueError("amount must be positive; the kind gives the direction")
        if not ref or len(ref) + len(BONUS_PREFIX) > COMMENT_MAX:
            raise ValueError(f"ref must be 1..{COMMENT_MAX - len(BONUS_PREFIX)} characters")
        system = await self._system()
        if kind in (BalanceOpKind.DEPOSIT, BalanceOpKind.WITHDRAW):
            return await self._manual_op(system, login, kind, amount, ref)
        comment = BONUS_PREFIX + ref if kind is BalanceOpKind.BONUS else ref
        path = "/v1/credit-out" if kind is BalanceOpKind.CREDIT_OUT else "/v1/credit-in"
        answer = await self._request(
            "POST",
            path,
            body={
                "systemUuid": system,
                "login": login,
                "amount": float(amount),
                "comment": comment,
            },
        )
        sign = -1 if kind is BalanceOpKind.CREDIT_OUT else 1
        return BalanceOpResult(
            ticket=str(answer.get("uuid", "")),
            amount=amount * sign,
            comment=comment,
            time=_answer_time(answer),
        )

    async def _manual_op(
        self, system: str, login: int, kind: BalanceOpKind, amount: Decimal, ref: str
    ) -> BalanceOpResult:
        """A manual deposit/withdrawal through the gateway in the account's currency, followed
        until DONE. Refusals raise; still pending after `settle_timeout`: retryable, and the retry
        finds it through `find_balance_op` instead of posting it again."""
        trading = await self._trading(login)
        currency = str(trading.get("financeInfo", {}).get("currency", ""))
        gateway = await self._gateway_for(currency)
        deposit = kind is BalanceOpKind.DEPOSIT
        base = "/v1/deposits" if deposit else "/v1/withdrawals"
        op = await self._request(
            "POST",
            f"{base}/manual",
            body={
                "systemUuid": system,
                "login": login,
                "paymentGatewayUuid": gateway,
                "amount": float(amount),
                "comment": ref,
            },
        )
        created = _answer_time(op)
        deadline = asyncio.get_running_loop().time() + self._settle_timeout
        while str(op.get("status")) in PENDING_STATUSES:
            if asyncio.get_running_loop().time() > deadline:
                raise PlatformError(
                    f"Match-Trader: {base} {op.get('uuid')} still {op.get('status')}",
                    code="pending",
                    kind=PlatformErrorKind.UNAVAILABLE,
                )
            await asyncio.sleep(self._poll_interval)
            op = await self._manual_status(base, str(op.get("uuid")), created) or op
        status = str(op.get("status"))
        if status != DONE_STATUS:
            raise PlatformError(
                f"Match-Trader: {base} {op.get('uuid')} ended {status}",
                code=status.lower(),
                kind=PlatformErrorKind.INVALID_REQUEST,
            )
        return BalanceOpResult(
            ticket=str(op.get("uuid", "")),
            amount=amount if deposit else -amount,
            comment=ref,
            time=_answer_time(op, "updated"),
        )

    async def _manual_status(
        self, base: str, op_uuid: str, created: datetime
    ) -> dict[str, Any] | None:
        window = {
            "from": rfc3339(created - CLOCK_SLACK),
            "to": rfc3339(datetime.now(UTC) + CLOCK_SLACK),
            "query": op_uuid,
        }
        async for row in self._paged(base, window):
            if str(row.get("uuid")) == op_uuid:
                return row
        return None

    async def find_balance_op(
        self, login: int, ref: str, since: datetime
    ) -> BalanceOpResult | None:
        system = await self._system()
        wanted = {ref, BONUS_PREFIX + ref}
        until = datetime.now(UTC) + CLOCK_SLACK
        async for entry in self._time_paged(
            "/v1/trading-accounts/trading-data/ledgers",
            {"systemUuid": system, "types": MONEY_LEDGER_TYPES, "logins": [login]},
            since - CLOCK_SLACK,
            until,
            "time",
            "uuid",
        ):
            if (
                str(entry.get("comment", "")) in wanted
                and to_int(entry.get("login", login)) == login
            ):
                amount = to_decimal(entry.get("amount"))
                if str(entry.get("type")) in NEGATIVE_LEDGER_TYPES and amount > 0:
                    amount = -amount
                return BalanceOpResult(
                    ticket=str(entry.get("uuid", "")),
                    amount=amount,
                    comment=str(entry.get("comment", "")),
                    time=parse_time(entry.get("time")),
                )
        # Not booked yet: a manual operation in progress must not be posted a second time.
        for base in ("/v1/deposits", "/v1/withdrawals"):
            window = {"from": rfc3339(since - CLOCK_SLACK), "to": rfc3339(until)}
            async for op in self._paged(base, window):
                if (
                    str(op.get("comment")) == ref
                    and to_int(op.get("login", login)) == login
                    and str(op.get("status")) in PENDING_STATUSES
                ):
                    raise PlatformError(
                        f"Match-Trader: {base} {op.get('uuid')} for {ref} is {op.get('status')}",
                        code="pending",
                        kind=PlatformErrorKind.UNAVAILABLE,
                    )
        return None

    async def set_group(self, login: int, group: str) -> None:
        await self._offer_for_group(group)  # UNKNOWN_GROUP before touching the account
        trading = await self._trading(login)
        access = trading.get("accountInfo", {}).get("access", "FULL")
        await self._request(
            "PUT", self._trading_path(trading), body={"access": access, "group": group}
        )

    async def set_leverage(self, login: int, leverage: int) -> None:
        trading = await self._trading(login)
        await self._request(
            "PUT", f"{self._trading_path(trading)}/change-leverage", body={"leverage": leverage}
        )

    async def set_access(self, login: int, access: AccessLevel) -> None:
        trading = await self._trading(login)
        group = trading.get("accountInfo", {}).get("group")
        await self._request(
            "PUT",
            self._trading_path(trading),
            body={"access": ACCESS_TO_WIRE[access], "group": group},
        )

    async def list_groups(self) -> list[str]:
        return sorted({str(o["groupName"]) for o in await self._our_offers() if o.get("groupName")})

    async def list_open_positions(
        self, logins: list[int] | None, group: str | None
    ) -> list[OpenPosition]:
        data = await self._request(
            "POST",
            "/v1/trading-accounts/trading-data/open-positions",
            body={
                "systemUuid": await self._system(),
                "logins": logins or [],
                "groups": [group] if group else [],
            },
        )
        return [_open_position(row) for row in rows_of(data)]

    async def list_accounts(self, group: str | None) -> list[AccountState]:
        system = await self._system()
        owners: dict[str, str | None] = {}
        states = []
        async for trading in self._paged("/v1/trading-accounts"):
            info = trading.get("accountInfo", {})
            if str(info.get("systemUuid", system)) != system:
                continue
            if group is not None and info.get("group") != group:
                continue
            client_id = await self._client_id_of(str(trading["accountUuid"]), owners)
            states.append(_account_state(trading, client_id))
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
        """Closing deals from the closed positions. With `openings`, also the commission
        Match-Trader books when a position opens or grows: a COMMISSION ledger entry that no
        closing deal of the window accounts for (the closed position carries only its own)."""
        if (logins is None) == (group is None):
            raise ValueError("pass either logins or a group")
        groups = await self.list_groups() if group == ALL_GROUPS else [group] if group else []
        body = {
            "systemUuid": await self._system(),
            "logins": logins or [],
            "groups": groups,
        }
        exits: Counter[tuple[int, str, datetime, Decimal]] = Counter()
        async for row in self._time_paged(
            "/v1/trading-accounts/trading-data/closed-positions",
            body,
            since,
            until,
            "closeTime",
            "id",
        ):
            deal = _closed_deal(row)
            exits[(deal.login, deal.position_id, deal.time, deal.commission)] += 1
            yield deal
        if not openings:
            return
        async for entry in self._ledger_entries(
            ["COMMISSION"], await self._ledger_logins(logins, group), since, until
        ):
            deal = _opening_deal(entry)
            key = (deal.login, deal.position_id, deal.time, deal.commission)
            if exits[key]:
                exits[key] -= 1  # the closing deal's own commission
                continue
            if logins is None or deal.login in logins:
                yield deal

    async def iter_balance_ops(
        self, logins: list[int] | None, group: str | None, since: datetime, until: datetime
    ) -> AsyncIterator[PlatformBalanceOp]:
        """Deposits, withdrawals, credit in and out, from the ledgers."""
        if (logins is None) == (group is None):
            raise ValueError("pass either logins or a group")
        wanted = await self._ledger_logins(logins, group)
        async for entry in self._ledger_entries(MONEY_LEDGER_TYPES, wanted, since, until):
            kind = str(entry.get("type"))
            amount = to_decimal(entry.get("amount"))
            if kind in NEGATIVE_LEDGER_TYPES and amount > 0:
                amount = -amount
            yield PlatformBalanceOp(
                ticket=str(entry.get("uuid", "")),
                login=to_int(entry.get("login")),
                kind=CREDIT if kind in CREDIT_LEDGER_TYPES else BALANCE,
                amount=amount,
                comment=str(entry.get("comment", "")),
                time=parse_time(entry.get("time")),
                raw=dict(entry),
            )

    async def _ledger_logins(self, logins: list[int] | None, group: str | None) -> list[int]:
        """The ledgers are asked by login (no logins: every account of the system)."""
        if logins is not None:
            return logins
        if group == ALL_GROUPS:
            return []
        return [account.login for account in await self.list_accounts(group)]

    async def _ledger_entries(
        self, types: list[str], logins: list[int], since: datetime, until: datetime
    ) -> AsyncIterator[dict[str, Any]]:
        body = {"systemUuid": await self._system(), "types": types, "logins": logins}
        async for entry in self._time_paged(
            "/v1/trading-accounts/trading-data/ledgers", body, since, until, "time", "uuid"
        ):
            yield entry

    async def close(self) -> None:
        await self._http.aclose()


def _external_id(account: object) -> str | None:
    if not isinstance(account, dict):
        return None
    value = account.get("externalId")
    return str(value) if value not in (None, "") else None


def _answer_time(answer: Mapping[str, Any], key: str = "created") -> datetime:
    value = answer.get(key) or answer.get("created") or answer.get("time")
    return parse_time(value) if value else datetime.now(UTC)


def _account_ref(trading: Mapping[str, Any]) -> PlatformAccountRef:
    info = trading.get("accountInfo", {})
    return PlatformAccountRef(
        login=to_int(trading["login"]),
        group=str(info.get("group", "")),
        leverage=to_int(info.get("leverage", 0)),
    )


def _account_state(trading: Mapping[str, Any], client_id: str | None) -> AccountState:
    info = trading.get("accountInfo", {})
    finance = trading.get("financeInfo", {})
    equity = to_decimal(finance.get("equity"))
    margin = to_decimal(finance.get("margin"))
    level = finance.get("marginLevel")
    margin_level = None
    if margin:
        margin_level = to_decimal(level) if level is not None else equity / margin * 100
    return AccountState(
        login=to_int(trading["login"]),
        group=str(info.get("group", "")),
        leverage=to_int(info.get("leverage", 0)),
        currency=str(finance.get("currency", "")),
        balance=to_decimal(finance.get("balance")),
        credit=to_decimal(finance.get("credit")),
        equity=equity,
        margin=margin,
        free_margin=to_decimal(finance.get("freeMargin")),
        margin_level=margin_level,
        access=ACCESS_FROM_WIRE.get(str(info.get("access", "FULL")), AccessLevel.FULL),
        client_id=client_id,
    )


def _side(value: object) -> str:
    text = str(value).lower()
    if text not in ("buy", "sell"):
        raise PlatformError(
            f"Match-Trader: unknown side {value!r}",
            code="protocol",
            kind=PlatformErrorKind.PROTOCOL,
        )
    return text


def _open_position(row: Mapping[str, Any]) -> OpenPosition:
    current = row.get("currentPrice")
    return OpenPosition(
        position_id=str(row["id"]),
        login=to_int(row["login"]),
        symbol=str(row.get("symbol", "")),
        side=_side(row.get("side")),
        volume_lots=to_decimal(row.get("volume")),
        open_price=to_decimal(row.get("openPrice")),
        current_price=to_decimal(current) if current is not None else None,
        profit=to_decimal(row.get("profit")),
        swap=to_decimal(row.get("swap")),
        commission=to_decimal(row.get("commission")),
        opened_at=parse_time(row.get("openTime")),
    )


def _opening_deal(entry: Mapping[str, Any]) -> ClosedDeal:
    """A COMMISSION ledger entry booked when a position opened: its comment is "#<position>".
    The ledger says nothing of the trade itself (symbol, side, volume): money only."""
    position = str(entry.get("comment", "")).removeprefix("#")
    return ClosedDeal(
        deal_id=f"ledger:{entry.get('uuid', '')}",
        login=to_int(entry.get("login")),
        position_id=position,
        symbol="",
        side="",
        entry="in",
        volume_lots=Decimal(0),
        price=Decimal(0),
        profit=Decimal(0),
        commission=to_decimal(entry.get("amount")),
        swap=Decimal(0),
        time=parse_time(entry.get("time")),
        raw=dict(entry),
    )


def _closed_deal(row: Mapping[str, Any]) -> ClosedDeal:
    """One closing deal: `side` is the deal's (the opposite of the position's), entry "out"."""
    position_side = _side(row.get("side"))
    return ClosedDeal(
        deal_id=str(row["id"]),
        login=to_int(row["login"]),
        position_id=str(row.get("positionId", row["id"])),
        symbol=str(row.get("symbol", "")),
        side="sell" if position_side == "buy" else "buy",
        entry="out",
        volume_lots=to_decimal(row.get("volume")),
        price=to_decimal(row.get("closePrice")),
        profit=to_decimal(row.get("profit")),
        commission=to_decimal(row.get("commission")),
        swap=to_decimal(row.get("swap")),
        time=parse_time(row.get("closeTime")),
        opened_at=parse_time(row["openTime"]) if row.get("openTime") else None,
        raw=dict(row),
    )
