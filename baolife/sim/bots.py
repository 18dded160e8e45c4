"""Bot players: how a simulated player answers prompts and takes actions.

A bot sees what a player sees (its pending prompts, the actions it could
take now and their labels) and acts through the same commands a client
sends, so the simulation exercises the server's own rules. It never weighs
the effects of choices: the neutral policy is a casual player, not an
optimiser.
"""

from __future__ import annotations

import random
from collections import Counter

import attrs

from .. import protocol as wire
from ..content.schema import Content
from ..model import Player
from ..tick.engine import World

__all__ = ["NEUTRAL", "ActionGuide", "Bot", "Policy"]


@attrs.frozen
class Policy:
    """How bots play.

    Each new prompt is left to run out (its default choice) with
    ``ignore_share``; otherwise a uniformly random choice is sent after
    0..``answer_within_days`` days. Every ``act_every_days`` (a random
    number of days in that range) the bot takes one action: with
    ``needs_share`` it attends to an obvious need first (no job at working
    age: look for one; ill: get treated), otherwise it picks at random among
    the actions it can take and afford right now, a big decision (see
    :class:`ActionGuide`) ``big_decision_weight`` times as likely as an
    everyday one.
    """

    name: str = "neutral"
    ignore_share: float = 0.15
    answer_within_days: int = 10
    act_every_days: tuple[int, int] = (10, 40)
    needs_share: float = 0.5
    big_decision_weight: float = 0.03

    def describe(self) -> str:
        """One line for the report."""
        low, high = self.act_every_days
        return (
            f"{self.name}: a uniformly random choice for each prompt within {self.answer_within_days} days, "
            f"{self.ignore_share:.0%} of prompts left to their default; one action every {low}-{high} days, "
            f"{self.needs_share:.0%} of the time for a need (a job at working age, treatment when ill), "
            f"otherwise a random affordable action, big decisions {self.big_decision_weight:g} times as "
            "likely as everyday ones"
        )


NEUTRAL = Policy()


class ActionGuide:
    """What a casual player reads from the action list, derived from the
    content: which actions treat an illness, which find a job, and which are
    big decisions (they cost 1,000 or more, change job, education or major,
    schedule a follow-up, or add or remove an asset, a habit or a life event
    such as retiring)."""

    def __init__(self, content: Content) -> None:
        illnesses = {f.id for f in content.flags.values() if f.kind == "illness"}
        weighty = {f.id for f in content.flags.values() if f.kind in ("asset", "habit", "life")}
        self.cures: dict[str, frozenset[str]] = {}
        self.job_finders: list[str] = []
        self.big: set[str] = set()
        for action in content.actions.values():
            effects = [action.effects] + [o.effects for o in action.outcomes]
            cured = frozenset(f for e in effects for f in e.flags_remove if f in illnesses)
            if cured:
                self.cures[action.id] = cured
            if any(e.job == "best" for e in effects):
                self.job_finders.append(action.id)
            if action.cost >= 1000 or any(
                e.job or e.education or e.major or e.schedule or not weighty.isdisjoint(e.flags_add + e.flags_remove)
                for e in effects
            ):
                self.big.add(action.id)

    def need(self, p: Player, possible: list[str], years: int) -> str | None:
        """An action in ``possible`` that meets a need of ``p``, if any."""
        for action, cured in self.cures.items():
            if action in possible and not cured.isdisjoint(p.flags):
                return action
        if p.job is None and 18 <= years < 62:
            for action in self.job_finders:
                if action in possible:
                    return action
        return None


class Bot:
    """One simulated player: plans answers to its prompts and its next action."""

    __slots__ = ("pid", "policy", "guide", "rng", "next_act", "plans", "seen", "taken")

    def __init__(
        self, pid: int, policy: Policy, guide: ActionGuide, rng: random.Random, today: int, taken: Counter[str]
    ) -> None:
        self.pid = pid
        # Actions taken, by id (shared by all bots of a run).
        self.taken = taken
        self.policy = policy
        self.guide = guide
        self.rng = rng
        self.next_act = today + rng.randint(*policy.act_every_days)
        # Prompt id -> (day to answer, choice key); seen: prompts already planned or ignored.
        self.plans: dict[int, tuple[int, str]] = {}
        self.seen: set[int] = set()

    def on_day(self, world: World, p: Player, tick: int) -> None:
        """Plan new prompts, send the answers due today, and act when due."""
        day = p.age_days
        if p.prompts:
            for prompt in p.prompts:
                if prompt.id in self.seen:
                    continue
                self.seen.add(prompt.id)
                if self.rng.random() >= self.policy.ignore_share:
                    event = world.content.events[prompt.event]
                    key = self.rng.choice(event.choices).key
                    self.plans[prompt.id] = (day + self.rng.randint(0, self.policy.answer_within_days), key)
        if self.plans:
            for prompt_id, (when, key) in list(self.plans.items()):
                if when <= day:
                    del self.plans[prompt_id]
                    if p.prompt(prompt_id) is not None:
                        world.apply(self.pid, wire.Answer(prompt=prompt_id, choice=key), tick)
        if len(self.seen) > 32:
            # Forget closed prompts, to keep the set small.
            self.seen &= {pr.id for pr in p.prompts}
        if day >= self.next_act and p.alive:
            self.next_act = day + self.rng.randint(*self.policy.act_every_days)
            action = self.choose_action(world, p)
            if action:
                self.taken[action] += 1
                world.apply(self.pid, wire.Act(action=action), tick)

    def choose_action(self, world: World, p: Player) -> str | None:
        """The action this bot takes now, or None when it can take none."""
        actions = world.content.actions
        day = p.age_days
        cooldowns = p.cooldowns
        possible = [
            a
            for a in world.actions_of(self.pid)
            if actions[a].cost <= p.money and cooldowns.get(a, 0) <= day
        ]
        if not possible:
            return None
        if self.rng.random() < self.policy.needs_share:
            need = self.guide.need(p, possible, day // world.year_days)
            if need:
                return need
        big, weight = self.guide.big, self.policy.big_decision_weight
        return self.rng.choices(possible, weights=[weight if a in big else 1.0 for a in possible])[0]
