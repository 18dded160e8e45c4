"""scripts/cluster as a command: ``down`` removes everything a cluster left,
also after a crash (namespaces with processes still in them, a veth pair in
the root namespace, the /24's route), and ``chaos`` refuses what it cannot do
with one clear line."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.cluster.harness import ROOT, need_cluster

SCRIPT = str(ROOT / "scripts" / "cluster")


def sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, check=False)


def test_down_cleans_up_after_a_crash(tmp_path: Path) -> None:
    need_cluster()
    # What a crashed `up` leaves: a namespace with a process in it, a veth
    # pair with one end in the root namespace, the unreachable route.
    assert sh("ip", "netns", "add", "bl-crashed").returncode == 0
    assert sh("ip", "link", "add", "bl-crash0", "type", "veth", "peer", "name", "bl-crash1").returncode == 0
    assert sh("ip", "route", "replace", "unreachable", "10.213.7.0/24").returncode == 0
    sleeper = subprocess.Popen(["ip", "netns", "exec", "bl-crashed", "sleep", "300"])
    try:
        deadline = time.monotonic() + 10
        while sh("ip", "netns", "pids", "bl-crashed").stdout.strip() == "" and time.monotonic() < deadline:
            time.sleep(0.05)
        down = sh(SCRIPT, "--dir", str(tmp_path / "run"), "down")
        assert down.returncode == 0, down.stderr
        assert "removed bl-crashed" in down.stdout
        assert sleeper.wait(timeout=20) != 0  # ended by a signal
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
    assert "bl-" not in sh("ip", "netns", "list").stdout
    assert "bl-crash" not in sh("ip", "link", "show").stdout
    assert sh("ip", "route", "show", "10.213.7.0/24").stdout.strip() == ""
    again = sh(SCRIPT, "--dir", str(tmp_path / "run"), "down")
    assert again.returncode == 0 and again.stdout.strip() == "nothing to remove"


def test_chaos_without_a_cluster_says_so(tmp_path: Path) -> None:
    need_cluster()
    done = sh(SCRIPT, "--dir", str(tmp_path / "none"), "chaos", "kill", "w1")
    assert done.returncode == 1
    assert done.stderr.strip() == f"scripts/cluster: no cluster state in {tmp_path / 'none'} (scripts/cluster up first)"
