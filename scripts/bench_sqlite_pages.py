#!/usr/bin/env python3
"""What a save costs the SQLite store with 4 KB pages (SQLite's default, and
every database made before 16 KB) against 16 KB pages (a new database now).

Plays ``--templates`` lives of every age on the real engine
(``seed_lives.live_templates``), gives ``--players`` players their
documents, then saves ``--saves`` of them a round through
:meth:`SqliteStore.save` in batches of ``--batch`` (what the saver does
every save interval), the two page sizes alternated round by round, each in
a new database file. Prints one JSON object: the store thread's CPU and the
wall time per saved state (median of the rounds), the ratio of 16 KB to
4 KB, the files' sizes, the command and the machine.

    .venv/bin/python scripts/bench_sqlite_pages.py --players 10000 --rounds 5
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed_lives import live_templates  # noqa: E402
from serverlib import machine  # noqa: E402

from baolife.db.sqlite import SqliteStore  # noqa: E402
from baolife.db.store import SaveRow  # noqa: E402
from baolife.model import SCHEMA_VERSION, dump_player  # noqa: E402

# PRAGMA takes no parameters: one literal statement per size measured.
PAGE_SIZE = {4096: "PRAGMA page_size=4096", 16384: "PRAGMA page_size=16384"}


def thread_cpu(name: str) -> float:
    """CPU seconds of this process's thread called ``name``."""
    (ident,) = [t.ident for t in threading.enumerate() if t.name == name]
    assert ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(ident))


def fresh(path: Path, page_size: int) -> None:
    """No database at ``path``, or an empty one made with ``page_size``."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if page_size != 16384:
        # The page size a database was made with stays (the store's own
        # PRAGMA only reaches a new file): make it first with this one.
        conn = sqlite3.connect(path)
        conn.execute(PAGE_SIZE[page_size])
        conn.execute("CREATE TABLE made_with (x)")
        conn.close()


def fill(path: Path, page_size: int, docs: list[bytes], players: int) -> None:
    """``players`` accounts and players with these documents, in one transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    got = conn.execute("PRAGMA page_size").fetchone()[0]
    assert got == page_size, (got, page_size)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO accounts (id, token_hash, name, created_at) VALUES (?, ?, ?, 0)",
        [(pid, pid.to_bytes(32, "big"), f"P{pid}") for pid in range(1, players + 1)],
    )
    conn.executemany(
        "INSERT INTO players (id, state, schema_version, epoch, updated_at) VALUES (?, ?, ?, 1, 0)",
        [(pid, docs[pid % len(docs)], SCHEMA_VERSION) for pid in range(1, players + 1)],
    )
    conn.execute("COMMIT")
    conn.close()


def file_mb(path: Path) -> float:
    return path.stat().st_size / 2**20


async def one_round(
    path: Path, page_size: int, docs: list[bytes], args: argparse.Namespace, seed: int
) -> dict[str, float]:
    fresh(path, page_size)
    store = await SqliteStore.connect(str(path))
    try:
        await store.migrate()
        fill(path, page_size, docs, args.players)
        ids = random.Random(seed).sample(range(1, args.players + 1), args.saves)
        rows = [SaveRow(pid, docs[(pid + 1) % len(docs)], SCHEMA_VERSION, 1) for pid in ids]
        cpu0, wall0 = thread_cpu("sqlite-store"), time.perf_counter()
        for start in range(0, len(rows), args.batch):
            refused = await store.save(rows[start : start + args.batch])
            assert not refused
        cpu, wall = thread_cpu("sqlite-store") - cpu0, time.perf_counter() - wall0
    finally:
        await store.aclose()
    return {"cpu_us": cpu / args.saves * 1e6, "wall_us": wall / args.saves * 1e6, "mb": file_mb(path)}


async def run(args: argparse.Namespace) -> dict[str, object]:
    lives = live_templates(args.templates, args.hours, args.seed)
    docs = [dump_player(p) for p in lives]
    sizes = (4096, 16384)
    figures: dict[int, list[dict[str, float]]] = {size: [] for size in sizes}
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        for r in range(args.rounds):
            for size in sizes if r % 2 == 0 else sizes[::-1]:
                path = Path(tmp) / f"pages-{size}.db"
                figures[size].append(await one_round(path, size, docs, args, args.seed + r))

    def median(size: int, key: str) -> float:
        return round(statistics.median(f[key] for f in figures[size]), 1)

    return {
        "command": " ".join(["scripts/bench_sqlite_pages.py", *sys.argv[1:]]),
        "machine": machine(),
        "document_bytes_mean": round(statistics.mean(map(len, docs))),
        "per_state_saved": {
            f"{size}": {
                "store_thread_cpu_us": median(size, "cpu_us"),
                "wall_us": median(size, "wall_us"),
                "cpu_us_rounds": [round(f["cpu_us"], 1) for f in figures[size]],
                "file_mb": median(size, "mb"),
            }
            for size in sizes
        },
        "cpu_ratio_16k_over_4k": round(median(16384, "cpu_us") / max(median(4096, "cpu_us"), 1e-9), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--templates", type=int, default=32, help="distinct lives played")
    parser.add_argument("--hours", type=float, default=7.0, help="most hours of play per life")
    parser.add_argument("--players", type=int, default=10000)
    parser.add_argument("--saves", type=int, default=6000, help="states saved a round")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(orjson.dumps(trio.run(run, args), option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
