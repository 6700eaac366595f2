"""Screening entry point: build the indexes once, then screen one subject or a batch."""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fxcrm.domain.screening.index import TOP_K, CandidateIndex, TokenMatches, blocking_tokens
from fxcrm.domain.screening.model import (
    Band,
    Decision,
    EntitySchema,
    ListEntity,
    ListName,
    MatchResult,
    NameKind,
    QualifierAdjustment,
    ScreeningOutcome,
    ScreeningSubject,
    SubjectKind,
)
from fxcrm.domain.screening.normalize import join_hyphens, org_parts, person_parts
from fxcrm.domain.screening.scorer import (
    IDENTIFIER_SCORE,
    WEAK_ALIAS_SCORE,
    NameScore,
    PreparedName,
    country_adjustment,
    dob_adjustment,
    gender_adjustment,
    numbers_adjustment,
    score_name,
)

# Decision bands (COMPLIANCE.md §2.1; yente defaults). Starting points for tuning.
STRONG_THRESHOLD = 0.90  # hold/block, priority alert
POSSIBLE_THRESHOLD = 0.70  # analyst review
RECORD_THRESHOLD = 0.50  # kept as evidence without an alert; lower scores are discarded

# Which listed schemas a subject kind is compared with.
SUBJECT_SCHEMAS: dict[SubjectKind, frozenset[EntitySchema]] = {
    "person": frozenset({"person"}),
    "organization": frozenset({"organization"}),
}

BATCH_CHUNK = 5000  # subjects per token-expansion batch in screen_many (bounds memory)


JOIN_PART_MAX_LEN = 4  # "Jong Un" / "Jongun", "Song Chol" / "Songchol"


def _joined_given(given: str | None) -> str | None:
    """Two short given-name syllables written together, as East Asian names often are."""
    tokens = (given or "").split()
    if len(tokens) == 2 and all(1 < len(t) <= JOIN_PART_MAX_LEN for t in tokens):
        return "".join(tokens)
    return None


def _person(display: str, given: str | None, family: str | None) -> list[PreparedName]:
    """A person name plus twins with hyphenated or two-syllable given names written together."""
    names = [PreparedName.of(display, person_parts(given, family))]
    joined_given, joined_family = join_hyphens(given), join_hyphens(family)
    if joined_given or joined_family:
        names.append(
            PreparedName.of(display, person_parts(joined_given or given, joined_family or family))
        )
    if (together := _joined_given(given)) is not None:
        names.append(PreparedName.of(display, person_parts(together, family)))
    return names


def _org(display: str) -> list[PreparedName]:
    names = [PreparedName.of(display, org_parts(display))]
    if joined := join_hyphens(display):
        names.append(PreparedName.of(display, org_parts(joined)))
    return names


def prepare_list_name(name: ListName, schema: EntitySchema) -> list[PreparedName]:
    if schema != "person":
        return _org(name.full)
    if name.given or name.family:
        return _person(name.full, name.given, name.family)
    return _person(name.full, name.full, None)


def subject_names(subject: ScreeningSubject) -> list[PreparedName]:
    """Expansion of the client side: legal name, without the middle name, and extra names."""
    names: list[PreparedName] = []
    if subject.kind == "organization":
        main = subject.full_name or " ".join(filter(None, [subject.first_name, subject.last_name]))
        for text in [main, *subject.extra_names]:
            names += _org(text)
    else:
        first, last = subject.first_name.strip(), subject.last_name.strip()
        middle = (subject.middle_name or "").strip()
        if first or last:
            given = " ".join(filter(None, [first, middle]))
            names += _person(" ".join(filter(None, [given, last])), given, last)
            if middle:
                # Lists often omit middle names; an extra query part would cost 0.8 of its weight.
                names += _person(f"{first} {last}".strip(), first, last)
        for text in filter(None, [subject.full_name, *subject.extra_names]):
            names += _person(text, text, None)
    unique: dict[tuple[tuple[str, bool], ...], PreparedName] = {}
    for name in names:
        if name.parts:
            unique.setdefault(tuple((p.text, p.family) for p in name.parts), name)
    return list(unique.values())


def normalize_identifier(number: str) -> str:
    return "".join(c for c in number.upper() if c.isalnum())


def decide(score: float) -> Decision:
    if score >= STRONG_THRESHOLD:
        return "strong"
    if score >= POSSIBLE_THRESHOLD:
        return "possible"
    return "clear"


def band(score: float) -> Band:
    if score >= STRONG_THRESHOLD:
        return "strong"
    if score >= POSSIBLE_THRESHOLD:
        return "possible"
    return "recorded"


@dataclass(frozen=True, slots=True)
class _EntityNames:
    strong: tuple[int, ...]  # positions in the candidate index
    weak: tuple[PreparedName, ...]


class Screener:
    """In-memory screener over one list version. Build once per list version, then reuse."""

    def __init__(
        self, entities: Sequence[ListEntity], list_version: str, *, top_k: int = TOP_K
    ) -> None:
        self.entities: list[ListEntity] = list(entities)
        self.list_version = list_version
        self.top_k = top_k
        self._names: list[_EntityNames] = []
        self._weak: dict[str, list[int]] = defaultdict(list)
        self._identifiers: dict[str, list[int]] = defaultdict(list)
        indexed: list[tuple[int, PreparedName]] = []
        self._name_kinds: list[NameKind] = []  # aligned with the candidate index names
        for idx, entity in enumerate(self.entities):
            strong: list[tuple[PreparedName, NameKind]] = []
            for i, name in enumerate(entity.names):
                kind: NameKind = "name" if i == 0 else "alias"
                strong += [(p, kind) for p in prepare_list_name(name, entity.schema_)]
            for name in entity.previous_names:
                strong += [(p, "previous_name") for p in prepare_list_name(name, entity.schema_)]
            weak = tuple(
                p for n in entity.weak_aliases for p in prepare_list_name(n, entity.schema_)
            )
            positions = tuple(range(len(indexed), len(indexed) + len(strong)))
            self._names.append(_EntityNames(positions, weak))
            indexed += [(idx, prepared) for prepared, _ in strong]
            self._name_kinds += [kind for _, kind in strong]
            for prepared in weak:
                self._weak[prepared.key].append(idx)
            for identifier in entity.identifiers:
                number = normalize_identifier(identifier.number)
                if len(number) >= 5:  # shorter "numbers" are free-text noise
                    self._identifiers[number].append(idx)
        self.index = CandidateIndex(indexed)
        # Per index name: owning entity and its schema (hot loop of _screen).
        self._name_entity: list[int] = [entity for entity, _ in indexed]
        self._name_schema: list[EntitySchema] = [self.entities[e].schema_ for e, _ in indexed]

    # -- public API --------------------------------------------------------------------------

    def screen(self, subject: ScreeningSubject) -> ScreeningOutcome:
        queries = subject_names(subject)
        expanded = self.index.match_tokens(t for q in queries for t in blocking_tokens(q))
        return self._screen(subject, queries, expanded)

    def screen_many(self, subjects: Iterable[ScreeningSubject]) -> list[ScreeningOutcome]:
        """Batch re-screening: query tokens are expanded with one cdist per chunk of subjects."""
        outcomes: list[ScreeningOutcome] = []
        chunk: list[ScreeningSubject] = []
        for subject in subjects:
            chunk.append(subject)
            if len(chunk) >= BATCH_CHUNK:
                outcomes += self._screen_chunk(chunk)
                chunk = []
        if chunk:
            outcomes += self._screen_chunk(chunk)
        return outcomes

    # -- internals ---------------------------------------------------------------------------

    def _screen_chunk(self, subjects: list[ScreeningSubject]) -> list[ScreeningOutcome]:
        queries = [subject_names(s) for s in subjects]
        expanded = self.index.match_tokens(
            t for qs in queries for q in qs for t in blocking_tokens(q)
        )
        return [self._screen(s, q, expanded) for s, q in zip(subjects, queries, strict=True)]

    def _screen(
        self,
        subject: ScreeningSubject,
        queries: list[PreparedName],
        expanded: dict[str, TokenMatches],
    ) -> ScreeningOutcome:
        allowed = SUBJECT_SCHEMAS[subject.kind]
        coverage: dict[int, float] = {}
        # Stage 2 scores only the (query name, list name) pairs stage 1 proposed.
        pairs: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for qi, query in enumerate(queries):
            for n, cov in self.index.candidates(query, expanded).items():
                if self._name_schema[n] not in allowed:
                    continue
                entity = self._name_entity[n]
                pairs[entity].append((qi, n))
                if cov > coverage.get(entity, -1.0):
                    coverage[entity] = cov
        selected = set(heapq.nlargest(self.top_k, coverage, key=coverage.__getitem__))
        # Weak aliases and identifiers bypass blocking: they are exact by construction.
        weak_hits = {
            e
            for q in queries
            for e in self._weak.get(q.key, ())
            if self.entities[e].schema_ in allowed
        }
        id_hits = {
            e
            for number in subject.id_numbers
            for e in self._identifiers.get(normalize_identifier(number), ())
        }
        matches: list[MatchResult] = []
        for entity in selected | weak_hits | id_hits:
            match = self._score_entity(
                subject, queries, entity, pairs.get(entity), entity in weak_hits, entity in id_hits
            )
            if match is not None:
                matches.append(match)
        matches.sort(key=lambda m: (-m.score, m.entity_id))
        top = matches[0].score if matches else 0.0
        return ScreeningOutcome(
            decision=decide(top),
            top_score=top,
            matches=matches,
            list_version=self.list_version,
            reference=subject.reference,
            candidates=len(selected | weak_hits | id_hits),
        )

    def _score_entity(
        self,
        subject: ScreeningSubject,
        queries: list[PreparedName],
        idx: int,
        pairs: list[tuple[int, int]] | None,
        weak_hit: bool,
        id_hit: bool,
    ) -> MatchResult | None:
        entity = self.entities[idx]
        names = self._names[idx]
        if pairs is None:  # reached through a weak alias or an identifier only
            pairs = [(qi, n) for qi in range(len(queries)) for n in names.strong]
        best: tuple[NameScore, PreparedName, PreparedName, NameKind] | None = None
        for qi, n in pairs:
            query, listed = queries[qi], self.index.names[n].name
            scored = score_name(query, listed)
            if best is None or scored.score > best[0].score:
                best = (scored, query, listed, self._name_kinds[n])
        name_score = best[0].score if best else 0.0
        score, kind = name_score, best[3] if best else "name"
        matched_query = best[1].display if best else ""
        matched_list = best[2].display if best else ""
        if weak_hit and score < WEAK_ALIAS_SCORE:
            weak = next(w for q in queries for w in names.weak if w.key == q.key)
            query = next(q for q in queries if q.key == weak.key)
            score, kind, matched_query, matched_list = (
                WEAK_ALIAS_SCORE,
                "weak_alias",
                query.display,
                weak.display,
            )
        if id_hit and score < IDENTIFIER_SCORE:
            score, kind = IDENTIFIER_SCORE, "identifier"
            matched_query = ", ".join(subject.id_numbers)
            matched_list = ", ".join(i.number for i in entity.identifiers)
        if score < RECORD_THRESHOLD:
            return None  # a date of birth or a country never makes a name match by itself

        qualifiers: list[QualifierAdjustment] = []
        if best is not None and kind not in ("weak_alias", "identifier"):
            numbers = numbers_adjustment(best[1], best[2], score)
            if numbers is not None:
                qualifiers.append(numbers)
        if subject.kind == "person" and entity.schema_ == "person":
            for adjustment in (
                dob_adjustment(subject.date_of_birth, entity.birth_dates),
                gender_adjustment(subject.gender, entity.gender),
            ):
                if adjustment is not None:
                    qualifiers.append(adjustment)
        country = country_adjustment(
            subject.nationalities,
            entity.nationalities,
            residence=subject.country,
            listed_countries=entity.countries,
        )
        if country is not None:
            qualifiers.append(country)
        final = min(1.0, max(0.0, score + sum(q.delta for q in qualifiers)))
        if final < RECORD_THRESHOLD:
            return None
        return MatchResult(
            entity_id=entity.entity_id,
            entity_raw_hash=entity.raw_hash,
            caption=entity.caption,
            entity_schema=entity.schema_,
            programs=entity.programs,
            score=round(final, 4),
            band=band(final),
            name_score=round(name_score, 4),
            matched_name_kind=kind,
            matched_query_name=matched_query,
            matched_list_name=matched_list,
            parts=best[0].explain()
            if best is not None and kind not in ("weak_alias", "identifier")
            else [],
            qualifiers=qualifiers,
            list_version=self.list_version,
        )
