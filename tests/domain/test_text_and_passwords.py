"""Typed text is normalized or refused; passwords people choose meet a real strength rule;
patterns match whole strings (a trailing newline is not part of a phone number)."""

from __future__ import annotations

import unicodedata
from datetime import date

import pytest
from pydantic import BaseModel, Field, ValidationError

from fxcrm.domain.brand import demo_brand_config
from fxcrm.domain.ib.settlement import PeriodError, parse_period
from fxcrm.domain.passwords import (
    NewPassword,
    WeakPassword,
    check_password,
    password_weakness,
    personal_words,
)
from fxcrm.domain.registration import RegistrationRefused, check_registration
from fxcrm.domain.text import CleanText, TextRefused, clean_text


class Form(BaseModel):
    name: CleanText = Field(min_length=1, max_length=10)
    middle: CleanText | None = None
    password: NewPassword | None = None


# ---- text ----


def test_text_is_stripped_and_nfc() -> None:
    decomposed = "Jos\u0065\u0301"  # e + combining acute
    assert clean_text(f"  {decomposed}\n") == "José"
    assert unicodedata.is_normalized("NFC", clean_text(decomposed))
    assert Form(name="  Anna ").name == "Anna"


@pytest.mark.parametrize(
    "text",
    [
        "An\x00na",  # NUL
        "Anna\x1b[31m",  # an ANSI escape
        "An\tna",
        "\u202eanna",  # right-to-left override
        "Anna\u202a",  # left-to-right embedding
        "An\u2066na\u2069",  # isolates
        "An\u200bna",  # zero-width space
        "An\u200dna",  # zero-width joiner
        "\ufeffAnna",  # byte order mark
        "An\u2028na",  # line separator
        "An\x85na",  # C1 next line
    ],
)
def test_control_bidi_and_zero_width_characters_are_refused(text: str) -> None:
    with pytest.raises(TextRefused, match="U\\+"):
        clean_text(text)
    with pytest.raises(ValidationError):
        Form(name=text)


def test_a_name_of_spaces_only_is_empty_and_refused() -> None:
    with pytest.raises(ValidationError, match="at least 1 character"):
        Form(name="    ")
    with pytest.raises(ValidationError):
        Form(name="\u00a0\u3000")  # no-break and ideographic spaces
    assert Form(name="Anna", middle="   ").middle == ""


def test_letters_of_any_script_are_kept() -> None:
    for name in ["Łukasz", "Søren", "Çağla", "Пётр", "محمد", "王小明", "O'Brien-Smith"]:
        assert clean_text(name) == name


# ---- passwords ----


@pytest.mark.parametrize(
    "password",
    [
        "aaaaaaaaaa",
        "ababababab",
        "abcdeabcde",
        "1111111111",
        "abcdefghij",
        "0123456789",
        "9876543210",
        "qwertyuiop",
        "1qaz2wsx3edc",
        "Password2026!",
        "P@ssw0rd2026!",
        "qwerty123456",
        "Welcome-1234",
        "1234567890abc",
        "short",
    ],
)
def test_weak_passwords_are_refused(password: str) -> None:
    assert password_weakness(password) is not None
    with pytest.raises(WeakPassword):
        check_password(password)
    with pytest.raises(ValidationError):
        Form(name="x", password=password)


@pytest.mark.parametrize(
    "password",
    ["Trader-pass-2026", "long-enough-1", "correct horse battery staple", "Tr0ub4dor&3x-kite"],
)
def test_reasonable_passwords_pass(password: str) -> None:
    assert password_weakness(password) is None
    assert Form(name="x", password=password).password == password


def test_own_name_or_email_is_not_a_password() -> None:
    mine = personal_words("Anna", "Schmidt", "anna.schmidt@example.com")
    assert password_weakness("Anna-Schmidt-1985", mine) is not None
    assert password_weakness("schmidt.anna!!", mine) is not None
    assert password_weakness("Anna-Schmidt-1985") is None  # someone else's name is fine


def test_password_bounds_and_invisible_characters() -> None:
    assert password_weakness("x" * 9) is not None
    assert password_weakness("Kite-" + "lantern" * 20) is not None  # over 128
    assert password_weakness("Kite-lantern\x00-7") is not None
    message = password_weakness("aaaaaaaaaa") or ""
    assert "aaaa" not in message  # never echoes the password


# ---- whole-string patterns ----


def test_phone_with_a_trailing_newline_or_foreign_digits_is_refused() -> None:
    brand = demo_brand_config("mt5-demo")

    def check(phone: str) -> None:
        check_registration(
            born=date(1990, 5, 1), country="DE", phone=phone, brand=brand, today=date(2026, 1, 1)
        )

    check("+4915112345678")
    for phone in ["+4915112345678\n", "+4915112345678 ", "+\u0664\u0669151123456"]:
        with pytest.raises(RegistrationRefused) as refused:
            check(phone)
        assert refused.value.field == "phone"


def test_period_with_a_trailing_newline_is_refused() -> None:
    assert parse_period("2026-01") == (2026, 1)
    with pytest.raises(PeriodError):
        parse_period("2026-01\n")
