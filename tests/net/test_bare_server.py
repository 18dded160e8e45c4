"""The bare server (scripts/bench_ceiling.py), which ``scripts/loadtest
--server bare`` measures as the floor of our WebSocket stack: it must keep
answering as the server does, on each of its send and read paths.

It stopped doing so once (a writer that returned at once on an empty queue
closed every connection), and the load test then measured nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.serverproc import serve_process

BARE = Path(__file__).parent.parent.parent / "scripts" / "bench_ceiling.py"


@pytest.mark.parametrize("flags", [(), ("--no-direct-write",), ("--reader-tasks",)])
async def test_the_bare_server_answers_a_player(flags: tuple[str, ...], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAOLIFE_")}
    env["BAOLIFE_WS_BIND"] = "127.0.0.1:0"
    async with serve_process(env, tmp_path, argv=(str(BARE), *flags)) as server:
        with trio.fail_after(20):
            async with open_websocket_url(f"ws://127.0.0.1:{server.ws_port}/") as ws:
                await ws.send_message(orjson.dumps({"type": "register", "name": "Ada", "id": 1}).decode())
                first = orjson.loads(await ws.get_message())
                assert first["type"] == "frame" and first["seq"] == 1
                assert [op["op"] for op in first["ops"]] == ["registered", "welcome"]
                assert first["ops"][1]["ref"] == 1
                await ws.send_message(orjson.dumps({"type": "ping", "id": "p"}).decode())
                # Its day's state frames come too; the pong is in one of the next frames.
                seqs = [first["seq"]]
                pong = None
                while pong is None:
                    frame = orjson.loads(await ws.get_message())
                    seqs.append(frame["seq"])
                    pong = next((op for op in frame["ops"] if op["op"] == "pong"), None)
                assert pong == {"op": "pong", "ref": "p"}
                assert seqs == list(range(1, len(seqs) + 1))
        server.terminate()
        with trio.fail_after(10):
            assert await server.exited() == 0
