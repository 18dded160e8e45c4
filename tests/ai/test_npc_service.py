"""The NPC service's workers: how many jobs a worker serves each time the
scheduler runs it.

A reply that takes no time (the offline provider, a cache hit) used to cost
its worker one pass of the scheduler; while the tick loop keeps the core
busy, passes come about once a tick, so 16 workers served about 160 jobs a
second and at 19,500 players the channel filled and players got ``busy``.
"""

from __future__ import annotations

import trio
import trio.lowlevel
import trio.testing
from npc_stack import say_job

from baolife.ai.offline import ScriptedProvider
from baolife.ai.service import RUN_OF, NpcService
from baolife.content.schema import Content
from baolife.tick.loop import NpcReply


async def test_a_worker_serves_a_run_of_queued_jobs_each_time_it_runs_then_yields(content: Content) -> None:
    scripted = ScriptedProvider(content)
    replies: list[NpcReply] = []
    service = NpcService(scripted, scripted, workers=1, queue=256, timeout=5.0, deliver=replies.append)
    jobs = 3 * RUN_OF + 5
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        await trio.testing.wait_all_tasks_blocked()  # the worker waits for a job
        for n in range(jobs):
            assert service.submit(say_job(player=n + 1, ref=n))
        # Two passes of the scheduler: the worker ran once or twice in them,
        # a run of jobs each time (one job each time before), and not all of
        # them in one go: it yields between runs.
        await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
        assert RUN_OF <= len(replies) <= 2 * RUN_OF
        await trio.testing.wait_all_tasks_blocked()
        assert [reply.ref for reply in replies] == list(range(jobs))
        assert service.statistics().queued == 0 and service.replies == jobs
        nursery.cancel_scope.cancel()
