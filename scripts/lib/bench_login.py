"""What a login and a registration cost on MySQL/MariaDB with the database
some way off: round trips counted on the wire and wall time, at no added
latency and at ``--latency-ms`` of round trip, in one run.

Run it through ``scripts/bench_login`` (which starts MariaDB and makes the
bench database). It drops and recreates BaoLife's tables in the database of
``--url``: never point it at a database you care about.

The store is reached through the test proxy (tests/db/tcp_proxy.py), which
holds every chunk half the round trip each way and counts the client's turns
to speak. A login is the server's two store calls, ``find_login`` (the
account and its ban) and ``claim``; a registration is ``create_account``
with a first state. By default the store is a worker of a cluster (its
``worker`` set, as every worker on MySQL runs), whose claim reads the
player's owner before it commits; ``--single`` runs without. One connection,
opened before the clock starts (a worker's pool keeps its connections open).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from baolife.db.cluster import WorkerInfo  # noqa: E402
from baolife.db.mysql import MysqlStore, open_mysql  # noqa: E402
from baolife.db.store import hash_token  # noqa: E402
from tests.db.mysql_admin import reset_database  # noqa: E402
from tests.db.tcp_proxy import TcpProxy, proxied  # noqa: E402

FIRST_STATE = b'{"first": "a newborn\'s state, as small as a real one"}'


async def measure(proxy: TcpProxy, store: MysqlStore, count: int, tag: str) -> dict[str, list[float]]:
    """``count`` registrations and logins: round trips and seconds of each."""
    out: dict[str, list[float]] = {"register_trips": [], "register_s": [], "login_trips": [], "login_s": []}
    for i in range(count):
        token = hash_token(f"bench-login-{tag}-{i}")
        trips, started = proxy.round_trips, time.perf_counter()
        pid = await store.create_account(f"Bench {i}", token, lambda pid: (FIRST_STATE, 1))
        out["register_trips"].append(proxy.round_trips - trips)
        out["register_s"].append(time.perf_counter() - started)
        trips, started = proxy.round_trips, time.perf_counter()
        found = await store.find_login(token)
        assert found is not None and found.player_id == pid and found.ban is None
        await store.claim(pid)
        out["login_trips"].append(proxy.round_trips - trips)
        out["login_s"].append(time.perf_counter() - started)
    return out


def summary(seconds: list[float], trips: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    counts = sorted(set(int(t) for t in trips))
    return (
        f"{'/'.join(map(str, counts))} round trips; p50 {statistics.median(ms):.0f} ms,"
        f" p95 {ms[int(len(ms) * 0.95)]:.0f} ms, max {ms[-1]:.0f} ms"
    )


async def main(args: argparse.Namespace) -> int:
    print(f"command: scripts/bench_login {' '.join(sys.argv[1:])}".rstrip())
    far = args.latency_ms / 1000
    async with proxied(args.url) as proxy, open_mysql(proxy.url(args.url), pool_size=1) as store:
        await store.migrate()
        if not args.single:
            store.worker = "bench"
            await store.join_cluster(WorkerInfo("bench", "bench-1", "mysql", "db", "", 0.0), 600)
        await store.ping()  # the connection is open before the clock starts
        results = {}
        for latency in (0.0, far):
            proxy.set_latency(latency)
            results[latency] = await measure(proxy, store, args.logins, f"{latency}")
            r = results[latency]
            print(f"round trip +{latency * 1000:.0f} ms, {'single worker' if args.single else 'cluster worker'}:")
            print(f"  login:        {summary(r['login_s'], r['login_trips'])}")
            print(f"  registration: {summary(r['register_s'], r['register_trips'])}")
        proxy.set_latency(0)
    near, away = results[0.0], results[far]
    extra = statistics.median(away["login_s"]) - statistics.median(near["login_s"])
    trips = max(away["login_trips"])
    print(f"login p50 slower by {extra * 1000:.0f} ms at {args.latency_ms:g} ms: {trips} round trips")
    ok = trips <= args.max_trips
    print(f"target a login within {args.max_trips} round trips: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench_login", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="mysql://user:pw@host:port/database (its tables are dropped!)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="round trip added by the proxy (default 50)")
    parser.add_argument("--logins", type=int, default=20, help="registrations and logins at each latency (default 20)")
    parser.add_argument("--single", action="store_true", help="a store with no worker set (one worker, no cluster)")
    parser.add_argument("--max-trips", type=int, default=4, help="the target: round trips of a login (default 4)")
    args = parser.parse_args(argv)
    if not 0 <= args.latency_ms <= 10_000 or args.logins < 1:
        parser.error("--latency-ms must be 0-10000 and --logins at least 1")
    return args


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    reset_database(arguments.url)
    sys.exit(trio.run(main, arguments))
