"""The store contract, run on SQLite and on MariaDB (see conftest.py)."""

from __future__ import annotations

import itertools

import attrs
import pytest
import trio

from baolife.db import open_store
from baolife.db.store import Progress, Saved, SaveRow, Store, StoreError, StoreUnavailable, hash_token

_tokens = itertools.count()

# Every migration, in order, on either engine (baolife/db/migrations/).
MIGRATIONS = [
    "0001_init",
    "0002_heartbeat",
    "0003_admin",
    "0004_cluster",
    "0005_ai_shared",
    "0006_owner_online",
    "0007_progress",
]


def token_hash() -> bytes:
    return hash_token(f"token-{next(_tokens)}")


async def new_player(store: Store, name: str = "Bao") -> int:
    return await store.create_account(name, token_hash())


def row(pid: int, epoch: int, state: bytes) -> SaveRow:
    return SaveRow(player_id=pid, state=state, schema_version=1, epoch=epoch)


async def test_migrate_applies_each_migration_once(store_url: str) -> None:
    with trio.fail_after(30):
        async with open_store(store_url) as store:
            assert await store.pending_migrations() == MIGRATIONS
            assert await store.migrate() == MIGRATIONS
            assert await store.pending_migrations() == []
            assert await store.migrate() == []


async def test_account_is_found_by_its_token_hash_only(store: Store) -> None:
    with trio.fail_after(20):
        secret = token_hash()
        pid = await store.create_account("Bao", secret)
        other = await new_player(store, "Lan")
        assert pid != other
        assert await store.find_account(secret) == pid
        assert await store.find_account(hash_token("nobody has this token")) is None


async def test_two_accounts_cannot_share_a_token_hash(store: Store) -> None:
    with trio.fail_after(20):
        secret = token_hash()
        await store.create_account("Bao", secret)
        with pytest.raises(StoreError):
            await store.create_account("Lan", secret)
        # The failed call left the store usable.
        assert await store.find_account(secret) is not None


async def test_claim_bumps_the_epoch_and_reads_the_saved_state(store: Store) -> None:
    with trio.fail_after(20):
        pid = await new_player(store, "Bảo 🐉")  # utf8mb4: a name beyond the BMP
        first = await store.claim(pid)
        assert (first.name, first.state, first.previous_epoch, first.epoch) == ("Bảo 🐉", None, 1, 2)
        assert await store.save([row(pid, first.epoch, b'{"v": 1, "money": 5}')]) == set()
        second = await store.claim(pid)
        assert second.state == b'{"v": 1, "money": 5}'
        assert (second.previous_epoch, second.epoch) == (2, 3)


async def test_claim_of_a_missing_player_is_an_error(store: Store) -> None:
    with trio.fail_after(20):
        with pytest.raises(StoreError):
            await store.claim(987654)


async def test_save_with_an_older_epoch_is_refused_and_not_applied(store_url: str) -> None:
    """Two store clients on one database: B takes the player from A; A's
    late save is refused and reported, B's state stays."""
    with trio.fail_after(30):
        async with open_store(store_url) as a, open_store(store_url) as b:
            await a.migrate()
            pid = await new_player(a)
            other = await new_player(a)
            claim_a = await a.claim(pid)
            claim_other = await a.claim(other)
            assert await a.save([row(pid, claim_a.epoch, b"A1")]) == set()
            claim_b = await b.claim(pid)
            assert claim_b.state == b"A1"
            assert await b.save([row(pid, claim_b.epoch, b"B1")]) == set()
            # One batch from A: the fenced player is refused, the other saved.
            refused = await a.save([row(pid, claim_a.epoch, b"A2"), row(other, claim_other.epoch, b"O1")])
            assert refused == {pid}
            again = await b.claim(pid)
            assert again.state == b"B1"
            assert (await b.claim(other)).state == b"O1"
            # B's own epoch is now stale too (it claimed again as "again").
            assert await b.save([row(pid, claim_b.epoch, b"B-stale")]) == {pid}
            assert await b.save([row(pid, again.epoch, b"B2")]) == set()


async def test_save_of_an_unknown_player_is_refused_not_created(store: Store) -> None:
    with trio.fail_after(20):
        pid = await new_player(store)
        claim = await store.claim(pid)
        assert await store.save([row(424242, 1, b"ghost"), row(pid, claim.epoch, b"real")]) == {424242}
        with pytest.raises(StoreError):
            await store.claim(424242)
        assert (await store.claim(pid)).state == b"real"


async def test_saving_the_same_rows_twice_gives_the_same_result(store: Store) -> None:
    with trio.fail_after(20):
        pids = [await new_player(store) for _ in range(5)]
        epochs = [(await store.claim(pid)).epoch for pid in pids]
        rows = [row(pid, epoch, f"state of {pid}".encode()) for pid, epoch in zip(pids, epochs, strict=True)]
        assert await store.save(rows) == set()
        assert await store.save(rows) == set()
        for pid in pids:
            assert (await store.claim(pid)).state == f"state of {pid}".encode()


async def test_a_state_in_a_form_not_the_stores_own_is_refused_and_nothing_written(store: Store) -> None:
    with trio.fail_after(20):
        pid = await new_player(store)
        epoch = (await store.claim(pid)).epoch
        assert await store.save([row(pid, epoch, b"as the game wrote it")]) == set()
        foreign = attrs.evolve(row(pid, epoch, b"packed by some other store"), stored=99)
        with pytest.raises(ValueError, match="codec 99"):
            await store.save([foreign])
        assert (await store.claim(pid)).state == b"as the game wrote it"


async def test_a_large_batch_is_saved_whole(store: Store) -> None:
    """More state than one statement may carry (the MySQL store splits it),
    in one call: every row lands, byte for byte."""
    with trio.fail_after(60):
        pids = [await new_player(store) for _ in range(60)]
        epochs = {pid: (await store.claim(pid)).epoch for pid in pids}
        states = {pid: bytes([pid % 251]) * 300_000 + b"'\\\"\x00end" for pid in pids}
        assert sum(map(len, states.values())) > 16 * 1024 * 1024  # max_allowed_packet by default
        assert await store.save([row(pid, epochs[pid], states[pid]) for pid in pids]) == set()
        for pid in pids:
            assert (await store.claim(pid)).state == states[pid]


async def test_ai_usage_adds_up_per_day(store: Store) -> None:
    with trio.fail_after(20):
        a, b = await new_player(store), await new_player(store)
        await store.add_ai_usage("2025-01-02", a, 2, 0.5)
        await store.add_ai_usage("2025-01-02", a, 1, 0.25)
        await store.add_ai_usage("2025-01-02", b, 4, 1.0)
        await store.add_ai_usage("2025-01-03", a, 7, 2.0)
        calls, cost = await store.ai_usage("2025-01-02")
        assert calls == {a: 3, b: 4}
        assert cost == pytest.approx(1.75)
        assert await store.ai_usage("2025-01-04") == ({}, 0.0)


async def test_statistics_count_calls_and_connections(store: Store) -> None:
    with trio.fail_after(20):
        before = store.statistics()
        await store.ping()
        pid = await new_player(store)
        await store.claim(pid)
        after = store.statistics()
        assert after.calls == before.calls + 3
        assert after.call_seconds > before.call_seconds
        assert after.call_buckets[-1] == after.calls  # every call under 10 s
        assert after.pool_in_use == 0 and after.pool_waiting == 0
        assert 1 <= after.pool_open <= after.pool_size
        assert after.failures == before.failures


async def test_an_error_inside_the_store_context_comes_out_as_itself(store_url: str) -> None:
    """Not wrapped in an exception group (the MySQL store runs a loop with
    nurseries inside its context): callers catch StoreError as they would."""
    with trio.fail_after(20):
        with pytest.raises(StoreError, match="schema is behind"):
            async with open_store(store_url) as store:
                await store.migrate()
                await store.ping()
                raise StoreError("schema is behind")


async def test_a_closed_store_refuses_calls(store_url: str) -> None:
    with trio.fail_after(20):
        async with open_store(store_url) as store:
            await store.migrate()
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.ping()
        await store.aclose()  # idempotent


def moved(pid: int, epoch: int, age_days: int, money: int, low_money: int = 0) -> SaveRow:
    return SaveRow(pid, None, 1, epoch, Progress(age_days, money, low_money))


async def test_a_progress_row_is_read_with_the_state_until_a_state_save_supersedes_it(store: Store) -> None:
    """Issue 15: a save that only moved age and money writes a small row; a
    claim and the console read it with the state; the next whole state drops
    it; erasing the player drops it too."""
    with trio.fail_after(20):
        pid = await new_player(store)
        epoch = (await store.claim(pid)).epoch
        assert await store.save([row(pid, epoch, b"S1")]) == set()
        assert await store.save([moved(pid, epoch, 400, 12, -3)]) == set()
        assert await store.save([moved(pid, epoch, 401, 14, -3)]) == set()  # replaces, not adds
        claim = await store.claim(pid)
        assert (claim.state, claim.progress) == (b"S1", Progress(401, 14, -3))
        assert await store.player_state(pid) == Saved(b"S1", Progress(401, 14, -3))
        assert await store.save([row(pid, claim.epoch, b"S2")]) == set()
        again = await store.claim(pid)
        assert (again.state, again.progress) == (b"S2", None)
        assert await store.save([moved(pid, again.epoch, 500, 1)]) == set()
        assert await store.erase_player(pid, 1)
        assert await store.player_state(pid) is None


async def test_a_stale_progress_row_is_refused_and_a_batch_mixes_both_kinds(store_url: str) -> None:
    with trio.fail_after(30):
        async with open_store(store_url) as a, open_store(store_url) as b:
            await a.migrate()
            pid, other = await new_player(a), await new_player(a)
            claim_a, claim_other = await a.claim(pid), await a.claim(other)
            assert await a.save([row(pid, claim_a.epoch, b"A1"), row(other, claim_other.epoch, b"O1")]) == set()
            claim_b = await b.claim(pid)  # B takes the player from A
            refused = await a.save([moved(pid, claim_a.epoch, 999, 999), moved(other, claim_other.epoch, 20, 5)])
            assert refused == {pid}
            assert (await b.claim(pid)).progress is None  # A's late progress never landed
            assert (await b.claim(other)).progress == Progress(20, 5, 0)
            assert claim_b.state == b"A1"
