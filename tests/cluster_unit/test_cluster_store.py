"""The cluster's rows in each store (baolife.db.cluster), on SQLite and
MariaDB: owners recorded with the epoch, claims refused while another live
worker owns a player and allowed once it left or its lease ran out, releases
fenced by epoch, worker ids that two processes cannot share, and the bus
table read in order, holes included."""

from __future__ import annotations

import secrets
from typing import cast

import pytest
import trio

from baolife.db import open_store
from baolife.db.cluster import ClusterStore, PlayerHeld, WorkerInfo
from baolife.db.store import SaveRow, Store, hash_token


def worker(name: str, instance: str | None = None) -> WorkerInfo:
    return WorkerInfo(
        id=name, instance=instance or secrets.token_hex(16), store_kind="x", bus="db", address=f"{name}:1", started_at=0
    )


async def test_a_live_owner_holds_its_players_until_it_releases_or_leaves(store: Store, store_url: str) -> None:
    a_info, b_info = worker("a"), worker("b")
    async with open_store(store_url, pool_size=2) as other:
        a, b = cast(ClusterStore, store), cast(ClusterStore, other)
        a.worker, b.worker = "a", "b"
        assert (await a.join_cluster(a_info, 30)).holder is None
        joined = await b.join_cluster(b_info, 30)
        assert {w.id for w in joined.workers} == {"a", "b"}
        assert all(25 < w.expires_in <= 30 for w in joined.workers)

        # Created by a: a owns it from the account's own transaction.
        pid = await store.create_account("Bao", hash_token("owned"), lambda pid: (b"born", 1))
        assert await a.owner(pid) == "a"
        with pytest.raises(PlayerHeld) as held:
            await other.claim(pid)
        assert held.value.worker == "a" and 25 < held.value.remaining <= 30
        # Refused means unchanged: a's saves still go through.
        assert await store.save([SaveRow(pid, b"played on a", 1, 1)]) == set()
        again = await store.claim(pid)  # its owner claims again at will
        assert (again.previous_epoch, again.epoch, again.state) == (1, 2, b"played on a")

        # A release with a stale epoch changes nothing; with the epoch it frees the player.
        assert not await a.release(pid, "a", 1)
        assert not await a.release(pid, "b", 2)  # b does not own it
        assert await a.release(pid, "a", 2)
        assert await a.owner(pid) is None
        taken = await other.claim(pid)
        assert (taken.epoch, taken.state) == (3, b"played on a")
        assert await a.owner(pid) == "b"
        assert await store.save([SaveRow(pid, b"stale", 1, 2)]) == {pid}  # fenced

        # A worker that leaves frees all it owns at once.
        await b.leave_cluster("b", b_info.instance)
        assert await a.owner(pid) is None
        assert [w.id for w in await a.live_workers()] == ["a"]
        assert (await store.claim(pid)).state == b"played on a"


async def test_an_expired_lease_frees_the_players_and_renewal_tells_a_lost_row(store: Store, store_url: str) -> None:
    async with open_store(store_url, pool_size=2) as other:
        a, b = cast(ClusterStore, store), cast(ClusterStore, other)
        a.worker, b.worker = "a", "b"
        a_info = worker("a")
        await a.join_cluster(a_info, 2)
        await b.join_cluster(worker("b"), 30)
        pid = await store.create_account("Bao", hash_token("expiring"), lambda pid: (b"born", 1))
        with pytest.raises(PlayerHeld):
            await other.claim(pid)
        renewed = await a.renew_worker("a", a_info.instance, 2)
        assert renewed is not None and {w.id for w in renewed} == {"a", "b"}
        await trio.sleep(2.1)  # a real lease on the database's clock runs out
        claim = await other.claim(pid)
        assert claim.epoch == 2 and await b.owner(pid) == "b"
        # Another process under a's id (it waited for the lease): a's renewal says its row is lost.
        assert (await b.join_cluster(worker("a"), 30)).holder is None
        assert await a.renew_worker("a", a_info.instance, 2) is None


async def test_two_processes_cannot_join_under_one_worker_id(store: Store) -> None:
    cluster = cast(ClusterStore, store)
    first, second = worker("w1"), worker("w1")
    assert (await cluster.join_cluster(first, 30)).holder is None
    found = await cluster.join_cluster(second, 30)
    assert found.holder is not None and found.holder.instance == first.instance
    assert [w.instance for w in await cluster.live_workers()] == [first.instance]  # nothing written
    # The same process joining again (a restart of its row) is no conflict.
    assert (await cluster.join_cluster(first, 30)).holder is None
    # Forced (the other's lease was watched and ran out), the row is ours.
    assert (await cluster.join_cluster(second, 30, force=True)).holder is None
    assert await cluster.renew_worker("w1", first.instance, 30) is None
    assert await cluster.renew_worker("w1", second.instance, 30) is not None


async def test_a_restarted_worker_does_not_hold_its_predecessors_players(store: Store, store_url: str) -> None:
    # A rolling restart: w1 stops (its row goes), a new process takes the id w1.
    async with open_store(store_url, pool_size=2) as other:
        a, b = cast(ClusterStore, store), cast(ClusterStore, other)
        a.worker, b.worker = "w1", "b"
        old = worker("w1")
        await a.join_cluster(old, 30, fresh=True)
        await b.join_cluster(worker("b"), 30, fresh=True)
        kept = await store.create_account("Kept", hash_token("kept"), lambda pid: (b"born", 1))
        left = await store.create_account("Left", hash_token("left"), lambda pid: (b"born", 1))
        assert await b.owner(left) == "w1"
        await a.leave_cluster("w1", old.instance)
        # The same process joining again (its row was lost) keeps what it owns.
        await a.join_cluster(old, 30)
        assert await b.owner(kept) == "w1"
        await a.leave_cluster("w1", old.instance)
        # The new process holds none of them: b claims at once, nobody to ask.
        await a.join_cluster(worker("w1"), 30, fresh=True)
        assert await b.owner(left) is None and await b.owner(kept) is None
        assert (await other.claim(left)).state == b"born"
        assert await b.owner(left) == "b"
        # Nor does a fresh join take back a player another worker claimed since.
        await a.join_cluster(worker("w1"), 30, force=True, fresh=True)
        assert await b.owner(left) == "b"


async def test_the_bus_table_is_read_in_order_with_holes_read_again(store: Store) -> None:
    bus = cast(ClusterStore, store)
    assert await bus.bus_head() == 0
    ids = [await bus.bus_publish("w1", "handoff", n, f'{{"n": {n}}}') for n in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    rows = await bus.bus_read(0, [], 3)
    assert [(r.id, r.origin, r.kind, r.player, r.body) for r in rows] == [
        (ids[n], "w1", "handoff", n, f'{{"n": {n}}}') for n in range(3)
    ]
    assert [r.id for r in await bus.bus_read(ids[2], [], 100)] == ids[3:]
    # A hole (an id seen as skipped) is read back with the next reads; others are not repeated.
    assert [r.id for r in await bus.bus_read(ids[4], [ids[1], ids[3]], 100)] == [ids[1], ids[3]]
    assert await bus.bus_head() == ids[4]
    assert await bus.bus_trim(60) == 0
    await trio.sleep(0.05)
    assert await bus.bus_trim(0.01) == 5
    assert await bus.bus_read(0, [], 100) == []
