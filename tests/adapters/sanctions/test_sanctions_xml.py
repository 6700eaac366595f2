"""OFAC legacy sdn.xml and UN consolidated.xml loaders, format detection and XML hardening."""

from __future__ import annotations

from pathlib import Path

import pytest
from defusedxml import EntitiesForbidden

from fxcrm.adapters.sanctions import load_lists
from fxcrm.adapters.sanctions.ofac_xml import load_ofac_xml
from fxcrm.adapters.sanctions.un_xml import load_un_xml

from .conftest import OFAC_EXTRACT, OFAC_XML, UN_XML


def test_ofac_xml() -> None:
    entities = {e.source_id: e for e in load_ofac_xml(OFAC_XML)}
    assert set(entities) == {"2676", "306", "22790", "15905"}
    zawahiri = entities["2676"]
    assert zawahiri.schema_ == "person"
    assert zawahiri.names[0].model_dump() == {
        "full": "AL ZAWAHIRI, Dr. Ayman",
        "given": "Dr. Ayman",
        "family": "AL ZAWAHIRI",
    }
    assert [w.full for w in zawahiri.weak_aliases] == ["Abu Muhammad"]  # category weak
    assert [b.prefix for b in zawahiri.birth_dates] == ["1951-06-19"]
    assert zawahiri.nationalities == ["EG"]
    assert [i.number for i in zawahiri.identifiers] == ["1084010"]
    maduro = entities["22790"]
    assert (maduro.nationalities, maduro.gender) == (["VE"], "male")  # citizenshipList, remarks
    assert maduro.programs == ["VENEZUELA", "IRAN-CON-ARMS-EO"]
    assert [w.full for w in entities["306"].weak_aliases] == ["BNC"]
    vessel = entities["15905"]
    assert (vessel.schema_, vessel.countries, vessel.previous_names[0].full) == (
        "vessel",
        ["PA"],
        "SUNRISE",
    )


def test_ofac_xml_and_csv_share_entity_ids() -> None:
    xml_ids = {e.entity_id for e in load_ofac_xml(OFAC_XML)}
    csv_ids = {e.entity_id for e in load_lists([OFAC_EXTRACT]).entities}
    assert xml_ids <= csv_ids


def test_un_xml() -> None:
    entities = {e.source_id: e for e in load_un_xml(UN_XML)}
    khalil = entities["9000001"]
    assert khalil.entity_id == "un-sc:9000001"
    assert khalil.names[0].full == "KHALIL IBRAHIM AL-QASSEMI"
    assert "خليل ابراهيم القاسمي" in [n.full for n in khalil.names]  # original script kept
    assert [w.full for w in khalil.weak_aliases] == [
        "Abu Tarek",
        "Abu Khalil al-Shami",
    ]  # QUALITY Low
    assert [p.full for p in khalil.previous_names] == ["Khalil Ibrahim Hamdan"]
    assert [(b.prefix, b.approximate) for b in khalil.birth_dates] == [
        ("1971-04-12", False),
        ("1972", True),
    ]
    assert khalil.nationalities == ["SY", "IQ"]
    assert khalil.countries == ["SY"]
    assert khalil.gender == "male"
    assert khalil.programs == ["Al-Qaida", "QDi.901"]
    assert [(i.kind, i.number, i.country) for i in khalil.identifiers] == [
        ("passport", "N0123456", "SY")
    ]
    pak = entities["9000002"]
    assert [b.prefix for b in pak.birth_dates] == ["1960", "1961", "1962"]
    assert pak.nationalities == ["KP"]
    org = entities["9100001"]
    assert (org.schema_, org.countries, [w.full for w in org.weak_aliases]) == (
        "organization",
        ["KP"],
        ["NSGT"],
    )


def test_load_lists_detects_formats_and_merges() -> None:
    loaded = load_lists([OFAC_EXTRACT, OFAC_XML, UN_XML, OFAC_EXTRACT / "sdn.csv"])
    sources = {e.source for e in loaded.entities}
    assert sources == {"ofac-sdn", "un-sc"}
    assert len(loaded.entities) == 46 + 3  # the XML repeats OFAC ids: first occurrence wins
    entities, version = loaded  # unpacks as a pair too
    assert entities is loaded.entities
    assert version == loaded.version and len(version) == 32


def test_load_lists_rejects_unknown_inputs(tmp_path: Path) -> None:
    other = tmp_path / "other.xml"
    other.write_text("<root/>", encoding="utf-8")
    with pytest.raises(ValueError, match="unsupported XML"):
        load_lists([other])
    with pytest.raises(ValueError, match="unsupported"):
        load_lists([tmp_path / "list.json"])
    with pytest.raises(FileNotFoundError):
        load_lists([tmp_path])


def test_xml_entity_expansion_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "sdn.xml"
    bomb.write_text(
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        "<sdnList><sdnEntry><uid>1</uid><lastName>&b;</lastName></sdnEntry></sdnList>",
        encoding="utf-8",
    )
    with pytest.raises(EntitiesForbidden):
        load_lists([bomb])
