"""Self-referral matching: the same person by email (case and +tag ignored), phone (formatting
ignored), or name and date of birth together; nothing weaker."""

from __future__ import annotations

import pytest

from fxcrm.domain.ib.settlement import period_of
from fxcrm.ib.attribution import Identity, self_referral
from fxcrm.ib.reports import valid_period

IB = Identity(
    email="Ida.IB@partners.dev",
    phone="+357 99 000 111",
    name="Ida Brandt",
    date_of_birth="1979-02-03",
)


@pytest.mark.parametrize(
    ("client", "reason"),
    [
        (Identity(email="ida.ib@partners.dev"), "email"),
        (Identity(email="IDA.IB+trading@Partners.dev"), "email"),
        (Identity(phone="+35799000111"), "phone"),
        (Identity(phone="00 357-99-000-111"), "phone"),
        (Identity(phone="+357 99 000 112"), None),
        (Identity(name="  ida   BRANDT ", date_of_birth="1979-02-03"), "name_and_date_of_birth"),
        (Identity(name="Ida Brandt", date_of_birth="1980-02-03"), None),
        (Identity(name="Ida Brandt"), None),
        (Identity(date_of_birth="1979-02-03"), None),
        (Identity(email="ida.ib@partners.dev.evil"), None),
        (Identity(email="not-an-email", phone="", name=""), None),
    ],
)
def test_self_referral(client: Identity, reason: str | None) -> None:
    assert self_referral(client, IB) == reason


def test_an_ib_with_only_an_email_matches_only_by_email() -> None:
    only_email = Identity(email="ida.ib@partners.dev")
    assert (
        self_referral(Identity(name="Ida Brandt", date_of_birth="1979-02-03"), only_email) is None
    )
    assert self_referral(Identity(email="ida.ib+x@partners.dev"), only_email) == "email"


def test_periods() -> None:
    from datetime import UTC, datetime

    assert period_of(datetime(2026, 3, 31, 23, 59, tzinfo=UTC)) == "2026-03"
    assert valid_period("2026-12") and not valid_period("2026-13") and not valid_period("2026-1")
