"""The connection pool's rules, with fake connections (no database, virtual time)."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing

from baolife.db.pool import ConnectionPool, PoolClosed


@attrs.define(eq=False)
class FakeConn:
    n: int
    closed: bool = False
    broken: bool = False


class Opener:
    """Opens numbered fake connections, each after ``delay`` seconds."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.opened: list[FakeConn] = []

    async def __call__(self) -> FakeConn:
        await trio.sleep(self.delay)
        if self.fail:
            raise OSError("connection refused")
        conn = FakeConn(len(self.opened) + 1)
        self.opened.append(conn)
        return conn


def close(conn: FakeConn) -> None:
    conn.closed = True


def usable(conn: FakeConn) -> bool:
    return not conn.closed and not conn.broken


def make_pool(size: int, opener: Opener, max_idle: float = 300.0) -> ConnectionPool[FakeConn]:
    return ConnectionPool(size, connect=opener, close=close, usable=usable, max_idle=max_idle)


async def test_connections_are_reused_and_never_exceed_the_bound(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        opener = Opener(delay=0.01)
        pool = make_pool(3, opener)
        most = 0

        async def user() -> None:
            nonlocal most
            for _ in range(5):
                async with pool.borrow():
                    most = max(most, pool.statistics().in_use)
                    assert pool.statistics().open <= 3
                    await trio.sleep(0.1)

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(user)
            await trio.sleep(0.05)
            assert pool.statistics().waiting == 7
        stats = pool.statistics()
        assert most == 3
        assert len(opener.opened) == 3
        assert stats.borrows == 50
        assert (stats.in_use, stats.idle, stats.open, stats.waiting) == (0, 3, 3, 0)
        # 10 users, 3 connections, 0.1 s each: borrowers waited about 50*0.1/3 - 0.5 s in all
        assert stats.wait_seconds > 1.0
        assert stats.max_wait_seconds >= 0.3


async def test_a_connection_whose_work_failed_is_closed_not_reused(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        opener = Opener()
        pool = make_pool(1, opener)
        with pytest.raises(RuntimeError):
            async with pool.borrow():
                raise RuntimeError("query failed halfway")
        with trio.move_on_after(1):
            async with pool.borrow():
                await trio.sleep(10)  # cancelled mid-result
        async with pool.borrow() as conn:
            pass
        assert [c.closed for c in opener.opened] == [True, True, False]
        assert conn is opener.opened[2]
        assert pool.statistics().discarded == 2


async def test_idle_connections_that_went_bad_or_stale_are_dropped(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        opener = Opener()
        pool = make_pool(2, opener, max_idle=30)
        async with pool.borrow() as first:
            pass
        first.broken = True  # e.g. the server hung up while it was idle
        async with pool.borrow() as second:
            pass
        assert second is not first and first.closed
        await trio.sleep(31)
        async with pool.borrow() as third:
            pass
        assert third is not second and second.closed


async def test_a_failed_connect_frees_its_slot(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        opener = Opener(fail=True)
        pool = make_pool(1, opener)
        for _ in range(3):
            with pytest.raises(OSError):
                await pool.acquire()
        stats = pool.statistics()
        assert (stats.connect_failures, stats.open, stats.in_use) == (3, 0, 0)
        opener.fail = False
        async with pool.borrow() as conn:
            assert conn.n == 1


async def test_a_cancelled_wait_or_connect_leaks_no_slot(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        opener = Opener(delay=5)
        pool = make_pool(1, opener)
        with trio.move_on_after(1):
            await pool.acquire()  # cancelled while connecting
        assert pool.statistics().open == 0
        opener.delay = 0
        held = await pool.acquire()
        with trio.move_on_after(1):
            await pool.acquire()  # cancelled while waiting for the slot
        assert pool.statistics().waiting == 0
        pool.release(held, reuse=True)
        async with pool.borrow() as conn:
            assert conn is held


async def test_close_hands_back_idle_connections_and_closes_lent_ones_on_return(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        pool = make_pool(2, Opener())
        lent = await pool.acquire()
        async with pool.borrow() as idle:
            pass
        assert pool.close() == [idle]
        assert not idle.closed  # the caller closes it, politely if it can
        pool.release(lent, reuse=True)
        assert lent.closed
        with pytest.raises(PoolClosed):
            await pool.acquire()
        assert pool.close() == []


async def test_borrowers_who_wait_behind_go_after_the_others_and_never_take_the_last_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        pool = make_pool(3, Opener())
        order: list[str] = []

        async def borrow(name: str, behind: bool, hold: float) -> None:
            async with pool.borrow(behind=behind):
                order.append(name)
                await trio.sleep(hold + len(order) / 10)  # connections come back one at a time

        async with trio.open_nursery() as nursery:
            # Work that can wait takes two connections, never the third...
            for i in range(4):
                nursery.start_soon(borrow, f"llm{i}", True, 1.0)
            await trio.sleep(0.1)
            assert len(order) == 2 and pool.statistics().in_use == 2
            # ...which a login gets at once, whatever waits behind.
            nursery.start_soon(borrow, "login0", False, 5.0)
            await trio.sleep(0.1)
            assert order[-1] == "login0" and pool.statistics().in_use == 3
            # Another login waits too, and is served before the waiting
            # behind ones when the next connection comes back.
            nursery.start_soon(borrow, "login1", False, 0.5)
            await trio.sleep(0.1)
            assert pool.statistics().waiting == 3
        # (Tasks started together start in no set order: the lines are what is kept.)
        assert [name[:-1] for name in order] == ["llm", "llm", "login", "login", "llm", "llm"]
        assert order[2:4] == ["login0", "login1"] and sorted(order) == sorted({*order})
        stats = pool.statistics()
        assert (stats.in_use, stats.waiting, stats.open) == (0, 0, 3)


async def test_a_borrower_cancelled_while_waiting_behind_leaks_no_slot(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        pool = make_pool(2, Opener())
        async with pool.borrow(behind=True):  # one behind: the most a pool of two lends them
            with trio.move_on_after(1) as scope:
                async with pool.borrow(behind=True):
                    pass
            assert scope.cancelled_caught and pool.statistics().waiting == 0
            async with pool.borrow():  # the last connection, for the others
                assert pool.statistics().in_use == 2
        async with pool.borrow(behind=True):
            assert pool.statistics().in_use == 1
