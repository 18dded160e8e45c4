"""The event registry and its index.

A player is checked only against the events that can apply to its current
state. The index has one bucket per year of age; an event sits in the
buckets of the years its age band and stages allow, under one key: the most
selective static requirement it has, in this order: a particular job, a
required flag, an education level, a required NPC role, having (or not
having) a job; events with none of these are always candidates at their
ages. A check looks only at the keys the player meets, so most events that
cannot apply are never looked at. Every key is a necessary condition, so
the full conditions (stats, money, closeness, cooldowns...) are still
evaluated on each candidate. ``followup`` events are not indexed: they fire
only when scheduled, and then only if their conditions still hold.

Candidates come in a fixed order (content order, never the order of a set of
strings, which changes from process to process), so a seeded random
generator replays the same lives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs

from ..content.schema import Content, Event
from ..model import MAX_AGE_YEARS, Player

__all__ = ["EventRegistry", "RegistryStatistics"]


@attrs.frozen
class RegistryStatistics:
    events: int
    indexed: int
    # Largest number of candidates a player of each stage can be checked against.
    max_candidates: dict[str, int]


class _Bucket:
    """The indexed events of one year of age, by key (each event as an
    item: the event itself, or what EventRegistry's ``item`` makes of it)."""

    __slots__ = ("always", "with_job", "without_job", "by_job", "by_education", "by_flag", "by_role")

    def __init__(self) -> None:
        self.always: list[Any] = []
        self.with_job: list[Any] = []
        self.without_job: list[Any] = []
        self.by_job: dict[str, list[Any]] = {}
        self.by_education: dict[str, list[Any]] = {}
        self.by_flag: dict[str, list[Any]] = {}
        self.by_role: dict[str, list[Any]] = {}

    def add(self, event: Event, item: Any = None) -> None:
        cond = event.when
        if item is None:
            item = event
        if cond.jobs:
            for job in cond.jobs:
                self.by_job.setdefault(job, []).append(item)
        elif cond.flags:
            self.by_flag.setdefault(cond.flags[0], []).append(item)
        elif cond.education:
            for level in cond.education:
                self.by_education.setdefault(level, []).append(item)
        elif cond.npc_roles:
            self.by_role.setdefault(cond.npc_roles[0], []).append(item)
        elif cond.has_job is True:
            self.with_job.append(item)
        elif cond.has_job is False:
            self.without_job.append(item)
        else:
            self.always.append(item)

    def size(self) -> int:
        """Distinct events in the bucket (an upper bound on its candidates)."""
        lists = [self.always, self.with_job, self.without_job]
        for by in (self.by_job, self.by_education, self.by_flag, self.by_role):
            lists.extend(by.values())
        return len({id(e) for events in lists for e in events})


class EventRegistry:
    """Indexed access to the events of a content pack."""

    def __init__(self, content: Content, item: Callable[[Event, int], Any] | None = None) -> None:
        """``item(event, year)``: what :meth:`items` yields for an event in
        the bucket of ``year`` (0..MAX_AGE_YEARS; the last one holds every
        age past it): the engine keeps each event with its compiled
        conditions for that year; without it, the event."""
        self.events = content.events
        order = content.stage_order
        starts = [content.world.stages[s] for s in order]
        self._spans = [
            (stage, start, starts[i + 1] if i + 1 < len(starts) else float("inf"))
            for i, (stage, start) in enumerate(zip(order, starts, strict=True))
        ]
        # One bucket per year of age up to MAX_AGE_YEARS; ages past it share the last.
        self._years = [_Bucket() for _ in range(MAX_AGE_YEARS + 1)]
        self._items = [_Bucket() for _ in range(MAX_AGE_YEARS + 1)] if item is not None else self._years
        self._indexed = 0
        for event in sorted(content.events.values(), key=lambda e: e.id):
            if event.followup:
                continue
            self._indexed += 1
            for year in self.years_of(event):
                self._years[year].add(event)
                if item is not None:
                    self._items[year].add(event, item(event, year))

    def stages_of(self, event: Event) -> list[str]:
        """The stages in which ``event``'s age bounds and stage list can hold."""
        cond = event.when
        return [
            stage
            for stage, low, high in self._spans
            if (not cond.stages or stage in cond.stages) and cond.min_age < high and cond.max_age > low
        ]

    def events_per_stage(self) -> dict[str, int]:
        """How many random (indexed) events can happen at each stage, in stage
        order; follow-ups happen only when scheduled, so they count nowhere."""
        per_stage = {stage: 0 for stage, _, _ in self._spans}
        for event in self.events.values():
            if not event.followup:
                for stage in self.stages_of(event):
                    per_stage[stage] += 1
        return per_stage

    def years_of(self, event: Event) -> list[int]:
        """The bucket years (0..MAX_AGE_YEARS) in which ``event`` can hold."""
        cond = event.when
        years = []
        for year in range(MAX_AGE_YEARS + 1):
            top = year + 1 if year < MAX_AGE_YEARS else float("inf")
            if cond.min_age >= top or cond.max_age <= year:
                continue
            if cond.stages and not any(
                stage in cond.stages and low < top and high > year for stage, low, high in self._spans
            ):
                continue
            years.append(year)
        return years

    def candidates(self, p: Player, years: int) -> Iterator[Event]:
        """Events whose static requirements (age, stage, the index key) hold
        for ``p``, aged ``years`` whole game years."""
        return _walk(self._years[years if years < MAX_AGE_YEARS else MAX_AGE_YEARS], p)

    def items(self, p: Player, years: int) -> Iterator[Any]:
        """The items (see ``item``) of :meth:`candidates`, in the same order."""
        return _walk(self._items[years if years < MAX_AGE_YEARS else MAX_AGE_YEARS], p)

    def item_lists(self, p: Player, years: int) -> list[list[Any]]:
        """The items of :meth:`items` as the bucket's lists that hold them, in
        the same order: a loop over lists, without a generator to resume for
        every item (the random-event check's hottest loop)."""
        b = self._items[years if years < MAX_AGE_YEARS else MAX_AGE_YEARS]
        lists = [b.always, b.without_job] if p.job is None else [b.always, b.with_job, b.by_job.get(p.job, [])]
        if b.by_education:
            lists.append(b.by_education.get(p.education, []))
        if b.by_flag and p.flags:
            flags = p.flags
            lists.extend(keyed for flag, keyed in b.by_flag.items() if flag in flags)
        if b.by_role:
            roles = {n.role for n in p.npcs if n.alive}
            lists.extend(keyed for role, keyed in b.by_role.items() if role in roles)
        return lists

    def statistics(self) -> RegistryStatistics:
        sizes: dict[str, int] = {}
        for stage, low, high in self._spans:
            years = range(int(low), min(int(high) if high != float("inf") else MAX_AGE_YEARS + 1, MAX_AGE_YEARS + 1))
            sizes[stage] = max((self._years[y].size() for y in years), default=0)
        return RegistryStatistics(events=len(self.events), indexed=self._indexed, max_candidates=sizes)


def _walk(b: _Bucket, p: Player) -> Iterator[Any]:
    """The items of bucket ``b`` whose index key ``p`` meets, in a fixed order."""
    yield from b.always
    if p.job is None:
        yield from b.without_job
    else:
        yield from b.with_job
        if b.by_job:
            yield from b.by_job.get(p.job, ())
    if b.by_education:
        yield from b.by_education.get(p.education, ())
    if b.by_flag and p.flags:
        flags = p.flags
        for flag, keyed in b.by_flag.items():
            if flag in flags:
                yield from keyed
    if b.by_role:
        roles = {n.role for n in p.npcs if n.alive}
        for role, keyed in b.by_role.items():
            if role in roles:
                yield from keyed
