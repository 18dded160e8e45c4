"""A short run of the fuzz soak (scripts/soak.py) against a real server process.

The full soak (100,000 messages) is run by hand and recorded in
docs/BENCHMARKS.md; this one sends a few thousand with the same generator.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

SOAK = Path(__file__).parent.parent.parent / "scripts" / "soak.py"


def test_a_short_soak_breaks_nothing() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(SOAK),
            "--messages",
            "4000",
            "--connections",
            "6",
            "--rate",
            "2500",
            "--seed",
            "11",
            "--max-seconds",
            "120",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.stdout.strip(), f"the soak printed no report (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    report = orjson.loads(proc.stdout)
    assert report["failures"] == [], report
    assert proc.returncode == 0
    assert report["messages_sent"] == 4000
    # Every hostile kind was exercised, and answered or closed as documented.
    assert set(report["kinds"]) >= {
        "invalid_utf8",
        "binary",
        "oversized",
        "deep_nesting",
        "not_json",
        "huge_number",
        "unknown_type",
        "valid_shape",
        "mutated",
    }
    assert report["unanswered_with_id"] == 0
    assert report["server_error_log_lines"] == 0 and report["server_exit_code"] == 0
    assert set(report["closes"]) <= {"1000", "1007", "1008", "1009"}
    assert {"1007", "1009"} <= set(report["closes"])
    assert report["errors_by_code"].get("bad_request", 0) > 0 and report["errors_by_code"].get("unknown_type", 0) > 0
    good = report["good_player"]
    assert good["pings"] >= 5 and good["errors"] == {} and good["close"] is None, report
    assert good["tick_lag_max"] <= 2, report
