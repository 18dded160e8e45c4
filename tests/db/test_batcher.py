"""baolife.db.batcher: what waits goes together, what was sent is answered.

The store's use of it (logins' lookups and claims on MySQL, counted on the
wire) is tested in tests/db/test_login_round_trips.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
import trio
import trio.lowlevel
import trio.testing

from baolife.db.batcher import Batcher
from baolife.db.store import StoreCorrupt, StoreError, StoreUnavailable


class Backend:
    """A ``run`` that records each batch and answers when the test lets it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = trio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def run(self, keys: list[int]) -> Sequence[str | Exception]:
        self.batches.append(list(keys))
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return [StoreCorrupt(f"no {k}") if k < 0 else f"answer {k}" for k in keys]


@asynccontextmanager
async def serving(backend: Backend, *, limit: int = 64, concurrency: int = 1) -> AsyncIterator[Batcher[int, str]]:
    batcher: Batcher[int, str] = Batcher(backend.run, limit=limit, concurrency=concurrency, name="test")
    async with trio.open_nursery() as nursery:
        await nursery.start(batcher.serve)
        yield batcher
        nursery.cancel_scope.cancel()


async def test_a_lone_key_goes_at_once_and_waiting_keys_go_together() -> None:
    backend = Backend()
    got: dict[int, str] = {}

    async def ask(batcher: Batcher[int, str], key: int) -> None:
        got[key] = await batcher.call(key)

    with trio.fail_after(5):
        async with serving(backend, limit=4) as batcher:
            assert await batcher.call(1) == "answer 1"
            assert backend.batches == [[1]]
            backend.gate = trio.Event()  # the next batch holds the one slot
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask, batcher, 2)
                await trio.testing.wait_all_tasks_blocked()
                for key in (3, 4, 3, 5, 6, 7):
                    nursery.start_soon(ask, batcher, key)
                await trio.testing.wait_all_tasks_blocked()
                assert backend.batches == [[1], [2]]
                assert batcher.waiting == 6
                backend.gate.set()
            # At most `limit` keys a batch, one key once a batch (the second 3 waits for the next).
            later = backend.batches[2:]
            assert backend.batches[:2] == [[1], [2]] and len(later[0]) == 4
            assert all(len(set(b)) == len(b) <= 4 for b in later)
            assert sorted(k for b in later for k in b) == [3, 3, 4, 5, 6, 7]
            assert got == {k: f"answer {k}" for k in (2, 3, 4, 5, 6, 7)}
            assert (batcher.batches, batcher.keys, batcher.largest) == (2 + len(later), 8, 4)


async def test_a_key_given_up_before_it_is_sent_is_never_sent() -> None:
    backend = Backend()
    with trio.fail_after(5):
        async with serving(backend) as batcher:
            backend.gate = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(batcher.call, 1)  # takes the slot
                await trio.testing.wait_all_tasks_blocked()
                with trio.CancelScope() as scope:
                    scope.deadline = trio.current_time() + 0.05
                    await batcher.call(2)
                assert scope.cancelled_caught
                assert batcher.waiting == 0
                backend.gate.set()
            assert await batcher.call(3) == "answer 3"
            assert backend.batches == [[1], [3]]


async def test_a_sent_key_is_answered_even_when_its_caller_gives_up() -> None:
    """A claim done in the database is not lost in the process: the caller
    gets its answer, and its cancellation at its next checkpoint."""
    backend = Backend()
    backend.gate = trio.Event()
    answers: list[str] = []
    with trio.fail_after(5):
        async with serving(backend) as batcher, trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def caller() -> None:
                with scope:
                    answers.append(await batcher.call(1))
                    await trio.lowlevel.checkpoint()  # the next checkpoint

            nursery.start_soon(caller)
            await trio.testing.wait_all_tasks_blocked()
            assert backend.batches == [[1]]
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert answers == []  # still waiting for its batch
            backend.gate.set()
        assert answers == ["answer 1"] and scope.cancelled_caught


async def test_failures_answer_their_keys() -> None:
    backend = Backend()
    with trio.fail_after(5):
        async with serving(backend, concurrency=1) as batcher:
            # A key's own failure is that key's alone.
            backend.gate = trio.Event()
            outcomes: dict[int, object] = {}

            async def ask(key: int) -> None:
                try:
                    outcomes[key] = await batcher.call(key)
                except StoreError as exc:
                    outcomes[key] = exc

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask, 0)
                await trio.testing.wait_all_tasks_blocked()
                for key in (-1, 2):
                    nursery.start_soon(ask, key)
                await trio.testing.wait_all_tasks_blocked()
                backend.gate.set()
            assert sorted(backend.batches[-1]) == [-1, 2]
            assert isinstance(outcomes[-1], StoreCorrupt) and outcomes[2] == "answer 2"

            # A failure of the call is every key's, each caller with its own exception object.
            backend.fail = StoreUnavailable("database away")
            backend.gate = trio.Event()
            outcomes.clear()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask, 10)
                await trio.testing.wait_all_tasks_blocked()
                for key in (11, 12):
                    nursery.start_soon(ask, key)
                await trio.testing.wait_all_tasks_blocked()
                backend.gate.set()
            errors = [outcomes[k] for k in (10, 11, 12)]
            assert all(isinstance(e, StoreUnavailable) and str(e) == "database away" for e in errors)
            assert errors[1] is not errors[2]


async def test_closing_answers_every_waiting_caller() -> None:
    backend = Backend()
    backend.gate = trio.Event()
    outcomes: list[BaseException] = []

    async def ask(batcher: Batcher[int, str], key: int) -> None:
        try:
            await batcher.call(key)
        except StoreUnavailable as exc:
            outcomes.append(exc)

    with trio.fail_after(5):
        batcher: Batcher[int, str] = Batcher(backend.run, limit=8, concurrency=1, name="test")
        async with trio.open_nursery() as outer:
            async with trio.open_nursery() as serving_nursery:
                await serving_nursery.start(batcher.serve)
                outer.start_soon(ask, batcher, 1)  # sent, never answered by the backend
                await trio.testing.wait_all_tasks_blocked()
                outer.start_soon(ask, batcher, 2)  # waiting
                await trio.testing.wait_all_tasks_blocked()
                serving_nursery.cancel_scope.cancel()
        assert len(outcomes) == 2 and all("closed" in str(e) for e in outcomes)
        with pytest.raises(StoreUnavailable, match="closed"):
            await batcher.call(3)
