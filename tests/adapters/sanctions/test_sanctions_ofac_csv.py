"""OFAC legacy CSV trio loader on the committed public-domain extract."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fxcrm.adapters.sanctions import load_lists
from fxcrm.adapters.sanctions.common import parse_remarks, split_person_name, split_programs
from fxcrm.adapters.sanctions.ofac_csv import load_ofac_csv
from fxcrm.domain.screening import ListEntity

from .conftest import OFAC_EXTRACT


@pytest.fixture(scope="module")
def entities() -> dict[str, ListEntity]:
    return {e.source_id: e for e in load_ofac_csv(OFAC_EXTRACT)}


def test_counts_and_schemas(entities: dict[str, ListEntity]) -> None:
    assert len(entities) == 46
    schemas = {e.schema_ for e in entities.values()}
    assert schemas == {"person", "organization", "vessel", "aircraft"}
    assert entities["15905"].schema_ == "vessel"
    assert entities["15431"].schema_ == "aircraft"
    assert all(
        e.entity_id == f"ofac-sdn:{e.source_id}" and e.source == "ofac-sdn"
        for e in entities.values()
    )


def test_person_names_aliases_and_remarks(entities: dict[str, ListEntity]) -> None:
    zawahiri = entities["2676"]
    assert zawahiri.names[0].model_dump() == {
        "full": "AL ZAWAHIRI, Dr. Ayman",
        "given": "Dr. Ayman",
        "family": "AL ZAWAHIRI",
    }
    assert "AL-ZAWAHIRI, Aiman Muhammad Rabi" in [n.full for n in zawahiri.names]
    assert [b.prefix for b in zawahiri.birth_dates] == ["1951-06-19"]
    assert [(i.kind, i.number, i.country) for i in zawahiri.identifiers] == [
        ("passport", "1084010", "EG"),
        ("passport", "19820215", None),
    ]
    assert "EG" in zawahiri.countries  # place of birth Giza, Egypt

    aradah = entities["22223"]
    assert [b.prefix for b in aradah.birth_dates] == ["1965-01-01", "1957-08-01", "1957-01-01"]
    assert (aradah.nationalities, aradah.gender) == (["YE"], "male")
    assert aradah.programs == ["SDGT"]


def test_date_of_birth_variants(entities: dict[str, ListEntity]) -> None:
    circa = entities["7782"].birth_dates  # "DOB circa 1951"
    assert [(b.prefix, b.approximate) for b in circa] == [("1951", True)]
    years = entities["16540"].birth_dates  # "DOB 01 Jan 1977 to 31 Dec 1985"
    assert [b.prefix for b in years] == [str(y) for y in range(1977, 1986)]
    assert {b.raw for b in years} == {"01 Jan 1977 to 31 Dec 1985"}
    mixed = entities["9584"].birth_dates  # "DOB 1955; alt. DOB circa 1952"
    assert [(b.prefix, b.approximate) for b in mixed] == [("1955", False), ("1952", True)]


def test_weak_aliases_previous_names_and_entities(entities: dict[str, ListEntity]) -> None:
    cuba = entities["306"]
    assert [n.full for n in cuba.names] == ["BANCO NACIONAL DE CUBA", "NATIONAL BANK OF CUBA"]
    assert [w.full for w in cuba.weak_aliases] == ["BNC"]
    assert set(cuba.countries) == {"CH", "ES", "JP", "PA"}
    sahiron = entities["9584"]
    assert "SAJIRUN, Radulan" in [w.full for w in sahiron.weak_aliases]
    assert sahiron.weak_aliases[0].family is not None  # weak person aliases keep LAST, First
    bank = entities["4642"]
    assert "IRAN OVERSEAS INVESTMENT BANK PLC" in [p.full for p in bank.previous_names]
    assert entities["15905"].countries == ["PA"]  # vessel flag
    assert entities["15905"].previous_names[0].full == "SUNRISE"


def test_programs_split() -> None:
    assert split_programs("SDGT] [IFSR") == ["SDGT", "IFSR"]
    assert split_programs("CUBA") == ["CUBA"]


def test_name_split() -> None:
    assert split_person_name("DELOS REYES, Feliciano Semborio, Jr.").model_dump() == {
        "full": "DELOS REYES, Feliciano Semborio, Jr.",
        "given": "Feliciano Semborio Jr.",
        "family": "DELOS REYES",
    }
    assert split_person_name("SANTOSO").model_dump() == {
        "full": "SANTOSO",
        "given": None,
        "family": None,
    }


def test_remarks_parser() -> None:
    facts = parse_remarks(
        "DOB 07 Oct 1952; alt. DOB 1953; POB Leningrad, Russia; nationality Russia; alt. citizen Cyprus; "
        "Gender Male; a.k.a. 'VOVA'; Passport 123 (Russia) expires 01 Jan 2020; "
        "National ID No. 77-11 (Russia); Linked To: SOMETHING, LLC."
    )
    assert [b.prefix for b in facts.birth_dates] == ["1952-10-07", "1953"]
    assert facts.nationalities == ["RU", "CY"]
    assert facts.countries == ["RU"]
    assert facts.gender == "male"
    assert facts.weak_aliases == ["VOVA"]
    assert [(i.kind, i.number, i.country) for i in facts.identifiers] == [
        ("passport", "123", "RU"),
        ("national_id", "77-11", "RU"),
    ]
    assert parse_remarks(None).birth_dates == []


def test_raw_hash_and_version_track_changes(tmp_path: Path) -> None:
    copy = tmp_path / "ofac"
    shutil.copytree(OFAC_EXTRACT, copy)
    first = load_lists([copy])
    again = load_lists([copy])
    assert first.version == again.version
    sdn = copy / "sdn.csv"
    sdn.write_text(
        sdn.read_text(encoding="utf-8").replace("DOB 19 Jun 1951", "DOB 19 Jun 1952"),
        encoding="utf-8",
    )
    changed = load_lists([copy])
    assert changed.version != first.version
    before = {e.entity_id: e.raw_hash for e in first.entities}
    after = {e.entity_id: e.raw_hash for e in changed.entities}
    assert [k for k in before if before[k] != after[k]] == ["ofac-sdn:2676"]


def test_cp1252_and_dos_eof_are_tolerated(tmp_path: Path) -> None:
    (tmp_path / "sdn.csv").write_bytes(
        b'1,"M\xdcLLER, J\xfcrgen",individual,TEST,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,DOB 1960.\r\n\x1a'
    )
    [entity] = load_ofac_csv(tmp_path)
    assert entity.names[0].full == "MÜLLER, Jürgen"
    assert entity.weak_aliases == [] and entity.previous_names == []
