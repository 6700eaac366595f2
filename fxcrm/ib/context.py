"""A brand's IB context for accruing one platform server's deals, loaded in a few queries.

Per deal the accrual needs: the client behind the login, the IB the client was attributed to at the
deal's time (and through which referral link), that IB's masters at that time, and the plan version
each of them earned by at that time. All of it is read once into dictionaries and sorted timelines
(`IbContext.load`), so a deal costs a few dictionary lookups and bisections; the chain of a direct
IB is memoized per stretch of time in which nothing in the hierarchy or the plans changes.

Rules:
- hierarchy: the effective-dated ib_parent_links; an IB without any link has the master of its
  `IbPartner.parent_id`, since its creation;
- attribution: ib_attributions; an excluded one (self-referral) pays nobody, for its reason;
- plan: the IB's assignment at the deal's time for the attribution's referral link if there is one,
  else its general assignment; then the plan's version effective at the deal's time;
- a master without a plan still gets its share of a split pool (the direct IB's plan decides it),
  and earns nothing under a differential one.

What-if (fxcrm.ib.recalculation): `with_changes` gives a copy of a loaded context in which some
IBs (or every IB of a plan) earn by other rules, or some clients belong to another IB over a
stretch of time; the accrual itself is unchanged.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy import func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from fxcrm.domain.ib.engine import DealFacts, Level
from fxcrm.domain.ib.hierarchy import Attribution, Hierarchy, HierarchyError, ParentLink
from fxcrm.domain.ib.plans import PlanError, PlanRules, parse_plan
from fxcrm.models import (
    IbAttribution,
    IbParentLink,
    IbPartner,
    IbPlan,
    IbPlanAssignment,
    IbPlanVersion,
    IngestedDeal,
    PlatformServer,
    TradingAccount,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")

NO_PLAN = PlanRules()  # a master without a plan: earns its split share, nothing differential


class Dated(Generic[T]):
    """Values from points in time, built once: `at(t)` is the last value at or before `t`."""

    __slots__ = ("_times", "_values")

    def __init__(self, points: Iterable[tuple[datetime, T]]) -> None:
        ordered = sorted(points, key=lambda point: point[0])
        self._times = [at for at, _ in ordered]
        self._values = [value for _, value in ordered]

    def at(self, when: datetime) -> T | None:
        i = bisect.bisect_right(self._times, when)
        return self._values[i - 1] if i else None


class AccountRef(tuple[str, str]):
    """(trader id, account group) of a login: a plain tuple, 50,000 of them load fast."""

    __slots__ = ()

    @property
    def trader_id(self) -> str:
        return self[0]

    @property
    def group(self) -> str:
        return self[1]


@dataclass(frozen=True, slots=True)
class PlanOverride:
    """What-if: `rules` (as version `version_id`) instead of the plan of `ib_id`, or of every IB
    whose plan is `plan_id`."""

    version_id: str
    rules: PlanRules
    ib_id: str | None = None
    plan_id: str | None = None


@dataclass(frozen=True, slots=True)
class AttributionOverride:
    """What-if: the client belongs to `attribution.ib_id` from its effective_from until `until`."""

    attribution: Attribution
    until: datetime


@dataclass(frozen=True, slots=True)
class Resolution:
    """Who earns on a deal: the chain (direct IB first) or why nobody does."""

    chain: tuple[Level, ...]
    reason: str | None
    attribution: Attribution | None = None


class IbContext:
    def __init__(
        self,
        *,
        brand_id: str,
        server_id: str,
        hierarchy: Hierarchy,
        attributions: dict[str, list[Attribution]],
        excluded: dict[tuple[str, datetime], str],
        accounts: dict[int, AccountRef],
        assignments: dict[tuple[str, str | None], Dated[str]],
        versions: dict[str, Dated[tuple[str, dict[str, Any]]]],
        change_points: list[datetime],
    ) -> None:
        self.brand_id = brand_id
        self.server_id = server_id
        self.hierarchy = hierarchy
        self._attributions = attributions  # per trader, oldest first
        self._excluded = excluded
        self._accounts = accounts
        self._assignments = assignments
        self._versions = versions
        # Every time at which a master or a plan changes: between two of them a chain is constant.
        self._change_points = change_points
        self._parsed: dict[str, PlanRules | None] = {}
        self._chains: dict[tuple[str, str | None, int], Resolution] = {}
        self._plan_overrides: tuple[PlanOverride, ...] = ()
        self._attribution_overrides: tuple[AttributionOverride, ...] = ()

    def with_changes(
        self,
        plans: Iterable[PlanOverride] = (),
        attributions: Iterable[AttributionOverride] = (),
    ) -> IbContext:
        """A copy of this context with more what-if changes; a later change wins over an earlier
        one it overlaps. The loaded data is shared, the memoized chains are not."""
        copy = IbContext(
            brand_id=self.brand_id,
            server_id=self.server_id,
            hierarchy=self.hierarchy,
            attributions=self._attributions,
            excluded=self._excluded,
            accounts=self._accounts,
            assignments=self._assignments,
            versions=self._versions,
            change_points=self._change_points,
        )
        copy._parsed = self._parsed
        copy._plan_overrides = self._plan_overrides + tuple(plans)
        copy._attribution_overrides = self._attribution_overrides + tuple(attributions)
        return copy

    # ---------------------------------------------------------------- lookups

    def account(self, login: int) -> AccountRef | None:
        return self._accounts.get(login)

    def attribution(self, trader_id: str, at: datetime) -> Attribution | None:
        """The client's attribution at `at`; None before the first one."""
        for override in reversed(self._attribution_overrides):
            moved = override.attribution
            if moved.trader_id == trader_id and moved.effective_from <= at < override.until:
                return moved
        rows = self._attributions.get(trader_id)
        if rows is not None:
            for row in reversed(rows):  # nearly always one or two
                if row.effective_from <= at:
                    return row
        return None

    def excluded(self, attribution: Attribution) -> str | None:
        if any(attribution is o.attribution for o in self._attribution_overrides):
            return None  # staff's what-if attribution: not a self-referral by definition
        return self._excluded.get((attribution.trader_id, attribution.effective_from))

    def plan_at(
        self, ib_id: str, link_code: str | None, at: datetime
    ) -> tuple[str, PlanRules] | None:
        """(plan version id, rules) the IB earns by at `at`, the link's override first."""
        plan_id = None
        if link_code is not None:
            override = self._assignments.get((ib_id, link_code))
            plan_id = override.at(at) if override is not None else None
        if plan_id is None:
            general = self._assignments.get((ib_id, None))
            plan_id = general.at(at) if general is not None else None
        for change in reversed(self._plan_overrides):
            if change.ib_id == ib_id or (change.plan_id is not None and change.plan_id == plan_id):
                return change.version_id, change.rules
        if plan_id is None:
            return None
        versions = self._versions.get(plan_id)
        found = versions.at(at) if versions is not None else None
        if found is None:
            return None
        version_id, data = found
        if version_id not in self._parsed:
            try:
                self._parsed[version_id] = parse_plan(data)
            except PlanError as exc:  # refused by the API; a stored one pays nothing, loudly
                log.error("invalid stored plan version", version_id=version_id, code=exc.code)
                self._parsed[version_id] = None
        rules = self._parsed[version_id]
        return None if rules is None else (version_id, rules)

    def chain_for(self, deal: DealFacts) -> list[Level]:
        """The chain of `Level`s earning on the deal, direct IB (depth 1) first; empty if nobody."""
        return list(self.resolve(deal).chain)

    def resolve(self, deal: DealFacts) -> Resolution:
        attribution = self.attribution(deal.trader_id, deal.closed_at)
        if attribution is None:
            return Resolution((), "not_attributed")
        why = self.excluded(attribution)
        if why is not None:
            return Resolution((), f"excluded:{why}", attribution)
        epoch = bisect.bisect_right(self._change_points, deal.closed_at)
        key = (attribution.ib_id, attribution.link_code, epoch)
        found = self._chains.get(key)
        if found is None:
            found = self._chains[key] = self._chain(
                attribution.ib_id, attribution.link_code, deal.closed_at
            )
        if found.reason is None:
            return Resolution(found.chain, None, attribution)
        return Resolution((), found.reason, attribution)

    def _chain(self, ib_id: str, link_code: str | None, at: datetime) -> Resolution:
        try:
            ids = self.hierarchy.chain_at(ib_id, at)
        except HierarchyError:
            log.error("IB hierarchy cycle", ib_id=ib_id, at=at.isoformat())
            return Resolution((), "hierarchy_cycle")
        levels = []
        for depth, member in enumerate(ids, start=1):
            plan = self.plan_at(member, link_code, at)
            if plan is None:
                if depth == 1:
                    return Resolution((), "no_plan")
                levels.append(Level(member, depth, "", NO_PLAN))
            else:
                levels.append(Level(member, depth, plan[0], plan[1]))
        return Resolution(tuple(levels), None)

    # ---------------------------------------------------------------- loading

    @classmethod
    async def load(cls, session: AsyncSession, server_id: str) -> IbContext:
        with _collector_paused():
            return await cls._load(session, server_id)

    @classmethod
    async def _load(cls, session: AsyncSession, server_id: str) -> IbContext:
        brand_id = await session.scalar(
            select(PlatformServer.brand_id).where(PlatformServer.id == server_id)
        )
        if brand_id is None:
            raise LookupError(f"unknown platform server {server_id}")
        partners = (
            await session.execute(
                select(IbPartner.id, IbPartner.parent_id, IbPartner.created_at).where(
                    IbPartner.brand_id == brand_id
                )
            )
        ).all()
        link_rows = (
            await session.execute(
                select(IbParentLink.ib_id, IbParentLink.parent_id, IbParentLink.effective_from)
                .join(IbPartner, IbPartner.id == IbParentLink.ib_id)
                .where(IbPartner.brand_id == brand_id)
            )
        ).all()
        links = [ParentLink(ib, parent, at) for ib, parent, at in link_rows]
        linked = {link.ib_id for link in links}
        links += [
            ParentLink(ib, parent, created)
            for ib, parent, created in partners
            if ib not in linked and parent is not None
        ]
        attribution_rows = (
            await session.execute(
                select(
                    IbAttribution.trader_id,
                    IbAttribution.ib_id,
                    IbAttribution.effective_from,
                    IbAttribution.link_code,
                    IbAttribution.excluded,
                )
                .join(IbPartner, IbPartner.id == IbAttribution.ib_id)
                .where(IbPartner.brand_id == brand_id)
            )
        ).all()
        excluded = {
            (trader, at): why for trader, _, at, _, why in attribution_rows if why is not None
        }
        attributions: dict[str, list[Attribution]] = defaultdict(list)
        for trader, ib, at, code, _ in sorted(attribution_rows, key=lambda row: row[2]):
            attributions[trader].append(Attribution(trader, ib, at, code))
        account_rows = (
            await session.execute(
                select(TradingAccount.login, TradingAccount.trader_id, TradingAccount.group).where(
                    TradingAccount.server_id == server_id, TradingAccount.login.is_not(None)
                )
            )
        ).all()
        accounts = {
            int(login): AccountRef((trader, group))
            for login, trader, group in account_rows
            if login is not None
        }
        assignment_rows = (
            await session.execute(
                select(
                    IbPlanAssignment.ib_id,
                    IbPlanAssignment.link_code,
                    IbPlanAssignment.effective_from,
                    IbPlanAssignment.plan_id,
                )
                .join(IbPartner, IbPartner.id == IbPlanAssignment.ib_id)
                .where(IbPartner.brand_id == brand_id)
            )
        ).all()
        by_assignee: dict[tuple[str, str | None], list[tuple[datetime, str]]] = defaultdict(list)
        for ib, code, at, plan in assignment_rows:
            by_assignee[(ib, code)].append((at, plan))
        version_rows = (
            await session.execute(
                select(
                    IbPlanVersion.plan_id,
                    IbPlanVersion.effective_from,
                    IbPlanVersion.id,
                    IbPlanVersion.rules,
                )
                .join(IbPlan, IbPlan.id == IbPlanVersion.plan_id)
                .where(IbPlan.brand_id == brand_id)
            )
        ).all()
        by_plan: dict[str, list[tuple[datetime, tuple[str, dict[str, Any]]]]] = defaultdict(list)
        for plan, at, version, rules in version_rows:
            by_plan[plan].append((at, (version, rules)))
        change_points = sorted(
            {link.effective_from for link in links}
            | {at for _, _, at, _ in assignment_rows}
            | {at for _, at, _, _ in version_rows}
        )
        return cls(
            brand_id=brand_id,
            server_id=server_id,
            hierarchy=Hierarchy(links),
            attributions=dict(attributions),
            excluded=excluded,
            accounts=accounts,
            assignments={key: Dated(points) for key, points in by_assignee.items()},
            versions={plan: Dated(points) for plan, points in by_plan.items()},
            change_points=change_points,
        )


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading allocates some 10^5 objects that all stay alive: the cyclic garbage collector
    would walk the heap again and again for nothing (half the load time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def context_fingerprint(session: AsyncSession, server_id: str) -> tuple[Any, ...]:
    """Changes whenever a row is added to a table the context is built from (one round trip):
    a cached context is rebuilt when this differs. Rows edited in place (an account's group, an
    IB's parent_id without links) are caught by the caller's maximum age."""
    brand = select(PlatformServer.brand_id).where(PlatformServer.id == server_id).scalar_subquery()
    of_brand = select(IbPartner.id).where(IbPartner.brand_id == brand)

    def stats(created: Any, *where: Any) -> list[Any]:
        return [
            select(func.count()).where(*where).scalar_subquery(),
            select(func.max(created)).where(*where).scalar_subquery(),
        ]

    row = (
        await session.execute(
            select(
                *stats(IbPartner.created_at, IbPartner.brand_id == brand),
                *stats(IbParentLink.created_at, IbParentLink.ib_id.in_(of_brand)),
                *stats(IbAttribution.created_at, IbAttribution.ib_id.in_(of_brand)),
                *stats(IbPlanAssignment.created_at, IbPlanAssignment.ib_id.in_(of_brand)),
                *stats(
                    IbPlanVersion.created_at,
                    IbPlanVersion.plan_id.in_(select(IbPlan.id).where(IbPlan.brand_id == brand)),
                ),
                *stats(TradingAccount.created_at, TradingAccount.server_id == server_id),
                select(func.count())
                .where(TradingAccount.server_id == server_id, TradingAccount.login.is_not(None))
                .scalar_subquery(),
            )
        )
    ).one()
    return tuple(row)


async def opening_times(
    session: AsyncSession, server_id: str, positions: Collection[str]
) -> dict[str, datetime]:
    """When each position opened: first the opening time stored on its deals (as the platform
    reported it, IngestedDeal.opened_at), else its "in" deal among the ingested deals. Positions
    with neither are left out, and their minimum holding time unchecked."""
    found: dict[str, datetime] = {}
    wanted = list(positions)
    for start in range(0, len(wanted), 2_000):
        chunk = wanted[start : start + 2_000]
        found.update(
            await _earliest(
                session,
                IngestedDeal.opened_at,
                IngestedDeal.server_id == server_id,
                # Matches the partial index on deals with an opening time.
                IngestedDeal.opened_at.is_not(None),
                IngestedDeal.position_id.in_(chunk),
            )
        )
        missing = [position for position in chunk if position not in found]
        if missing:
            found.update(
                await _earliest(
                    session,
                    IngestedDeal.closed_at,
                    IngestedDeal.server_id == server_id,
                    # A literal, so that the partial index on opening deals matches the query.
                    IngestedDeal.entry == literal_column("'in'"),
                    IngestedDeal.position_id.in_(missing),
                )
            )
    return found


async def _earliest(session: AsyncSession, column: Any, *where: Any) -> dict[str, datetime]:
    rows = await session.execute(
        select(IngestedDeal.position_id, func.min(column))
        .where(*where)
        .group_by(IngestedDeal.position_id)
    )
    return {position: at for position, at in rows.all() if at is not None}
