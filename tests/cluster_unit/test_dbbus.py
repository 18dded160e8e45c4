"""The database bus's reader (virtual time, a table in memory): every event
once and in order, an id that commits after a later one delivered when it
shows up, an id that never does given up, and a failing database only
delaying events."""

from __future__ import annotations

from collections.abc import Sequence

import trio
import trio.testing

from baolife.cluster import BusEvent
from baolife.cluster.dbbus import DbBus
from baolife.db.cluster import BusRow
from baolife.db.store import StoreUnavailable


class Table:
    """bus_events in memory; ids can be taken now and committed later."""

    def __init__(self) -> None:
        self.rows: dict[int, BusRow] = {}
        self.next_id = 1
        self.down = False
        self.trimmed = 0

    def take(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def commit(self, id_: int, kind: str) -> None:
        self.rows[id_] = BusRow(id_, "w", kind, None, f'{{"n": {id_}}}')

    async def bus_publish(self, origin: str, kind: str, player: int | None, body: str) -> int:
        id_ = self.take()
        self.rows[id_] = BusRow(id_, origin, kind, player, body)
        return id_

    async def bus_head(self) -> int:
        return max(self.rows, default=0)

    async def bus_read(self, after: int, holes: Sequence[int], limit: int) -> list[BusRow]:
        if self.down:
            raise StoreUnavailable("cut")
        found = [r for i, r in sorted(self.rows.items()) if i > after][:limit]
        return found + [self.rows[h] for h in holes if h in self.rows]

    async def bus_trim(self, keep: float) -> int:
        self.trimmed += 1
        return 0


async def test_late_commits_are_delivered_once_and_failures_only_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    table = Table()
    bus = DbBus(table, "me", poll=0.1, hole_wait=2.0)  # type: ignore[arg-type]
    got: list[tuple[int, str]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(bus.run, lambda e: got.append((e.body.get("n", -1), e.kind)))
        await bus.publish(BusEvent("hello", 5, {"n": 0}))
        await trio.sleep(0.2)
        assert got == [(0, "hello")]

        late, never = table.take(), table.take()  # two inserts not committed yet...
        table.commit(table.take(), "after")  # ...and one after them that is
        await trio.sleep(0.2)
        assert got[-1] == (4, "after")
        table.commit(late, "late")  # commits a second later
        await trio.sleep(1.0)
        assert got[-1] == (late, "late") and bus.holes_filled == 1
        await trio.sleep(2.0)  # the other never commits: given up after hole_wait
        assert not bus._holes
        table.commit(never, "too late")
        await trio.sleep(0.5)
        assert (never, "too late") not in got

        table.down = True  # the database is away: nothing read, nothing lost
        await bus.publish(BusEvent("while down", None, {"n": 99}))
        await trio.sleep(1.0)
        assert bus.failing and got[-1][1] != "while down"
        table.down = False
        await trio.sleep(0.2)
        assert got[-1] == (99, "while down") and not bus.failing
        nursery.cancel_scope.cancel()
    kinds = [k for _, k in got]
    assert kinds == ["hello", "after", "late", "while down"]  # each once
    assert table.trimmed >= 1
