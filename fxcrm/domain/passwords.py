"""Passwords: the strength rule for the ones people choose, and trading-account passwords fxcrm
generates to MT5's rule (8-16 chars with lower, upper, digit, special)."""

from __future__ import annotations

import re
import secrets
import string
from typing import Annotated

from pydantic import AfterValidator

from fxcrm.domain.text import refused_character

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


# ---- passwords people choose (traders, IB partners, staff) ----
#
# NIST SP 800-63B: a minimum length and a check against known-bad passwords, no composition
# rules. "Known bad" here: a repeated or sequential pattern, a common password, or the person's
# own name or email, each possibly with digits, symbols or l33t spelling around it.

MIN_LENGTH = 10
MAX_LENGTH = 128
MIN_DISTINCT = 5  # "aaaaaaaaaa", "ababababab", "abcabcabca" have fewer
SHORT_PART = 2  # a part this short ("x", "99") adds almost nothing
PIN_LENGTH = 4  # an all-digit part up to this long is a year or a PIN

# Runs a keyboard or an alphabet gives for free; read forwards and backwards.
_SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    "qwertyuiopasdfghjklzxcvbnm",
    "qwertzuiopasdfghjklyxcvbnm",
    "azertyuiopqsdfghjklmwxcvbn",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "qazwsxedcrfvtgbyhnujmikolp",
    "`1234567890-=",
    "~!@#$%^&*()_+",
)
_SEQUENCES_BOTH_WAYS = _SEQUENCES + tuple(s[::-1] for s in _SEQUENCES)

# The words at the top of every published leak list, and this trade's obvious ones.
COMMON_PASSWORDS = frozenset(
    """
    password passwort passw0rd pwd secret letmein welcome hello iloveyou love lovely
    admin administrator root user login guest test testing default master access changeme
    qwerty azerty qwertz asdf zxcv abc abcd abcdef dragon monkey shadow sunshine princess
    football baseball soccer hockey superman batman starwars pokemon freedom whatever
    trustno trustnoi michael jennifer jordan charlie daniel thomas george ashley jessica
    summer winter spring autumn flower purple orange banana cookie cheese chocolate
    computer internet google facebook linkedin microsoft apple samsung
    money dollar euro bitcoin crypto forex invest investor broker profit wallet finance bank
    banking fxcrm metatrader ctrader
    """.split()  # noqa: SIM905  (a word list reads better as words)
)
_LEET = str.maketrans(
    {
        "@": "a",
        "4": "a",
        "3": "e",
        "1": "i",
        "!": "i",
        "0": "o",
        "$": "s",
        "5": "s",
        "7": "t",
        "+": "t",
    }
)


class WeakPassword(ValueError):
    """The password is refused; the message says why, never repeats the password."""


def _is_sequence(text: str) -> bool:
    return any(text in seq for seq in _SEQUENCES_BOTH_WAYS)


def _parts(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+|\d+", text)


def _weak_part(part: str, personal: frozenset[str]) -> bool:
    return (
        len(part) <= SHORT_PART
        or (part.isdigit() and len(part) <= PIN_LENGTH)
        or part in COMMON_PASSWORDS
        or part in personal
        or len(set(part)) == 1
        or _is_sequence(part)
    )


def _repeats(text: str) -> bool:
    """The text is one shorter unit said again and again ("abcdeabcde", "pass1pass1pass1")."""
    return any(
        len(text) % n == 0 and text == text[:n] * (len(text) // n)
        for n in range(1, len(text) // 2 + 1)
    )


def personal_words(*values: str | None) -> frozenset[str]:
    """Words of a person's names and email that must not make up their password."""
    words: set[str] = set()
    for value in values:
        if value:
            words.update(p for p in _parts(value.casefold()) if len(p) > SHORT_PART)
    return frozenset(words)


def password_weakness(password: str, personal: frozenset[str] = frozenset()) -> str | None:
    """Why the password is refused, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"the password must have at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"the password must have at most {MAX_LENGTH} characters"
    if refused_character(password) is not None:
        return "the password contains a control or invisible character"
    folded = password.casefold()
    if len(set(folded)) < MIN_DISTINCT or _repeats(folded):
        return "the password is a repeated pattern"
    if _is_sequence(folded) or _is_sequence("".join(_parts(folded))):
        return "the password is a keyboard or alphabet sequence"
    for reading in (folded, folded.translate(_LEET)):
        if all(_weak_part(p, personal) for p in _parts(reading)):
            return (
                "the password is made of common words, sequences, digits or your own name or "
                "email; add a word of your own"
            )
    return None


def check_password(password: str, personal: frozenset[str] = frozenset()) -> str:
    """Returns the password unchanged, or raises WeakPassword."""
    reason = password_weakness(password, personal)
    if reason is not None:
        raise WeakPassword(reason)
    return password


# A request field that sets a password: the one rule for traders, IB partners and staff.
NewPassword = Annotated[str, AfterValidator(check_password)]
