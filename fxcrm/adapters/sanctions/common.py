"""Helpers shared by the list loaders: name splitting, remarks parsing, hashing."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from fxcrm.adapters.sanctions.countries import ISO2_CODES, to_iso2
from fxcrm.adapters.sanctions.dates import parse_birth_dates
from fxcrm.domain.screening.model import BirthDate, Gender, Identifier, ListEntity, ListName


def split_person_name(text: str) -> ListName:
    """OFAC writes persons as "LAST, First" (sometimes "LAST, First, Jr.")."""
    full = " ".join(text.split())
    family, sep, given = full.partition(",")
    if not sep:
        return ListName(full=full)
    given = " ".join(p.strip() for p in given.split(",") if p.strip())
    return ListName(full=full, given=given or None, family=family.strip() or None)


def split_programs(text: str) -> list[str]:
    """CSV programs look like "SDGT] [IFSR"."""
    return [p.strip() for p in re.split(r"\]\s*\[", text.strip().strip("[]")) if p.strip()]


def dedupe(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def known_country(text: str) -> str | None:
    """ISO2 for the country at the end of a place ("Giza, Egypt"), or None if not a country."""
    code = to_iso2(text.rsplit(",", 1)[-1])
    return code if code in ISO2_CODES else None


_ID_KINDS = {
    "passport": "passport",
    "national id no.": "national_id",
    "cedula no.": "cedula",
    "c.u.r.p.": "curp",
    "r.f.c.": "rfc",
    "tax id no.": "tax_id",
    "nit #": "nit",
    "d.n.i.": "dni",
    "identification number": "national_id",
}
_ID = re.compile(
    r"^(?:alt\. )?(passport|national id no\.|cedula no\.|c\.u\.r\.p\.|r\.f\.c\.|tax id no\.|nit #|"
    r"d\.n\.i\.|identification number) (.+)$",
    re.IGNORECASE,
)
_FACT = re.compile(r"^(?:alt\. )?(dob|pob|nationality|citizen|gender) (.+)$", re.IGNORECASE)
_WEAK_ALIAS = re.compile(r"^a\.k\.a\.,? ['\u2018\u2019\"](.+)['\u2018\u2019\"]$", re.IGNORECASE)


@dataclass
class RemarkFacts:
    birth_dates: list[BirthDate] = field(default_factory=list)
    nationalities: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    gender: Gender | None = None
    weak_aliases: list[str] = field(default_factory=list)
    identifiers: list[Identifier] = field(default_factory=list)


def _identifier(kind: str, text: str) -> Identifier | None:
    text = re.split(r"\s+(?:issued|expires|valid)\b", text, maxsplit=1, flags=re.IGNORECASE)[0]
    country = None
    if m := re.search(r"\(([^)]+)\)\s*$", text):
        country = to_iso2(m.group(1))
        text = text[: m.start()]
    number = text.strip().strip(".").strip()
    if not number:
        return None
    return Identifier(kind=_ID_KINDS[kind.casefold()], number=number, country=country)


def parse_remarks(remarks: str | None) -> RemarkFacts:
    """OFAC keeps DOB, POB, nationality, passports and weak aliases only in Remarks free text."""
    facts = RemarkFacts()
    if not remarks:
        return facts
    for chunk in remarks.split(";"):
        part = chunk.strip().rstrip(".").strip()
        if m := _WEAK_ALIAS.match(part):
            facts.weak_aliases.append(m.group(1).strip())
        elif m := _ID.match(part):
            identifier = _identifier(m.group(1), m.group(2))
            if identifier is not None:
                facts.identifiers.append(identifier)
        elif m := _FACT.match(part):
            label, value = m.group(1).casefold(), m.group(2).strip()
            if label == "dob":
                facts.birth_dates += parse_birth_dates(value)
            elif label == "pob":
                if code := known_country(value):
                    facts.countries.append(code)
            elif label in ("nationality", "citizen"):
                # "Aircraft/Vessel Nationality of Registration X"; "possibly Palestinian".
                value = re.sub(r"^(?:of registration|possibly)\s+", "", value, flags=re.IGNORECASE)
                if value.casefold() not in ("none identified", "unknown"):
                    facts.nationalities.append(to_iso2(value))
            elif value.casefold() in ("male", "female"):
                facts.gender = "male" if value.casefold() == "male" else "female"
    return facts


def hash_text(parts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x1f")
    return digest.hexdigest()[:32]


def hash_element(element: Element) -> str:
    """Stable hash of an XML record: tags, attributes and text in document order."""

    def walk(node: Element) -> Iterable[str]:
        yield node.tag
        yield from (f"{k}={v}" for k, v in sorted(node.attrib.items()))
        yield (node.text or "").strip()
        for child in node:
            yield from walk(child)
        yield "/"

    return hash_text(walk(element))


def list_version(entities: Iterable[ListEntity]) -> str:
    """Version id of a loaded list set: changes when any entity is added, removed or changed."""
    return hash_text(sorted(f"{e.entity_id}={e.raw_hash}" for e in entities))
