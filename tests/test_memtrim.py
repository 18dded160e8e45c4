"""The trimmer gives freed C-heap memory back to the system, on its interval."""

from __future__ import annotations

import sys
import threading

import pytest
import trio
import trio.testing

from baolife.memtrim import Trimmer, glibc_trim, rss_bytes

linux_glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or glibc_trim() is None, reason="needs Linux with glibc's malloc_trim"
)

MB = 1024 * 1024


@linux_glibc
def test_freed_heap_chunks_between_live_ones_leave_the_resident_set() -> None:
    # 40 KB buffers come from glibc's heap (over Python's 512 B, under the
    # 128 KB mmap threshold). Keeping every eighth one pins the heap: the
    # free chunks between them cannot be returned by shrinking its top.
    chunks = [bytearray(b"x" * (40 * 1024)) for _ in range(2_400)]
    kept = chunks[::8]
    del chunks
    before = rss_bytes()
    assert before is not None
    trimmer = Trimmer(10.0, glibc_trim())
    released = trimmer.trim()
    after = rss_bytes()
    assert after is not None
    # About 80 MB freed in runs of seven buffers (280 KB): most of it goes back.
    assert before - after > 40 * MB, (before, after)
    assert released == trimmer.released > 40 * MB
    assert trimmer.trims == 1 and trimmer.seconds > 0
    assert all(len(k) == 40 * 1024 and k[-1:] == b"x" for k in kept)  # what is live is untouched


async def test_trims_once_per_interval(autojump_clock: trio.testing.MockClock) -> None:
    calls: list[float] = []
    # In the loop's thread here: the mock clock does not wait for threads.
    trimmer = Trimmer(10.0, lambda: calls.append(trio.current_time()), in_thread=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(trimmer.run)
        await trio.sleep(35)
        nursery.cancel_scope.cancel()
    assert calls == [10.0, 20.0, 30.0]
    assert trimmer.trims == 3


@pytest.mark.parametrize(("interval", "has_trim"), [(0.0, True), (10.0, False)])
async def test_off_or_unavailable_returns_at_once(
    autojump_clock: trio.testing.MockClock, interval: float, has_trim: bool
) -> None:
    calls: list[int] = []
    trimmer = Trimmer(interval, (lambda: calls.append(1)) if has_trim else None)
    assert not trimmer.enabled
    with trio.fail_after(1):
        await trimmer.run()  # returns: nothing left running in the app's nursery
    assert calls == []
    assert trimmer.trims == 0


def test_metrics_count_the_trims_only_while_on() -> None:
    from baolife.metrics.process import families
    from baolife.systemd import Notifier

    on = Trimmer(10.0, lambda: None)
    on.trim()
    on.trim()
    got = {m.name: m.samples[0].value for m in families(False, Notifier(None), None, on)}
    assert got["baolife_malloc_trims"] == 2
    assert got["baolife_malloc_trim_seconds"] >= 0
    off = Trimmer(0.0, lambda: None)
    assert not [m for m in families(False, Notifier(None), None, off) if "trim" in m.name]


async def test_a_trim_in_a_worker_thread_lets_the_loop_run_meanwhile() -> None:
    started, finished = trio.Event(), trio.Event()
    release = threading.Event()

    def slow_trim() -> None:
        trio.from_thread.run_sync(started.set)
        release.wait(10)  # a trim that takes as long as the test wants
        trio.from_thread.run_sync(finished.set)

    trimmer = Trimmer(0.01, slow_trim)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trimmer.run)
        with trio.fail_after(10):
            await started.wait()
            # The loop's timers fire while the trim is under way.
            await trio.sleep(0.05)
            assert not finished.is_set()
            release.set()
            await finished.wait()
        nursery.cancel_scope.cancel()
