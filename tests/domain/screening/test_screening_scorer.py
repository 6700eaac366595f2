"""Stage 2 scoring: part similarity, alignment and weights, qualifiers."""

from __future__ import annotations

from datetime import date

import pytest

from fxcrm.domain.screening.model import BirthDate
from fxcrm.domain.screening.normalize import org_parts, person_parts
from fxcrm.domain.screening.scorer import (
    COUNTRY_MISMATCH,
    DOB_DAY_DISJOINT,
    DOB_DAY_MATCH,
    DOB_DAY_MONTH_FLIP,
    DOB_YEAR_DISJOINT,
    DOB_YEAR_MATCH,
    GENDER_MISMATCH,
    INITIAL_SCORE,
    NAME_GROUP_SCORE,
    NATIONALITY_MISMATCH,
    PreparedName,
    country_adjustment,
    dob_adjustment,
    gender_adjustment,
    numbers_adjustment,
    part_similarity,
    score_name,
)


def person(given: str | None, family: str | None) -> PreparedName:
    return PreparedName.of(f"{given} {family}", person_parts(given, family))


def org(name: str) -> PreparedName:
    return PreparedName.of(name, org_parts(name))


def bd(prefix: str, approximate: bool = False) -> BirthDate:
    return BirthDate(prefix=prefix, raw=prefix, approximate=approximate)


class TestPartSimilarity:
    def test_equal_initial_and_name_group(self) -> None:
        assert part_similarity("ayman", "ayman") == 1.0
        assert part_similarity("j", "john") == INITIAL_SCORE
        assert part_similarity("j", "k") == 0.0
        assert part_similarity("mohammed", "muhammad") == NAME_GROUP_SCORE
        assert part_similarity("husayn", "hussein") == NAME_GROUP_SCORE

    def test_typos_and_transliteration_drift_score_high(self) -> None:
        assert part_similarity("zawahiri", "zawahri") > 0.9  # one deletion
        assert part_similarity("sergei", "sergey") > 0.9
        assert part_similarity("serguei", "sergey") > 0.85
        assert part_similarity("yaser", "yasre") > 0.9  # a swapped pair is one edit

    def test_gates_reject_other_names(self) -> None:
        assert part_similarity("ali", "wali") == 0.0  # short part, other first letter
        assert part_similarity("smith", "schmidt") == 0.0
        assert part_similarity("ivanov", "ivanova") > 0.75  # plausible one-letter difference
        assert part_similarity("1234", "1235") == 0.0  # numbers match exactly only


class TestNameScore:
    def test_order_does_not_matter(self) -> None:
        listed = person("Ayman", "AL-ZAWAHIRI")
        assert score_name(person("Ayman", "Zawahiri"), listed).score == pytest.approx(
            score_name(person("Zawahiri", "Ayman"), listed).score, abs=0.05
        )
        assert score_name(person("Ayman", "al-Zawahiri"), listed).score == 1.0

    def test_missing_list_parts_cost_less_than_extra_query_parts(self) -> None:
        listed = person("Aiman Muhammad Rabi", "AL-ZAWAHIRI")
        short_query = score_name(person("Aiman", "Zawahiri"), listed).score
        long_query = score_name(
            person("Aiman Muhammad Rabi Sayed", "Zawahiri"), person("Aiman", "AL-ZAWAHIRI")
        ).score
        assert short_query > 0.8
        assert short_query > long_query

    def test_initials_count_half(self) -> None:
        listed = person("Sergey Ivanovich", "PETROV")
        assert score_name(person("S. I.", "Petrov"), listed).score > 0.85
        assert (
            score_name(person("A.", "Petrov"), listed).score
            < score_name(person("S.", "Petrov"), listed).score
        )

    def test_particles_or_legal_forms_alone_never_match(self) -> None:
        assert score_name(org("Al Amana LLC"), org("Al Baraka LLC")).score == 0.0

    def test_explanation_lists_aligned_and_unmatched_parts(self) -> None:
        scored = score_name(person("Ayman", "Zawahri"), person("Ayman Rabi", "AL-ZAWAHIRI"))
        parts = {(p.query_part, p.list_part) for p in scored.explain()}
        assert ("ayman", "ayman") in parts
        assert ("zawahri", "zawahiri") in parts
        assert (None, "rabi") in parts

    def test_numbers_in_org_names_must_agree(self) -> None:
        query, listed = org("Maria II"), org("MARIA III")
        adjustment = numbers_adjustment(query, listed, 0.9)
        assert adjustment is not None and adjustment.delta == pytest.approx(-0.27)
        assert numbers_adjustment(org("Maria III"), listed, 0.9) is None


class TestQualifiers:
    def test_dob_year_disjoint(self) -> None:
        adjustment = dob_adjustment(date(1980, 6, 19), [bd("1951-06-19")])
        assert adjustment is not None
        assert (adjustment.name, adjustment.delta) == ("dob_year_disjoint", DOB_YEAR_DISJOINT)

    def test_dob_day_disjoint_and_day_month_flip(self) -> None:
        day = dob_adjustment(date(1951, 6, 20), [bd("1951-06-19")])
        assert day is not None and day.delta == DOB_DAY_DISJOINT
        flip = dob_adjustment(date(1952, 7, 10), [bd("1952-10-07")])
        assert flip is not None and (flip.name, flip.delta) == (
            "dob_day_month_flip",
            DOB_DAY_MONTH_FLIP,
        )

    def test_dob_full_date_match_raises_the_score(self) -> None:
        exact = dob_adjustment(date(1967, 1, 13), [bd("1967-01-13"), bd("1970-01-13")])
        assert exact is not None and (exact.name, exact.delta) == ("dob_day_match", DOB_DAY_MATCH)
        alternative = dob_adjustment(date(1965, 1, 1), [bd("1957-01-01"), bd("1965-01-01")])
        assert alternative is not None and alternative.delta == DOB_DAY_MATCH
        assert DOB_DAY_MATCH > DOB_YEAR_MATCH > 0

    def test_dob_prefixes_and_circa_are_compatible(self) -> None:
        year = dob_adjustment(date(1952, 3, 1), [bd("1952")])
        assert year is not None and (year.name, year.delta) == ("dob_year_match", DOB_YEAR_MATCH)
        month = dob_adjustment(date(1952, 10, 9), [bd("1952-10")])
        assert month is not None and (month.name, month.delta) == ("dob_year_match", DOB_YEAR_MATCH)
        # A circa year or a spread of years agrees without saying much: neither up nor down.
        assert dob_adjustment(date(1961, 1, 1), [bd("1960", approximate=True)]) is None
        assert dob_adjustment(date(1980, 5, 5), [bd(str(y)) for y in range(1977, 1986)]) is None
        assert dob_adjustment(None, [bd("1952")]) is None
        assert dob_adjustment(date(1952, 1, 1), []) is None

    def test_agreeing_dates_never_lower_and_disagreeing_never_raise(self) -> None:
        agreeing = [DOB_DAY_MATCH, DOB_YEAR_MATCH]
        disagreeing = [DOB_YEAR_DISJOINT, DOB_DAY_DISJOINT, DOB_DAY_MONTH_FLIP]
        assert min(agreeing) > 0 > max(disagreeing)
        # A swapped day and month is a typo more often than another person: the mildest penalty.
        assert max(DOB_YEAR_DISJOINT, DOB_DAY_DISJOINT) < DOB_DAY_MONTH_FLIP

    def test_nationality_mismatch_uses_iso2_and_territory_overlaps(self) -> None:
        mismatch = country_adjustment({"GB"}, {"RU"})
        assert mismatch is not None and (mismatch.name, mismatch.delta) == (
            "nationality_mismatch",
            NATIONALITY_MISMATCH,
        )
        assert country_adjustment({"RU"}, {"RU", "CY"}) is None
        assert country_adjustment({"RU"}, {"SU"}) is None  # Soviet Union overlaps its successors
        assert country_adjustment({"GB"}, {"Region: Kafia Kingi"}) is None  # unknown raw name
        assert country_adjustment(set(), {"RU"}) is None

    def test_successor_states_do_not_overlap_each_other(self) -> None:
        # Both overlap the Soviet Union; that does not make a Ukrainian a Russian.
        mismatch = country_adjustment({"UA"}, {"RU"})
        assert mismatch is not None and mismatch.delta == NATIONALITY_MISMATCH
        assert country_adjustment({"RS"}, {"YU"}) is None
        assert country_adjustment({"CS"}, {"YU"}) is None

    def test_residence_is_weak_evidence(self) -> None:
        # Listed people move: a residence elsewhere costs a little, never a nationality's worth.
        moved = country_adjustment(set(), {"RU"}, residence="CY")
        assert moved is not None and (moved.name, moved.delta) == (
            "country_mismatch",
            COUNTRY_MISMATCH,
        )
        assert NATIONALITY_MISMATCH < COUNTRY_MISMATCH < 0
        assert DOB_DAY_MATCH + COUNTRY_MISMATCH > 0  # never outweighs an agreeing date of birth
        # Residence agreeing with a listed country is enough, whatever the nationality says.
        assert country_adjustment({"GB"}, {"RU"}, residence="RU") is None
        assert country_adjustment(set(), set(), residence="CY", listed_countries={"CY"}) is None
        # Nationality and residence both contradicting: one penalty, the nationality's.
        both = country_adjustment({"GB"}, {"RU"}, residence="CY")
        assert both is not None and both.delta == NATIONALITY_MISMATCH

    def test_listed_places_of_birth_and_addresses_are_weak_evidence(self) -> None:
        # Viktor Bout: born in Tajikistan, Russian; the OFAC remarks give the place of birth only.
        born_abroad = country_adjustment({"RU"}, set(), listed_countries={"TJ"})
        assert born_abroad is not None and born_abroad.delta == COUNTRY_MISMATCH
        assert country_adjustment({"RU"}, {"RU"}, listed_countries={"TJ"}) is None

    def test_gender(self) -> None:
        mismatch = gender_adjustment("male", "female")
        assert mismatch is not None and (mismatch.name, mismatch.delta) == (
            "gender_mismatch",
            GENDER_MISMATCH,
        )
        assert gender_adjustment("male", None) is None
        assert gender_adjustment(None, "female") is None
        assert gender_adjustment("female", "female") is None
