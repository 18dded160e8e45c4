"""The store's operator methods (baolife.admin) on SQLite and MariaDB:
search, bans, mutes, the notice, the audit log, last logins, erasing
a player in one transaction that leaves nothing of them but their id, and
who is online on which worker."""

from __future__ import annotations

import secrets
from typing import cast

import trio

from baolife.db import open_store
from baolife.db.cluster import ClusterStore, WorkerInfo
from baolife.db.store import AuditEntry, Ban, NoticeRow, Store, hash_token
from baolife.model import Player, dump_player


def first_state(name: str):  # type: ignore[no-untyped-def]
    def make(pid: int) -> tuple[bytes, int]:
        return dump_player(Player(id=pid, name=name)), 2

    return make


def cluster_worker(name: str) -> WorkerInfo:
    return WorkerInfo(
        id=name, instance=secrets.token_hex(16), store_kind="x", bus="db", address=f"{name}:1", started_at=0
    )


async def test_search_account_and_state(store: Store) -> None:
    a = await store.create_account("An Nguyen", hash_token("a"), first_state("An Nguyen"))
    b = await store.create_account("An_other", hash_token("b"), first_state("An_other"))
    c = await store.create_account("Bich", hash_token("c"))
    assert [x.player_id for x in await store.find_players("An", 10)] == [a, b]
    assert [x.player_id for x in await store.find_players("An_", 10)] == [b]
    assert await store.find_players("%", 10) == []
    assert [x.player_id for x in await store.find_players(str(c), 10)] == [c]
    assert [x.player_id for x in await store.find_players("An", 1)] == [a]
    info = await store.account_info(a)
    assert info is not None and info.name == "An Nguyen" and info.last_login is None
    assert await store.account_info(99999) is None
    state = await store.player_state(a)
    assert state is not None and b'"An Nguyen"' in state.state
    assert await store.player_state(c) is None
    await store.claim(a)
    info = await store.account_info(a)
    assert info is not None and info.last_login is not None


async def test_bans_mutes_and_notice(store: Store) -> None:
    pid = await store.create_account("Ban Target", hash_token("t"))
    assert await store.get_ban(pid) is None
    assert await store.set_ban(pid, Ban("spam", None, "ops", 100))
    assert await store.get_ban(pid) == Ban("spam", None, "ops", 100)
    assert await store.set_ban(pid, Ban("worse", 2000, "ops2", 200))  # a re-ban replaces
    assert await store.get_ban(pid) == Ban("worse", 2000, "ops2", 200)
    assert not await store.set_ban(424242, Ban("x", None, "ops", 1))
    assert await store.get_ban(424242) is None
    assert await store.clear_ban(pid) and not await store.clear_ban(pid)
    assert await store.set_mute(pid, True, "ops", 1) and await store.set_mute(pid, True, "ops", 2)
    assert await store.muted_players() == {pid}
    assert await store.set_mute(pid, False, "ops", 3)
    assert await store.muted_players() == set()
    assert not await store.set_mute(424242, True, "ops", 1)
    assert await store.get_notice() is None
    await store.put_notice(NoticeRow("restart", 5000, "ops", 10))
    await store.put_notice(NoticeRow("restart at noon", 6000, "ops", 11))
    assert await store.get_notice() == NoticeRow("restart at noon", 6000, "ops", 11)
    await store.put_notice(None)
    assert await store.get_notice() is None


async def test_audit_log_newest_first(store: Store) -> None:
    for i in range(5):
        await store.add_audit(AuditEntry(i, "ops", "operator", f"a{i}", i % 2 or None, "{}", "10.0.0.1"))
    assert [e.action for e in await store.audit_log(3)] == ["a4", "a3", "a2"]
    assert [e.action for e in await store.audit_log(10, 1)] == ["a3", "a1"]
    assert (await store.audit_log(1))[0] == AuditEntry(4, "ops", "operator", "a4", None, "{}", "10.0.0.1")


async def test_erase_deletes_everything_of_the_player_once(store: Store) -> None:
    pid = await store.create_account("Gone", hash_token("gone"), first_state("Gone"))
    keep = await store.create_account("Kept", hash_token("kept"), first_state("Kept"))
    await store.claim(pid)
    await store.add_ai_usage("2026-01-01", pid, 3, 0.5)
    await store.add_ai_usage("2026-01-01", keep, 1, 0.1)
    await store.add_ai_usage("2025-12-31", pid, 2, 0.25)
    assert await store.player_ai_history(pid) == [("2025-12-31", 2, 0.25), ("2026-01-01", 3, 0.5)]
    await store.set_ban(pid, Ban("x", None, "ops", 1))
    await store.set_mute(pid, True, "ops", 1)
    assert not await store.is_erased(pid)
    assert await store.erase_player(pid, 123)
    assert await store.is_erased(pid)
    assert await store.find_account(hash_token("gone")) is None
    assert await store.account_info(pid) is None and await store.player_state(pid) is None
    assert await store.get_ban(pid) is None and await store.muted_players() == set()
    assert await store.player_ai_usage("2026-01-01", pid) == (0, 0.0)
    assert await store.player_ai_usage("2026-01-01", keep) == (1, 0.1)
    assert await store.player_ai_history(pid) == []
    assert not await store.erase_player(pid, 124)  # twice: nothing to erase
    assert not await store.set_ban(pid, Ban("y", None, "ops", 2))
    assert await store.find_account(hash_token("kept")) == keep
    assert not await store.erase_player(777777, 1)
    assert not await store.is_erased(777777)


async def test_concurrent_erase_and_ban_leave_no_ban_behind(store: Store) -> None:
    for round_ in range(5):
        pid = await store.create_account(f"Race {round_}", hash_token(f"race-{round_}"))
        results: dict[str, bool] = {}

        async def erase(pid: int = pid, results: dict[str, bool] = results) -> None:
            results["erase"] = await store.erase_player(pid, 1)

        async def ban(pid: int = pid, results: dict[str, bool] = results) -> None:
            results["ban"] = await store.set_ban(pid, Ban("race", None, "ops", 1))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ban)
            nursery.start_soon(erase)
        assert results["erase"] is True
        assert await store.get_ban(pid) is None


async def test_online_and_owner_read_the_same_from_every_worker(store: Store, store_url: str) -> None:
    """The owner row's online flag (migration 0006), what the console says
    from any worker: set by the claim or registration that makes a worker
    the owner, cleared by that worker under the epoch it loaded the player
    with, and read as offline once the worker's lease has run out."""
    a_info, b_info = cluster_worker("a"), cluster_worker("b")
    with trio.fail_after(30):
        async with open_store(store_url, pool_size=2) as other:
            a, b = cast(ClusterStore, store), cast(ClusterStore, other)
            a.worker, b.worker = "a", "b"
            await a.join_cluster(a_info, 30)
            await b.join_cluster(b_info, 30)
            pid = await store.create_account("Online", hash_token("online"), first_state("Online"))
            assert await b.presence(pid) == ("a", True)  # registered on a: a login there
            assert await b.mark_offline("b", [(pid, 1)]) == 0  # b does not own it
            assert await b.presence(pid) == ("a", True)
            assert await a.mark_offline("a", [(pid, 1)]) == 1  # the session on a ended
            assert await b.presence(pid) == ("a", False)
            assert await a.mark_offline("a", [(pid, 1)]) == 0  # once

            # Logged in on a again (the claim sets the flag in its own
            # statement): a stale clear under the old epoch changes nothing.
            assert (await store.claim(pid)).epoch == 2
            assert await b.presence(pid) == ("a", True)
            assert await a.mark_offline("a", [(pid, 1)]) == 0
            assert await b.presence(pid) == ("a", True)

            # Handed over to b: a's clear of its old session leaves b's flag.
            assert await a.release(pid, "a", 2)
            assert await a.presence(pid) is None
            assert (await other.claim(pid)).epoch == 3
            assert await a.presence(pid) == ("b", True)
            assert await a.mark_offline("a", [(pid, 2)]) == 0
            assert await a.presence(pid) == ("b", True)

            # b crashes: once its lease has run out it says nothing, and a
            # worker that left cleanly neither.
            await b.renew_worker("b", b_info.instance, -1)
            assert await a.presence(pid) is None and await b.presence(pid) is None
            await b.join_cluster(b_info, 30)
            assert await a.presence(pid) == ("b", True)
            await b.leave_cluster("b", b_info.instance)
            assert await a.presence(pid) is None
            assert await a.mark_offline("a", []) == 0
