"""Free-text dates of birth -> date prefixes ("1952", "1952-10", "1952-10-07").

Handles the OFAC spellings ("07 Oct 1952", "Oct 1952", "1952", "circa 1960", "01 Jan 1960 to
31 Dec 1962", "1955 to 1958", "circa 1975-1979") and ISO dates from XML lists. Ranges become one
year prefix per year (a whole-year range means "year only"); text that cannot be read yields nothing.
"""

from __future__ import annotations

import re

from fxcrm.domain.screening.model import BirthDate

MAX_RANGE_YEARS = 20  # a longer span says little; keep only its end years

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_DAY_MONTH_YEAR = re.compile(r"^(\d{1,2}) ([a-z]{3})[a-z]*\.? (\d{4})$")
_MONTH_YEAR = re.compile(r"^([a-z]{3})[a-z]*\.? (\d{4})$")
_YEAR = re.compile(r"^(\d{4})$")
_ISO = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:T.*)?$")
_SLASHED = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_RANGE = re.compile(r"^(.+?)\s+to\s+(.+)$|^(\d{4})\s*[-\u2013]\s*(\d{4})$", re.IGNORECASE)


def _single(text: str) -> str | None:
    """One date expression -> prefix, or None."""
    text = text.strip().strip(".").strip().casefold()
    if m := _YEAR.match(text):
        return m.group(1)
    if m := _ISO.match(text):
        year, month, day = m.groups()
        return "-".join(p for p in (year, month, day) if p)
    if m := _DAY_MONTH_YEAR.match(text):
        month = _MONTHS.get(m.group(2))
        if month is None:
            return None
        return f"{m.group(3)}-{month:02d}-{int(m.group(1)):02d}"
    if m := _MONTH_YEAR.match(text):
        month = _MONTHS.get(m.group(1))
        return f"{m.group(2)}-{month:02d}" if month else None
    if m := _SLASHED.match(text):
        day, month, year = m.groups()
        return f"{year}-{int(month):02d}-{int(day):02d}"
    return None


def parse_birth_dates(raw: str) -> list[BirthDate]:
    """Parse one DOB expression (possibly a range or "circa") into birth date prefixes."""
    text = raw.strip().strip(".").strip()
    approximate = False
    lowered = text.casefold()
    for marker in ("circa ", "approximately ", "approx. ", "about ", "ca. "):
        if lowered.startswith(marker):
            approximate, text = True, text[len(marker) :].strip()
            break
    single = _single(text)
    if single is not None:
        return [BirthDate(prefix=single, raw=raw.strip(), approximate=approximate)]
    if m := _RANGE.match(text):
        left, right = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        start, end = _single(left), _single(right)
        if start is None or end is None:
            return []
        if start == end:
            return [BirthDate(prefix=start, raw=raw.strip(), approximate=approximate)]
        first, last = sorted((int(start[:4]), int(end[:4])))
        years = range(first, last + 1) if last - first <= MAX_RANGE_YEARS else (first, last)
        return [BirthDate(prefix=str(y), raw=raw.strip(), approximate=approximate) for y in years]
    return []
