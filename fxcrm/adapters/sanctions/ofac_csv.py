"""OFAC legacy CSV trio (sdn.csv, alt.csv, add.csv): no header, `-0-` is null, joined on ent_num."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

from fxcrm.adapters.sanctions.common import (
    dedupe,
    hash_text,
    parse_remarks,
    split_person_name,
    split_programs,
)
from fxcrm.adapters.sanctions.countries import to_iso2
from fxcrm.domain.screening.model import EntitySchema, ListEntity, ListName

SOURCE = "ofac-sdn"
NULL = "-0-"

_SCHEMAS: dict[str, EntitySchema] = {
    "individual": "person",
    "vessel": "vessel",
    "aircraft": "aircraft",
}


def _value(text: str) -> str | None:
    text = text.strip()
    return None if not text or text == NULL else text


def read_rows(path: Path) -> list[list[str]]:
    """Rows of one OFAC CSV; tolerates the DOS end-of-file byte and a cp1252 fallback."""
    if not path.exists():
        return []
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    text = text.replace("\x1a", "")
    return [row for row in csv.reader(io.StringIO(text)) if len(row) > 1]


def _name(text: str, schema: EntitySchema) -> ListName:
    return split_person_name(text) if schema == "person" else ListName(full=" ".join(text.split()))


def load_ofac_csv(directory: Path) -> list[ListEntity]:
    """Entities from a directory holding sdn.csv (required), alt.csv and add.csv."""
    sdn_path = directory / "sdn.csv"
    if not sdn_path.exists():
        raise FileNotFoundError(f"no sdn.csv in {directory}")
    aliases: dict[str, list[list[str]]] = defaultdict(list)
    for row in read_rows(directory / "alt.csv"):
        aliases[row[0].strip()].append(row)
    addresses: dict[str, list[list[str]]] = defaultdict(list)
    for row in read_rows(directory / "add.csv"):
        addresses[row[0].strip()].append(row)

    entities: list[ListEntity] = []
    for row in read_rows(sdn_path):
        row = (row + [""] * 12)[:12]
        ent_num = row[0].strip()
        name = _value(row[1])
        if not ent_num or name is None:
            continue
        schema = _SCHEMAS.get((_value(row[2]) or "").casefold(), "organization")
        facts = parse_remarks(_value(row[11]))

        names = [_name(name, schema)]
        previous: list[ListName] = []
        for alt in sorted(aliases.get(ent_num, []), key=lambda r: r[1]):
            alt = (alt + [""] * 5)[:5]
            alt_name = _value(alt[3])
            if alt_name is None:
                continue
            target = previous if (_value(alt[2]) or "").casefold() == "fka" else names
            target.append(_name(alt_name, schema))

        countries = list(facts.countries)
        for address in addresses.get(ent_num, []):
            country = _value((address + [""] * 6)[4])
            if country is not None and country.casefold() != "undetermined":
                countries.append(to_iso2(country))
        if (flag := _value(row[9])) is not None:
            countries.append(to_iso2(flag))

        raw_rows = [row, *sorted(aliases.get(ent_num, [])), *sorted(addresses.get(ent_num, []))]
        entities.append(
            ListEntity(
                entity_id=f"{SOURCE}:{ent_num}",
                source=SOURCE,
                source_id=ent_num,
                schema_=schema,
                names=list(dict.fromkeys(names)),
                weak_aliases=list(dict.fromkeys(_name(a, schema) for a in facts.weak_aliases)),
                previous_names=list(dict.fromkeys(previous)),
                birth_dates=list(dict.fromkeys(facts.birth_dates)),
                nationalities=dedupe(facts.nationalities),
                countries=dedupe(countries),
                gender=facts.gender,
                identifiers=list(dict.fromkeys(facts.identifiers)),
                programs=split_programs(_value(row[3]) or ""),
                raw_hash=hash_text("\x1e".join(r) for r in raw_rows),
            )
        )
    return entities
