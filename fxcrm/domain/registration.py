"""Rules a registration must meet before anything is stored."""

from __future__ import annotations

import re
from datetime import date

import pycountry

from fxcrm.domain.brand import BrandConfig

# E.164, matched with fullmatch: `$` would also accept a trailing newline, and `\d` any
# script's digits ("+٣٥٧...").
PHONE = re.compile(r"\+[1-9][0-9]{6,14}")


class RegistrationRefused(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def known_country(code: str) -> bool:
    return len(code) == 2 and pycountry.countries.get(alpha_2=code.upper()) is not None


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def check_registration(
    *, born: date, country: str, phone: str, brand: BrandConfig, today: date
) -> None:
    if born > today:
        raise RegistrationRefused("date_of_birth", "date of birth is in the future")
    if age_on(born, today) < brand.minimum_age:
        raise RegistrationRefused(
            "date_of_birth", f"clients must be at least {brand.minimum_age} years old"
        )
    if age_on(born, today) > 120:
        raise RegistrationRefused("date_of_birth", "date of birth is not plausible")
    if not known_country(country):
        raise RegistrationRefused(
            "country", f"unknown country code {country!r} (ISO 3166-1 alpha-2)"
        )
    if country.upper() in brand.blocked_countries:
        raise RegistrationRefused(
            "country", f"the brand does not accept clients from {country.upper()}"
        )
    if not PHONE.fullmatch(phone):
        raise RegistrationRefused(
            "phone", "phone must be in international format, e.g. +35799123456"
        )
