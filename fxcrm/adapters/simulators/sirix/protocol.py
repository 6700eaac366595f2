"""Wire conventions of the simulated Leverate REST API that the spec leaves open.

Leverate documents errors only in each broker's Swagger, so the simulator defines one plausible
form: a non-2xx status with `{"ErrorCode": "<Name>", "Message": "..."}`. The client reads it
defensively (other key spellings, bare text, the status alone).
"""

from __future__ import annotations

from typing import Any

# ErrorCode names and their HTTP status.
USER_NOT_FOUND = "UserNotFound"
GROUP_NOT_FOUND = "GroupNotFound"
INVALID_LEVERAGE = "InvalidLeverage"
INSUFFICIENT_FUNDS = "InsufficientFunds"
INVALID_AMOUNT = "InvalidAmount"
INVALID_PASSWORD = "InvalidPassword"  # noqa: S105 - an error name, not a secret
INVALID_REQUEST = "InvalidRequest"
UNKNOWN_METHOD = "UnknownMethod"
UNAUTHORIZED = "Unauthorized"
METHOD_NOT_ALLOWED = "MethodNotAllowed"
SERVICE_UNAVAILABLE = "ServiceUnavailable"

STATUS = {
    USER_NOT_FOUND: 404,
    GROUP_NOT_FOUND: 400,
    INVALID_LEVERAGE: 400,
    INSUFFICIENT_FUNDS: 400,
    INVALID_AMOUNT: 400,
    INVALID_PASSWORD: 400,
    INVALID_REQUEST: 400,
    UNKNOWN_METHOD: 404,
    UNAUTHORIZED: 401,
    METHOD_NOT_ALLOWED: 405,
    SERVICE_UNAVAILABLE: 503,
}

# ManagementService/VerifyUser -> UserVerificationResult (the simulator's numbering; 0 = ok).
VERIFY_OK = 0
VERIFY_UNKNOWN_USER = 1
VERIFY_WRONG_PASSWORD = 2
VERIFY_USER_DISABLED = 3
VERIFY_USER_ARCHIVED = 4
VERIFY_INVESTOR = 5  # the investor (read-only) password matched


class SirixError(Exception):
    def __init__(self, code: str, message: str = "", status: int | None = None) -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message or code
        self.status = status or STATUS.get(code, 400)

    def body(self) -> dict[str, Any]:
        return {"ErrorCode": self.code, "Message": self.message}
