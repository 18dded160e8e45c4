"""The cluster's database proxy: tests/db/tcp_proxy.py as a process, with a
control socket (scripts/cluster runs it on the ``db`` host in front of
MariaDB, so that every worker reaches the database through it).

Usage: dbproxy.py LISTEN_HOST:PORT TARGET_HOST:PORT CONTROL_SOCKET

The control socket is a Unix socket (reachable from every network namespace,
being a file); each connection sends one line and gets one JSON line back:

- ``latency MS``: hold the path MS milliseconds of round trip away;
- ``cut PEER|all reset|blackhole``: an outage for one client address or all;
- ``restore PEER|all``: end it;
- ``stats``: latency, cuts and connections per client address.

A bad command gets ``{"error": ...}`` and changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter
from pathlib import Path

import orjson
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.db.tcp_proxy import MODES, TcpProxy  # noqa: E402


def command(proxy: TcpProxy, line: str) -> dict[str, object]:
    """Apply one control line; what to answer."""
    words = line.split()
    try:
        if words[:1] == ["latency"] and len(words) == 2:
            proxy.set_latency(float(words[1]) / 1000)
        elif words[:1] == ["cut"] and len(words) == 3 and words[2] in MODES:
            proxy.cut(words[2], None if words[1] == "all" else words[1])
        elif words[:1] == ["restore"] and len(words) == 2:
            proxy.restore(None if words[1] == "all" else words[1])
        elif words != ["stats"]:
            known = "latency MS, cut PEER|all MODE, restore PEER|all, stats"
            return {"error": f"unknown command {line.strip()!r} ({known})"}
    except ValueError as exc:
        return {"error": f"{line.strip()!r}: {exc}"}
    peers = Counter(pair.peer for pair in proxy._pairs)
    return {
        "latency_ms": round(proxy.delay * 2000, 3),
        "cut_all": proxy.mode,
        "cuts": dict(proxy.peer_modes),
        "connections": dict(peers),
        "accepted": proxy.accepted,
    }


async def control(proxy: TcpProxy, path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a socket left by an earlier run
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(16)
    listener = trio.SocketListener(sock)

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            data = b""
            with trio.move_on_after(5):
                while b"\n" not in data and len(data) < 1024:
                    chunk = await stream.receive_some(1024)
                    if not chunk:
                        break
                    data += chunk
            answer = command(proxy, data.decode(errors="replace"))
            with contextlib.suppress(trio.BrokenResourceError):
                await stream.send_all(orjson.dumps(answer) + b"\n")

    await trio.serve_listeners(handle, [listener])


async def main(listen: str, target: str, control_path: str) -> None:
    lhost, lport = listen.rsplit(":", 1)
    thost, tport = target.rsplit(":", 1)
    proxy = TcpProxy(thost, int(tport), listen_host=lhost, listen_port=int(lport))
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        nursery.start_soon(control, proxy, control_path)
        print(f"dbproxy {listen} -> {target}, control {control_path}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(main, sys.argv[1], sys.argv[2], sys.argv[3])
