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

``--crowd N`` measures a reconnect storm instead: N accounts log in at once
on a store of ``--pool`` connections, at no added latency and at
``--latency-ms``: logins a second, their times, the round trips and how
many lookups and claims each call sent (logins that wait for a connection
go together: baolife/db/batcher.py).
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
from baolife.db.store import StoreError, hash_token  # noqa: E402
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


async def crowd(proxy: TcpProxy, store: MysqlStore, pids: dict[bytes, int], latency: float) -> None:
    """Every account of ``pids`` logs in at once (a reconnect storm on one
    worker): logins a second and their times, and how the store sent them."""
    proxy.set_latency(latency)
    stats = store.statistics()
    calls_before, keys_before = getattr(stats, "batch_calls", None), getattr(stats, "batch_keys", None)
    trips_before = proxy.round_trips
    times: list[float] = []
    failed: list[str] = []

    async def login(token: bytes, pid: int) -> None:
        started = time.perf_counter()
        try:
            found = await store.find_login(token)
            assert found is not None and found.player_id == pid
            await store.claim(pid)
        except StoreError as exc:  # a login answered busy by the server
            failed.append(str(exc))
            return
        times.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for token, pid in pids.items():
            nursery.start_soon(login, token, pid)
    took = time.perf_counter() - started
    ms = sorted(t * 1000 for t in times) or [float("nan")]
    after = store.statistics()
    line = (
        f"  {len(pids)} logins at once, pool {store.statistics().pool_size}, +{latency * 1000:.0f} ms:"
        f" {len(times)} done in {took:.2f} s ({len(times) / took:.0f} logins/s), {len(failed)} failed"
        f"{' (' + failed[0] + ')' if failed else ''}; login p50 {statistics.median(ms):.0f} ms,"
        f" p99 {ms[int(len(ms) * 0.99)]:.0f} ms; {proxy.round_trips - trips_before} round trips"
    )
    if calls_before is not None:
        calls = after.batch_calls - calls_before  # type: ignore[attr-defined]
        keys = after.batch_keys - keys_before  # type: ignore[attr-defined]
        line += f"; {calls} calls sent {keys} lookups and claims ({keys / max(calls, 1):.1f} a call)"
    print(line)


async def main_crowd(args: argparse.Namespace) -> int:
    print(f"command: scripts/bench_login {' '.join(sys.argv[1:])}".rstrip())
    far = args.latency_ms / 1000
    async with proxied(args.url) as proxy, open_mysql(proxy.url(args.url), pool_size=args.pool) as store:
        await store.migrate()
        store.worker = "bench"
        await store.join_cluster(WorkerInfo("bench", "bench-1", "mysql", "db", "", 0.0), 600)
        pids: dict[bytes, int] = {}

        async def register(i: int) -> None:
            token = hash_token(f"bench-crowd-{i}")
            pids[token] = await store.create_account(f"Crowd {i}", token, lambda pid: (FIRST_STATE, 1))

        async with trio.open_nursery() as nursery:
            for i in range(args.crowd):
                nursery.start_soon(register, i)
        print(f"cluster worker, {args.crowd} accounts:")
        for latency in (0.0, far):
            await crowd(proxy, store, pids, latency)
    return 0


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
    parser.add_argument(
        "--crowd", type=int, default=0, help="instead: N accounts, then all log in at once (a reconnect storm)"
    )
    parser.add_argument("--pool", type=int, default=8, help="connections of the store with --crowd (default 8)")
    args = parser.parse_args(argv)
    if not 0 <= args.latency_ms <= 10_000 or args.logins < 1:
        parser.error("--latency-ms must be 0-10000 and --logins at least 1")
    return args


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    reset_database(arguments.url)
    sys.exit(trio.run(main_crowd if arguments.crowd else main, arguments))
