"""scripts/seed_lives.py: the load test's lives of every age can be logged in to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from baolife.db import open_store
from baolife.db.store import hash_token
from baolife.model import load_player

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "seed_lives.py"
# What scripts/loadgen.mjs's players say (its LINES), read from the generator itself.
LOADGEN = (SCRIPT.parent / "loadgen.mjs").read_text()
LOADGEN_LINES = orjson.loads(LOADGEN.split("const LINES = ", 1)[1].split(";", 1)[0])


def seed(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, str(SCRIPT), "--db", f"sqlite:///{tmp_path}/s.db", "--tokens", f"{tmp_path}/tokens", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_seeded_accounts_log_in_to_lives_of_many_ages(tmp_path: Path) -> None:
    done = seed(tmp_path, "--players", "24", "--templates", "8", "--hours", "2", "--seed", "3")
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    tokens = (tmp_path / "tokens").read_text().split()
    assert len(tokens) == 24 == report["players"] == sum(report["stages"].values())
    ages = set()
    talked = []
    async with open_store(f"sqlite:///{tmp_path}/s.db", pool_size=1, root=".") as store:
        for i, token in enumerate(tokens):
            pid = await store.find_account(hash_token(token))
            assert pid is not None
            claim = await store.claim(pid)
            assert claim.state is not None
            player = load_player(claim.state)
            # A copy of a template under the account's own id and name.
            assert (player.id, player.name, claim.name) == (pid, f"Load {i}", f"Load {i}")
            ages.add(player.age_days)
            talked += [[(t.who, t.text) for t in npc.memory] for npc in player.npcs if npc.memory]
    # Eight templates played for different times: not all newborns, not one age.
    assert len(ages) == 8 and max(ages) > 365
    # They talked as the load test's players do, and were answered: each of
    # the player's lines (the load generator's) is followed by the NPC's reply.
    assert talked and report["npc_turns_mean"] > 0
    for memory in talked:
        for i, (who, text) in enumerate(memory):
            if who == "player":
                assert text in LOADGEN_LINES
                assert i + 1 == len(memory) or memory[i + 1][0] == "npc"
    assert any(who == "npc" for memory in talked for who, _text in memory)


@pytest.mark.parametrize("bad", [["--players", "0"], ["--hours", "0"], ["--templates", "-1"]])
def test_bad_arguments_are_refused(tmp_path: Path, bad: list[str]) -> None:
    done = seed(tmp_path, *bad)
    assert done.returncode == 2 and "must be" in done.stderr
    assert not (tmp_path / "s.db").exists()
