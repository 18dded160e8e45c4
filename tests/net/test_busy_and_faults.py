"""busy when NPC replies are backed up; internal when a save cannot be read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import trio

from baolife import content as content_pkg
from baolife.ai.reply import Reply, ReplySource
from baolife.config import Settings
from baolife.db.sqlite import sqlite_path
from baolife.tick.engine import SayJob
from tests.helpers import Client, running_app

MINI = Path(__file__).parent.parent / "data" / "mini"


class GatedProvider:
    """Holds every reply until released, so the job channel fills up."""

    name = "gated"

    def __init__(self) -> None:
        self.release = trio.Event()
        self.taken = trio.Event()

    async def reply(self, job: SayJob) -> Reply:
        self.taken.set()
        await self.release.wait()
        return Reply(f"at last, {job.player_name}", ReplySource.LLM)


async def test_say_is_busy_when_replies_are_backed_up_or_one_is_in_flight(settings: Settings) -> None:
    provider = GatedProvider()
    narrow = settings.replace(ai_workers=1, ai_queue=1)
    with trio.fail_after(20):
        async with running_app(narrow, content=content_pkg.load(MINI), provider=provider) as app:
            async with (
                Client.connect(app.ws_port) as a,
                Client.connect(app.ws_port) as b,
                Client.connect(app.ws_port) as c,
            ):
                clients = [a, b, c]
                mothers = []
                for client in clients:
                    _, welcome = await client.register()
                    mothers.append(welcome["snapshot"]["npcs"][0]["id"])
                first = await a.send("say", npc=mothers[0], text="one")
                assert (await a.answer_to(first))["op"] == "ack"
                await provider.taken.wait()  # the only worker holds it
                assert (await b.request("say", npc=mothers[1], text="two"))["op"] == "ack"  # waits in the channel
                busy = await c.request("say", npc=mothers[2], text="three")
                assert busy["code"] == "busy"
                again = await a.request("say", npc=mothers[0], text="again")
                assert again["code"] == "busy"
                provider.release.set()
                assert (await a.op("npc_say", ref=first))["text"] == "at last, Test Player"
                assert (await b.op("npc_say"))["text"] == "at last, Test Player"
                # Once the queue drains, the refused player can talk again.
                ref = await c.send("say", npc=mothers[2], text="three again")
                assert (await c.answer_to(ref))["op"] == "ack"
                assert (await c.op("npc_say", ref=ref))["text"]


async def test_an_unreadable_save_is_internal_and_the_connection_stays_usable(settings: Settings) -> None:
    with trio.fail_after(20):
        async with running_app(settings) as app, Client.connect(app.ws_port) as c:
            token, welcome = await c.register()
            player = welcome["player"]
        db = sqlite3.connect(sqlite_path(settings.db_url))
        with db:
            db.execute("UPDATE players SET state = ? WHERE id = ?", (b'{"v": 1, "player": {"oops": 1}}', player))
        db.close()
        async with running_app(settings) as app, Client.connect(app.ws_port) as c:
            error = await c.request("login", token=token)
            assert error["code"] == "internal" and "cannot be read" in error["message"]
            # Still answered, and still not logged in.
            assert (await c.request("ping"))["code"] == "unauthenticated"
            token2, _ = await c.register("Someone Else")
            assert token2 != token
