"""Error codes of the bridge contract: Manager API return codes plus the bridge's own."""

from __future__ import annotations

# Manager API return codes (MT4ManagerAPI.h) the bridge passes on, with their HTTP status.
RET_CODES: dict[str, tuple[int, int]] = {
    "RET_ERROR": (2, 500),
    "RET_INVALID_DATA": (3, 422),
    "RET_TECH_PROBLEM": (4, 503),
    "RET_NO_CONNECT": (6, 503),
    "RET_NOT_ENOUGH_RIGHTS": (7, 403),
    "RET_TOO_FREQUENT": (8, 429),
    "RET_MALFUNCTION": (9, 503),
    "RET_ACCOUNT_DISABLED": (64, 422),
    "RET_TRADE_TIMEOUT": (128, 504),
    "RET_TRADE_DISABLE": (133, 422),
    "RET_TRADE_NO_MONEY": (134, 422),
}

# The bridge's own codes, for what the Manager API has no return code for.
BRIDGE_CODES: dict[str, int] = {
    "BRIDGE_BAD_REQUEST": 400,
    "BRIDGE_AUTH": 401,
    "BRIDGE_NOT_FOUND": 404,
    "BRIDGE_CONFLICT": 409,
    "BRIDGE_IDEMPOTENCY_CONFLICT": 409,
    "BRIDGE_UNKNOWN_GROUP": 422,
    "BRIDGE_INVALID_LEVERAGE": 422,
    "BRIDGE_SESSION_EXPIRED": 440,
}


class BridgeError(Exception):
    """A refused request, answered as `{"error": {"code", "message", "retcode"?}}`."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message or code
        if code in RET_CODES:
            self.retcode: int | None = RET_CODES[code][0]
            self.status = RET_CODES[code][1]
        else:
            self.retcode = None
            self.status = BRIDGE_CODES.get(code, 500)

    def payload(self) -> dict[str, object]:
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.retcode is not None:
            error["retcode"] = self.retcode
        return {"error": error}
