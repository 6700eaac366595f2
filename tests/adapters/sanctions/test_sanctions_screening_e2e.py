"""Real OFAC SDN parties, spelled the way clients type them, through loader + Screener.

Runs on the committed extract always, and on the full January 2022 list when ../shared is present
(the CI layout), where it also checks the list size.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from fxcrm.adapters.sanctions import load_lists
from fxcrm.domain.screening import POSSIBLE_THRESHOLD, Screener, ScreeningSubject

from .conftest import FULL_OFAC, OFAC_EXTRACT


@pytest.fixture(scope="module", params=["extract", "full"])
def screener(request: pytest.FixtureRequest) -> Screener:
    if request.param == "full":
        if not (FULL_OFAC / "sdn.csv").exists():
            pytest.skip(f"shared sanctions data not present at {FULL_OFAC}")
        path: Path = FULL_OFAC
    else:
        path = OFAC_EXTRACT
    entities, version = load_lists([path])
    return Screener(entities, version)


LISTED = [
    # (subject, listed ent_num): typo, transliteration, Cyrillic, reversed order, joined hyphen.
    (ScreeningSubject(first_name="Ayman", last_name="Al-Zawahri"), "2676"),
    (
        ScreeningSubject(
            first_name="Евгений", last_name="Пригожин", date_of_birth=date(1961, 6, 1)
        ),
        "21171",
    ),
    (ScreeningSubject(first_name="Yevgeny", last_name="Prigojin", country="RU"), "21171"),
    (
        ScreeningSubject(
            first_name="Maduro Moros", last_name="Nicolas", date_of_birth=date(1962, 11, 23)
        ),
        "22790",
    ),
    (ScreeningSubject(first_name="Jongun", last_name="Kim"), "20157"),
    (
        ScreeningSubject(
            first_name="Arkadi", last_name="Rotenberg", date_of_birth=date(1951, 12, 15)
        ),
        "16669",
    ),
    (ScreeningSubject(first_name="Oleg", last_name="Deripaska", country="RU"), "24283"),
    (
        ScreeningSubject(
            first_name="Khaled", last_name="Al Aradah", date_of_birth=date(1957, 8, 1)
        ),
        "22223",
    ),
    (ScreeningSubject(first_name="Ramzan", last_name="Kadyrov", nationalities=["RU"]), "23343"),
    (ScreeningSubject(first_name="Suleiman", last_name="Sakan"), "26541"),
    # Listed people move: an exact DOB outweighs a residence the list does not mention.
    (
        ScreeningSubject(
            first_name="Viktor", last_name="Bout", date_of_birth=date(1967, 1, 13), country="CY"
        ),
        "8279",
    ),
]


@pytest.mark.parametrize(
    ("subject", "ent_num"), LISTED, ids=[f"{s.first_name} {s.last_name}" for s, _ in LISTED]
)
def test_listed_people_spelled_differently_alert(
    screener: Screener, subject: ScreeningSubject, ent_num: str
) -> None:
    outcome = screener.screen(subject)
    assert outcome.decision in ("possible", "strong")
    match = next((m for m in outcome.matches if m.entity_id == f"ofac-sdn:{ent_num}"), None)
    assert match is not None, outcome.matches[:3]
    assert match.score >= POSSIBLE_THRESHOLD
    assert match.list_version == screener.list_version


def test_listed_organization_with_legal_form_variant(screener: Screener) -> None:
    outcome = screener.screen(ScreeningSubject(full_name="Karst LLC", kind="organization"))
    assert outcome.matches[0].entity_id == "ofac-sdn:21038"
    assert outcome.decision == "strong"


@pytest.mark.parametrize(
    ("first", "last", "dob", "country"),
    [
        ("John", "Smith", date(1984, 2, 11), "GB"),
        ("Maria", "Garcia", date(1985, 3, 4), "ES"),
        ("Anna", "Schmidt", date(1990, 7, 1), "DE"),
        ("Emma", "Johnson", date(1979, 12, 30), "US"),
        ("Olga", "Ivanova", date(1988, 5, 17), "RU"),
        ("Pierre", "Dubois", date(1992, 9, 9), "FR"),
        ("Sofia", "Rossi", date(1995, 1, 20), "IT"),
    ],
)
def test_clean_common_names_are_clear(
    screener: Screener, first: str, last: str, dob: date, country: str
) -> None:
    outcome = screener.screen(
        ScreeningSubject(first_name=first, last_name=last, date_of_birth=dob, country=country)
    )
    assert outcome.decision == "clear", outcome.matches[:3]


def test_full_list_size(full_ofac_dir: Path) -> None:
    entities, version = load_lists([full_ofac_dir])
    assert len(entities) == 9043  # ~9,000 parties
    aliases = sum(len(e.names) - 1 + len(e.previous_names) for e in entities)
    assert aliases == 12409  # ~12,000 alt.csv rows: aka/nka as names, fka as previous names
    assert sum(len(e.previous_names) for e in entities) == 354
    assert sum(1 for e in entities if e.birth_dates) > 4400
    assert sum(1 for e in entities if e.schema_ == "person") == 4643
    assert len(version) == 32
