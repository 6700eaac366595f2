"""Stage 1: candidate generation without a search engine (COMPLIANCE.md §2.1).

List tokens go into an inverted index. A query token reaches list tokens that are equal, fuzzy
neighbours (Jaro-Winkler >= 0.88 with a plausible Levenshtein distance, batched rapidfuzz `cdist`
per query-token length against the length window that can pass the gate), phonetic twins
(metaphone) or spelling variants of the same given name. A list name
becomes a candidate when it shares a rare token with the query and the shared rarity
(sum of idf) covers enough of the query's rarity.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import JaroWinkler

from fxcrm.domain.screening.normalize import NAME_GROUPS, PartKind, is_numeric
from fxcrm.domain.screening.scorer import (
    PreparedName,
    length_plausible,
    levenshtein_plausible,
    metaphone,
)

FUZZY_TOKEN_CUTOFF = 0.88
FREQUENT_TOKEN_SHARE = 0.01  # tokens in > 1% of names (Mohammed, Ali, Bank) never block alone
FREQUENT_TOKEN_MIN_DF = 20  # ... but on a small list (tests, a PEP extract) no token is "frequent"
MIN_IDF_COVERAGE = 0.4
TOP_K = 50
PHONETIC_SIMILARITY = 0.9
CDIST_CHUNK = 512  # query rows per cdist call: bounds the float32 matrix to ~40 MB
PARALLEL_MIN_TOKENS = 64

TokenMatches = dict[int, float]  # list token id -> similarity to the query token


@dataclass(frozen=True, slots=True)
class IndexedName:
    entity: int  # position of the entity in the Screener
    name: PreparedName
    tokens: frozenset[int]  # blocking token ids


def blocking_tokens(name: PreparedName) -> list[str]:
    """Particles, legal forms and initials are kept for scoring but never create candidates."""
    return [
        p.text
        for p in name.parts
        if (p.kind is PartKind.NAME and len(p.text) > 1) or p.kind is PartKind.NUMERIC
    ]


class CandidateIndex:
    """Inverted token, phonetic and name-variant indexes over all strong list names."""

    def __init__(self, names: Sequence[tuple[int, PreparedName]]) -> None:
        self.token_ids: dict[str, int] = {}
        postings: list[list[int]] = []
        self.names: list[IndexedName] = []
        for entity, name in names:
            ids: set[int] = set()
            for token in blocking_tokens(name):
                tid = self.token_ids.setdefault(token, len(self.token_ids))
                if tid == len(postings):
                    postings.append([])
                ids.add(tid)
            for tid in ids:
                postings[tid].append(len(self.names))
            self.names.append(IndexedName(entity, name, frozenset(ids)))
        self.vocabulary: list[str] = list(self.token_ids)
        self.postings: list[tuple[int, ...]] = [tuple(p) for p in postings]
        total = max(len(self.names), 1)
        # Smoothed so a one-entity list still has positive rarities.
        self.idf: list[float] = [math.log(1.0 + total / len(p)) for p in self.postings]
        self.idf_max = math.log(1.0 + total)
        limit = max(FREQUENT_TOKEN_SHARE * total, FREQUENT_TOKEN_MIN_DF)
        self.frequent: list[bool] = [len(p) > limit for p in self.postings]
        self.phonetic: dict[str, list[int]] = defaultdict(list)
        self.groups: dict[str, list[int]] = defaultdict(list)
        for token, tid in self.token_ids.items():
            code = metaphone(token) if not is_numeric(token) else ""
            if code:
                self.phonetic[code].append(tid)
            group = NAME_GROUPS.get(token)
            if group is not None:
                self.groups[group].append(tid)
        # Vocabulary sorted by length: the Levenshtein gate bounds the length difference, so each
        # query length only needs a contiguous slice of it (about a third of the tokens).
        by_length = sorted(self.token_ids.items(), key=lambda item: (len(item[0]), item[0]))
        self._sorted_tokens: list[str] = [t for t, _ in by_length]
        self._sorted_ids: list[int] = [tid for _, tid in by_length]
        self._sorted_lengths: list[int] = [len(t) for t in self._sorted_tokens]

    # -- query token expansion -------------------------------------------------------------

    def match_tokens(self, tokens: Iterable[str]) -> dict[str, TokenMatches]:
        """Expand query tokens to list tokens; one batched cdist per query-token length."""
        distinct = sorted(set(tokens))
        result: dict[str, TokenMatches] = {t: self._exact_and_symbolic(t) for t in distinct}
        by_length: dict[int, list[str]] = defaultdict(list)
        for token in distinct:
            if len(token) > 1 and not is_numeric(token):
                by_length[len(token)].append(token)
        for length, group in by_length.items():
            lo, hi = self._length_window(length)
            if lo == hi:
                continue
            choices = self._sorted_tokens[lo:hi]
            for start in range(0, len(group), CDIST_CHUNK):
                chunk = group[start : start + CDIST_CHUNK]
                matrix = process.cdist(
                    chunk,
                    choices,
                    scorer=JaroWinkler.normalized_similarity,
                    score_cutoff=FUZZY_TOKEN_CUTOFF,
                    dtype=np.float32,
                    # Threads pay off for batches only; a single registration stays on one core.
                    workers=-1 if len(chunk) >= PARALLEL_MIN_TOKENS else 1,
                )
                rows, cols = np.nonzero(matrix)
                for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
                    token, candidate = chunk[row], choices[col]
                    if levenshtein_plausible(token, candidate):
                        tid = self._sorted_ids[lo + col]
                        matches = result[token]
                        sim = float(matrix[row, col])
                        if sim > matches.get(tid, 0.0):
                            matches[tid] = sim
        return result

    def _length_window(self, length: int) -> tuple[int, int]:
        """Slice of the length-sorted vocabulary that can pass the Levenshtein gate."""
        allowed = [n for n in range(max(1, length - 4), length + 5) if length_plausible(length, n)]
        lo = bisect.bisect_left(self._sorted_lengths, allowed[0])
        hi = bisect.bisect_right(self._sorted_lengths, allowed[-1])
        return lo, hi

    def _exact_and_symbolic(self, token: str) -> TokenMatches:
        matches: TokenMatches = {}
        group = NAME_GROUPS.get(token)
        if group is not None:
            for tid in self.groups.get(group, ()):
                matches[tid] = PHONETIC_SIMILARITY
        code = metaphone(token) if not is_numeric(token) else ""
        if code:
            for tid in self.phonetic.get(code, ()):
                matches[tid] = PHONETIC_SIMILARITY
        exact = self.token_ids.get(token)
        if exact is not None:
            matches[exact] = 1.0
        return matches

    # -- candidate selection ---------------------------------------------------------------

    def query_idf(self, token: str, matches: TokenMatches) -> float:
        """Rarity of a query token; an unknown token with no neighbours is maximally rare."""
        exact = self.token_ids.get(token)
        if exact is not None:
            return self.idf[exact]
        if matches:
            return max(self.idf[tid] for tid in matches)
        return self.idf_max

    def candidates(
        self, query: PreparedName, expanded: dict[str, TokenMatches]
    ) -> dict[int, float]:
        """Candidate list names for one query name: name index -> idf coverage in [0, 1]."""
        tokens = list(dict.fromkeys(blocking_tokens(query)))
        if not tokens:
            return {}
        weights = {t: self.query_idf(t, expanded.get(t, {})) for t in tokens}
        total_weight = sum(weights.values())
        if total_weight <= 0.0:
            return {}

        coverage: dict[int, float] = defaultdict(float)
        frequent_matches: dict[str, TokenMatches] = {}
        for token in tokens:
            best: dict[int, float] = {}
            frequent: TokenMatches = {}
            for tid, sim in expanded.get(token, {}).items():
                if self.frequent[tid]:
                    frequent[tid] = sim
                    continue
                for n in self.postings[tid]:
                    if sim > best.get(n, 0.0):
                        best[n] = sim
            for n, sim in best.items():
                coverage[n] += weights[token] * sim
            if frequent:
                frequent_matches[token] = frequent

        if len(frequent_matches) >= 2:
            # Frequent tokens never block alone, but two of them together ("Mohammed Ali") may.
            hits: Counter[int] = Counter()
            for matches in frequent_matches.values():
                reached: set[int] = set()
                for tid in matches:
                    reached.update(self.postings[tid])
                hits.update(reached)
            for n, count in hits.items():
                if count >= 2 and n not in coverage:
                    coverage[n] = 0.0

        for n in coverage:
            name_tokens = self.names[n].tokens
            for token, matches in frequent_matches.items():
                best_sim = max(
                    (sim for tid, sim in matches.items() if tid in name_tokens), default=0.0
                )
                coverage[n] += weights[token] * best_sim
        return {
            n: c / total_weight for n, c in coverage.items() if c / total_weight >= MIN_IDF_COVERAGE
        }
