"""UN Security Council consolidated list (`consolidated.xml`): INDIVIDUALS/INDIVIDUAL, ENTITIES/ENTITY."""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element

from fxcrm.adapters.sanctions.common import dedupe, hash_element, known_country
from fxcrm.adapters.sanctions.countries import to_iso2
from fxcrm.adapters.sanctions.dates import parse_birth_dates
from fxcrm.adapters.sanctions.xml_stream import child, children, iter_records, text
from fxcrm.domain.screening.model import BirthDate, Gender, Identifier, ListEntity, ListName

SOURCE = "un-sc"
_NAME_FIELDS = ("FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME")


def _values(record: Element, name: str) -> list[str]:
    """Texts of VALUE children of every `name` element (NATIONALITY/VALUE, TITLE/VALUE, ...)."""
    return [
        v
        for node in children(record, name)
        for item in children(node, "VALUE")
        if (v := text(item))
    ]


def _birth_dates(node: Element) -> list[BirthDate]:
    kind = (text(node, "TYPE_OF_DATE") or "").upper()
    approximate = kind.startswith("APPROX")
    date, year = text(node, "DATE"), text(node, "YEAR")
    start, end = text(node, "FROM_YEAR"), text(node, "TO_YEAR")
    if kind == "BETWEEN" and start and end:
        raw = f"{start} to {end}"
    elif date:
        raw = date
    elif year:
        raw = year
    else:
        return []
    parsed = parse_birth_dates(raw)
    if approximate:
        parsed = [bd.model_copy(update={"approximate": True}) for bd in parsed]
    return parsed


def _gender(record: Element) -> Gender | None:
    value = (text(record, "GENDER") or "").casefold()
    if value == "male":
        return "male"
    return "female" if value == "female" else None


def parse_record(record: Element) -> ListEntity | None:
    dataid = text(record, "DATAID")
    is_person = record.tag.rsplit("}", 1)[-1] == "INDIVIDUAL"
    full = " ".join(v for f in _NAME_FIELDS if (v := text(record, f)))
    if dataid is None or not full:
        return None
    prefix = "INDIVIDUAL" if is_person else "ENTITY"

    names, weak, previous = [ListName(full=full)], [], []
    if original := text(record, "NAME_ORIGINAL_SCRIPT"):
        names.append(ListName(full=original))
    for alias in children(record, f"{prefix}_ALIAS"):
        quality = (text(alias, "QUALITY") or "").casefold()
        for alias_name in (text(alias, "ALIAS_NAME") or "").split(";"):
            alias_name = alias_name.strip()
            if not alias_name:
                continue
            if quality == "low":
                weak.append(ListName(full=alias_name))
            elif quality == "f.k.a.":
                previous.append(ListName(full=alias_name))
            else:
                names.append(ListName(full=alias_name))

    birth_dates = [
        bd for node in children(record, "INDIVIDUAL_DATE_OF_BIRTH") for bd in _birth_dates(node)
    ]
    countries = [
        to_iso2(c) for a in children(record, f"{prefix}_ADDRESS") if (c := text(a, "COUNTRY"))
    ]
    for place in children(record, "INDIVIDUAL_PLACE_OF_BIRTH"):
        if (country := text(place, "COUNTRY")) and (code := known_country(country)):
            countries.append(code)

    identifiers = []
    for doc in children(record, "INDIVIDUAL_DOCUMENT"):
        if number := text(doc, "NUMBER"):
            country = text(doc, "ISSUING_COUNTRY") or text(doc, "COUNTRY_OF_ISSUE")
            kind = (text(doc, "TYPE_OF_DOCUMENT") or "id").casefold().replace(" ", "_")
            identifiers.append(
                Identifier(kind=kind, number=number, country=to_iso2(country) if country else None)
            )

    list_type = child(record, "UN_LIST_TYPE")
    return ListEntity(
        entity_id=f"{SOURCE}:{dataid}",
        source=SOURCE,
        source_id=dataid,
        schema_="person" if is_person else "organization",
        names=list(dict.fromkeys(names)),
        weak_aliases=list(dict.fromkeys(weak)),
        previous_names=list(dict.fromkeys(previous)),
        birth_dates=list(dict.fromkeys(birth_dates)),
        nationalities=dedupe(to_iso2(n) for n in _values(record, "NATIONALITY")),
        countries=dedupe(countries),
        gender=_gender(record) if is_person else None,
        identifiers=list(dict.fromkeys(identifiers)),
        # Regime plus the permanent reference ("QDi.001") analysts quote in case files.
        programs=dedupe([text(list_type) or "", text(record, "REFERENCE_NUMBER") or ""]),
        raw_hash=hash_element(record),
    )


def load_un_xml(path: Path) -> list[ListEntity]:
    entities = []
    for record in iter_records(path, frozenset({"INDIVIDUAL", "ENTITY"})):
        entity = parse_record(record)
        if entity is not None:
            entities.append(entity)
    return entities
