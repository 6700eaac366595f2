"""Stage 2: explainable LogicV2-like name scoring plus qualifiers (COMPLIANCE.md §2.1).

A query name and a list name are split into parts, parts are aligned greedily by similarity, and
the name score is the weighted mean of the aligned part scores, with unmatched parts counted as 0.
Qualifiers (date of birth, country, gender, numbers) then move the entity score: an agreeing full
date of birth up, disagreeing facts down, each by how much it tells. Weak facts (a country of
residence, a listed address or place of birth: listed people move and are born abroad) move it
little, so they never outweigh strong ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import jellyfish
from rapidfuzz.distance import OSA, JaroWinkler

from fxcrm.domain.screening.model import AlignedPart, BirthDate, QualifierAdjustment
from fxcrm.domain.screening.normalize import NAME_GROUPS, NamePart, PartKind, is_numeric, name_key

# Part similarity (doc defaults).
FUZZY_FLOOR = 0.75  # a part similarity below this counts as no match at all
NAME_GROUP_SCORE = 0.9  # same name in another transliteration ("Yusuf" / "Youssef")
INITIAL_SCORE = 0.9  # "J" against "John"
INITIAL_WEIGHT = 0.5
PHONETIC_FACTOR = 0.9  # JW x 0.9 when only the metaphone codes agree
LEVENSHTEIN_MAX_EDITS = 4
LEVENSHTEIN_MAX_PCT = 0.2
PHONETIC_MIN_LEN = 3
SHORT_PART_LEN = 4  # shorter parts only match fuzzily when their first letters agree

# Part weights (doc defaults).
FAMILY_WEIGHT = 1.3
STOPWORD_WEIGHT = 0.7
UNMATCHED_QUERY_WEIGHT = 0.8
UNMATCHED_RESULT_WEIGHT = 0.2

# Entity-level features and qualifiers (doc defaults).
WEAK_ALIAS_SCORE = 0.8
IDENTIFIER_SCORE = 0.95
DOB_DAY_MATCH = 0.15  # the full date agrees: one chance in ~20,000 for a stranger
DOB_YEAR_MATCH = 0.05  # a listed year (or month) agrees: one chance in ~60
DOB_YEAR_DISJOINT = -0.15
DOB_DAY_DISJOINT = -0.25
DOB_DAY_MONTH_FLIP = -0.125
NATIONALITY_MISMATCH = -0.2  # client nationality vs listed nationality
COUNTRY_MISMATCH = -0.05  # anything weaker: residence, listed addresses or place of birth
GENDER_MISMATCH = -0.2
NUMBERS_MISMATCH_FACTOR = 0.3  # organisation/vessel names whose numbers differ lose 30%
CIRCA_YEARS = 2  # "circa 1960" accepts 1958..1962
YEAR_MATCH_MAX_YEARS = 2  # a listed range of more years than this earns no year bonus

# Territories that overlap for the country qualifier (dissolved states, disputed regions), so a
# listed "Soviet Union" national is not "disjoint" from a Russian client.
TERRITORY_OVERLAPS: dict[str, frozenset[str]] = {
    "SU": frozenset(
        {"RU", "UA", "BY", "KZ", "UZ", "GE", "AM", "AZ", "MD", "KG", "TJ", "TM", "LT", "LV", "EE"}
    ),
    "YU": frozenset({"RS", "ME", "XK", "BA", "HR", "SI", "MK", "CS"}),
    "CS": frozenset({"RS", "ME", "XK"}),
    "XK": frozenset({"RS"}),
    "PS": frozenset({"IL"}),
    "HK": frozenset({"CN"}),
    "MO": frozenset({"CN"}),
    "DD": frozenset({"DE"}),
}


@dataclass(frozen=True, slots=True)
class PreparedName:
    """A normalized name ready for comparison, with per-part weights precomputed."""

    display: str
    parts: tuple[NamePart, ...]
    key: str
    numbers: frozenset[str]
    texts: tuple[str, ...]
    weights: tuple[float, ...]
    informative: tuple[bool, ...]  # NAME or NUMERIC part (not a particle or legal form)
    total_weight: float

    @classmethod
    def of(cls, display: str, parts: tuple[NamePart, ...]) -> PreparedName:
        weights = tuple(part_weight(p) for p in parts)
        return cls(
            display=display,
            parts=parts,
            key=name_key(parts),
            numbers=frozenset(p.text for p in parts if p.kind is PartKind.NUMERIC),
            texts=tuple(p.text for p in parts),
            weights=weights,
            informative=tuple(p.kind is PartKind.NAME or p.kind is PartKind.NUMERIC for p in parts),
            total_weight=sum(weights),
        )


@dataclass(frozen=True, slots=True)
class NameScore:
    """A name score plus the aligned part pairs (i, j, similarity, weight) behind it."""

    score: float
    query: PreparedName | None = None
    result: PreparedName | None = None
    pairs: tuple[tuple[int, int, float, float], ...] = ()

    def explain(self) -> list[AlignedPart]:
        """Evidence for a reported match; built lazily since batches score millions of pairs."""
        if self.query is None or self.result is None:
            return []
        q, r = self.query, self.result
        out = [
            AlignedPart(
                query_part=q.texts[i], list_part=r.texts[j], score=round(s, 4), weight=round(w, 3)
            )
            for i, j, s, w in self.pairs
        ]
        used_q = {i for i, _, _, _ in self.pairs}
        used_r = {j for _, j, _, _ in self.pairs}
        out += [
            AlignedPart(
                query_part=t, list_part=None, score=0.0, weight=round(w * UNMATCHED_QUERY_WEIGHT, 3)
            )
            for i, (t, w) in enumerate(zip(q.texts, q.weights, strict=True))
            if i not in used_q
        ]
        out += [
            AlignedPart(
                query_part=None,
                list_part=t,
                score=0.0,
                weight=round(w * UNMATCHED_RESULT_WEIGHT, 3),
            )
            for j, (t, w) in enumerate(zip(r.texts, r.weights, strict=True))
            if j not in used_r
        ]
        return out


@lru_cache(maxsize=65536)
def metaphone(token: str) -> str:
    return jellyfish.metaphone(token) if len(token) >= PHONETIC_MIN_LEN else ""


def edit_budget(a_len: int, b_len: int) -> int:
    return min(LEVENSHTEIN_MAX_EDITS, math.ceil(LEVENSHTEIN_MAX_PCT * min(a_len, b_len)))


def length_plausible(a_len: int, b_len: int) -> bool:
    """Necessary for `levenshtein_plausible`: every length difference costs an edit."""
    return abs(a_len - b_len) <= edit_budget(a_len, b_len)


def levenshtein_plausible(a: str, b: str) -> bool:
    """Edits within min(4, 20% of the shorter part), so Jaro-Winkler alone never accepts spellings
    that need many edits ("Husayn"/"Hussein" go through name groups instead).

    Counted as optimal-string-alignment edits, so a swapped letter pair ("Yasre") is one typo.
    """
    budget = edit_budget(len(a), len(b))
    return OSA.distance(a, b, score_cutoff=budget) <= budget


@lru_cache(maxsize=1 << 20)
def part_similarity(a: str, b: str) -> float:
    """Similarity of two name parts in [0, 1]; 0 below the fuzzy floor."""
    if a == b:
        return 1.0
    if len(a) == 1 or len(b) == 1:
        return INITIAL_SCORE if a[0] == b[0] and len(a) != len(b) else 0.0
    group = NAME_GROUPS.get(a)
    floor = NAME_GROUP_SCORE if group is not None and group == NAME_GROUPS.get(b) else 0.0
    if is_numeric(a) or is_numeric(b):
        return 0.0  # numbers only match exactly
    if min(len(a), len(b)) < SHORT_PART_LEN and a[0] != b[0]:
        return floor  # "Ali"/"Wali": a different first letter on a short part is another name
    jw = JaroWinkler.similarity(a, b)
    if jw < FUZZY_FLOOR:
        return floor
    if levenshtein_plausible(a, b):
        return max(jw, floor)
    if metaphone(a) and metaphone(a) == metaphone(b):
        score = PHONETIC_FACTOR * jw
        return max(score if score >= FUZZY_FLOOR else 0.0, floor)
    return floor


def part_weight(part: NamePart) -> float:
    """Longer parts carry more information; family names more, particles and legal forms less."""
    weight = float(len(part.text))
    if part.family:
        weight *= FAMILY_WEIGHT
    if part.kind is PartKind.STOP or part.kind is PartKind.ORG_CLASS:
        weight *= STOPWORD_WEIGHT
    return weight


def score_name(query: PreparedName, result: PreparedName) -> NameScore:
    """Weighted mean of greedily aligned part similarities (unmatched parts score 0)."""
    qtexts, rtexts = query.texts, result.texts
    if not qtexts or not rtexts:
        return NameScore(0.0)
    if query.key == result.key:
        pairs = tuple(
            (i, result.texts.index(t), 1.0, query.weights[i]) for i, t in enumerate(qtexts)
        )
        return NameScore(1.0, query, result, pairs)

    qweights, rweights = query.weights, result.weights
    candidates: list[tuple[float, float, int, int]] = []
    for i, qt in enumerate(qtexts):
        for j, rt in enumerate(rtexts):
            sim = part_similarity(qt, rt)
            if sim > 0.0:
                weight = qweights[i] if qweights[i] > rweights[j] else rweights[j]
                if len(qt) != len(rt) and (len(qt) == 1 or len(rt) == 1):
                    if query.parts[i].family or result.parts[j].family:
                        continue  # a one-letter family name ("O, Yong Ho") is a name, not an initial
                    weight *= INITIAL_WEIGHT
                candidates.append((sim, weight, i, j))
    if not candidates:
        return NameScore(0.0)
    # Greedy best pair first (the doc allows Hungarian for >= 4 parts; greedy is exact on the
    # usual 2-4 part names and far cheaper).
    candidates.sort(reverse=True)
    used_q: set[int] = set()
    used_r: set[int] = set()
    matched: list[tuple[int, int, float, float]] = []
    numerator = matched_weight = matched_q = matched_r = 0.0
    informative = False
    for sim, weight, i, j in candidates:
        if i in used_q or j in used_r:
            continue
        used_q.add(i)
        used_r.add(j)
        numerator += sim * weight
        matched_weight += weight
        matched_q += qweights[i]
        matched_r += rweights[j]
        informative = informative or query.informative[i]
        matched.append((i, j, sim, weight))
    if not informative:
        return NameScore(0.0)  # only particles or legal forms in common ("Al ... LLC")
    denominator = (
        matched_weight
        + UNMATCHED_QUERY_WEIGHT * (query.total_weight - matched_q)
        + UNMATCHED_RESULT_WEIGHT * (result.total_weight - matched_r)
    )
    return NameScore(numerator / denominator, query, result, tuple(matched))


def numbers_adjustment(
    query: PreparedName, result: PreparedName, score: float
) -> QualifierAdjustment | None:
    """ "MARIA III" is not "MARIA II": numbers in both names that never agree cost 30%."""
    if query.numbers and result.numbers and query.numbers.isdisjoint(result.numbers):
        return QualifierAdjustment(
            name="numbers_mismatch",
            delta=-NUMBERS_MISMATCH_FACTOR * score,
            detail=f"{sorted(query.numbers)} vs {sorted(result.numbers)}",
        )
    return None


def _year_compatible(year: int, bd: BirthDate) -> bool:
    listed = int(bd.prefix[:4])
    tolerance = CIRCA_YEARS if bd.approximate else 0
    return abs(listed - year) <= tolerance


def _prefix_compatible(iso: str, bd: BirthDate) -> bool:
    if bd.approximate:
        return _year_compatible(int(iso[:4]), bd) and (
            len(bd.prefix) == 4 or iso.startswith(bd.prefix)
        )
    return iso.startswith(bd.prefix)


def dob_adjustment(dob: date | None, birth_dates: list[BirthDate]) -> QualifierAdjustment | None:
    """Compare a date of birth with listed date prefixes ("1952" matches any day of 1952).

    An agreeing full date is strong evidence and raises the score; an agreeing year a little,
    unless the list gives a circa or a spread of years; a disagreeing date lowers it.
    """
    dated = [bd for bd in birth_dates if len(bd.prefix) >= 4 and bd.prefix[:4].isdigit()]
    if dob is None or not dated:
        return None
    listed = ", ".join(sorted({bd.raw for bd in dated}))
    iso = dob.isoformat()
    if any(bd.prefix == iso and not bd.approximate for bd in dated):
        return QualifierAdjustment(
            name="dob_day_match", delta=DOB_DAY_MATCH, detail=f"{iso} vs {listed}"
        )
    if not any(_year_compatible(dob.year, bd) for bd in dated):
        return QualifierAdjustment(
            name="dob_year_disjoint",
            delta=DOB_YEAR_DISJOINT,
            detail=f"{iso} vs {listed}",
        )
    if any(_prefix_compatible(iso, bd) for bd in dated):
        years = {bd.prefix[:4] for bd in dated}
        if len(years) <= YEAR_MATCH_MAX_YEARS and any(
            iso.startswith(bd.prefix) and not bd.approximate for bd in dated
        ):
            return QualifierAdjustment(
                name="dob_year_match", delta=DOB_YEAR_MATCH, detail=f"{iso} vs {listed}"
            )
        return None
    if dob.day <= 12 and dob.day != dob.month:
        flipped = date(dob.year, dob.day, dob.month).isoformat()
        if any(_prefix_compatible(flipped, bd) for bd in dated):
            return QualifierAdjustment(
                name="dob_day_month_flip", delta=DOB_DAY_MONTH_FLIP, detail=f"{iso} vs {listed}"
            )
    return QualifierAdjustment(
        name="dob_day_disjoint", delta=DOB_DAY_DISJOINT, detail=f"{iso} vs {listed}"
    )


def _iso2(codes: Iterable[str | None]) -> set[str]:
    """Only ISO2 codes count; unknown raw names ("Region: Kafia Kingi") never penalize."""
    return {c.upper() for c in codes if c and len(c) == 2 and c.isalpha()}


def _related(a: str, b: str) -> bool:
    # Direct overlaps only: Russia and Ukraine both overlap the Soviet Union, not each other.
    return a == b or b in TERRITORY_OVERLAPS.get(a, ()) or a in TERRITORY_OVERLAPS.get(b, ())


def _overlap(left: set[str], right: set[str]) -> bool:
    return any(_related(a, b) for a in left for b in right)


def country_adjustment(
    nationalities: Iterable[str],
    listed_nationalities: Iterable[str],
    *,
    residence: str | None = None,
    listed_countries: Iterable[str] = (),
) -> QualifierAdjustment | None:
    """Countries of the subject against the listed ones (`listed_countries`: addresses, place of
    birth). Any agreement says nothing against a match. A nationality the listed nationalities
    contradict is evidence; a disagreement resting only on where someone lives, lived or was born
    is weak (listed people move and are born abroad), so it costs little.
    """
    ours_nat, theirs_nat = _iso2(nationalities), _iso2(listed_nationalities)
    ours = ours_nat | _iso2([residence])
    theirs = theirs_nat | _iso2(listed_countries)
    if not ours or not theirs or _overlap(ours, theirs):
        return None
    if ours_nat and theirs_nat:
        return QualifierAdjustment(
            name="nationality_mismatch",
            delta=NATIONALITY_MISMATCH,
            detail=f"{','.join(sorted(ours_nat))} vs {','.join(sorted(theirs_nat))}",
        )
    return QualifierAdjustment(
        name="country_mismatch",
        delta=COUNTRY_MISMATCH,
        detail=f"{','.join(sorted(ours))} vs {','.join(sorted(theirs))}",
    )


def gender_adjustment(subject: str | None, listed: str | None) -> QualifierAdjustment | None:
    if subject is None or listed is None or subject == listed:
        return None
    return QualifierAdjustment(
        name="gender_mismatch", delta=GENDER_MISMATCH, detail=f"{subject} vs {listed}"
    )
