"""NPC replies: a bounded job channel served by a fixed number of workers.

The engine submits a :class:`~baolife.tick.engine.SayJob` with
:meth:`NpcService.submit` (non-blocking; False when the channel is full, so
the player gets ``busy``). A worker asks the provider for the reply under
one deadline per job; if the provider fails or the deadline passes, the
scripted provider answers in character. Every job ends in exactly one
reply, handed back to the tick loop through ``deliver``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import attrs
import structlog
import trio

from ..tick.engine import SayJob
from ..tick.loop import NpcReply
from .offline import ScriptedProvider

__all__ = ["NpcService", "Provider"]

log = structlog.get_logger("baolife.ai")


class Provider(Protocol):
    name: str

    async def reply(self, job: SayJob) -> str:
        """The NPC's reply text. May raise; the service falls back."""


@attrs.frozen
class NpcStatistics:
    queued: int
    capacity: int
    workers: int
    busy_workers: int
    replies: int
    fallbacks: int


class NpcService:
    """Workers between the engine's ``say`` jobs and a :class:`Provider`."""

    def __init__(
        self,
        provider: Provider,
        fallback: ScriptedProvider,
        *,
        workers: int,
        queue: int,
        timeout: float,
        deliver: Callable[[NpcReply], object],
        observe: Callable[[str, float], None] = lambda outcome, seconds: None,
    ) -> None:
        self.provider = provider
        self.fallback = fallback
        self.workers = workers
        self.capacity = queue
        self.timeout = timeout
        self.deliver = deliver
        self.observe = observe
        self._send, self._recv = trio.open_memory_channel[SayJob](queue)
        self.busy_workers = 0
        self.replies = 0
        self.fallbacks = 0

    def statistics(self) -> NpcStatistics:
        return NpcStatistics(
            queued=self._send.statistics().current_buffer_used,
            capacity=self.capacity,
            workers=self.workers,
            busy_workers=self.busy_workers,
            replies=self.replies,
            fallbacks=self.fallbacks,
        )

    def submit(self, job: SayJob) -> bool:
        """Queue a job without blocking; False when the channel is full."""
        try:
            self._send.send_nowait(job)
        except (trio.WouldBlock, trio.ClosedResourceError):
            return False
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(self.workers):
                nursery.start_soon(self._worker)
            task_status.started()

    async def _worker(self) -> None:
        async for job in self._recv:
            self.busy_workers += 1
            try:
                text, outcome = await self._answer(job)
            finally:
                self.busy_workers -= 1
            self.replies += 1
            self.deliver(NpcReply(player=job.player, life=job.life, npc=job.npc, ref=job.ref, text=text))

    async def _answer(self, job: SayJob) -> tuple[str, str]:
        started = trio.current_time()
        text: str | None = None
        outcome = "ok"
        with trio.move_on_after(self.timeout):
            try:
                text = await self.provider.reply(job)
            except Exception as exc:  # a provider fault must not cost the player a reply
                outcome = "error"
                log.warning("npc_provider_failed", provider=self.provider.name, error=repr(exc), player=job.player)
        if text is None:
            outcome = "timeout" if outcome == "ok" else outcome
            self.fallbacks += 1
            text = self.fallback.line(job)
        self.observe(outcome if self.provider is not self.fallback else "scripted", trio.current_time() - started)
        return text, outcome
