"""Free-text dates of birth -> prefixes."""

from __future__ import annotations

import pytest

from fxcrm.adapters.sanctions.dates import parse_birth_dates


@pytest.mark.parametrize(
    ("raw", "prefixes", "approximate"),
    [
        ("07 Oct 1952", ["1952-10-07"], False),
        ("7 October 1952.", ["1952-10-07"], False),
        ("Oct 1952", ["1952-10"], False),
        ("1952", ["1952"], False),
        ("circa 1960", ["1960"], True),
        ("circa 07 Jul 1966", ["1966-07-07"], True),
        ("circa 1975-1979", ["1975", "1976", "1977", "1978", "1979"], True),
        ("01 Jan 1960 to 31 Dec 1962", ["1960", "1961", "1962"], False),
        ("1955 to 1958", ["1955", "1956", "1957", "1958"], False),
        ("Mar 1960 to Feb 1961", ["1960", "1961"], False),
        ("01 Feb 1970 to 01 Feb 1970", ["1970-02-01"], False),
        ("1960-10-07", ["1960-10-07"], False),
        ("07/10/1960", ["1960-10-07"], False),
    ],
)
def test_parse(raw: str, prefixes: list[str], approximate: bool) -> None:
    parsed = parse_birth_dates(raw)
    assert [bd.prefix for bd in parsed] == prefixes
    assert all(bd.approximate is approximate and bd.raw == raw.strip() for bd in parsed)


@pytest.mark.parametrize("raw", ["", "unknown", "32 Foo 1960", "sometime in the sixties"])
def test_unreadable_text_yields_nothing(raw: str) -> None:
    assert parse_birth_dates(raw) == []


def test_long_ranges_keep_only_their_ends() -> None:
    assert [bd.prefix for bd in parse_birth_dates("1940 to 1990")] == ["1940", "1990"]
