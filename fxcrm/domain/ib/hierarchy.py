"""The IB hierarchy and client attribution, both effective-dated.

A sub-IB moved under another master from a date keeps its old master for every trade before that
date; a client re-assigned by staff pays the new IB only for trades after the effective date; a
trade before any attribution pays nobody. Cycles are refused at every point in time.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


class HierarchyError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ParentLink:
    """From `effective_from` on, `ib_id`'s master is `parent_id` (None: a top-level IB)."""

    ib_id: str
    parent_id: str | None
    effective_from: datetime


@dataclass(frozen=True)
class Attribution:
    """From `effective_from` on, the client's trades belong to `ib_id` (via `link_code`)."""

    trader_id: str
    ib_id: str
    effective_from: datetime
    link_code: str | None = None


class _Timeline(Generic[T]):
    """Values that change at points in time; value_at(t) is the last one at or before t."""

    def __init__(self) -> None:
        self._times: list[datetime] = []
        self._values: list[T] = []

    def add(self, at: datetime, value: T) -> None:
        i = bisect.bisect_right(self._times, at)
        if i and self._times[i - 1] == at:
            self._values[i - 1] = value  # a correction of the same date replaces it
            return
        self._times.insert(i, at)
        self._values.insert(i, value)

    def value_at(self, at: datetime) -> T | None:
        i = bisect.bisect_right(self._times, at)
        return self._values[i - 1] if i else None

    @property
    def times(self) -> list[datetime]:
        return list(self._times)


class Hierarchy:
    def __init__(self, links: Iterable[ParentLink] = ()) -> None:
        self._parents: dict[str, _Timeline[str | None]] = defaultdict(_Timeline)
        for link in links:
            self._parents[link.ib_id].add(link.effective_from, link.parent_id)

    def parent_at(self, ib_id: str, at: datetime) -> str | None:
        timeline = self._parents.get(ib_id)
        return timeline.value_at(at) if timeline else None

    def chain_at(self, ib_id: str, at: datetime, max_depth: int | None = None) -> list[str]:
        """`ib_id` and its masters at `at`, direct IB first."""
        chain = [ib_id]
        seen = {ib_id}
        parent = self.parent_at(ib_id, at)
        while parent is not None and (max_depth is None or len(chain) < max_depth):
            if parent in seen:  # cannot happen through add_link; stop rather than loop
                raise HierarchyError("cycle", f"cycle through {parent} at {at.isoformat()}")
            chain.append(parent)
            seen.add(parent)
            parent = self.parent_at(parent, at)
        return chain

    def check_move(self, ib_id: str, parent_id: str | None, effective_from: datetime) -> None:
        """Refuses a move that would make a cycle at its date or at any later change."""
        if parent_id is None:
            return
        if parent_id == ib_id:
            raise HierarchyError("cycle", "an IB cannot be its own master")
        points = {effective_from}
        for timeline in self._parents.values():
            points.update(t for t in timeline.times if t > effective_from)
        trial = Hierarchy()
        trial._parents = defaultdict(_Timeline)
        for ib, timeline in self._parents.items():
            for t in timeline.times:
                trial._parents[ib].add(t, timeline.value_at(t))
        trial._parents[ib_id].add(effective_from, parent_id)
        # Later changes of this IB's own master stay as they are (they override the move then).
        for at in sorted(points):
            try:
                trial.chain_at(ib_id, at)
            except HierarchyError:
                raise HierarchyError(
                    "cycle",
                    f"moving {ib_id} under {parent_id} from {effective_from.date()} makes a cycle "
                    f"on {at.date()}",
                ) from None

    def add_link(self, link: ParentLink) -> None:
        self.check_move(link.ib_id, link.parent_id, link.effective_from)
        self._parents[link.ib_id].add(link.effective_from, link.parent_id)


class Attributions:
    def __init__(self, rows: Iterable[Attribution] = ()) -> None:
        self._by_trader: dict[str, _Timeline[Attribution]] = defaultdict(_Timeline)
        for row in rows:
            self._by_trader[row.trader_id].add(row.effective_from, row)

    def at(self, trader_id: str, at: datetime) -> Attribution | None:
        timeline = self._by_trader.get(trader_id)
        return timeline.value_at(at) if timeline else None
