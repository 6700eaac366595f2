"""Country names from OFAC and UN lists -> ISO2."""

from __future__ import annotations

import pytest

from fxcrm.adapters.sanctions.countries import to_iso2


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Russia", "RU"),
        ("Russian Federation", "RU"),
        ("Korea, North", "KP"),
        ("Democratic People's Republic of Korea", "KP"),
        ("Iran (Islamic Republic of)", "IR"),
        ("Syrian Arab Republic", "SY"),
        ("Burma", "MM"),
        ("Congo, Democratic Republic of the", "CD"),
        ("Cote d Ivoire", "CI"),
        ("The Gambia", "GM"),
        ("Bahamas, The", "BS"),
        ("Region: Crimea", "UA"),
        ("West Bank", "PS"),
        ("Türkiye", "TR"),
        ("gb", "GB"),
        (" Egypt. ", "EG"),
    ],
)
def test_known_names(name: str, code: str) -> None:
    assert to_iso2(name) == code


def test_unknown_names_are_kept_raw() -> None:
    assert to_iso2("Region: Kafia Kingi") == "Region: Kafia Kingi"
    assert to_iso2("Atlantis") == "Atlantis"
