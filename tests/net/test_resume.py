"""resume: a dropped client gets the frames it missed and the same stream goes on."""

from __future__ import annotations

from pathlib import Path

import trio

from baolife import content as content_pkg
from baolife.config import Settings
from baolife.tick.loop import REPLAY_FRAMES
from tests.helpers import Client, running_app

MINI = Path(__file__).parent.parent / "data" / "mini"


async def _drop(c: Client) -> None:
    """Cut the TCP connection with no close handshake, as a lost network would."""
    await trio.aclose_forcefully(c.ws._stream)


async def test_resume_replays_exactly_the_missed_frames(settings: Settings) -> None:
    with trio.fail_after(30):
        async with running_app(settings, content=content_pkg.load(MINI)) as app:
            async with Client.connect(app.ws_port) as first:
                token, _ = await first.register()
                while len(first.frames) < 8:
                    await first.frame()
                seen = first.frames[-1]["seq"]
                # The client "missed" its last three frames: it only knows seq - 3.
                last_seq = seen - 3
                missed = [f for f in first.frames if f["seq"] > last_seq]
                await _drop(first)
                async with Client.connect(app.ws_port) as again:
                    again._last_seq = last_seq
                    ref = await again.send("resume", token=token, last_seq=last_seq)
                    replayed = [await again.frame() for _ in missed]
                    assert replayed[: len(missed)] == missed  # byte-for-byte the same frames
                    ack = await again.op("ack", ref=ref)
                    assert ack == {"op": "ack", "ref": ref}
                    assert not any(op["op"] == "welcome" for f in again.frames for op in f["ops"])
                    # ...and the stream goes on without a gap (checked by Client on every frame).
                    while again.frames[-1]["seq"] < seen + 3:
                        await again.frame()
                    assert (await again.request("act", action="nap"))["op"] == "ack"


async def test_resume_that_cannot_replay_gets_a_fresh_welcome(settings: Settings) -> None:
    with trio.fail_after(30):
        async with running_app(settings, content=content_pkg.load(MINI)) as app:
            async with Client.connect(app.ws_port) as first:
                token, _ = await first.register()
                while first.frames[-1]["seq"] < REPLAY_FRAMES + 5:
                    await first.frame()
                await _drop(first)
            async with Client.connect(app.ws_port) as c:
                # Too far back: those frames are gone.
                welcome = await c.request("resume", token=token, last_seq=1)
                assert welcome["op"] == "welcome" and c.frames[-1]["seq"] == 1
            async with Client.connect(app.ws_port) as c:
                # From the future: not this stream.
                welcome = await c.request("resume", token=token, last_seq=10**6)
                assert welcome["op"] == "welcome" and c.frames[-1]["seq"] == 1


async def test_resume_over_a_connection_the_server_still_thinks_alive(settings: Settings) -> None:
    with trio.fail_after(30):
        async with running_app(settings, content=content_pkg.load(MINI)) as app:
            async with Client.connect(app.ws_port) as old:
                token, _ = await old.register()
                while len(old.frames) < 5:
                    await old.frame()
                last_seq = old.frames[-1]["seq"]
                async with Client.connect(app.ws_port) as new:
                    new._last_seq = last_seq
                    ref = await new.send("resume", token=token, last_seq=last_seq)
                    assert (await new.op("ack", ref=ref))["ref"] == ref
                    # The old connection is told it was replaced, on its own numbering.
                    assert (await old.op("bye"))["reason"] == "replaced"
                    assert await old.closed() == 4000
                    assert (await new.request("act", action="nap"))["op"] == "ack"
