"""scripts/loadtest end to end, small: it measures only once every player
is welcomed (as the peer's generator does), and reports the window second by
second along with its own generator's stalls.

The window once opened 5 s after the ramp whatever the server still had to
do: at 19,500 lives of every age the logins of the ramp's tail ran 17 s
into it (docs/BENCHMARKS.md, issue 15).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

LOADTEST = Path(__file__).parent.parent.parent / "scripts" / "loadtest.py"


@pytest.mark.parametrize("generator", ["node", "python"])
def test_a_small_load_test_measures_every_player_welcomed(generator: str, tmp_path: Path) -> None:
    if generator == "node" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    metrics = tmp_path / "metrics.txt"
    argv = [sys.executable, str(LOADTEST), "--generator", generator, "--players", "30", "--ramp", "200"]
    started = time.monotonic()
    done = subprocess.run(
        [*argv, "--duration", "3", "--metrics-out", str(metrics)], capture_output=True, timeout=120, check=True
    )
    # Well under the minute it would wait for a player it never saw welcomed.
    assert time.monotonic() - started < 40
    result = orjson.loads(done.stdout)["result"]
    assert result["welcomed"] == 30 and result["connect_failures"] == 0
    assert result["ping_rtt_ms"]["n"] > 0 and result["errors_by_code"].keys() <= {"not_allowed"}
    assert result["sent_while_measuring"].get("register", 0) == 0  # all in before the window
    # The server's whole /metrics, as it stood when the run ended.
    values = dict(line.split(" ", 1) for line in metrics.read_text().splitlines() if not line.startswith("#"))
    assert float(values["baolife_connections_accepted_total"]) >= 30
    if generator == "node":
        # ...and at the window's edges: everyone in when it opened.
        assert "baolife_connections 30.0" in Path(f"{metrics}.start").read_text().splitlines()
        assert "baolife_ticks_total" in Path(f"{metrics}.end").read_text()
        assert result["not_welcomed_at_start"] == 0
        assert result["joined_seconds"] >= result["ramp_seconds"]
        seconds = result["ping_p99_ms_by_second"]
        assert 2 <= len(seconds) <= 4 and any(p is not None for p in seconds)
        assert len(result["generator_lag_max_ms_by_second"]) >= 2
        assert isinstance(result["generator_major_gcs"], list)
