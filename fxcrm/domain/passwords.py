"""Trading-account passwords that satisfy MT5's rule: 8-16 chars with lower, upper, digit, special."""

from __future__ import annotations

import secrets
import string

_SPECIAL = "#@!$%&*+-=?"


def generate_platform_password(length: int = 12) -> str:
    alphabet = string.ascii_letters + string.digits + _SPECIAL
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(length))
        if (
            any(c.islower() for c in candidate)
            and any(c.isupper() for c in candidate)
            and any(c.isdigit() for c in candidate)
            and any(c in _SPECIAL for c in candidate)
        ):
            return candidate
