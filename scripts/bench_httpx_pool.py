"""Client CPU per chat call against the size of httpx's connection pool.

httpcore 1.0's pool scans its connections on every request, so the client's
CPU per call grows with the pool (encode/httpcore#1035). This is why the
pool is bounded by ``ai_workers`` (a worker has at most one call out) rather
than left large. The fake OpenAI server runs in its own process; each pool
size makes ``--calls`` calls with as many concurrent callers as connections.

    scripts/bench_httpx_pool [--calls 3000] [--sizes 1,4,16,64]
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import trio

from baolife.ai.client import ChatClient

ROOT = Path(__file__).resolve().parent.parent
BODY = {
    "model": "m",
    "messages": [{"role": "system", "content": "x" * 400}, {"role": "user", "content": "hello"}],
    "max_tokens": 50,
    "user": "p1",
}


async def measure(base_url: str, calls: int, size: int) -> tuple[float, float]:
    client = ChatClient(base_url, "k", max_connections=size, timeout=10)
    send, recv = trio.open_memory_channel[int](calls)
    for i in range(calls):
        send.send_nowait(i)
    send.close()

    async def caller() -> None:
        async for _ in recv:
            await client.complete(BODY)

    wall, cpu = time.perf_counter(), time.process_time()
    async with trio.open_nursery() as nursery:
        for _ in range(size):
            nursery.start_soon(caller)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await client.aclose()
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--sizes", default="1,4,16,64")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"command: scripts/bench_httpx_pool {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {platform.system()} {platform.release()}, Python {platform.python_version()}")
    fake = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "baolife.ai.fake", "--port", "0"], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert fake.stdout is not None
        match = re.search(r"(http://127\.0\.0\.1:\d+/v1)", fake.stdout.readline())
        if not match:
            raise SystemExit("the fake server did not start")
        base = None
        for size in sizes:
            wall, cpu = trio.run(measure, match.group(1), args.calls, size)
            per_call = 1000 * cpu / args.calls
            base = base or per_call
            print(
                f"pool {size:3d}: {args.calls / wall:6.0f} calls/s, client CPU {per_call:.2f} ms/call "
                f"({per_call / base:.2f}x pool {sizes[0]})"
            )
    finally:
        fake.terminate()
        fake.wait(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
