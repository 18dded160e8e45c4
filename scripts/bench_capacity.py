"""Capacity model inputs (issue 13, docs/SCALING.md): a worker's memory per
logged-in player and the database's writes and bytes per player, measured.

For each ``--lives`` kind (``newborn``: the players register; ``mixed``:
lives of every age seeded by scripts/seed_lives.py, the players log in to
them) and each ``--players`` N, this script:

- starts its own MariaDB (a fresh datadir under a temporary folder,
  ``127.0.0.1:--port``, Debian's defaults: ``innodb_flush_log_at_trx_commit=1``,
  a 128 MiB buffer pool), so that its global counters count this run and
  nothing else on the machine, and creates the database ``baolife_capacity``;
- runs ``baolife serve`` on it pinned to CPU 0 (SQLite never: the cluster's
  store is MySQL) and the load test's players (scripts/loadgen.mjs: ping
  every ~5 s, answer prompts, act every ~20 s, talk every ~2 min) on CPU 1;
- over the generator's measured window takes the server's RSS (each
  second), its CPU, the deltas of MariaDB's ``SHOW GLOBAL STATUS``
  (statements, rows, bytes received, bytes InnoDB wrote to data files and to
  its log, fsyncs) and of the server's own store and saver metrics;
- after the server's clean stop, the database's size on disk
  (``information_schema``, after ``ANALYZE TABLE``) and the mean stored state.

It prints one JSON object: the command, the machine, each run, and the
slopes between the runs of each kind with the fewest and the most players
logged in (RSS per 1,000 logged-in players; statements, rows and bytes per
second per 1,000; database bytes per player), which is what the capacity
model of docs/SCALING.md uses. A login answered ``busy`` (the server's
``BAOLIFE_AUTH_TIMEOUT``) is not retried, so the figures count the players
logged in, and a run that logged in fewer than 95 % of them says so on
stderr (lower ``--ramp``). RSS and bytes hardly move with other load on the
machine; CPU figures do.

    scripts/bench_capacity --players 2000 4000 --lives newborn mixed --ramp 40

One piece: one benchmark run as one file; the database it starts, the
servers and generators it runs and the report share one run's figures.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pymysql
import trio
from serverlib import child_server, fetch_metrics, loopback_env, machine, proc_stat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATABASE = "baolife_capacity"
# MariaDB's counters read before and after the window (SHOW GLOBAL STATUS).
STATUS = (
    "Com_insert",
    "Com_update",
    "Com_select",
    "Com_delete",
    "Com_commit",
    "Questions",
    "Bytes_received",
    "Bytes_sent",
    "Handler_write",
    "Handler_update",
    "Handler_read_key",
    "Handler_commit",
    "Innodb_pages_written",
    "Innodb_data_written",
    "Innodb_data_writes",
    "Innodb_os_log_written",
    "Innodb_data_fsyncs",
    "Innodb_os_log_fsyncs",
)
# The server's own counters read at the same moments (/metrics).
METRICS = re.compile(
    r"^(baolife_flush_rows_total|baolife_flush_batch_players_count|baolife_flush_seconds_(?:count|sum)"
    r"|baolife_store_seconds_count\{[^}]*\}|baolife_player_days_total|baolife_saves_fenced_total"
    r"|baolife_flush_failures_total|baolife_bus_polls_total)\s"
)
_RESET = "DROP DATABASE IF EXISTS baolife_capacity"
_CREATE = "CREATE DATABASE baolife_capacity CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
_ANALYZE = "ANALYZE TABLE baolife_capacity.players, baolife_capacity.accounts"
_SIZE = "SELECT table_name, data_length, index_length FROM information_schema.TABLES WHERE table_schema = %s"
_STATES = "SELECT COUNT(*), AVG(LENGTH(state)), MAX(LENGTH(state)) FROM baolife_capacity.players"
_STATUS = "SHOW GLOBAL STATUS"


class MariaDB:
    """A MariaDB server of this script's own: started on a fresh datadir,
    stopped (by its pid) and removed at the end."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> None:
        data = self.folder / "data"
        data.mkdir(parents=True)
        root = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={data}", *root,
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
        log = open(self.folder / "mariadbd.log", "wb")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={data}", *root,
             f"--socket={self.folder / 'mysqld.sock'}", f"--pid-file={self.folder / 'mariadbd.pid'}",
             "--bind-address=127.0.0.1", f"--port={self.port}", "--skip-name-resolve",
             "--max-connections=500"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                self.connect(database=None).close()
                return
            except pymysql.err.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    tail = (self.folder / "mariadbd.log").read_text(errors="replace")[-2000:]
                    raise SystemExit(f"mariadbd did not start on port {self.port}: {tail}") from None
                time.sleep(0.25)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def connect(self, database: str | None = DATABASE) -> pymysql.Connection[Any]:
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", database=database, autocommit=True)

    def fresh(self) -> None:
        """An empty ``baolife_capacity``: each run starts from nothing."""
        with self.connect(database=None) as conn, conn.cursor() as cur:
            cur.execute(_RESET)
            cur.execute(_CREATE)

    def status(self) -> dict[str, int]:
        with self.connect(database=None) as conn, conn.cursor() as cur:
            cur.execute(_STATUS)
            return {name: int(value) for name, value in cur.fetchall() if name in STATUS}

    def size(self) -> dict[str, Any]:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(_ANALYZE)
            cur.fetchall()
            cur.execute(_SIZE, (DATABASE,))
            tables = {name: int(data) + int(index) for name, data, index in cur.fetchall()}
            cur.execute(_STATES)
            rows, mean, largest = cur.fetchone()
        return {
            "bytes_by_table": tables,
            "bytes": sum(tables.values()),
            "players": int(rows),
            "state_bytes_mean": round(float(mean or 0)),
            "state_bytes_max": int(largest or 0),
        }


@asynccontextmanager
async def own_mariadb(port: int) -> AsyncIterator[MariaDB]:
    folder = Path(tempfile.mkdtemp(prefix="baolife-capacity-db-"))
    db = MariaDB(folder, port)
    try:
        await trio.to_thread.run_sync(db.start)
        yield db
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(db.stop)
        shutil.rmtree(folder, ignore_errors=True)


def parse_metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if METRICS.match(line):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, float]:
    return {k: round(v - before.get(k, 0), 3) for k, v in after.items() if v - before.get(k, 0)}


async def seed(db: MariaDB, folder: str, players: int, templates: int, hours: float, seed_: int) -> dict[str, Any]:
    """Lives of every age in the database (scripts/seed_lives.py)."""
    done = await trio.run_process(
        [sys.executable, str(HERE / "seed_lives.py"), "--players", str(players), "--templates", str(templates),
         "--hours", str(hours), "--seed", str(seed_), "--db", db.url, "--tokens", f"{folder}/tokens"],
        capture_stdout=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    report: dict[str, Any] = orjson.loads(done.stdout)
    return {k: report[k] for k in ("players", "templates", "stages", "state_bytes_mean", "seconds_living")}


async def one_run(db: MariaDB, lives: str, players: int, args: argparse.Namespace) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="baolife-capacity-")
    try:
        await trio.to_thread.run_sync(db.fresh)
        seeded = None
        if lives == "mixed":
            seeded = await seed(db, folder, players, args.templates, args.hours, args.seed)
        env = loopback_env(folder, conn_per_ip=1000000, register_per_ip_hour=1000000, max_connections=1000000)
        env["BAOLIFE_DB_URL"] = db.url
        env.update(dict(kv.split("=", 1) for kv in args.env))
        command = ["taskset", "-c", "0", sys.executable, "-m", "baolife", "serve"]
        async with child_server(command, env, folder) as child:
            pid = child.proc.pid
            await trio.sleep(2)
            rss_idle = proc_stat(pid)[1]
            result = await drive(db, child.http_port, child.ws_port, pid, players, lives, folder, args)
            stopped = await child.stop()
            lines = await child.log_lines()
            errors = sum(1 for x in lines if x.get("level") in ("error", "critical"))
            warnings = Counter(str(x.get("event")) for x in lines if x.get("level") in ("warning", "error", "critical"))
        size = await trio.to_thread.run_sync(db.size)
        return {
            "lives": lives,
            "players": players,
            "seeded": seeded,
            "rss_idle_mb": round(rss_idle / 2**20, 1),
            **result,
            "database_after": size,
            "database_bytes_per_player": round(size["bytes"] / max(1, size["players"])),
            "server_error_log_lines": errors,
            "server_warnings_by_event": dict(warnings),
            "server_exit_code": stopped,
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def drive(
    db: MariaDB, http_port: int, ws_port: int, pid: int, players: int, lives: str, folder: str, args: argparse.Namespace
) -> dict[str, Any]:
    """The load test's players for one window; what the server and the database did in it."""
    gen = await trio.lowlevel.open_process(
        ["taskset", "-c", "1", "node", str(HERE / "loadgen.mjs"), str(ws_port), str(players), str(args.ramp),
         str(args.duration), str(args.seed), *([f"{folder}/tokens"] if lives == "mixed" else [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert gen.stdout is not None and gen.stderr is not None
    marks: dict[str, Any] = {}
    rss: list[int] = []
    out = b""

    async def snapshot(key: str) -> None:
        marks[key] = {
            "t": time.perf_counter(),
            "cpu": proc_stat(pid)[0],
            "rss": proc_stat(pid)[1],
            "db": await trio.to_thread.run_sync(db.status),
            "metrics": parse_metrics(await fetch_metrics(http_port)),
        }

    async def read_out() -> None:
        nonlocal out
        assert gen.stdout is not None
        while chunk := await gen.stdout.receive_some(65536):
            out += chunk

    async def sample() -> None:
        while True:
            await trio.sleep(1)
            if "start" in marks and "end" not in marks:
                rss.append(proc_stat(pid)[1])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_out)
        nursery.start_soon(sample)
        buffer = b""
        while chunk := await gen.stderr.receive_some(4096):
            buffer += chunk
            if b"MEASURE_START" in buffer and "start" not in marks:
                await snapshot("start")
            if b"MEASURE_END" in buffer and "end" not in marks:
                await snapshot("end")
        nursery.cancel_scope.cancel()
    await gen.wait()
    if "end" not in marks:
        raise SystemExit(f"the generator ended without a measured window: {buffer.decode(errors='replace')[-2000:]}")
    report = orjson.loads(out)
    start, end = marks["start"], marks["end"]
    wall = end["t"] - start["t"]
    db_delta = delta(end["db"], start["db"])
    return {
        "connected": report.get("connected"),
        "connect_failures": report.get("connect_failures"),
        "logged_in": report.get("welcomed", 0),
        # Each player pings every 4-6 s while it plays: pongs in the window
        # over window / 5 s is how many were still playing (a closed one stops).
        "playing_estimate": round(report["ping_rtt_ms"]["n"] * 5 / wall) if report.get("ping_rtt_ms") else 0,
        "closed_by_server": report.get("closed_by_server"),
        "generator_loop_lag_ms": report.get("generator_loop_lag_ms"),
        "errors_by_code": report.get("errors_by_code"),
        "ping_rtt_ms": report.get("ping_rtt_ms"),
        "window_s": round(wall, 2),
        "server_cpu_percent": round(100 * (end["cpu"] - start["cpu"]) / wall, 1),
        "rss_window_mean_mb": round(sum(rss) / max(1, len(rss)) / 2**20, 1),
        "rss_window_end_mb": round(end["rss"] / 2**20, 1),
        "db_per_second": {k: round(v / wall, 1) for k, v in db_delta.items()},
        "metrics_per_second": {k: round(v / wall, 2) for k, v in delta(end["metrics"], start["metrics"]).items()},
    }


def slopes(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per 1,000 logged-in players (welcomed: a login answered ``busy`` is a
    connection without a player), between the smallest and largest run of
    each kind of lives."""
    out: dict[str, Any] = {}
    for lives in sorted({r["lives"] for r in runs}):
        mine = sorted((r for r in runs if r["lives"] == lives), key=lambda r: r["logged_in"])
        low, high = mine[0], mine[-1]
        per_k: dict[str, Any] = {"between_logged_in": [low["logged_in"], high["logged_in"]]}
        if high["logged_in"] > low["logged_in"]:
            k = (high["logged_in"] - low["logged_in"]) / 1000
            per_k["rss_mb_per_1000"] = round((high["rss_window_mean_mb"] - low["rss_window_mean_mb"]) / k, 1)
            per_k["db_per_second_per_1000"] = {
                name: round((high["db_per_second"].get(name, 0) - low["db_per_second"].get(name, 0)) / k, 1)
                for name in sorted(set(high["db_per_second"]) | set(low["db_per_second"]))
            }
            per_k["cpu_percent_per_1000"] = round((high["server_cpu_percent"] - low["server_cpu_percent"]) / k, 2)
        # Also plain ratios at the largest run (what a worker of that size costs per 1,000).
        n = max(1, high["logged_in"]) / 1000
        per_k["at_largest_per_1000"] = {
            "rss_mb": round(high["rss_window_mean_mb"] / n, 1),
            "db_per_second": {name: round(v / n, 1) for name, v in high["db_per_second"].items()},
            "flush_rows_per_second": round(high["metrics_per_second"].get("baolife_flush_rows_total", 0) / n, 1),
        }
        per_k["database_bytes_per_player"] = high["database_bytes_per_player"]
        per_k["state_bytes_mean"] = high["database_after"]["state_bytes_mean"]
        out[lives] = per_k
    return out


async def main(args: argparse.Namespace) -> int:
    report: dict[str, Any] = {"command": " ".join(["scripts/bench_capacity", *sys.argv[1:]]), "machine": machine()}
    runs: list[dict[str, Any]] = []
    async with own_mariadb(args.port) as db:
        for lives in args.lives:
            for players in sorted(args.players):
                print(f"run: {lives} lives, {players} players", file=sys.stderr, flush=True)
                runs.append(run := await one_run(db, lives, players, args))
                if run["logged_in"] < 0.95 * players:
                    print(f"  only {run['logged_in']} logged in (busy logins): try a lower --ramp", file=sys.stderr)
    report["runs"] = runs
    report["per_1000_players"] = slopes(runs)
    report["load_average_after"] = os.getloadavg()
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--players", type=int, nargs="+", default=[2000, 4000], help="players of each run")
    parser.add_argument("--lives", nargs="+", choices=("newborn", "mixed"), default=["newborn", "mixed"])
    parser.add_argument("--duration", type=float, default=30, help="seconds measured after the ramp")
    parser.add_argument(
        "--ramp", type=float, default=40, help="new players per second (a login answered busy is not retried)"
    )
    parser.add_argument("--templates", type=int, default=100, help="distinct lives seeded for --lives mixed")
    parser.add_argument("--hours", type=float, default=4.0, help="most real hours a seeded life has played")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=20800, help="port of this script's own MariaDB (127.0.0.1)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra server setting")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.players) or args.duration <= 0 or args.ramp <= 0:
        parser.error("--players, --duration and --ramp must be positive")
    if any("=" not in kv or not kv.startswith("BAOLIFE_") for kv in args.env):
        parser.error("--env takes BAOLIFE_NAME=VALUE")
    if shutil.which("node") is None or shutil.which("taskset") is None:
        parser.error("needs node (scripts/loadgen.mjs) and taskset")
    if not Path("/usr/sbin/mariadbd").exists() or shutil.which("mariadb-install-db") is None:
        parser.error("needs mariadb-server (/usr/sbin/mariadbd, mariadb-install-db): scripts/mariadb-up installs it")
    return args


if __name__ == "__main__":
    raise SystemExit(trio.run(main, parse()))
