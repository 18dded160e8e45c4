"""CPU per message of the read path: a client's frame bytes to a message.

What the read hub does with the bytes of one readable connection
(:meth:`baolife.net.ws.WsConnection.read_nowait` after the ``os.read``):
parse them into whole messages. Most messages are short text frames (the
load test's: ``ping``, ``act``, ``answer``, ``say``, under 126 bytes), which
the connection reads itself; anything else goes through wsproto. This
measures both on the same messages in one run:

* ``ours``: ``WsConnection``'s parsing and taking the message, as the hub does;
* ``wsproto``: a wsproto ``Connection`` alone (``receive_data`` and its
  events), what every message cost before (issue 15);
* ``pieces``: ours, each message cut in two reads (wsproto takes those).

Prints microseconds per message (median and best of the rounds) and the
ratio. Compare two trees with ``PYTHONPATH=<tree>``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
import trio
import trio.testing
from serverlib import machine
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection
from wsproto.events import AcceptConnection, Request, TextMessage

import baolife
from baolife.net.ws import WsConnection

MESSAGES = (
    {"type": "ping", "id": 1},
    {"type": "act", "action": "exercise", "id": 2},
    {"type": "answer", "prompt": 12, "choice": "b", "id": 3},
    {"type": "say", "npc": 3, "text": "How was your day?", "id": 4},
)


async def _accepted() -> tuple[WsConnection, Connection]:
    server_stream, client_stream = trio.testing.memory_stream_pair()
    conn = WsConnection(server_stream, max_message_bytes=4096)
    client = WSConnection(ConnectionType.CLIENT)
    await client_stream.send_all(client.send(Request(host="127.0.0.1", target="/ws")))
    await conn.handshake()
    await conn.accept()
    client.receive_data(bytes(await client_stream.receive_some(4096)))
    assert isinstance(next(client.events()), AcceptConnection)
    assert client.connection is not None
    return conn, client.connection


def _per_message(run: Callable[[Any], None], frames: list[Any]) -> float:
    started = time.process_time()
    run(frames)
    return (time.process_time() - started) / len(frames) * 1e6


async def main(args: argparse.Namespace) -> None:
    conn, client = await _accepted()
    frames = [client.send(TextMessage(data=orjson.dumps(MESSAGES[i % 4]).decode())) for i in range(args.messages)]
    pieces = [[f[: len(f) // 2], f[len(f) // 2 :]] for f in frames]

    def ours(batch: list[bytes]) -> None:
        for frame in batch:
            conn._feed(frame)
            conn.next_message()

    def ours_in_pieces(batch: list[list[bytes]]) -> None:
        for first, second in batch:
            conn._feed(first)
            conn._feed(second)
            conn.next_message()

    def wsproto_alone(batch: list[bytes]) -> None:
        ws = Connection(ConnectionType.SERVER)
        for frame in batch:
            ws.receive_data(frame)
            for _event in ws.events():
                pass

    runs: dict[str, list[float]] = {"ours": [], "wsproto": [], "pieces": []}
    for _ in range(args.rounds):
        runs["ours"].append(_per_message(ours, frames))
        runs["wsproto"].append(_per_message(wsproto_alone, frames))
        runs["pieces"].append(_per_message(ours_in_pieces, pieces))
    us = {name: {"median": round(statistics.median(v), 2), "best": round(min(v), 2)} for name, v in runs.items()}
    report = {
        "command": " ".join(["scripts/bench_read.py", *sys.argv[1:]]),
        "tree": baolife.__file__,
        "machine": machine(),
        "messages": args.messages,
        "rounds": args.rounds,
        "us_per_message": us,
        "wsproto_over_ours": round(us["wsproto"]["median"] / us["ours"]["median"], 2),
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    trio.run(main, parser.parse_args())
