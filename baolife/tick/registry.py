"""The event registry and its index.

A player is checked only against the events that can apply to its current
state: the index maps a life stage and a required flag to the events that
need them, so a check looks at the stage's unconditional events plus, for
each flag the player holds, the events keyed on that flag. Dynamic
conditions (stats, money, job, NPCs, cooldowns) are evaluated only on those
candidates. ``followup`` events are not indexed: they fire only when scheduled.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from ..content.schema import Content, Event

__all__ = ["EventRegistry", "RegistryStatistics"]


@attrs.frozen
class RegistryStatistics:
    events: int
    indexed: int
    # Largest number of candidates a player of each stage can be checked against.
    max_candidates: dict[str, int]


class EventRegistry:
    """Indexed access to the events of a content pack."""

    def __init__(self, content: Content) -> None:
        self.events = content.events
        order = content.stage_order
        starts = [content.world.stages[s] for s in order]
        self._spans = [
            (stage, start, starts[i + 1] if i + 1 < len(starts) else float("inf"))
            for i, (stage, start) in enumerate(zip(order, starts, strict=True))
        ]
        self._index: dict[str, dict[str | None, list[Event]]] = {stage: {} for stage in order}
        self._indexed = 0
        for event in sorted(content.events.values(), key=lambda e: e.id):
            if event.followup:
                continue
            self._indexed += 1
            key: str | None = event.when.flags[0] if event.when.flags else None
            for stage in self.stages_of(event):
                self._index[stage].setdefault(key, []).append(event)

    def stages_of(self, event: Event) -> list[str]:
        """The stages in which ``event``'s age bounds and stage list can hold."""
        cond = event.when
        return [
            stage
            for stage, low, high in self._spans
            if (not cond.stages or stage in cond.stages) and cond.min_age < high and cond.max_age >= low
        ]

    def candidates(self, stage: str, flags: set[str]) -> Iterator[Event]:
        """Events whose static conditions (stage, age band, first required
        flag) can hold for a player of ``stage`` holding ``flags``."""
        by_flag = self._index.get(stage)
        if not by_flag:
            return
        yield from by_flag.get(None, ())
        if not flags:
            return
        if len(flags) <= len(by_flag):
            for held in flags:
                keyed = by_flag.get(held)
                if keyed:
                    yield from keyed
        else:
            for key, keyed in by_flag.items():
                if key is not None and key in flags:
                    yield from keyed

    def statistics(self) -> RegistryStatistics:
        return RegistryStatistics(
            events=len(self.events),
            indexed=self._indexed,
            max_candidates={stage: sum(len(v) for v in by_flag.values()) for stage, by_flag in self._index.items()},
        )
