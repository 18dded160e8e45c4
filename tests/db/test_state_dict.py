"""scripts/train_state_dict.py: the dictionary of saved states it trains stores other lives in less."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import zstandard

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_state_dict.py"


def test_a_trained_dictionary_names_its_id_and_stores_lives_it_was_not_trained_on_in_less(tmp_path: Path) -> None:
    out = tmp_path / "state-7.zdict"
    done = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, str(SCRIPT), "--out", str(out), "--dict-id", "7", "--size", "16384"]
        + ["--lives", "40", "--hours", "1", "--held-out", "12"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    trained = zstandard.ZstdCompressionDict(out.read_bytes(), dict_type=zstandard.DICT_TYPE_FULLDICT)
    assert trained.dict_id() == report["dict_id"] == 7
    assert report["dict_bytes"] == len(out.read_bytes()) <= 16384
    held = report["held_out"]
    assert held["lives"] == 12 and held["seed"] != report["trained_on"]["seed"]
    assert held["zstd1_dict_bytes_mean"] < 0.8 * held["zstd1_bytes_mean"] < held["json_bytes_mean"]


def test_dictionary_ids_start_at_one() -> None:
    done = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, str(SCRIPT), "--out", "/nonexistent/x.zdict", "--dict-id", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "--dict-id must be 1 or more" in done.stderr
