"""MT5 Web API constants the simulator speaks: retcodes, user rights, deal actions and entries."""

from __future__ import annotations

RETCODE_TEXT = {
    0: "Done",
    1: "OK none",
    2: "Common error",
    3: "Invalid parameters",
    4: "Invalid data",
    7: "Network error",
    8: "Not enough permissions",
    9: "Timeout",
    10: "No connection",
    12: "Too frequent requests",
    13: "Not found",
    3002: "No free logins in the range",
    3003: "Wrong server",
    3004: "Login already exists",
    3006: "Invalid or weak password",
    4005: "Money limit reached",
    10019: "Not enough money",
}


class Mt5Error(Exception):
    """A request refused with an MT5 retcode (answered with HTTP 200, like the real server)."""

    def __init__(self, retcode: int, detail: str = "") -> None:
        super().__init__(f"{retcode} {detail or RETCODE_TEXT.get(retcode, 'Error')}")
        self.retcode = retcode
        self.detail = detail


def retcode_string(code: int, detail: str = "") -> str:
    """`3 Invalid parameters`; the simulator appends what exactly: `3 Invalid parameters: ...`."""
    text = f"{code} {RETCODE_TEXT.get(code, 'Error')}"
    return f"{text}: {detail}" if detail else text


RIGHT_ENABLED = 0x1
RIGHT_PASSWORD = 0x2
RIGHT_TRADE_DISABLED = 0x4
RIGHT_TRAILING = 0x20
RIGHT_EXPERT = 0x40
RIGHT_REPORTS = 0x100
DEFAULT_USER_RIGHTS = RIGHT_ENABLED | RIGHT_PASSWORD | RIGHT_TRAILING | RIGHT_EXPERT | RIGHT_REPORTS

ACTION_BUY, ACTION_SELL = 0, 1
BALANCE_ACTIONS = frozenset({2, 3, 4, 5, 6})  # balance, credit, charge, correction, bonus
ACTION_CREDIT = 3
ENTRY_IN, ENTRY_OUT, ENTRY_INOUT, ENTRY_OUT_BY = 0, 1, 2, 3
# EnDealReason of the server API (IMTDeal): not the terminal's ENUM_DEAL_REASON (where SL is 4).
REASON_CLIENT, REASON_SL, REASON_TP, REASON_SO = 0, 3, 4, 5
COMMENT_MAX = 31
PASSWORD_KINDS = ("main", "investor", "api")

# Text fields of the user record that managers may set freely.
USER_TEXT_FIELDS = (
    "Name",
    "FirstName",
    "LastName",
    "MiddleName",
    "Company",
    "Account",
    "Country",
    "City",
    "State",
    "ZIPCode",
    "Address",
    "Phone",
    "Email",
    "ID",
    "Status",
    "Comment",
    "LeadSource",
    "LeadCampaign",
)
