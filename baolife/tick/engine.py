"""The game engine: a sans-IO core that takes commands and ticks, returns ops.

:class:`World` owns the players who are online (joined). The tick loop calls,
in this order, for each tick:

1. :meth:`World.apply` for each command that arrived, in arrival order, and
   :meth:`World.npc_reply` for each finished NPC reply;
2. :meth:`World.advance` for the players whose day boundary is this tick;
3. :meth:`World.take_changed` for the players to mark dirty.

The world writes its ops into :attr:`World.outbox`, one list per player in
the order they happened. Under the tick loop that dict is the delivery
core's outbox (:mod:`baolife.tick.delivery`), which adds the connections'
own ops and takes them all out; runs without a loop (simulations,
benchmarks) take them with :meth:`World.take_output`.

Nothing here awaits, reads a clock or touches the network, the database or
the AI layer: NPC jobs leave through the ``submit_say`` callable, which must
not block (a bounded channel's ``send_nowait``) and returns False when full.

One piece: World is the one owner of the online players' game state and its
per-tick bookkeeping (step buckets, busy days, action-list keys, the fast-
forward budget, counters), which commands, replies and steps all read and
write; what it drives lives in its own modules (rules, pacing, registry,
action lists, memory).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

import attrs

from .. import protocol as wire
from ..content.schema import Action, Content, Event
from ..model import LIMITS, MAX_AGE_YEARS, STAT_MAX, Npc, Player, Prompt, Turn
from . import lives, story
from .available import ActionList
from .memory import remember
from .pacing import death_after, death_day
from .registry import EventRegistry
from .rules import ONCE, Rules, Unit

__all__ = ["SayJob", "World", "WorldStatistics"]

# No action list sent yet (an action key is never this object).
_NO_KEY: Any = object()


class _Track:
    """The engine's transient record of one online player's steps (never
    saved; made on join, dropped on leave), one record so that a step looks
    up one thing per player (issue 15): the pace the client was last told
    (None: not yet), and the span of quiet steps until the player's next
    busy day ``busy`` (Pacing.next_busy_day) with what those steps read, the
    same for each of them: the stage, the step's days at x1 (one while a
    prompt waits), the daily chance of death and, when it needs a roll, the
    chance of living through a step of those days, and what their pay reads
    (Rules.pay_terms). None of it moves on a quiet day (a birthday, a stage
    start, a change of health or job are busy days or commands), so it is
    worked out once per span, not per step. A span is stale once the player
    reaches ``busy``, or at once when ``busy`` is set to 0 (:meth:`World._stale`)."""

    __slots__ = ("pace_sent", "busy", "stage", "days", "chance", "survive", "salary", "since", "cost")

    def __init__(self) -> None:
        self.pace_sent: int | None = None
        self.busy = 0
        self.stage = ""
        self.days = 0
        self.chance = 0.0
        self.survive = -1.0
        self.salary: int | None = None
        self.since = 0
        self.cost = 0

    def renew(self, busy: int, stage: str, days: int, chance: float, pay: tuple[int | None, int, int]) -> None:
        """Start a span of quiet steps (see the class)."""
        self.busy = busy
        self.stage = stage
        self.days = days
        self.chance = chance
        # death_day's roll, made here: -1 when no roll is made (a chance of 0 or 1).
        self.survive = (1.0 - chance) ** days if 0.0 < chance < 1.0 else -1.0
        self.salary, self.since, self.cost = pay


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
    # Whole years of age and life stage of the player, whole years of the NPC:
    # what the NPC says must fit who is talking to whom (a parent coos at a baby).
    player_years: int
    player_stage: str
    npc_years: int

    @classmethod
    def of(cls, player: Player, npc: Npc, text: str, ref: Any, *, year_days: int, stage: str) -> SayJob:
        """The job for ``player`` (at life ``stage``) saying ``text`` to ``npc``
        (a copy of the state it needs); ages in years of ``year_days`` days."""
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
            turns=npc.memory.pairs(),
            player_years=player.age_days // year_days,
            player_stage=stage,
            npc_years=max(0, player.age_days + npc.age_offset) // year_days,
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
    # Days run in full; the rest of player_days were quiet days skipped in bulk.
    busy_days: int
    # Extra player-days run by fast-forward (beyond the stage's pace), and
    # steps of fast players run at x1 because the tick's budget was spent.
    fast_forward_days: int
    fast_forward_refused: int


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
    busy_days: int = 0
    fast_forward_days: int = 0
    fast_forward_refused: int = 0


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
        fast_forward_budget: int = 10_000,
        skip_quiet: bool = True,
        views: bool = True,
    ) -> None:
        """``fast_forward_budget``: extra player-days (beyond the stages'
        pace) that fast-forwarding players may run per tick; past it they run
        at x1 for that tick. ``skip_quiet``: run quiet days in bulk (False:
        every day in full, the reference the bulk path is tested against).
        ``views``: write out the texts a client shows (a prompt's op, an
        outcome's title); False for a caller that reads no ops (the
        simulation): no ``prompt`` op and untitled outcomes, the game the same."""
        self.content = content
        self.rules = Rules(content, year_days=year_days, rng=rng)
        # Each random event with what a check needs of it in each year of age:
        # (event, id, weight, compiled conditions less those that hold all that year).
        self.registry = EventRegistry(
            content,
            item=lambda e, year: (e, e.id, e.weight, self.rules.checks_within(e.when, *_year_span(year, year_days))),
        )
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
        # Players whose steps since the last take only moved what time moves
        # (age, money, lowest money): a save of those three is enough for them
        # (:meth:`take_progressed`), unless they are in ``changed`` too.
        self.progressed: set[int] = set()
        self.saying: set[int] = set()
        # Players whose NPC talk an operator turned off (baolife.admin keeps it).
        self.muted: set[int] = set()
        self._advanced_through = -1
        self.fast_forward_budget = fast_forward_budget
        self._fast_forward_left = fast_forward_budget
        self.skip_quiet = skip_quiet
        self.views = views
        self._counters = _Counters()
        self.error_counts: Counter[str] = Counter()
        # How often each event happened (random or scheduled), for balance reports.
        self.event_counts: Counter[str] = Counter()
        self.available = ActionList(content, self.rules)
        # Days per step at x1 by stage (the common case of _step_days).
        self._pace1 = {s: self.rules.pacing.days(s, 1) for s in content.stage_order}
        # Transient, per online player (never saved; dropped on leave): the
        # key of the action list last sent, and the steps' record (_Track:
        # the pace the client knows, the span of quiet steps, made stale by
        # whatever else changes the player: a command, a reply, a join, a
        # new life).
        self._action_keys: dict[int, Hashable] = {}
        self._tracks: dict[int, _Track] = {}
        self._action_labels = {a.id: a.label for a in content.actions.values()}
        self._action_info = {a.id: _action_info(a) for a in content.actions.values()}

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
            self._tracks[pid] = _Track()
        ops = self.ops_for(pid)
        if token is not None:
            ops.append(wire.Registered(player=pid, token=token, ref=ref))
        self._stale(pid)
        self._set_actions(player)
        if welcome:
            ops.append(wire.Welcome(player=pid, snapshot=self.snapshot(player, tick), ref=ref))

    def leave(self, pid: int) -> None:
        """Take the player offline: their clock stops; pending ops are dropped."""
        if self.players.pop(pid, None) is None:
            return
        self._buckets[self._offset.pop(pid)].discard(pid)
        self._actions.pop(pid, None)
        self._action_keys.pop(pid, None)
        self._tracks.pop(pid, None)
        self.outbox.pop(pid, None)

    def take_output(self) -> dict[int, list[wire.Op]]:
        """This tick's ops by player, in the order they happened (for runs
        without a tick loop, whose delivery core empties :attr:`outbox` itself)."""
        out, self.outbox = self.outbox, {}
        return out

    def take_changed(self) -> set[int]:
        """Players whose saved state changed since the last call."""
        changed, self.changed = self.changed, set()
        return changed

    def take_progressed(self) -> set[int]:
        """Players whose wholly quiet steps since the last call changed only
        their age, money and lowest money (:class:`~baolife.model.Progress`);
        some may be in :meth:`take_changed` too."""
        progressed, self.progressed = self.progressed, set()
        return progressed

    def statistics(self) -> WorldStatistics:
        c = self._counters
        return WorldStatistics(online=len(self.players), **attrs.asdict(c))

    def reset_statistics(self) -> None:
        """Start :meth:`statistics`, ``event_counts`` and ``error_counts``
        again from zero (the simulation reuses a world, and the caches it
        built, for one batch of lives after another)."""
        self._counters = _Counters()
        self.event_counts.clear()
        self.error_counts.clear()

    # ----------------------------------------------------------------- views

    def snapshot(self, p: Player, tick: int) -> dict[str, Any]:
        """The whole player view sent with ``welcome``."""
        s = p.stats
        return {
            "name": p.name,
            "surname": p.surname,
            "life": p.life,
            "alive": p.alive,
            "age_days": p.age_days,
            "year_days": self.year_days,
            "day_ticks": self.day_ticks,
            "stage": self.rules.stage(p.age_days),
            "speed": p.speed,
            "pace": self._sent_pace(p),
            "stats": {"health": s.health, "happiness": s.happiness, "smarts": s.smarts, "looks": s.looks},
            "money": p.money,
            "job": self.rules.job_view(p.job),
            "education": p.education,
            "npcs": [self.rules.npc_view(p, n) for n in p.npcs],
            "prompts": [self._prompt_op(p, pr, tick).wire() for pr in p.prompts],
            "actions": list(self._actions.get(p.id) or self._available(p)),
            "action_labels": self._action_labels,
            "action_info": self._action_info,
            "cooldowns": self._cooldowns(p),
            "flags": self.rules.flag_view(p),
            "feed": p.feed,
            "story": story.tail(p),
            "story_total": len(p.story),
            "lives_total": len(p.lives),
            "cause_of_death": p.cause_of_death,
        }

    def pace_of(self, p: Player) -> int:
        """Game days the next step of ``p`` runs: the stage's pace times the
        player's fast-forward factor (capped by content), one while a prompt
        waits (so a prompt's timeout runs in real seconds and its
        ``expires_tick`` holds)."""
        if p.prompts:
            return 1
        return self.rules.pacing.days(self.rules.stage(p.age_days), p.speed)

    def _sent_pace(self, p: Player) -> int:
        """The pace for a snapshot, remembered as what the client knows (of
        an online player)."""
        pace = self.pace_of(p)
        track = self._tracks.get(p.id)
        if track is not None:
            track.pace_sent = pace
        return pace

    def _stale(self, pid: int) -> None:
        """Make the span of online player ``pid``'s quiet steps stale: what
        they read may have changed (a command may schedule, enrol, change
        health...)."""
        self._tracks[pid].busy = 0

    def _sync_pace(self, u: Unit, pace: int | None = None) -> None:
        """Put ``pace`` (default: :meth:`pace_of`) in the unit's state op
        when it changed since the client was last told."""
        p = u.p
        if pace is None:
            pace = self.pace_of(p)
        track = self._tracks[p.id]
        if track.pace_sent != pace and p.alive:
            track.pace_sent = pace
            u.set("pace", pace)

    def actions_of(self, pid: int) -> list[str]:
        """The actions an online player's conditions allow now (what the
        client was last sent); cost and cooldown are checked on ``act``."""
        return self._actions.get(pid, [])

    def _available(self, p: Player) -> list[str]:
        return self.available.of(p)

    def _set_actions(self, p: Player) -> None:
        """Remember the action list (and its key) the client gets in a snapshot."""
        key = self._action_keys[p.id] = self.available.key(p)
        self._actions[p.id] = self.available.of(p, key)

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
        self._stale(pid)
        if isinstance(cmd, (wire.Story, wire.Talks, wire.Lives)):
            # Reading the past changes nothing (also after death): no state op, no save.
            return self._read(u, cmd)
        if isinstance(cmd, wire.Answer):
            self._answer(u, cmd, tick)
        elif isinstance(cmd, wire.Act):
            self._act(u, cmd, tick)
        elif isinstance(cmd, wire.Say):
            self._say(u, cmd)
        elif isinstance(cmd, wire.NewLife):
            self._new_life(u, cmd, tick)
        elif isinstance(cmd, wire.Speed):
            self._speed(u, cmd)
        else:
            raise TypeError(f"not a game command: {type(cmd).__name__}")
        self._sync_pace(u)
        self._finish(u)

    def _read(self, u: Unit, cmd: wire.Story | wire.Talks | wire.Lives) -> None:
        """Answer a look at the past: a page of the story, a conversation, the past lives."""
        p = u.p
        if isinstance(cmd, wire.Story):
            first, lines = story.page(p, cmd.before)
            u.ops.append(wire.StoryOp(lines=lines, first=first, total=len(p.story), ref=cmd.ref))
        elif isinstance(cmd, wire.Talks):
            npc = p.npc(cmd.npc)
            if npc is None:
                return self._error(u, "not_found", f"you know nobody with id {cmd.npc}", cmd.ref)
            u.ops.append(wire.TalksOp(npc=npc.id, turns=npc.memory.rows(), ref=cmd.ref))
        else:
            views = [lives.life_view(self.content, past) for past in p.lives]
            u.ops.append(wire.LivesOp(lives=views, ref=cmd.ref))
        return None

    def _error(self, u: Unit, code: str, message: str, ref: Any) -> None:
        self.error_counts[code] += 1
        u.ops.append(wire.Error(code=code, message=message, ref=ref))

    def _finish(self, u: Unit) -> None:
        if u.refresh_actions:
            # Only when what the actions' conditions read changed (see ActionList).
            p = u.p
            available = self.available
            key = available.key(p)
            if not available.keyed or key != self._action_keys.get(p.id, _NO_KEY):
                self._action_keys[p.id] = key
                actions = available.of(p, key)
                if actions != self._actions.get(p.id):
                    self._actions[p.id] = actions
                    u.set("actions", actions)
        self.rules.finish(u)
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
        self._close_prompt(u, prompt, event, choice.key, "player", cmd.ref)
        self.changed.add(p.id)

    def _close_prompt(self, u: Unit, prompt: Prompt, event: Event, key: str, by: str, ref: Any = None) -> None:
        """Close ``prompt`` with choice ``key``: its effects, then the ``outcome`` op."""
        u.p.prompts.remove(prompt)
        u.ops.append(wire.PromptClosed(id=prompt.id, choice=key, by=by))
        choice = event.choice(key)
        assert choice is not None  # noqa: S101 - content validation guarantees the default
        u.begin()
        self.rules.apply(u, choice.effects, prompt.bind)
        if choice.outcomes:
            self.rules.apply(u, self.rules.pick(choice.outcomes), prompt.bind)
        u.outcome("prompt", prompt.id, self.rules.render(event.title, u.p, prompt.bind) if self.views else "", ref)

    def _act(self, u: Unit, cmd: wire.Act, tick: int) -> None:
        p = u.p
        action = self.content.actions.get(cmd.action)
        if action is None:
            return self._error(u, "not_found", f"there is no action {cmd.action!r}", cmd.ref)
        if not p.alive:
            return self._error(u, "not_allowed", "your life has ended; send new_life to start again", cmd.ref)
        r = self.rules
        reason = "" if r.allows(action.when, p) else r.why_not(action.when, p)  # the reason only when refused
        if reason:
            return self._error(u, "not_allowed", f"cannot {action.label.lower()} now: {reason}", cmd.ref)
        target: Npc | None = None
        if action.target:
            target = p.npc(cmd.npc) if cmd.npc is not None else None
            if cmd.npc is None:
                roles = ", ".join(role.replace("_", " ") for role in action.roles)
                return self._error(u, "not_allowed", f"choose who to {action.label.lower()}: your {roles}", cmd.ref)
            if target is None or not target.alive:
                return self._error(u, "not_found", f"you know nobody with id {cmd.npc} in your life", cmd.ref)
            if target.role not in action.roles:
                role = target.role.replace("_", " ")
                return self._error(u, "not_allowed", f"you cannot {action.label.lower()} your {role}", cmd.ref)
        until = p.cooldowns.get(action.id, 0)
        if until > p.age_days:
            wait = until - p.age_days
            return self._error(
                u, "not_allowed", f"you can {action.label.lower()} again in {wait} day{'s' * (wait != 1)}", cmd.ref
            )
        # A free action is never refused for money; a child's parents pay.
        payer = r.who_pays(p, action.cost) if action.cost else ""
        if action.cost and not payer:
            return self._error(u, "not_allowed", "you can't afford that and nobody will pay for you", cmd.ref)
        if payer == "self" and action.cost > p.money:
            return self._error(u, "not_allowed", f"{action.label} costs {action.cost:,}; you have {p.money:,}", cmd.ref)
        u.ops.append(wire.Ack(ref=cmd.ref))
        u.begin()
        if payer:
            r.pay(u, action.cost, payer)
        if action.cooldown_days:
            p.cooldowns[action.id] = p.age_days + action.cooldown_days
            u.set("cooldowns", self._cooldowns(p))
        bind = {"npc": target.name, "npc_role": target.role, "npc_id": str(target.id)} if target else None
        r.apply(u, action.effects, bind, target)
        if action.outcomes:
            r.apply(u, r.pick(action.outcomes), bind, target)
        u.outcome("action", action.id, action.label, cmd.ref)
        u.refresh_actions = True
        self.changed.add(p.id)

    def _cooldowns(self, p: Player) -> dict[str, int]:
        """Action id -> the age in days from which it may be used again, for those still cooling down."""
        actions, day = self.content.actions, p.age_days
        return {k: v for k, v in p.cooldowns.items() if v > day and k in actions}

    def _speed(self, u: Unit, cmd: wire.Speed) -> None:
        p = u.p
        if not p.alive:
            return self._error(u, "not_allowed", "your life has ended; send new_life to start again", cmd.ref)
        u.ops.append(wire.Ack(ref=cmd.ref))
        p.speed = cmd.x
        u.set("speed", cmd.x)
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
        if p.id in self.muted:
            return self._error(u, "not_allowed", "an operator turned off talking to people for you", cmd.ref)
        job = SayJob.of(p, npc, cmd.text, cmd.ref, year_days=self.year_days, stage=self.rules.stage(p.age_days))
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
        self._stale(pid)
        u = Unit(p, self.ops_for(pid))
        # The reply answers the player's message even if their life ended
        # meanwhile, but a life that ended (or was replaced) no longer changes.
        npc = p.npc(npc_id) if p.life == life and p.alive else None
        u.ops.append(wire.NpcSay(npc=npc_id, text=text, ref=ref))
        if npc is not None:
            remember(npc, Turn(who="npc", text=text))
            closer = min(STAT_MAX, npc.closeness + self.content.world.talk_closeness)
            if closer != npc.closeness:
                # Talking brings people closer; the client sees it like any NPC change.
                npc.closeness = closer
                u.ops.append(wire.NpcOp(self.rules.npc_view(p, npc)))
            self.changed.add(pid)

    def _new_life(self, u: Unit, cmd: wire.NewLife, tick: int) -> None:
        p = u.p
        if p.alive:
            return self._error(u, "not_allowed", "your life is still going; new_life is for after you die", cmd.ref)
        # The chosen name, else the last life's first name; a new family either way.
        name, first_only = (cmd.name, False) if cmd.name else (p.first_name, True)
        fresh = self.rules.new_life(p.id, name, p.life + 1, avoid_surname=p.surname, first_only=first_only)
        fresh.lives = p.lives
        # Mutate in place: the directory and the saver hold this same object.
        for field in attrs.fields(Player):
            setattr(p, field.name, getattr(fresh, field.name))
        self.saying.discard(p.id)
        self._stale(p.id)
        self._set_actions(p)
        u.ops.append(wire.Welcome(player=p.id, snapshot=self.snapshot(p, tick), ref=cmd.ref))
        self.changed.add(p.id)

    # ----------------------------------------------------------------- days

    def advance(self, tick: int) -> None:
        """Run one step for every online player whose boundary is ``tick``:
        :meth:`_step_days` game days, quiet ones in bulk, busy ones in full
        (:meth:`_step`).

        A wholly quiet step (its last day before the player's next busy day,
        kept in the player's :class:`_Track` with what the steps until then
        read) is the common case, run here inline: only money, age and the
        death roll move. Without a death or money crossing zero (a flag and a
        warning) its one ``state`` op is built here without a Unit, the same
        op a Unit would close with: the stage cannot change (a stage start is
        a busy day) and no stat moves (so no warning)."""
        self._advanced_through = tick
        self._fast_forward_left = self.fast_forward_budget
        players = self.players
        bucket = self._buckets[tick % self.day_ticks]
        if not self.skip_quiet:
            for pid in bucket:
                p = players[pid]
                if p.alive:
                    self._step(p, tick, self.rules.stage(p.age_days))
            return
        rules = self.rules
        pay_delta = rules.pay_delta
        yd = self.year_days
        tracks = self._tracks
        renew = self._renew
        outbox = self.outbox
        progressed = self.progressed
        random = self.rng.random
        state = wire.State
        quiet_days = 0
        for pid in bucket:
            p = players[pid]
            if not p.alive:
                continue
            first = p.age_days
            track = tracks[pid]
            if track.busy <= first:
                renew(track, p)
            stage = track.stage
            if p.speed == 1 or p.prompts:
                days = pace = track.days  # one while a prompt waits: its timeout runs in real seconds
            else:
                days = self._step_days(p, stage)
                pace = rules.pacing.days(stage, p.speed)
            end = first + days
            if end >= track.busy:
                self._step(p, tick, stage, end)
                continue
            survive = track.survive
            if days == track.days and survive >= 0.0:
                # death_day, with its power worked out once for the span.
                alive = 1.0 - random()
                dies_on = None if alive <= survive else death_after(alive, track.chance, days)
            else:
                dies_on = death_day(track.chance, days, self.rng)
            if dies_on is None:
                salary = track.salary
                if salary is not None:
                    # Rules.pay_delta of a job, inlined with the span's terms.
                    since, cost = track.since, track.cost
                    delta = (salary * (end - since)) // yd - (salary * (first - since)) // yd
                    if cost:
                        delta -= (cost * end) // yd - (cost * first) // yd
                else:
                    delta = pay_delta(p, first, end) if track.cost and p.money > 0 else 0
                money = p.money + delta
                if (p.money < 0) == (money < 0):
                    p.age_days = end
                    quiet_days += days
                    if delta:
                        p.money = money
                        if money < p.low_money:
                            p.low_money = money
                        changes: dict[str, Any] = {"money": money, "age_days": end}
                    else:
                        changes = {"age_days": end}
                    if track.pace_sent != pace:
                        track.pace_sent = pace
                        changes["pace"] = pace
                    ops = outbox.get(pid)
                    if ops is None:
                        outbox[pid] = [state(changes)]
                    else:
                        ops.append(state(changes))
                    progressed.add(pid)
                    continue
            u = Unit(p, self.ops_for(pid))
            self._quiet_span(u, days, dies_on)
            self._end_step(u, stage)
        self._counters.player_days += quiet_days

    def _renew(self, track: _Track, p: Player) -> None:
        """Start ``track``'s span of quiet steps of ``p`` from its age now."""
        rules = self.rules
        stage = rules.stage(p.age_days)
        days = 1 if p.prompts else self._pace1[stage]
        track.renew(rules.pacing.next_busy_day(p), stage, days, rules.daily_death_chance(p), rules.pay_terms(p, stage))

    def quiet_steps(self, pid: int, most: int) -> int:
        """Run up to ``most`` wholly quiet steps of online player ``pid`` at
        once, for a caller that steps players on their own (the simulation),
        never the tick loop: what ``most`` calls of :meth:`advance` would do
        while each step ends before the player's next busy day, with one
        death roll for the whole span (the same law as one roll a step, see
        ``death_day``), the span's money in one go and one ``state`` op.

        Stops before a step that is not wholly quiet or would take money
        across zero (those need :meth:`advance`); the last step run is the
        one death came in, if it came (its ops as :meth:`advance` makes
        them). At x1 only (fast-forward is budgeted per tick): 0 otherwise.
        Returns the number of steps run."""
        p = self.players[pid]
        if most < 1 or not p.alive or p.speed != 1 or not self.skip_quiet:
            return 0
        rules = self.rules
        first = p.age_days
        track = self._tracks[pid]
        if track.busy <= first:
            self._renew(track, p)
        stage, pace, busy = track.stage, track.days, track.busy
        steps = min(most, (busy - 1 - first) // pace)
        if steps < 1:
            return 0
        steps, money, low = self._quiet_money(p, first, pace, steps)
        if steps < 1:
            return 0
        dies_on = death_day(rules.daily_death_chance(p), steps * pace, self.rng)
        quiet = steps
        if dies_on is not None:
            # Death comes in step ``steps`` (run below as advance runs it); the ones before are quiet.
            steps = (dies_on - 1) // pace + 1
            quiet, money, low = self._quiet_money(p, first, pace, steps - 1)
        if quiet:
            end = first + quiet * pace
            self._counters.player_days += quiet * pace
            changes: dict[str, Any] = {"age_days": end}
            if low < p.low_money:
                p.low_money = low
            if money != p.money:
                p.money = money
                changes["money"] = money
            p.age_days = end
            if track.pace_sent != pace:
                track.pace_sent = pace
                changes["pace"] = pace
            self.ops_for(pid).append(wire.State(changes))
            self.progressed.add(pid)
        if dies_on is not None:
            u = Unit(p, self.ops_for(pid))
            self._quiet_span(u, pace, dies_on - quiet * pace)
            self._end_step(u, stage)
        return steps

    def _quiet_money(self, p: Player, first: int, pace: int, steps: int) -> tuple[int, int, int]:
        """Of ``steps`` quiet steps of ``pace`` days from day ``first``: how
        many run before money would cross zero, the money after them, and
        the lowest money at the end of one of them (what ``low_money``
        becomes). The money of days ``first + 1 .. d`` is ``pay_delta(p,
        first, d)`` however the days are split (the daily amounts telescope)."""
        pay_delta = self.rules.pay_delta
        money = p.money
        low = p.low_money
        end = money + pay_delta(p, first, first + steps * pace)
        if p.job is None and (money < 0 or end >= 0):
            # Without income, money only goes down (costs paid from savings,
            # stopping at zero or just below it) or stays: the end is the lowest.
            return steps, end, min(low, end)
        if p.job is not None and money >= 4 and end >= 4 and low <= 0:
            # With an income, money at a step's end is within 2 of the straight
            # line from start to end (two rounded shares): it stays above zero.
            return steps, end, low
        negative = money < 0
        last = money
        for i in range(1, steps + 1):
            m = money + pay_delta(p, first, first + i * pace)
            if (m < 0) != negative:
                return i - 1, last, low
            last = m
            if m < low:
                low = m
        return steps, last, low

    def _step_days(self, p: Player, stage: str) -> int:
        """Days this step runs: :meth:`pace_of`, at x1 when the tick's
        fast-forward budget cannot pay for the extra days."""
        if p.prompts:
            return 1
        days = self.rules.pacing.days
        pace = days(stage, p.speed)
        if p.speed == 1:
            return pace
        base = days(stage, 1)
        extra = pace - base
        c = self._counters
        if extra > self._fast_forward_left:
            c.fast_forward_refused += 1
            return base
        self._fast_forward_left -= extra
        c.fast_forward_days += extra
        return pace

    def _step(self, p: Player, tick: int, stage: str, end: int | None = None) -> None:
        """One step of ``p`` begun at ``stage``, to age ``end`` (default:
        :meth:`_step_days` on), run day by day where busy, stopping early when
        a prompt opens or the life ends. One unit, so one ``state`` op for the
        whole step."""
        if end is None:
            end = p.age_days + self._step_days(p, stage)
        u = Unit(p, self.ops_for(p.id))
        busy_day = self.rules.pacing.next_busy_day if self.skip_quiet else None
        while p.alive and p.age_days < end:
            if busy_day is not None:
                quiet = min(end, busy_day(p) - 1) - p.age_days
                if quiet > 0:
                    self._quiet(u, quiet)
                    if not p.alive or p.age_days >= end:
                        break
            self._day(u, tick)
            if p.prompts:
                break  # the rest of the step waits for the player
        self._end_step(u, stage)

    def _end_step(self, u: Unit, stage: str) -> None:
        """The end of a step begun at ``stage``: age, stage and pace in the state op."""
        p = u.p
        rules = self.rules
        u.set("age_days", p.age_days)
        now = rules.stage(p.age_days)
        if now != stage:
            u.set("stage", now)
        if p.alive:
            self._sync_pace(u, 1 if p.prompts else rules.pacing.days(now, p.speed))
        else:
            self._counters.deaths += 1
            self.saying.discard(p.id)
        self._finish(u)
        self.changed.add(p.id)

    def _pay(self, u: Unit, first: int, last: int) -> None:
        """Salary and living costs of the days ``first + 1 .. last`` (the
        player's age is ``last``)."""
        delta = self.rules.pay_delta(u.p, first, last)
        if delta:
            self.rules.change_money(u, delta)

    def _quiet(self, u: Unit, days: int) -> None:
        """Run ``days`` quiet days (see Pacing.next_busy_day) in one go: the
        money of the span and one death roll with the span's chance."""
        dies_on = death_day(self.rules.daily_death_chance(u.p), days, self.rng)
        self._quiet_span(u, days, dies_on)

    def _quiet_span(self, u: Unit, days: int, dies_on: int | None) -> None:
        """Quiet days whose death roll was made: death (if any) on day ``dies_on`` of them."""
        p = u.p
        first = p.age_days
        last = first + (dies_on or days)
        p.age_days = last
        self._counters.player_days += last - first
        self._pay(u, first, last)
        if dies_on is not None:
            self.rules.die(u, self.rules.death_cause(p))

    def _day(self, u: Unit, tick: int) -> None:
        """Run one day in full."""
        p = u.p
        r = self.rules
        c = self._counters
        c.player_days += 1
        c.busy_days += 1
        p.age_days += 1
        day = p.age_days
        self._pay(u, day - 1, day)
        if day % self.year_days == 0:
            r.yearly(u)
            p.cooldowns = {k: v for k, v in p.cooldowns.items() if v > day}
        if day in r.pacing.action_days:
            u.refresh_actions = True  # an action's age bound: the list may change
        r.education_day(u)
        if p.prompts:
            for prompt in [pr for pr in p.prompts if pr.expires_day <= day]:
                event = self.content.events[prompt.event]
                c.prompts_expired += 1
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
            p.next_check = day + r.pacing.check_gap(r.stage(day), self.rng)
        if p.alive and (p.stats.health <= 0 or self.rng.random() < r.daily_death_chance(p)):
            r.die(u, r.death_cause(p))

    def _check(self, u: Unit, tick: int) -> None:
        p = u.p
        c = self._counters
        c.checks += 1
        if len(p.prompts) >= LIMITS.prompts:
            return
        day = p.age_days
        cooldowns = p.cooldowns
        pool: list[Event] = []
        weights: list[float] = []
        evaluations = 0
        for items in self.registry.item_lists(p, day // self.year_days):
            evaluations += len(items)
            for event, ident, weight, checks in items:
                if cooldowns.get(ident, 0) > day:
                    continue
                # Rules.allows, inlined: this is the hottest loop of a busy day.
                for check in checks:
                    if not check(p):
                        break
                else:
                    pool.append(event)
                    weights.append(weight)
        c.evaluations += evaluations
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
            u.begin()
            self.rules.happen(u, event, bind)
            u.outcome("event", event.id, self.rules.render(event.title, p, bind) if self.views else "")
            return
        timeout = event.timeout_days or self.content.world.timeout_days
        prompt = Prompt(
            id=p.next_prompt_id, event=event.id, opened_day=p.age_days, expires_day=p.age_days + timeout, bind=bind
        )
        p.next_prompt_id += 1
        p.prompts.append(prompt)
        self._counters.prompts_opened += 1
        if self.views:
            u.ops.append(self._prompt_op(p, prompt, tick))


def _year_span(year: int, year_days: int) -> tuple[int, int | None]:
    """The first and last age in days of the registry's bucket ``year``
    (None: no last, the bucket of every age from MAX_AGE_YEARS on)."""
    return year * year_days, (year + 1) * year_days - 1 if year < MAX_AGE_YEARS else None


def _action_info(action: Action) -> dict[str, Any]:
    """What a client shows on an action's button (``welcome.snapshot.action_info``)."""
    info: dict[str, Any] = {
        "label": action.label,
        "group": action.group,
        "cost": action.cost,
        "cooldown_days": action.cooldown_days,
        "target": action.target or None,
    }
    if action.target:
        info["roles"] = list(action.roles)
    return info
