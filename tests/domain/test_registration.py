"""Registration rules: age, date of birth, country, phone."""

from __future__ import annotations

from datetime import date

import pytest

from fxcrm.domain.brand import demo_brand_config
from fxcrm.domain.registration import RegistrationRefused, age_on, check_registration

BRAND = demo_brand_config("mt5-demo")
TODAY = date(2026, 11, 23)


def _check(
    born: date = date(1990, 5, 1), country: str = "DE", phone: str = "+4915112345678"
) -> None:
    check_registration(born=born, country=country, phone=phone, brand=BRAND, today=TODAY)


def test_valid_registration_passes() -> None:
    _check()


@pytest.mark.parametrize(
    ("born", "country", "phone", "field"),
    [
        (date(2027, 1, 1), "DE", "+4915112345678", "date_of_birth"),
        (date(2008, 11, 24), "DE", "+4915112345678", "date_of_birth"),  # 18 tomorrow
        (date(1990, 1, 1), "XX", "+4915112345678", "country"),
        (date(1990, 1, 1), "KP", "+4915112345678", "country"),  # blocked by the brand
        (date(1990, 1, 1), "DE", "0151 123", "phone"),
    ],
)
def test_bad_input_is_refused_with_the_field(
    born: date, country: str, phone: str, field: str
) -> None:
    with pytest.raises(RegistrationRefused) as refused:
        _check(born, country, phone)
    assert refused.value.field == field


def test_eighteenth_birthday_is_old_enough() -> None:
    _check(born=date(2008, 11, 23))
    assert age_on(date(2008, 11, 23), TODAY) == 18
