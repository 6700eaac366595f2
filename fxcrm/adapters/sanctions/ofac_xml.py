"""OFAC legacy `sdn.xml` (also the non-SDN `consolidated.xml`, same schema): sdnList/sdnEntry."""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element

from fxcrm.adapters.sanctions.common import dedupe, hash_element, known_country, parse_remarks
from fxcrm.adapters.sanctions.countries import to_iso2
from fxcrm.adapters.sanctions.dates import parse_birth_dates
from fxcrm.adapters.sanctions.xml_stream import child, children, iter_records, text
from fxcrm.domain.screening.model import EntitySchema, Identifier, ListEntity, ListName

SOURCE = "ofac-sdn"

_SCHEMAS: dict[str, EntitySchema] = {
    "individual": "person",
    "entity": "organization",
    "vessel": "vessel",
    "aircraft": "aircraft",
}
_ID_KINDS = {"passport": "passport", "national id no.": "national_id", "cedula no.": "cedula"}


def _name(node: Element, schema: EntitySchema) -> ListName | None:
    last, first = text(node, "lastName"), text(node, "firstName")
    if last is None and first is None:
        return None
    if schema != "person":
        return ListName(full=" ".join(filter(None, [first, last])))
    full = f"{last}, {first}" if last and first else (last or first or "")
    return ListName(full=full, given=first, family=last)


def _list(node: Element, container: str, item: str) -> list[Element]:
    holder = child(node, container)
    return children(holder, item) if holder is not None else []


def parse_entry(entry: Element, source: str = SOURCE) -> ListEntity | None:
    uid = text(entry, "uid")
    schema = _SCHEMAS.get((text(entry, "sdnType") or "").casefold(), "organization")
    primary = _name(entry, schema)
    if uid is None or primary is None:
        return None
    facts = parse_remarks(text(entry, "remarks"))

    names, weak, previous = [primary], [], []
    for aka in _list(entry, "akaList", "aka"):
        name = _name(aka, schema)
        if name is None:
            continue
        if (text(aka, "category") or "").casefold() == "weak":
            weak.append(name)
        elif (text(aka, "type") or "").casefold() == "f.k.a.":
            previous.append(name)
        else:
            names.append(name)
    for alias in facts.weak_aliases:
        weak.append(ListName(full=alias))

    birth_dates = list(facts.birth_dates)
    for item in _list(entry, "dateOfBirthList", "dateOfBirthItem"):
        if (raw := text(item, "dateOfBirth")) is not None:
            birth_dates += parse_birth_dates(raw)

    nationalities = list(facts.nationalities)
    for container, tag in (("nationalityList", "nationality"), ("citizenshipList", "citizenship")):
        nationalities += [
            to_iso2(c) for n in _list(entry, container, tag) if (c := text(n, "country"))
        ]

    countries = list(facts.countries)
    countries += [
        to_iso2(c) for a in _list(entry, "addressList", "address") if (c := text(a, "country"))
    ]
    for item in _list(entry, "placeOfBirthList", "placeOfBirthItem"):
        if (place := text(item, "placeOfBirth")) and (code := known_country(place)):
            countries.append(code)
    vessel = child(entry, "vesselInfo")
    if vessel is not None and (flag := text(vessel, "vesselFlag")):
        countries.append(to_iso2(flag))

    identifiers = list(facts.identifiers)
    for node in _list(entry, "idList", "id"):
        number, kind = text(node, "idNumber"), (text(node, "idType") or "").casefold()
        if number:
            country = text(node, "idCountry")
            identifiers.append(
                Identifier(
                    kind=_ID_KINDS.get(kind, kind.replace(" ", "_") or "id"),
                    number=number,
                    country=to_iso2(country) if country else None,
                )
            )

    programs = [p for n in _list(entry, "programList", "program") if (p := text(n))]
    return ListEntity(
        entity_id=f"{source}:{uid}",
        source=source,
        source_id=uid,
        schema_=schema,
        names=list(dict.fromkeys(names)),
        weak_aliases=list(dict.fromkeys(weak)),
        previous_names=list(dict.fromkeys(previous)),
        birth_dates=list(dict.fromkeys(birth_dates)),
        nationalities=dedupe(nationalities),
        countries=dedupe(countries),
        gender=facts.gender,
        identifiers=list(dict.fromkeys(identifiers)),
        programs=programs,
        raw_hash=hash_element(entry),
    )


def load_ofac_xml(path: Path, source: str = SOURCE) -> list[ListEntity]:
    entities = []
    for entry in iter_records(path, frozenset({"sdnEntry"})):
        entity = parse_entry(entry, source)
        if entity is not None:
            entities.append(entity)
    return entities
