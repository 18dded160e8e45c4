"""The cost governor: per-player daily calls and a global daily spend, checked
before every upstream call, kept in memory, written behind to the store.

Before each attempt :meth:`CostGovernor.admit` counts the call against the
player and *reserves* its worst-case cost (the prompt's token bound and
``max_tokens``, see :func:`~baolife.ai.prompt.prompt_token_bound`). A call is
refused when ``spent + reserved + worst`` would pass the daily budget, so the
budget holds however many calls are in flight. When the call ends the
reservation is replaced by what it cost:

- the usage the upstream reported (:meth:`settle`),
- nothing, when the call surely cost nothing (connect failure, 429, 5xx,
  4xx: :meth:`settle_unbilled`),
- the worst case, when we cannot know (a timeout or cancel after the
  request was sent, a reply without usage: :meth:`settle_worst`).

The hot path never awaits the database. Usage is loaded for today (UTC) at
start (:meth:`run`) and written behind every ``interval`` as one row per
(day, player) with :meth:`~baolife.db.store.Store.add_ai_usage`; a failed
write keeps the rows and retries, and the rows left are written on
shutdown (:meth:`close`), so a restart keeps the budgets. Until today's usage is loaded
(store unreachable at start) no call is admitted. Rows waiting to be
written are bounded by ``pending_limit``: past it no call that would add a
row is admitted, rather than losing usage.

Several processes share one database: after each write the governor reads
the day's totals back (at most every :data:`REFRESH_EVERY` seconds) and
takes the larger of its own and the stored counts, so each process sees
the others' spend within that time.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable

import attrs
import structlog
import trio

from ..db.store import Store
from .reply import FallbackReason

__all__ = ["BudgetStatistics", "CostGovernor", "Grant", "utc_day"]

log = structlog.get_logger("baolife.ai.budget")

REFRESH_EVERY = 30.0
LOAD_RETRY = 5.0
EXIT_FLUSH_SECONDS = 5.0


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


class CostGovernor:
    """See the module docstring. Prices are per 1K tokens; ``today`` returns
    the current UTC day (injected by tests)."""

    def __init__(
        self,
        *,
        player_daily_calls: int,
        daily_budget: float,
        price_in: float,
        price_out: float,
        pending_limit: int,
        today: Callable[[], str] = utc_day,
    ) -> None:
        self.player_daily_calls = player_daily_calls
        self.daily_budget = daily_budget
        self.price_in = price_in
        self.price_out = price_out
        self.pending_limit = pending_limit
        self.today = today
        self.day = today()
        self.loaded = False
        self.ready = trio.Event()  # set once today's usage is loaded
        self.load_retry = LOAD_RETRY
        self.calls: dict[int, int] = {}
        self.spent = 0.0
        self.reserved = 0.0
        # (day, player) -> [calls, cost] not yet in the store.
        self.pending: dict[tuple[str, int], list[float]] = {}
        self.spent_total = 0.0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Price of a call's tokens."""
        return prompt_tokens / 1000 * self.price_in + completion_tokens / 1000 * self.price_out

    def statistics(self) -> BudgetStatistics:
        return BudgetStatistics(
            day=self.day,
            loaded=self.loaded,
            spent=self.spent,
            reserved=self.reserved,
            budget=self.daily_budget,
            calls=sum(self.calls.values()),
            players=len(self.calls),
            pending_rows=len(self.pending),
            pending_limit=self.pending_limit,
            spent_total=self.spent_total,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )

    # ----------------------------------------------------------------- hot path

    def admit(self, player: int, prompt_bound: int, max_tokens: int) -> Grant | FallbackReason:
        """A :class:`Grant` for one upstream call by ``player``, or the
        fallback reason it may not be made. Never awaits."""
        self._roll()
        if not self.loaded:
            return FallbackReason.BUDGET_UNKNOWN
        day = self.day
        if len(self.pending) >= self.pending_limit and (day, player) not in self.pending:
            return FallbackReason.USAGE_BACKLOG
        if self.calls.get(player, 0) >= self.player_daily_calls:
            return FallbackReason.PLAYER_BUDGET
        worst = self.cost(prompt_bound, max_tokens)
        if self.spent + self.reserved + worst > self.daily_budget:
            return FallbackReason.BUDGET
        self.calls[player] = self.calls.get(player, 0) + 1
        self.reserved += worst
        row = self.pending.setdefault((day, player), [0, 0.0])
        row[0] += 1
        return Grant(player=player, day=day, worst=worst)

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
        row[1] += cost
        return cost

    def _roll(self) -> None:
        day = self.today()
        if day != self.day:
            # A new UTC day: fresh budgets. Old-day rows still wait in pending.
            self.day = day
            self.calls = {}
            self.spent = 0.0

    # ----------------------------------------------------------------- the store

    def merge(self, day: str, stored_calls: dict[int, int], stored_cost: float) -> None:
        """Take the day's usage as stored (by this and other processes),
        keeping what this process has not written yet on top of it."""
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
        """Read today's usage from the store and merge it."""
        self._roll()
        day = self.day
        calls, cost = await store.ai_usage(day)
        self.merge(day, calls, cost)

    async def flush(self, store: Store) -> int:
        """Write the pending rows; returns how many are left (after a
        failure they stay pending and are retried)."""
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

    async def run(
        self, store: Store, *, interval: float, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Load today's usage (one try before ``started``, then retries),
        then write behind every ``interval`` and refresh, until cancelled.
        The owner calls :meth:`close` once no call can settle any more."""
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

    async def close(self, store: Store) -> None:
        """Write what is pending, within :data:`EXIT_FLUSH_SECONDS` even when
        cancelled; log what could not be written."""
        with trio.CancelScope(shield=True), trio.move_on_after(EXIT_FLUSH_SECONDS):
            if self.pending:
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
