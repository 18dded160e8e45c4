"""The game engine: a sans-IO core that takes commands and ticks, returns ops.

:class:`World` owns the players who are online (joined). The tick loop calls,
in this order, for each tick:

1. :meth:`World.apply` for each command that arrived, in arrival order, and
   :meth:`World.npc_reply` for each finished NPC reply;
2. :meth:`World.advance` for the players whose day boundary is this tick;
3. :meth:`World.take_output` for the ops of this tick, one list per player,
   and :meth:`World.take_changed` for the players to mark dirty.

Nothing here awaits, reads a clock or touches the network, the database or
the AI layer: NPC jobs leave through the ``submit_say`` callable, which must
not block (a bounded channel's ``send_nowait``) and returns False when full.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs

from .. import protocol as wire
from ..content.schema import Content, Event
from ..model import LIMITS, Npc, Player, Prompt, Turn
from .memory import remember
from .registry import EventRegistry
from .rules import ONCE, Rules, Unit

__all__ = ["SayJob", "World", "WorldStatistics"]


@attrs.frozen
class SayJob:
    """Everything an NPC reply provider needs, copied out of the player's
    state so the worker never touches live game objects."""

    player: int
    life: int
    npc: int
    ref: Any
    text: str
    player_name: str
    npc_name: str
    role: str
    persona: str
    closeness: int
    summary: str
    turns: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, player: Player, npc: Npc, text: str, ref: Any) -> SayJob:
        """The job for ``player`` saying ``text`` to ``npc`` (a copy of the state it needs)."""
        return cls(
            player=player.id,
            life=player.life,
            npc=npc.id,
            ref=ref,
            text=text,
            player_name=player.name,
            npc_name=npc.name,
            role=npc.role,
            persona=npc.persona,
            closeness=npc.closeness,
            summary=npc.summary,
            turns=tuple((t.who, t.text) for t in npc.memory),
        )


@attrs.frozen
class WorldStatistics:
    online: int
    player_days: int
    checks: int
    evaluations: int
    events_fired: int
    prompts_opened: int
    prompts_answered: int
    prompts_expired: int
    deaths: int


@attrs.define
class _Counters:
    player_days: int = 0
    checks: int = 0
    evaluations: int = 0
    events_fired: int = 0
    prompts_opened: int = 0
    prompts_answered: int = 0
    prompts_expired: int = 0
    deaths: int = 0


class World:
    """The online players and the rules that move their lives forward."""

    def __init__(
        self,
        content: Content,
        *,
        day_ticks: int,
        year_days: int,
        rng: random.Random,
        submit_say: Callable[[SayJob], bool] | None = None,
    ) -> None:
        self.content = content
        self.rules = Rules(content, year_days=year_days, rng=rng)
        self.registry = EventRegistry(content)
        self.rng = rng
        self.day_ticks = day_ticks
        self.year_days = year_days
        self.submit_say: Callable[[SayJob], bool] = submit_say or (lambda _job: False)
        self.players: dict[int, Player] = {}
        self._offset: dict[int, int] = {}
        self._buckets: list[set[int]] = [set() for _ in range(day_ticks)]
        self._actions: dict[int, list[str]] = {}
        self.outbox: dict[int, list[wire.Op]] = {}
        self.changed: set[int] = set()
        self.saying: set[int] = set()
        self._advanced_through = -1
        self._counters = _Counters()
        self.error_counts: Counter[str] = Counter()
        # How often each event happened (random or scheduled), for balance reports.
        self.event_counts: Counter[str] = Counter()
        self._action_labels = {a.id: a.label for a in content.actions.values()}

    # ----------------------------------------------------------------- presence

    def join(
        self, player: Player, tick: int, *, ref: Any = None, token: str | None = None, welcome: bool = True
    ) -> None:
        """Put ``player`` online (if not already) and queue ``welcome`` (after
        ``registered`` when ``token`` is given; none when ``welcome`` is False,
        for a resume that replays instead). The player's day boundary goes to
        the least-loaded tick offset, spreading daily work evenly."""
        pid = player.id
        if pid not in self.players:
            self.players[pid] = player
            offset = min(range(self.day_ticks), key=lambda i: len(self._buckets[i]))
            self._offset[pid] = offset
            self._buckets[offset].add(pid)
        ops = self.ops_for(pid)
        if token is not None:
            ops.append(wire.Registered(player=pid, token=token, ref=ref))
        self._actions[pid] = self._available(player)
        if welcome:
            ops.append(wire.Welcome(player=pid, snapshot=self.snapshot(player, tick), ref=ref))

    def leave(self, pid: int) -> None:
        """Take the player offline: their clock stops; pending ops are dropped."""
        if self.players.pop(pid, None) is None:
            return
        self._buckets[self._offset.pop(pid)].discard(pid)
        self._actions.pop(pid, None)
        self.outbox.pop(pid, None)

    def take_output(self) -> dict[int, list[wire.Op]]:
        """This tick's ops by player, in the order they happened."""
        out, self.outbox = self.outbox, {}
        return out

    def take_changed(self) -> set[int]:
        """Players whose saved state changed since the last call."""
        changed, self.changed = self.changed, set()
        return changed

    def statistics(self) -> WorldStatistics:
        c = self._counters
        return WorldStatistics(online=len(self.players), **attrs.asdict(c))

    # ----------------------------------------------------------------- views

    def snapshot(self, p: Player, tick: int) -> dict[str, Any]:
        """The whole player view sent with ``welcome``."""
        s = p.stats
        return {
            "name": p.name,
            "life": p.life,
            "alive": p.alive,
            "age_days": p.age_days,
            "year_days": self.year_days,
            "day_ticks": self.day_ticks,
            "stats": {"health": s.health, "happiness": s.happiness, "smarts": s.smarts, "looks": s.looks},
            "money": p.money,
            "job": self.rules.job_view(p.job),
            "education": p.education,
            "npcs": [n.view() for n in p.npcs],
            "prompts": [self._prompt_op(p, pr, tick).wire() for pr in p.prompts],
            "actions": list(self._actions.get(p.id) or self._available(p)),
            "action_labels": self._action_labels,
            "feed": list(p.feed),
            "cause_of_death": p.cause_of_death,
        }

    def actions_of(self, pid: int) -> list[str]:
        """The actions an online player's conditions allow now (what the
        client was last sent); cost and cooldown are checked on ``act``."""
        return self._actions.get(pid, [])

    def _available(self, p: Player) -> list[str]:
        if not p.alive:
            return []
        allows = self.rules.allows
        return [a.id for a in self.content.actions.values() if allows(a.when, p)]

    def _tick_of_day(self, pid: int, day: int, age_days: int, tick: int) -> int:
        dt = self.day_ticks
        nxt = tick + ((self._offset.get(pid, 0) - tick) % dt)
        if nxt <= self._advanced_through:
            nxt += dt
        return nxt + (day - age_days - 1) * dt

    def _prompt_op(self, p: Player, prompt: Prompt, tick: int) -> wire.PromptOp:
        ev = self.content.events[prompt.event]
        render = self.rules.render
        return wire.PromptOp(
            id=prompt.id,
            title=render(ev.title, p, prompt.bind),
            text=render(ev.text, p, prompt.bind),
            choices=[{"key": ch.key, "label": render(ch.label, p, prompt.bind)} for ch in ev.choices],
            expires_tick=self._tick_of_day(p.id, prompt.expires_day, p.age_days, tick),
        )

    # ----------------------------------------------------------------- commands

    def ops_for(self, pid: int) -> list[wire.Op]:
        """The list this tick's ops for ``pid`` go into (created on demand)."""
        ops = self.outbox.get(pid)
        if ops is None:
            ops = self.outbox[pid] = []
        return ops

    def apply(self, pid: int, cmd: wire.Command, tick: int) -> None:
        """Apply one game command of an online player."""
        p = self.players[pid]
        u = Unit(p, self.ops_for(pid))
        if isinstance(cmd, wire.Answer):
            self._answer(u, cmd, tick)
        elif isinstance(cmd, wire.Act):
            self._act(u, cmd, tick)
        elif isinstance(cmd, wire.Say):
            self._say(u, cmd)
        elif isinstance(cmd, wire.NewLife):
            self._new_life(u, cmd, tick)
        else:
            raise TypeError(f"not a game command: {type(cmd).__name__}")
        self._finish(u)

    def _error(self, u: Unit, code: str, message: str, ref: Any) -> None:
        self.error_counts[code] += 1
        u.ops.append(wire.Error(code=code, message=message, ref=ref))

    def _finish(self, u: Unit) -> None:
        if u.refresh_actions:
            actions = self._available(u.p)
            if actions != self._actions.get(u.p.id):
                self._actions[u.p.id] = actions
                u.set("actions", actions)
        u.close()

    def _answer(self, u: Unit, cmd: wire.Answer, tick: int) -> None:
        p = u.p
        if not p.alive:
            return self._error(u, "not_allowed", "your life has ended; send new_life to start again", cmd.ref)
        prompt = p.prompt(cmd.prompt)
        if prompt is None:
            return self._error(u, "not_found", f"there is no pending prompt {cmd.prompt}", cmd.ref)
        event = self.content.events[prompt.event]
        choice = event.choice(cmd.choice)
        if choice is None:
            keys = ", ".join(ch.key for ch in event.choices)
            return self._error(
                u, "invalid_choice", f"prompt {prompt.id} has no choice {cmd.choice!r}; choose one of: {keys}", cmd.ref
            )
        u.ops.append(wire.Ack(ref=cmd.ref))
        self._counters.prompts_answered += 1
        self._close_prompt(u, prompt, event, choice.key, "player")
        self.changed.add(p.id)

    def _close_prompt(self, u: Unit, prompt: Prompt, event: Event, key: str, by: str) -> None:
        u.p.prompts.remove(prompt)
        u.ops.append(wire.PromptClosed(id=prompt.id, choice=key, by=by))
        choice = event.choice(key)
        assert choice is not None  # noqa: S101 - content validation guarantees the default
        self.rules.apply(u, choice.effects, prompt.bind)
        if choice.outcomes:
            self.rules.apply(u, self.rules.pick(choice.outcomes), prompt.bind)

    def _act(self, u: Unit, cmd: wire.Act, tick: int) -> None:
        p = u.p
        action = self.content.actions.get(cmd.action)
        if action is None:
            return self._error(u, "not_found", f"there is no action {cmd.action!r}", cmd.ref)
        if not p.alive:
            return self._error(u, "not_allowed", "your life has ended; send new_life to start again", cmd.ref)
        reason = self.rules.why_not(action.when, p)
        if reason:
            return self._error(u, "not_allowed", f"cannot {action.label.lower()} now: {reason}", cmd.ref)
        until = p.cooldowns.get(action.id, 0)
        if until > p.age_days:
            wait = until - p.age_days
            return self._error(
                u, "not_allowed", f"you can {action.label.lower()} again in {wait} day{'s' * (wait != 1)}", cmd.ref
            )
        if action.cost > p.money:
            return self._error(u, "not_allowed", f"{action.label} costs {action.cost}; you have {p.money}", cmd.ref)
        u.ops.append(wire.Ack(ref=cmd.ref))
        if action.cost:
            self.rules.change_money(u, -action.cost)
        if action.cooldown_days:
            p.cooldowns[action.id] = p.age_days + action.cooldown_days
        self.rules.apply(u, action.effects)
        if action.outcomes:
            self.rules.apply(u, self.rules.pick(action.outcomes))
        u.refresh_actions = True
        self.changed.add(p.id)

    def _say(self, u: Unit, cmd: wire.Say) -> None:
        p = u.p
        if not p.alive:
            return self._error(u, "not_allowed", "your life has ended; send new_life to start again", cmd.ref)
        npc = p.npc(cmd.npc)
        if npc is None:
            return self._error(u, "not_found", f"you know nobody with id {cmd.npc}", cmd.ref)
        if not npc.alive:
            return self._error(u, "not_allowed", f"{npc.name} is no longer in your life", cmd.ref)
        if p.id in self.saying:
            return self._error(u, "busy", "wait for the reply to what you said before", cmd.ref)
        job = SayJob.of(p, npc, cmd.text, cmd.ref)
        if not self.submit_say(job):
            return self._error(u, "busy", "NPC replies are backed up; try again in a moment", cmd.ref)
        u.ops.append(wire.Ack(ref=cmd.ref))
        self.saying.add(p.id)
        remember(npc, Turn(who="player", text=cmd.text))
        self.changed.add(p.id)

    def npc_reply(self, pid: int, life: int, npc_id: int, ref: Any, text: str) -> None:
        """A finished NPC reply: remembered, and sent as ``npc_say`` if the
        player is online."""
        self.saying.discard(pid)
        p = self.players.get(pid)
        if p is None:
            return
        u = Unit(p, self.ops_for(pid))
        # The reply answers the player's message even if their life ended
        # meanwhile, but a life that ended (or was replaced) no longer changes.
        npc = p.npc(npc_id) if p.life == life and p.alive else None
        u.ops.append(wire.NpcSay(npc=npc_id, text=text, ref=ref))
        if npc is not None:
            remember(npc, Turn(who="npc", text=text))
            if npc.closeness < 100:
                # Talking brings people closer; the client sees it like any NPC change.
                npc.closeness += 1
                u.ops.append(wire.NpcOp(npc.view()))
            self.changed.add(pid)

    def _new_life(self, u: Unit, cmd: wire.NewLife, tick: int) -> None:
        p = u.p
        if p.alive:
            return self._error(u, "not_allowed", "your life is still going; new_life is for after you die", cmd.ref)
        fresh = self.rules.new_life(p.id, p.name, p.life + 1)
        # Mutate in place: the directory and the saver hold this same object.
        for field in attrs.fields(Player):
            setattr(p, field.name, getattr(fresh, field.name))
        self.saying.discard(p.id)
        self._actions[p.id] = self._available(p)
        u.ops.append(wire.Welcome(player=p.id, snapshot=self.snapshot(p, tick), ref=cmd.ref))
        self.changed.add(p.id)

    # ----------------------------------------------------------------- days

    def advance(self, tick: int) -> None:
        """Advance one day for every online player whose boundary is ``tick``."""
        self._advanced_through = tick
        players = self.players
        for pid in self._buckets[tick % self.day_ticks]:
            p = players[pid]
            if p.alive:
                self._day(p, tick)

    def _day(self, p: Player, tick: int) -> None:
        r = self.rules
        self._counters.player_days += 1
        u = Unit(p, self.ops_for(p.id))
        p.age_days += 1
        day = p.age_days
        u.set("age_days", day)
        delta = 0
        if p.job is not None:
            delta += r.day_share(self.content.jobs[p.job].salary, p.job_since, day)
        yearly_cost = r.expenses(p)
        # Living costs are paid from income or savings; the broke live frugally.
        if yearly_cost and (p.job is not None or p.money > 0):
            delta -= r.day_share(yearly_cost, 0, day)
        if delta:
            r.change_money(u, delta)
        if day % self.year_days == 0:
            r.yearly(u)
            p.cooldowns = {k: v for k, v in p.cooldowns.items() if v > day}
        r.education_day(u)
        if p.prompts:
            for prompt in [pr for pr in p.prompts if pr.expires_day <= day]:
                event = self.content.events[prompt.event]
                self._counters.prompts_expired += 1
                self._close_prompt(u, prompt, event, event.default, "timeout")
        if p.scheduled:
            due = [s for s in p.scheduled if s.day <= day]
            if due:
                p.scheduled = [s for s in p.scheduled if s.day > day]
                for item in due:
                    event = self.content.events[item.event]
                    if r.holds(event, p, item.bind):
                        self._fire(u, event, tick, item.bind)
        if day >= p.next_check:
            self._check(u, tick)
            w = self.content.world
            p.next_check = day + self.rng.randint(w.check_min_days, w.check_max_days)
        if p.alive and (p.stats.health <= 0 or self.rng.random() < r.daily_death_chance(p)):
            r.die(u, r.death_cause(p))
        if not p.alive:
            self._counters.deaths += 1
            self.saying.discard(p.id)
        self._finish(u)
        self.changed.add(p.id)

    def _check(self, u: Unit, tick: int) -> None:
        p = u.p
        c = self._counters
        c.checks += 1
        if len(p.prompts) >= LIMITS.prompts:
            return
        day = p.age_days
        allows = self.rules.allows
        cooldowns = p.cooldowns
        pool: list[Event] = []
        weights: list[float] = []
        for event in self.registry.candidates(p, day // self.year_days):
            c.evaluations += 1
            if cooldowns.get(event.id, 0) > day or not allows(event.when, p):
                continue
            pool.append(event)
            weights.append(event.weight)
        if pool:
            self._fire(u, self.rng.choices(pool, weights=weights)[0], tick)

    def _fire(self, u: Unit, event: Event, tick: int, bind: dict[str, str] | None = None) -> None:
        """Make ``event`` happen; ``bind``: the NPC a scheduled follow-up is about."""
        p = u.p
        if not p.alive:
            return
        if event.choices and len(p.prompts) >= LIMITS.prompts:
            return
        self._counters.events_fired += 1
        self.event_counts[event.id] += 1
        if event.once:
            p.cooldowns[event.id] = ONCE
        elif event.cooldown_days:
            p.cooldowns[event.id] = p.age_days + event.cooldown_days
        if not bind:
            bind = self.rules.bind(event, p)
        if not event.choices:
            self.rules.happen(u, event, bind)
            return
        timeout = event.timeout_days or self.content.world.timeout_days
        prompt = Prompt(
            id=p.next_prompt_id, event=event.id, opened_day=p.age_days, expires_day=p.age_days + timeout, bind=bind
        )
        p.next_prompt_id += 1
        p.prompts.append(prompt)
        self._counters.prompts_opened += 1
        u.ops.append(self._prompt_op(p, prompt, tick))
