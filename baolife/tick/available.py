"""The actions a player may take now, recomputed only when it can change.

The list of actions a client is sent is a pure function of what the
actions' conditions read: the bracket of the player's age between the
content's age bounds (and stage starts), the flags any action names, job,
education, major, the bracket of each stat and of money between the bounds
the conditions set, and the living NPCs of the roles the actions name (with
their closeness bracket). :meth:`ActionList.key` folds those into a small
tuple, so the engine recomputes the list (about sixty compiled conditions)
only when the key changes, and a list once computed for a key is reused for
any player with that key. The answer is the same as checking every action.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Hashable

import attrs

from ..content.schema import NO_AGE_LIMIT, Conditions, Content
from ..model import Player
from .rules import Rules, first_day

__all__ = ["ActionList"]

# The condition fields the key reads; a content schema with more falls back
# to checking every action each time (correct, only slower).
_KEYED = frozenset({
    "min_age", "max_age", "stages", "flags", "not_flags", "any_flags", "has_job", "jobs", "education",
    "not_education", "majors", "min", "max", "min_money", "max_money", "npc_roles", "not_npc_roles",
    "min_closeness", "max_closeness",
})  # fmt: skip
# Keys remembered with their lists; past it the memo starts again (bounded memory).
MEMO_LIMIT = 4096
_NO_BOUNDS: tuple[int, ...] = ()


class ActionList:
    """The action list of one content pack: :meth:`of` a player, by key."""

    def __init__(self, content: Content, rules: Rules) -> None:
        self.content = content
        self.rules = rules
        yd = rules.year_days
        actions = list(content.actions.values())
        conds = [a.when for a in actions]
        self.keyed = {f.name for f in attrs.fields(Conditions)} <= _KEYED
        ages: set[int] = set()
        for c in conds:
            if c.min_age > 0:
                ages.add(first_day(c.min_age, yd))
            if c.max_age < NO_AGE_LIMIT:
                ages.add(first_day(c.max_age, yd))
        if any(c.stages for c in conds):
            ages |= {math.ceil(content.world.stages[s] * yd) for s in content.stage_order}
        self._ages = sorted(ages)
        self._flags = frozenset(f for c in conds for f in (*c.flags, *c.not_flags, *c.any_flags))
        # The key holds sets as bits of an int: one bit per flag, and one per
        # (role, closeness bracket) of the people (see _roles).
        self._flag_bits = {f: 1 << i for i, f in enumerate(sorted(self._flags))}
        stat_bounds: dict[str, set[int]] = {}
        for c in conds:
            for stat, low in c.min.items():
                stat_bounds.setdefault(stat, set()).add(low)
            for stat, high in c.max.items():
                stat_bounds.setdefault(stat, set()).add(high + 1)
        self._stats = [(stat, sorted(b)) for stat, b in sorted(stat_bounds.items())]
        money: set[int] = set()
        for c in conds:
            if c.min_money is not None:
                money.add(c.min_money)
            if c.max_money is not None:
                money.add(c.max_money + 1)
        self._money = sorted(money)
        # Roles whose living NPCs matter, with the closeness bounds that matter per role.
        closeness: dict[str, set[int]] = {}
        for a in actions:
            for role in a.roles:
                closeness.setdefault(role, set())
            c = a.when
            for role in (*c.npc_roles, *c.not_npc_roles):
                closeness.setdefault(role, set())
            for role in c.npc_roles:
                if c.min_closeness is not None:
                    closeness[role].add(c.min_closeness)
                if c.max_closeness is not None:
                    closeness[role].add(c.max_closeness + 1)
        # Role -> (its first bit in the key's people, its closeness bounds):
        # bracket i of a role is bit first + i.
        self._roles: dict[str, tuple[int, tuple[int, ...]]] = {}
        first = 0
        for role, b in sorted(closeness.items()):
            self._roles[role] = (first, tuple(sorted(b)))
            first += len(b) + 1
        self._memo: dict[Hashable, list[str]] = {}
        # (id, compiled conditions, roles of the people it is aimed at), in content order.
        self._compiled = [(a.id, rules.checks(a.when), frozenset(a.roles)) for a in actions]

    def compute(self, p: Player) -> list[str]:
        """Every action whose conditions allow it for ``p`` now, checked one by one."""
        if not p.alive:
            return []
        # An action aimed at a person needs someone of its roles in your life.
        roles = {n.role for n in p.npcs if n.alive}
        out = []
        for ident, checks, wanted in self._compiled:
            if wanted and roles.isdisjoint(wanted):
                continue
            for check in checks:  # Rules.allows, inlined
                if not check(p):
                    break
            else:
                out.append(ident)
        return out

    def key(self, p: Player) -> Hashable:
        """What the action list of ``p`` depends on: equal keys, equal lists."""
        if not p.alive:
            return None
        s = p.stats
        stats = [bisect_right(bounds, getattr(s, stat)) for stat, bounds in self._stats]
        roles = self._roles
        people = 0
        for n in p.npcs:
            if n.alive:
                role = roles.get(n.role)
                if role is not None:
                    first, bounds = role
                    people |= 1 << (first + bisect_right(bounds, n.closeness) if bounds else first)
        flags = 0
        flag_bits = self._flag_bits
        for flag in p.flags & self._flags:
            flags |= flag_bits[flag]
        # Sets as bits of an int rather than frozensets: the engine keeps each
        # online player's key, and frozensets made it ~1.2 KB (issue 15).
        return (
            bisect_right(self._ages, p.age_days),
            flags,
            p.job,
            p.education,
            p.major,
            tuple(stats),
            bisect_right(self._money, p.money) if self._money else 0,
            people,
        )

    def of(self, p: Player, key: Hashable = None) -> list[str]:
        """The action list of ``p`` (``key``: its :meth:`key`, if already
        computed). Callers must not change the list: it is shared."""
        if not p.alive:
            return []
        if not self.keyed:
            return self.compute(p)
        if key is None:
            key = self.key(p)
        memo = self._memo
        actions = memo.get(key)
        if actions is None:
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            actions = memo[key] = self.compute(p)
        return actions
