"""The cluster tests' tools: the cluster of scripts/cluster for one test
module, and many players through its edge (players.mjs, driven line by line).

The tests need root (network namespaces), HAProxy, MariaDB's server, openssl
and Node. Under ``CI=true`` (CI runs as root, scripts/deb-ensure installs the
rest) a missing one fails the test; elsewhere it skips, saying which.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))

from cluster import EDGE_OUT, Cluster, ClusterError, namespaces, root_links  # noqa: E402

__all__ = ["Cluster", "ClusterError", "Crowd", "Players", "cluster_for_module", "need_cluster", "wait_for", "REPORT"]

CI = os.environ.get("CI") == "true"
RUN_DIR = Path(os.environ.get("BL_CLUSTER_TEST_DIR", "/run/bl-cluster-test"))
# Figures of the cluster tests, one JSON object a line (for docs/BENCHMARKS.md).
REPORT = os.environ.get("BAOLIFE_CLUSTER_REPORT", "")


def _missing(reason: str) -> None:
    if CI:
        pytest.fail(f"{reason}; the cluster tests are mandatory with CI=true")
    pytest.skip(reason)


def need_cluster() -> None:
    """Skip (fail under CI=true) unless this machine can run a cluster."""
    if os.geteuid() != 0:
        _missing("the cluster tests need root (network namespaces)")
    if shutil.which("ip") is None:
        _missing("no `ip` command (iproute2)")
    wanted = ["haproxy:haproxy", "mariadbd:mariadb-server", "openssl:openssl", "curl:curl", "node:nodejs"]
    proc = subprocess.run([str(ROOT / "scripts" / "deb-ensure"), *wanted], capture_output=True, text=True)
    if proc.returncode != 0:
        _missing(f"cannot install what the cluster needs: {proc.stderr.strip()[-300:]}")
    if namespaces() or root_links():
        if not CI:
            pytest.skip("a cluster is already up (scripts/cluster down removes it)")
        Cluster(RUN_DIR).down()


@contextmanager
def cluster_for_module(workers: int = 3, env: Mapping[str, str] | None = None, **kw: Any) -> Iterator[Cluster]:
    need_cluster()
    cluster = Cluster(RUN_DIR)
    try:
        cluster.up(workers, env=env, **kw)
    except ClusterError as exc:
        pytest.fail(f"scripts/cluster up failed: {exc}")
    try:
        yield cluster
    finally:
        keep_logs(cluster)
        cluster.down()


def keep_logs(cluster: Cluster) -> None:
    """With ``BAOLIFE_CLUSTER_KEEP_LOGS=DIR``, copy every host's log there
    (down removes the cluster's folder): to read a failed or slow run."""
    target = os.environ.get("BAOLIFE_CLUSTER_KEEP_LOGS", "")
    if not target:
        return
    for log in cluster.dir.rglob("*.log"):
        copy = Path(target) / log.relative_to(cluster.dir)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, copy)


def wait_for(what: str, test: Callable[[], Any], timeout: float, every: float = 0.25) -> Any:
    """Poll ``test`` until it is true (its value), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = test()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def record(case: str, **figures: Any) -> None:
    """Print a test's figures, and append them to $BAOLIFE_CLUSTER_REPORT."""
    line = json.dumps({"case": case, **figures})
    print(line)
    if REPORT:
        with open(REPORT, "a") as out:
            out.write(line + "\n")


class Players:
    """``count`` players of players.mjs, registered through the edge at
    ``edge`` (the cluster's first by default). With ``wait=False`` the
    caller reads the first line itself (:meth:`wait_ready`), so that several
    crowds register at once."""

    def __init__(self, cluster: Cluster, count: int, ramp: int = 400, edge: str = EDGE_OUT, wait: bool = True) -> None:
        self.count = count
        self.ramp = ramp
        self.proc = subprocess.Popen(
            ["node", str(Path(__file__).with_name("players.mjs")), edge, "443", str(cluster.ca), str(count),
             str(ramp)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )  # fmt: skip
        self.ready: dict[str, Any] = {}
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Until every player registered (failing the test if some could not)."""
        # players.mjs gives up max(120 s, 50 ms a player) after its ramp.
        self.ready = self._line(timeout=self.count / self.ramp + max(120, self.count * 0.05) + 60)
        if not self.ready.get("ready"):
            self.close()
            pytest.fail(f"players could not all register through the edge: {self.ready}")

    def _line(self, timeout: float = 30) -> dict[str, Any]:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise AssertionError(f"players.mjs did not answer within {timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"players.mjs ended (status {self.proc.poll()})")
        return dict(json.loads(line))

    def ask(self, cmd: str, **fields: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
        self.proc.stdin.flush()
        return self._line()

    def report(self) -> dict[str, Any]:
        return self.ask("report")

    def mark(self) -> None:
        self.ask("mark")

    def dump(self) -> list[list[Any]]:
        return list(self.ask("dump")["players"])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask("quit")
                self.proc.wait(timeout=10)
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


class Crowd:
    """Players spread over every edge of the cluster, one players.mjs per
    edge (each process holds one open file per player: a process here
    cannot pass 20,000), registering at once, ``ramp`` a second each.
    :meth:`report` merges theirs: counts added, and of each percentile
    figure the count added and the largest of the processes' values (an
    upper bound of the merged percentile)."""

    def __init__(self, cluster: Cluster, count: int, ramp: int = 300) -> None:
        edges = cluster.edges
        shares = [count // len(edges) + (k < count % len(edges)) for k in range(len(edges))]
        self.count = count
        self.parts: list[Players] = []
        try:
            for edge, share in zip(edges, shares, strict=True):
                self.parts.append(Players(cluster, share, ramp, edge=edge, wait=False))
            for part in self.parts:
                part.wait_ready()
        except BaseException:
            self.close()
            raise

    def report(self) -> dict[str, Any]:
        return _merge([part.report() for part in self.parts])

    def mark(self) -> None:
        for part in self.parts:
            part.mark()

    def close(self) -> None:
        for part in self.parts:
            part.close()


def _merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for report in reports:
        for key, value in report.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, dict, list)):
                out.setdefault(key, value)
            elif isinstance(value, list):
                out[key] = out.get(key, []) + value
            elif isinstance(value, dict) and "p50" in value:
                seen = out.setdefault(key, {"n": 0})
                seen["n"] += value["n"]
                for q in ("p50", "p95", "p99", "max"):
                    if value.get(q) is not None:
                        seen[q] = max(seen.get(q) or 0, value[q])
            elif isinstance(value, dict):
                counts = out.setdefault(key, {})
                for name, n in value.items():
                    counts[name] = counts.get(name, 0) + n
            elif key == "window_s":
                out[key] = max(out.get(key, 0), value)
            else:
                out[key] = out.get(key, 0) + value
    return out
