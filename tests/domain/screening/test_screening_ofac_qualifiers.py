"""Qualifiers on a real OFAC SDN entry: a listed person who lives elsewhere is not cleared.

OFAC lists "BOUT, Viktor Anatolijevitch" (ent_num 8279, in the committed extract) with DOB 13 Jan
1967 (alt. 13 Jan 1970) and a place of birth in Tajikistan. A client "Viktor Bout" born on that day
who lives in Cyprus once scored 0.60 (clear) while the bare name scored 0.80: the residence cost
more than the exact date of birth earned.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from fxcrm.adapters.sanctions import load_lists
from fxcrm.domain.screening import Screener, ScreeningOutcome, ScreeningSubject

EXTRACT = Path(__file__).resolve().parents[2] / "fixtures" / "sanctions" / "ofac-sdn-extract"
BOUT = "ofac-sdn:8279"


@pytest.fixture(scope="module")
def screener() -> Screener:
    entities, version = load_lists([EXTRACT])
    return Screener(entities, version)


def bout(screener: Screener, **kwargs: object) -> tuple[ScreeningOutcome, float]:
    outcome = screener.screen(
        ScreeningSubject.model_validate({"first_name": "Viktor", "last_name": "Bout", **kwargs})
    )
    score = next((m.score for m in outcome.matches if m.entity_id == BOUT), 0.0)
    return outcome, score


def test_name_only_is_possible(screener: Screener) -> None:
    outcome, score = bout(screener)
    assert (outcome.decision, score) == ("possible", pytest.approx(0.8, abs=1e-3))


def test_exact_dob_raises_the_score(screener: Screener) -> None:
    _, name_only = bout(screener)
    for born in (date(1967, 1, 13), date(1970, 1, 13)):  # the listed DOB and the alternative
        outcome, score = bout(screener, date_of_birth=born)
        assert score > name_only
        assert outcome.decision == "strong"


def test_residence_elsewhere_does_not_clear_an_exact_dob(screener: Screener) -> None:
    _, name_only = bout(screener)
    outcome, score = bout(screener, date_of_birth=date(1967, 1, 13), country="CY")
    assert score > name_only
    assert outcome.decision == "strong"
    match = outcome.matches[0]
    assert match.entity_id == BOUT
    assert [q.name for q in match.qualifiers] == ["dob_day_match", "country_mismatch"]


def test_residence_elsewhere_without_dob_stays_reviewable(screener: Screener) -> None:
    outcome, score = bout(screener, country="CY")
    assert outcome.decision == "possible"
    assert 0.7 <= score < 0.8


def test_russian_national_born_in_tajikistan_is_not_a_nationality_mismatch(
    screener: Screener,
) -> None:
    outcome, _ = bout(screener, date_of_birth=date(1967, 1, 13), nationalities=["RU"])
    match = outcome.matches[0]
    assert [q.name for q in match.qualifiers] == ["dob_day_match", "country_mismatch"]
    assert outcome.decision == "strong"


def test_another_birthday_still_lowers_the_score(screener: Screener) -> None:
    _, name_only = bout(screener)
    outcome, score = bout(screener, date_of_birth=date(1985, 6, 2), country="CY")
    assert score < name_only
    assert outcome.decision == "clear"
