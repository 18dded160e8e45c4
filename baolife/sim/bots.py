"""Bot players: how a simulated player answers prompts and takes actions.

A bot sees what a player sees (its pending prompts, the actions it could
take now and their prices) and acts through the same commands a client
sends, so the simulation exercises the server's own rules. It never weighs
the effects of choices: the neutral policy is a casual player, not an
optimiser.

A bot lives in real time: in the simulation one tick is one step of the
player's clock, one real second at the server's defaults, whatever number
of game days the step runs (the stage's pace). Its delays are in seconds.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import attrs

from .. import protocol as wire
from ..content.schema import Action, Content
from ..model import Player
from ..tick.engine import World
from ..tick.rules import PAID_BY_PARENTS

__all__ = ["NEUTRAL", "ActionGuide", "Bot", "Policy"]


@attrs.frozen
class Policy:
    """How bots play, in real seconds (ticks of the simulation).

    Each new prompt is left to run out (its default choice) with
    ``ignore_share``; otherwise a uniformly random choice is sent after
    0..``answer_within_seconds`` seconds. Every ``act_every_seconds`` (a
    random number of seconds in that range) the bot takes one action: with
    ``needs_share`` it attends to an obvious need first (no job at working
    age: look for one; ill: get treated), otherwise it picks at random among
    the actions it can take and pay for right now, a big decision (see
    :class:`ActionGuide`) ``big_decision_weight`` times as likely as an
    everyday one. An action aimed at a person goes to a random person of
    its roles.
    """

    name: str = "neutral"
    ignore_share: float = 0.15
    answer_within_seconds: int = 10
    act_every_seconds: tuple[int, int] = (10, 40)
    needs_share: float = 0.5
    big_decision_weight: float = 0.03

    def describe(self) -> str:
        """One line for the report."""
        low, high = self.act_every_seconds
        return (
            f"{self.name}: a uniformly random choice for each prompt within {self.answer_within_seconds} s, "
            f"{self.ignore_share:.0%} of prompts left to their default; one action every {low}-{high} s, "
            f"{self.needs_share:.0%} of the time for a need (a job at working age, treatment when ill), "
            f"otherwise a random action it can pay for, big decisions {self.big_decision_weight:g} times as "
            "likely as everyday ones"
        )


NEUTRAL = Policy()
# A player who never answers and never acts: every prompt runs out to its default.
IDLE = Policy(name="idle", ignore_share=1.0, act_every_seconds=(10**9, 10**9))


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
        # Every illness some action treats (most of the time the player has none).
        self.illnesses: frozenset[str] = frozenset()
        # Every action's price (its id: every action there is).
        self.cost = {a.id: a.cost for a in content.actions.values()}
        for action in content.actions.values():
            effects = [action.effects] + [o.effects for o in action.outcomes]
            cured = frozenset(f for e in effects for f in e.flags_remove if f in illnesses)
            if cured:
                self.cures[action.id] = cured
                self.illnesses |= cured
            if any(e.job == "best" for e in effects):
                self.job_finders.append(action.id)
            if action.cost >= 1000 or any(
                e.job or e.education or e.major or e.schedule or not weighty.isdisjoint(e.flags_add + e.flags_remove)
                for e in effects
            ):
                self.big.add(action.id)

    def need(self, p: Player, possible: list[str], years: int) -> str | None:
        """An action in ``possible`` that meets a need of ``p``, if any."""
        flags = p.flags
        if flags and not self.illnesses.isdisjoint(flags):
            for action, cured in self.cures.items():
                if action in possible and not cured.isdisjoint(flags):
                    return action
        if p.job is None and 18 <= years < 62:
            for action in self.job_finders:
                if action in possible:
                    return action
        return None


def _roles(action: Action) -> tuple[str, ...]:
    """The roles of the people an action is aimed at ((): not aimed at anyone)."""
    return action.roles if action.target else ()


class Bot:
    """One simulated player: plans answers to its prompts and its next action."""

    __slots__ = ("pid", "policy", "guide", "rng", "next_act", "plans", "seen", "taken", "acted", "sent", "weights")

    def __init__(
        self, pid: int, policy: Policy, guide: ActionGuide, rng: random.Random, tick: int, taken: Counter[str]
    ) -> None:
        self.pid = pid
        # Actions taken, by id (shared by all bots of a world).
        self.taken = taken
        self.policy = policy
        self.guide = guide
        self.rng = rng
        self.next_act = tick + rng.randint(*policy.act_every_seconds)
        # Prompt id -> (tick to answer, choice key); seen: prompts already planned or ignored.
        self.plans: dict[int, tuple[int, str]] = {}
        self.seen: set[int] = set()
        # Actions this bot took (the caller reads and resets it to count per stage).
        self.acted = 0
        # Commands sent so far (answers and actions).
        self.sent = 0
        # How likely each action is picked, against an everyday one's 1.
        big, weight = guide.big, policy.big_decision_weight
        self.weights = {a: weight if a in big else 1.0 for a in guide.cost}

    def wants_turn(self, p: Player, tick: int) -> bool:
        """Whether :meth:`on_tick` has anything to do this tick (cheap)."""
        return bool(p.prompts or self.plans or tick >= self.next_act)

    def next_turn(self) -> int:
        """The tick of this bot's next move (an answer or an action) if no new
        prompt opens before it: until then :meth:`on_tick` does nothing."""
        turn = self.next_act
        for when, _key in self.plans.values():
            if when < turn:
                turn = when
        return turn

    def on_tick(self, world: World, p: Player, tick: int) -> None:
        """Plan new prompts, send the answers due now, and act when due."""
        rng = self.rng
        if p.prompts:
            for prompt in p.prompts:
                if prompt.id in self.seen:
                    continue
                self.seen.add(prompt.id)
                if rng.random() >= self.policy.ignore_share:
                    event = world.content.events[prompt.event]
                    key = rng.choice(event.choices).key
                    self.plans[prompt.id] = (tick + rng.randint(0, self.policy.answer_within_seconds), key)
        if self.plans:
            for prompt_id, (when, key) in list(self.plans.items()):
                if when <= tick:
                    del self.plans[prompt_id]
                    if p.prompt(prompt_id) is not None:
                        self.sent += 1
                        world.apply(self.pid, wire.Answer(prompt=prompt_id, choice=key), tick)
        if len(self.seen) > 32:
            # Forget closed prompts, to keep the set small.
            self.seen &= {pr.id for pr in p.prompts}
        if tick >= self.next_act and p.alive:
            self.next_act = tick + rng.randint(*self.policy.act_every_seconds)
            action = self.choose_action(world, p)
            if action:
                self.act(world, p, action, tick)

    def act(self, world: World, p: Player, action: str, tick: int) -> None:
        """Send ``act``; an action aimed at a person names one of its roles."""
        roles = _roles(world.content.actions[action])
        if roles:
            people = [n.id for n in p.npcs if n.alive and n.role in roles]
            if not people:
                return
            cmd = wire.Act(action=action, npc=self.rng.choice(people))
        else:
            cmd = wire.Act(action=action)
        self.taken[action] += 1
        self.acted += 1
        self.sent += 1
        world.apply(self.pid, cmd, tick)

    def choose_action(self, world: World, p: Player) -> str | None:
        """The action this bot takes now, or None when it can take none."""
        possible = possible_actions(world, p)
        if not possible:
            return None
        if self.rng.random() < self.policy.needs_share:
            need = self.guide.need(p, possible, p.age_days // world.year_days)
            if need:
                return need
        return self.rng.choices(possible, weights=list(map(self.weights.__getitem__, possible)))[0]


def spending_limit(world: World, p: Player) -> float:
    """The most an action may cost and still be paid now: anything while a
    child's parents pay (the rules' ``who_pays``), else the player's own
    money. Engines without a payer rule: own money only."""
    who_pays = getattr(world.rules, "who_pays", None)
    if who_pays is not None and who_pays(p, 1) == PAID_BY_PARENTS:
        return math.inf
    return p.money


def can_pay(world: World, p: Player, cost: int) -> bool:
    """Whether an action costing ``cost`` would be paid: free ones always;
    otherwise by whoever the rules say pays (a child's parents) or from the
    player's own money."""
    return cost <= 0 or cost <= spending_limit(world, p)


def possible_actions(world: World, p: Player) -> list[str]:
    """The actions ``p`` could take now: allowed at this moment of life,
    not cooling down, and paid for."""
    actions = world.content.actions
    day = p.age_days
    get = p.cooldowns.get
    # A free action is always paid; others up to the limit.
    limit = max(spending_limit(world, p), 0)
    if limit == math.inf:
        return [a for a in world.actions_of(p.id) if get(a, 0) <= day]
    return [a for a in world.actions_of(p.id) if get(a, 0) <= day and actions[a].cost <= limit]


def can_act_now(world: World, p: Player, hint: str | None) -> str | None:
    """An action ``p`` could take now (``hint`` first, the one found last
    time, which usually still is), or None: for the pacing figures."""
    actions = world.content.actions
    day = p.age_days
    cooldowns = p.cooldowns
    available = world.actions_of(p.id)
    limit: float | None = None
    if hint is not None and cooldowns.get(hint, 0) <= day and hint in available:
        cost = actions[hint].cost
        if cost <= 0:
            return hint
        limit = spending_limit(world, p)
        if cost <= limit:
            return hint
    for a in available:
        if cooldowns.get(a, 0) <= day:
            cost = actions[a].cost
            if cost <= 0:
                return a
            if limit is None:
                limit = spending_limit(world, p)
            if cost <= limit:
                return a
    return None
