"""The cost governor: per-player daily calls and a global daily spend,
checked before every upstream call.

Before each attempt the governor counts the call against the player and
*reserves* its worst-case cost (the prompt's token bound and ``max_tokens``,
see :func:`~baolife.ai.prompt.prompt_token_bound`). A call is refused when
``spent + reserved + worst`` would pass the day's budget, so the budget holds
however many calls are in flight. When the call ends the reservation is
replaced by what it cost (*settled*):

- the usage the upstream reported (:meth:`CostGovernor.settle`),
- nothing, when the call surely cost nothing: the connection failed, or the
  upstream answered 429, 5xx or another 4xx, which it does not bill
  (:meth:`~CostGovernor.settle_unbilled`; it still counts as a player's call),
- the worst case, when we cannot know: a timeout or cancel after the request
  was sent, a reply without usage (:meth:`~CostGovernor.settle_worst`).

Two modes, one rule:

**Local** (one worker, SQLite): the counters live in memory and the hot path
never awaits the database (:meth:`CostGovernor.admit`). Usage is loaded for
today (UTC) at start (:meth:`~CostGovernor.run`) and written behind every
``interval`` as one row per (day, player) with
:meth:`~baolife.db.store.Store.add_ai_usage`; a failed write keeps the rows
and retries, and the rows left are written on shutdown
(:meth:`~CostGovernor.close`), so a restart keeps the budgets. Until today's
usage is loaded no call is admitted. Rows waiting to be written are bounded
by ``pending_limit``: past it no call that would add a row is admitted,
rather than losing usage.

**Shared** (several workers on one MySQL/MariaDB, ``ledger`` given): every
reservation is made in the database, atomically against every other worker
(:meth:`~baolife.db.store.Store.ai_reserve`: one conditional UPDATE of the
player's row joined to the day's, so the cluster cannot pass the budget
however many workers spend at once). It runs in the AI path
(:meth:`CostGovernor.reserve`, awaited by the job's flight), never in the
tick. Settlements are sent by the governor's
own task as soon as they come, batched (:meth:`~baolife.db.store.Store.ai_settle`).
Whatever cannot be known errs towards spending less:

- a reservation that fails or is cut off (database down or slow) refuses the
  call (``budget_unknown``); if it was applied after all, it stays reserved,
  that is charged at its worst case;
- a settlement that fails is not retried (a retry after a lost answer would
  release twice): its calls stay charged at their worst case;
- a worker that dies with calls in flight leaves their reservations charged
  (the upstream may have billed them).

In both modes an operator may set the day's budget live
(:meth:`CostGovernor.set_day_budget`): it is stored for the day, so every
worker obeys it and a restart keeps it; the next UTC day starts again from
``BAOLIFE_AI_DAILY_BUDGET``.

One piece: both modes keep one rule (reserve the worst case, settle what is
known) over the same counters, and a call is admitted, reserved and settled
through one object; split by mode, the rule would be written twice.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Awaitable, Callable

import attrs
import structlog
import trio

from ..db.store import Store, StoreError
from .reply import FallbackReason

__all__ = ["BudgetStatistics", "CostGovernor", "DayUsage", "Grant", "utc_day"]

log = structlog.get_logger("baolife.ai.budget")

REFRESH_EVERY = 30.0
LOAD_RETRY = 5.0
EXIT_FLUSH_SECONDS = 5.0
# Shared mode: a reservation may take this long before the call is refused
# (it is awaited by the player's job, and the database is in trouble).
RESERVE_SECONDS = 2.0
# Shared mode: the day's totals are read this often for the metrics.
SHARED_REFRESH_EVERY = 5.0
# The largest day's budget an operator may set (as the setting's bound).
MAX_DAY_BUDGET = 1e9


def utc_day() -> str:
    """Today in UTC as ``YYYY-MM-DD``."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")


@attrs.frozen
class Grant:
    """One admitted call: whose, which day, and its reserved worst-case cost."""

    player: int
    day: str
    worst: float


@attrs.frozen
class BudgetStatistics:
    """The governor's counts. In shared mode ``spent``, ``reserved`` and
    ``calls`` are the cluster's (as last read, at most
    :data:`SHARED_REFRESH_EVERY` old), ``pending_rows`` the settlements not
    sent yet; ``budget`` is the day's budget in force."""

    day: str
    loaded: bool
    spent: float
    reserved: float
    budget: float
    calls: int
    players: int
    pending_rows: int
    pending_limit: int
    spent_total: float
    prompt_tokens: int
    completion_tokens: int
    shared: bool = False
    reserve_failures: int = 0
    settle_failures: int = 0


@attrs.frozen
class DayUsage:
    """Today's usage for operators (:meth:`CostGovernor.usage_today`): calls
    and spend over every worker in shared mode, the budget in force and what
    is left of it (reservations of calls in flight count as spent)."""

    day: str
    calls: int
    spent: float
    reserved: float
    budget: float
    budget_left: float
    budget_set: bool  # True when an operator set today's budget


class CostGovernor:
    """See the module docstring. Prices are per 1K tokens; ``today`` returns
    the current UTC day (injected by tests); ``ledger`` (a store shared by
    every worker) selects the shared mode."""

    def __init__(
        self,
        *,
        player_daily_calls: int,
        daily_budget: float,
        price_in: float,
        price_out: float,
        pending_limit: int,
        today: Callable[[], str] = utc_day,
        ledger: Store | None = None,
    ) -> None:
        self.player_daily_calls = player_daily_calls
        self.daily_budget = daily_budget  # the setting; day_budget overrides it for one day
        self.day_budget: float | None = None
        self.price_in = price_in
        self.price_out = price_out
        self.pending_limit = pending_limit
        self.today = today
        self.day = today()
        self.ledger = ledger
        self.store: Store | None = ledger
        self.loaded = False
        self.ready = trio.Event()  # set once today's usage is loaded
        self.load_retry = LOAD_RETRY
        self.reserve_seconds = RESERVE_SECONDS
        self.calls: dict[int, int] = {}
        self.spent = 0.0
        self.reserved = 0.0
        # (day, player) -> [calls, cost] not yet in the store (local mode), or
        # [reserved, cost] not yet settled in it (shared mode).
        self.pending: dict[tuple[str, int], list[float]] = {}
        self.spent_total = 0.0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        # Shared mode: the cluster's calls today (as last read), and failures.
        self.day_calls = 0
        self.reserve_failures = 0
        self.settle_failures = 0
        self._settle_wanted = trio.Event()

    @property
    def shared(self) -> bool:
        """True when reservations are made in a store shared by every worker."""
        return self.ledger is not None

    def budget(self) -> float:
        """Today's budget in force: the one set for the day, else the setting."""
        return self.daily_budget if self.day_budget is None else self.day_budget

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Price of a call's tokens."""
        return prompt_tokens / 1000 * self.price_in + completion_tokens / 1000 * self.price_out

    def statistics(self) -> BudgetStatistics:
        return BudgetStatistics(
            day=self.day,
            loaded=self.loaded,
            spent=self.spent,
            reserved=self.reserved,
            budget=self.budget(),
            calls=self.day_calls if self.shared else sum(self.calls.values()),
            players=len(self.calls),
            pending_rows=len(self.pending),
            pending_limit=self.pending_limit,
            spent_total=self.spent_total,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            shared=self.shared,
            reserve_failures=self.reserve_failures,
            settle_failures=self.settle_failures,
        )

    # ----------------------------------------------------------------- admission

    async def reserve(self, player: int, prompt_bound: int, max_tokens: int) -> Grant | FallbackReason:
        """A :class:`Grant` for one upstream call by ``player``, or the
        fallback reason it may not be made. Local mode: :meth:`admit` (no
        await). Shared mode: the reservation is made in the store, shielded
        from the caller's cancellation (so the governor knows whether it was
        made) and bounded by :attr:`reserve_seconds` and the caller's deadline."""
        if self.ledger is None:
            return self.admit(player, prompt_bound, max_tokens)
        self._roll()
        day = self.day
        if self.player_daily_calls < 1:
            return FallbackReason.PLAYER_BUDGET
        worst = self.cost(prompt_bound, max_tokens)
        until = min(trio.current_time() + self.reserve_seconds, trio.current_effective_deadline())
        verdict: str | None = "unknown"
        try:
            with trio.CancelScope(shield=True), trio.move_on_at(until):
                verdict = await self.ledger.ai_reserve(day, player, worst, self.player_daily_calls, self.daily_budget)
        except StoreError as exc:
            log.warning("ai_reserve_failed", error=repr(exc))
            verdict = "error"
        if verdict == "player":
            return FallbackReason.PLAYER_BUDGET
        if verdict == "budget":
            return FallbackReason.BUDGET
        if verdict is not None:
            # Failed or cut off: refused; if the store applied it after all,
            # it stays reserved (charged at its worst case).
            self.reserve_failures += 1
            return FallbackReason.BUDGET_UNKNOWN
        self.reserved += worst
        self.calls[player] = self.calls.get(player, 0) + 1
        return Grant(player=player, day=day, worst=worst)

    def admit(self, player: int, prompt_bound: int, max_tokens: int) -> Grant | FallbackReason:
        """Local mode: a :class:`Grant` for one upstream call by ``player``,
        or the fallback reason it may not be made. Never awaits."""
        self._roll()
        if not self.loaded:
            return FallbackReason.BUDGET_UNKNOWN
        day = self.day
        if len(self.pending) >= self.pending_limit and (day, player) not in self.pending:
            return FallbackReason.USAGE_BACKLOG
        if self.calls.get(player, 0) >= self.player_daily_calls:
            return FallbackReason.PLAYER_BUDGET
        worst = self.cost(prompt_bound, max_tokens)
        if self.spent + self.reserved + worst > self.budget():
            return FallbackReason.BUDGET
        self.calls[player] = self.calls.get(player, 0) + 1
        self.reserved += worst
        row = self.pending.setdefault((day, player), [0, 0.0])
        row[0] += 1
        return Grant(player=player, day=day, worst=worst)

    # ----------------------------------------------------------------- settlement

    def settle(self, grant: Grant, prompt_tokens: int | None, completion_tokens: int | None) -> float:
        """The call answered with this usage (None: not reported, so the
        worst case is charged). Returns the cost charged."""
        if prompt_tokens is None or completion_tokens is None:
            return self.settle_worst(grant)
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        return self._charge(grant, self.cost(prompt_tokens, completion_tokens))

    def settle_unbilled(self, grant: Grant) -> None:
        """The call surely cost nothing (it still counts as a call)."""
        self._charge(grant, 0.0)

    def settle_worst(self, grant: Grant) -> float:
        """The call may have cost up to its reservation: charge all of it."""
        return self._charge(grant, grant.worst)

    def _charge(self, grant: Grant, cost: float) -> float:
        self.reserved = max(0.0, self.reserved - grant.worst)
        if grant.day == self.day:
            self.spent += cost
        self.spent_total += cost
        row = self.pending.setdefault((grant.day, grant.player), [0, 0.0])
        if self.shared:
            row[0] += grant.worst  # released when the settlement is sent
            self._settle_wanted.set()
        row[1] += cost
        return cost

    def _roll(self) -> None:
        day = self.today()
        if day != self.day:
            # A new UTC day: fresh budgets, the setting's. Old-day rows still wait in pending.
            self.day = day
            self.calls = {}
            self.spent = 0.0
            self.day_budget = None
            self.day_calls = 0

    # ----------------------------------------------------------------- operators

    async def set_day_budget(self, amount: float | None) -> None:
        """Set today's budget for every worker (None: back to the setting,
        ``BAOLIFE_AI_DAILY_BUDGET``). Stored for the day, so every worker on
        the database obeys it from its next call and a restart keeps it;
        lowering it below what is spent refuses every call until the next
        UTC day. Raises ValueError for a bad amount (nothing changes) and
        :class:`~baolife.db.store.StoreError` when it could not be stored
        (nothing changes either)."""
        if amount is not None and not (
            isinstance(amount, int | float)
            and not isinstance(amount, bool)
            and math.isfinite(amount)
            and 0 <= amount <= MAX_DAY_BUDGET
        ):
            raise ValueError(f"a day's budget is a number from 0 to {MAX_DAY_BUDGET:g}, not {amount!r}")
        self._roll()
        day = self.day
        if self.store is not None:
            await self.store.set_ai_day_budget(day, None if amount is None else float(amount))
        if day == self.day:
            self.day_budget = None if amount is None else float(amount)
        log.info("ai_day_budget_set", day=day, budget=amount)

    async def usage_today(self) -> DayUsage:
        """Today's calls and spend (the cluster's in shared mode, read now:
        raises :class:`~baolife.db.store.StoreError` when it cannot be; this
        worker's in local mode) and what is left of the budget."""
        self._roll()
        day = self.day
        if self.shared and self.store is not None:
            await self._refresh(self.store)
        budget = self.budget()
        calls = self.day_calls if self.shared else sum(self.calls.values())
        return DayUsage(
            day=day,
            calls=calls,
            spent=self.spent,
            reserved=self.reserved,
            budget=budget,
            budget_left=max(0.0, budget - self.spent - self.reserved),
            budget_set=self.day_budget is not None,
        )

    # ----------------------------------------------------------------- the store

    def merge(self, day: str, stored_calls: dict[int, int], stored_cost: float) -> None:
        """Local mode: take the day's usage as stored, keeping what this
        process has not written yet on top of it."""
        if day != self.day:
            return
        unwritten_calls: dict[int, int] = {}
        unwritten_cost = 0.0
        for (row_day, pid), (calls, cost) in self.pending.items():
            if row_day == day:
                unwritten_calls[pid] = int(calls)
                unwritten_cost += cost
        for pid, calls in stored_calls.items():
            total = calls + unwritten_calls.get(pid, 0)
            if total > self.calls.get(pid, 0):
                self.calls[pid] = total
        self.spent = max(self.spent, stored_cost + unwritten_cost)
        self.loaded = True
        self.ready.set()

    async def load(self, store: Store) -> None:
        """Local mode: read today's usage and budget from the store and merge them."""
        self._roll()
        day = self.day
        calls, cost = await store.ai_usage(day)
        stored = await store.ai_day(day)
        if day == self.day:
            self.day_budget = stored.budget
        self.merge(day, calls, cost)

    async def _refresh(self, store: Store) -> None:
        """Shared mode: read the day's totals over every worker."""
        self._roll()
        day = self.day
        stored = await store.ai_day(day)
        if day == self.day:
            self.spent, self.reserved = stored.spent, stored.reserved
            self.day_calls, self.day_budget = stored.calls, stored.budget
            self.loaded = True
            self.ready.set()

    async def flush(self, store: Store) -> int:
        """Local mode: write the pending rows; returns how many are left
        (after a failure they stay pending and are retried)."""
        rows, self.pending = self.pending, {}
        items = list(rows.items())
        try:
            for i, ((day, pid), (calls, cost)) in enumerate(items):
                await store.add_ai_usage(day, pid, int(calls), cost)
                items[i] = ((day, pid), [0, 0.0])
        finally:
            # Rows not written (an error, or a cancel) go back, merged with
            # what was counted meanwhile: nothing is lost.
            for key, (calls, cost) in items:
                if calls or cost:
                    row = self.pending.setdefault(key, [0, 0.0])
                    row[0] += calls
                    row[1] += cost
        return len(self.pending)

    async def send_settlements(self, store: Store) -> None:
        """Shared mode: send what the calls that ended cost, one batch per
        day. A batch that fails is dropped, not retried (see the module
        docstring): its calls stay charged at their worst case."""
        rows, self.pending = self.pending, {}
        days: dict[str, tuple[float, list[tuple[int, float]]]] = {}
        for (day, pid), (released, cost) in rows.items():
            total, costs = days.get(day, (0.0, []))
            costs.append((pid, cost))
            days[day] = (total + released, costs)
        for day, (released, costs) in sorted(days.items()):
            try:
                await store.ai_settle(day, released, costs)
            except StoreError as exc:
                self.settle_failures += 1
                log.warning("ai_settle_failed", day=day, calls_charged_worst=len(costs), error=repr(exc))

    async def run(
        self, store: Store, *, interval: float, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Local mode: load today's usage (one try before ``started``, then
        retries), then write behind every ``interval`` and refresh, until
        cancelled. Shared mode: send settlements as they come and read the
        day's totals every :data:`SHARED_REFRESH_EVERY`. The owner calls
        :meth:`close` once no call can settle any more."""
        self.store = store
        if self.shared:
            await self._run_shared(store, task_status)
            return
        with trio.move_on_after(self.load_retry):
            await self._try(self.load, store)
        task_status.started()
        while not self.loaded:
            await trio.sleep(self.load_retry)
            await self._try(self.load, store)
        last_refresh = trio.current_time()
        while True:
            await trio.sleep(interval)
            if self.pending and not await self._try(self.flush, store):
                continue
            if trio.current_time() - last_refresh >= REFRESH_EVERY:
                last_refresh = trio.current_time()
                await self._try(self.load, store)

    async def _run_shared(self, store: Store, task_status: trio.TaskStatus[None]) -> None:
        with trio.move_on_after(self.load_retry):
            await self._try(self._refresh, store)
        task_status.started()
        next_refresh = trio.current_time() + SHARED_REFRESH_EVERY
        while True:
            with trio.move_on_at(next_refresh):
                await self._settle_wanted.wait()
            self._settle_wanted = trio.Event()
            if self.pending:
                # Shielded (the store bounds each call): a send cut off by a
                # shutdown would be lost, not retried by close().
                with trio.CancelScope(shield=True):
                    await self.send_settlements(store)
            if trio.current_time() >= next_refresh:
                next_refresh = trio.current_time() + SHARED_REFRESH_EVERY
                await self._try(self._refresh, store)

    async def close(self, store: Store) -> None:
        """Write (local) or send (shared) what is pending, within
        :data:`EXIT_FLUSH_SECONDS` even when cancelled; log what could not be."""
        with trio.CancelScope(shield=True), trio.move_on_after(EXIT_FLUSH_SECONDS):
            if self.pending:
                if self.shared:
                    await self.send_settlements(store)
                else:
                    await self._try(self.flush, store)
        if self.pending:
            log.error("ai_usage_unsaved", rows=len(self.pending))

    async def _try(self, step: Callable[[Store], Awaitable[object]], store: Store) -> bool:
        try:
            await step(store)
        except Exception as exc:  # the store's failure must not stop the game: retried next time
            log.warning("ai_usage_store_failed", step=getattr(step, "__name__", "?"), error=repr(exc))
            return False
        return True
