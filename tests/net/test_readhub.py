"""ReadHub over real socket pairs: it calls the callback of each readable
descriptor and only those, stops at remove, survives a failing callback, and
serves a reused descriptor number with its new callback."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from baolife.net.readhub import ReadHub
from baolife.net.ws import ConnectionDone, WsConnection


@asynccontextmanager
async def running_hub(**kwargs: int) -> AsyncIterator[ReadHub]:
    async with trio.open_nursery() as nursery:
        hub = ReadHub(**kwargs)
        await nursery.start(hub.run)
        try:
            yield hub
        finally:
            nursery.cancel_scope.cancel()


def reader(fd: int, got: list[bytes], seen: trio.Event | None = None) -> Callable[[], None]:
    def readable() -> None:
        try:
            got.append(os.read(fd, 4096))
        except BlockingIOError:
            return
        if seen is not None:
            seen.set()

    return readable


def pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    return a, b


async def test_only_the_readable_descriptor_is_served() -> None:
    (a1, b1), (a2, b2) = pair(), pair()
    got1: list[bytes] = []
    got2: list[bytes] = []
    with trio.fail_after(5), a1, b1, a2, b2:
        async with running_hub() as hub:
            seen = trio.Event()
            hub.add(a1.fileno(), reader(a1.fileno(), got1, seen))
            hub.add(a2.fileno(), reader(a2.fileno(), got2))
            b1.send(b"hello")
            await seen.wait()
            # Another round, so a wrong call for the quiet descriptor would show.
            seen = trio.Event()
            hub.add(a1.fileno(), reader(a1.fileno(), got1, seen))
            b1.send(b"again")
            await seen.wait()
            assert b"".join(got1) == b"helloagain"
            assert got2 == []
            assert hub.statistics().registered == 2


async def test_a_removed_descriptor_is_not_served_and_its_number_can_be_reused() -> None:
    (a, b), (e, f) = pair(), pair()
    old: list[bytes] = []
    probe: list[bytes] = []
    with trio.fail_after(5), e, f:
        async with running_hub() as hub:
            fd = a.fileno()
            hub.add(fd, reader(fd, old))
            hub.remove(fd)
            hub.remove(fd)  # idempotent
            b.send(b"unheard")
            # Readable before the probe is: a round that serves the probe would
            # have served it too, had it still been watched.
            seen = trio.Event()
            hub.add(e.fileno(), reader(e.fileno(), probe, seen))
            f.send(b"probe")
            await seen.wait()
            assert probe == [b"probe"] and old == []
            a.close()
            b.close()
            # The next socket may get the same number: it is served with its own callback.
            c, d = pair()
            with c, d:
                new: list[bytes] = []
                seen = trio.Event()
                hub.add(c.fileno(), reader(c.fileno(), new, seen))
                d.send(b"new peer")
                await seen.wait()
                assert new == [b"new peer"] and old == []


async def test_a_failing_callback_is_logged_and_dropped_and_the_others_go_on() -> None:
    (a1, b1), (a2, b2) = pair(), pair()

    def broken() -> None:
        raise ValueError("bug in one connection")

    got: list[bytes] = []
    with trio.fail_after(5), a1, b1, a2, b2, capture_logs() as logs:
        async with running_hub() as hub:
            hub.add(a1.fileno(), broken)
            seen = trio.Event()
            hub.add(a2.fileno(), reader(a2.fileno(), got, seen))
            b1.send(b"boom")
            b2.send(b"fine")
            await seen.wait()
            assert got == [b"fine"]
            assert hub.statistics().failures == 1
            assert hub.statistics().registered == 1  # the broken one is gone
            assert [e["event"] for e in logs if e["log_level"] == "error"] == ["read_callback_failed"]


async def test_a_round_serves_at_most_max_events_descriptors() -> None:
    pairs = [pair() for _ in range(3)]
    got: list[bytes] = []
    all_read = trio.Event()

    def counting(fd: int) -> Callable[[], None]:
        def readable() -> None:
            got.append(os.read(fd, 4096))
            if len(got) == 3:
                all_read.set()

        return readable

    with trio.fail_after(5):
        async with running_hub(max_events=1) as hub:
            for a, b in pairs:
                hub.add(a.fileno(), counting(a.fileno()))
                b.send(b"x")
            await all_read.wait()
            assert hub.statistics().rounds >= 3
            assert hub.statistics().callbacks == 3
        for a, b in pairs:
            a.close()
            b.close()


async def test_add_needs_a_running_hub() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        ReadHub().add(0, lambda: None)


async def test_peer_closed_is_made_only_when_asked_for_and_set_if_the_end_came_first() -> None:
    a, b = trio.testing.memory_stream_pair()
    conn = WsConnection(a, max_message_bytes=1024)
    assert conn._peer_closed is None  # an open connection holds no Event
    conn._finish(ConnectionDone(1000, "bye"))
    assert conn.peer_closed.is_set()
    other = WsConnection(b, max_message_bytes=1024)
    waiting = other.peer_closed
    assert not waiting.is_set()
    other._finish(ConnectionDone(1006, "lost"))
    assert waiting.is_set() and other.peer_closed is waiting


async def test_read_now_serves_what_is_ready_from_the_calling_task_without_waiting() -> None:
    (a1, b1), (a2, b2) = pair(), pair()
    got1: list[bytes] = []
    got2: list[bytes] = []
    assert ReadHub().read_now() == 0  # not running: nothing to read
    with trio.fail_after(5), a1, b1, a2, b2:
        async with running_hub() as hub:
            hub.add(a1.fileno(), reader(a1.fileno(), got1))
            hub.add(a2.fileno(), reader(a2.fileno(), got2))
            assert hub.read_now() == 0
            b1.send(b"one")
            b2.send(b"two")
            # No checkpoint between the sends and the reads: the hub's task has not run.
            assert hub.read_now(most=1) == 1
            assert len(got1) + len(got2) == 1
            assert hub.read_now() == 1
            assert got1 == [b"one"] and got2 == [b"two"]
            assert hub.read_now() == 0
