"""The SQLite store's own thread (baolife/db/sqlite.py): calls run one after
another without waiting for the trio loop, saves queue behind other calls,
and closing ends the thread after the work queued before it."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import trio

from baolife.db.sqlite import _SAVES, SqliteStore
from baolife.db.store import SaveRow


async def test_queued_calls_run_while_the_trio_thread_is_busy_and_saves_wait_for_the_rest() -> None:
    store = await SqliteStore.connect(":memory:")
    ran: list[tuple[str, float]] = []
    gate = threading.Event()
    try:
        with trio.fail_after(10):
            saved = threading.Event()

            def call(name: str) -> str:
                ran.append((name, time.monotonic()))
                if name == "save":
                    saved.set()
                return name

            answers: list[str] = []

            async def run(name: str, priority: int = 0) -> None:
                answers.append(await store._run(call, name, priority=priority))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(store._run, gate.wait)  # the thread is busy with this
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(run, "save", _SAVES)
                await trio.testing.wait_all_tasks_blocked()
                for name in ("claim", "read", "ban"):
                    nursery.start_soon(run, name)
                await trio.testing.wait_all_tasks_blocked()
                gate.set()
                # A long tick: the trio thread does not yield until the store's
                # thread has run every queued call, so none waited for the loop.
                assert saved.wait(5), "the queued calls waited for the trio loop"
            # The save, queued first, ran last.
            assert sorted(name for name, _ in ran[:3]) == ["ban", "claim", "read"] and ran[3][0] == "save"
            assert sorted(answers) == ["ban", "claim", "read", "save"]
            assert store.statistics().pool_waiting == 0
    finally:
        gate.set()
        await store.aclose()
    assert not store._thread.is_alive()


async def test_an_error_in_a_call_is_raised_to_its_caller_and_the_thread_goes_on() -> None:
    store = await SqliteStore.connect(":memory:")
    try:
        with trio.fail_after(10):

            def boom() -> None:
                raise ValueError("boom")

            try:
                await store._run(boom)
            except ValueError as exc:
                assert str(exc) == "boom"
            else:
                raise AssertionError("the error did not reach the caller")
            assert await store._run(lambda: 42) == 42
    finally:
        await store.aclose()
    assert not store._thread.is_alive()


async def test_a_new_database_has_16_kb_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    """A grown life's state fits in one 16 KB page; a database made before
    (4 KB pages) is opened as it is and works the same."""
    state = b'{"v": 1, "player": {"story": [' + b'[1, "a day at school"], ' * 600 + b'[2, "end"]]}}'
    assert 12_000 < len(state) < 16_000
    old = tmp_path / "old.db"
    made = sqlite3.connect(old)
    made.execute("PRAGMA page_size=4096")
    made.execute("CREATE TABLE made_before (x)")
    made.close()
    for path, pages in ((tmp_path / "new.db", 16384), (old, 4096)):
        with trio.fail_after(30):
            store = await SqliteStore.connect(str(path))
            try:
                await store.migrate()
                pid = await store.create_account("Bao", b"t" * 32)
                epoch = (await store.claim(pid)).epoch
                assert await store.save([SaveRow(pid, state, 1, epoch)]) == set()
                assert (await store.claim(pid)).state == state
            finally:
                await store.aclose()
        check = sqlite3.connect(path)
        assert check.execute("PRAGMA page_size").fetchone()[0] == pages
        # The state is in its page, not in a chain of overflow pages, only with 16 KB.
        overflow = check.execute(
            "SELECT COUNT(*) FROM dbstat WHERE name = 'players' AND pagetype = 'overflow'"
        ).fetchone()[0]
        check.close()
        assert (overflow == 0) == (pages == 16384)
