"""This worker's side of the owner row's online flag (baolife.admin.presence):
players who left are written in batches off the tick loop, with the epoch
they were loaded under; a failed write is tried again (a newer leave
winning), a player back online here is not written, and the waiting players
are bounded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import trio

from baolife.admin.presence import BATCH, Presence
from baolife.db.cluster import ClusterStore
from baolife.db.store import StoreUnavailable


class Owners:
    """The store's ``mark_offline``, recorded; it fails while ``down``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[int, int]]]] = []
        self.down = False

    async def mark_offline(self, worker: str, players: Sequence[tuple[int, int]]) -> int:
        await trio.lowlevel.checkpoint()
        if self.down:
            raise StoreUnavailable("the database is away")
        self.calls.append((worker, list(players)))
        return len(players)


def presence(owners: Owners | None, online: set[int] | None = None, **kwargs: Any) -> Presence:
    here = online if online is not None else set()
    return Presence(cast(ClusterStore, owners), "w1", online_here=here.__contains__, limit=1000, **kwargs)


async def test_players_who_left_are_written_in_batches_unless_back_online(autojump_clock: Any) -> None:
    owners, online = Owners(), {3}
    p = presence(owners, online)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(p.run)
            for pid in range(1, BATCH + 11):
                p.left(pid, epoch=pid * 10)  # what the tick loop does: no await
            assert p.pending == BATCH + 10
            await p.settled()
            assert p.pending == 0
            written = [player for _, batch in owners.calls for player in batch]
            assert [len(batch) for _, batch in owners.calls] == [BATCH - 1, 10]  # 3 is online here again
            assert (3, 30) not in written and (1, 10) in written and (BATCH + 10, (BATCH + 10) * 10) in written
            assert {worker for worker, _ in owners.calls} == {"w1"} and p.written == BATCH + 9
            nursery.cancel_scope.cancel()


async def test_a_failed_write_is_tried_again_and_the_newest_leave_wins(autojump_clock: Any) -> None:
    owners = Owners()
    owners.down = True
    p = presence(owners, retry=1.0)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(p.run)
            p.left(7, epoch=1)
            await trio.sleep(0.5)
            assert p.failures == 1 and p.pending == 1 and owners.calls == []
            p.left(7, epoch=2)  # logged in and out again meanwhile
            owners.down = False
            await p.settled()
            assert owners.calls == [("w1", [(7, 2)])] and p.pending == 0
            [family] = [f for f in p.metric_families() if f.name == "baolife_admin_presence_failures"]
            assert family.samples[0].value == 1
            nursery.cancel_scope.cancel()


async def test_the_waiting_players_are_bounded_and_nothing_is_kept_without_owner_rows() -> None:
    owners = Owners()
    p = Presence(cast(ClusterStore, owners), "w1", online_here=lambda pid: False, limit=2)
    for pid in (1, 2, 3):
        p.left(pid, epoch=1)
    p.left(2, epoch=2)  # already waiting: updated, not dropped
    assert (p.pending, p.dropped) == (2, 1)
    alone = presence(None)  # a local bus: no owner rows
    alone.left(1, epoch=1)
    assert alone.pending == 0
    stopping = presence(owners, paused=lambda: True)  # shutting down: the row goes at the end
    stopping.left(1, epoch=1)
    assert stopping.pending == 0
    with trio.fail_after(1):
        await alone.settled()
