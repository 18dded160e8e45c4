"""The import contracts of .importlinter (run by scripts/test) hold on the
tree, and they catch what they are for: each is broken by one import added
to a copy of the package (the sans-IO core using trio, the store importing
the game, a lower layer importing a higher one, a cycle)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
LINT = Path(sys.executable).with_name("lint-imports")
CONTRACTS = ROOT / ".importlinter"

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (scripts/test installs it)")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the package under ``root`` with the project's contracts."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), "--no-cache", "--no-logo", str(CONTRACTS)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_tree_keeps_every_contract() -> None:
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A copy of the package's sources to break."""
    shutil.copytree(ROOT / "baolife", tmp_path / "baolife", ignore=shutil.ignore_patterns("__pycache__", "*.toml"))
    return tmp_path


def _add(package: Path, module: str, line: str) -> None:
    path = package / module
    path.write_text(path.read_text() + f"\n{line}\n")


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # The sans-IO core: no event loop or clock, not even through another module.
        ("baolife/tick/rules.py", "import trio", "The game core does no I/O"),
        ("baolife/tick/engine.py", "import time", "The game core does no I/O"),
        ("baolife/model.py", "import structlog", "The game core does no I/O"),
        # ... and the loop, the one tick module allowed the clock, is not imported by the core.
        ("baolife/tick/engine.py", "from . import loop", "does not import the tick loop"),
        # The store is a leaf.
        ("baolife/db/timed.py", "from .. import model", "db is a leaf"),
        # Layers point down only: the core never imports an adapter, the
        # simulator never the server, the model never the store.
        ("baolife/tick/rules.py", "from ..net import session", "Layers"),
        ("baolife/sim/report.py", "from .. import app", "Layers"),
        ("baolife/content/schema.py", "from ..tick import rules", "Layers"),
        ("baolife/cluster/bus.py", "from ..players import directory", "Layers"),
        # No cycles inside a package.
        ("baolife/db/store.py", "from . import sqlite", "No cycles"),
    ],
)
def test_a_contract_catches_its_violation(package: Path, module: str, line: str, broken: str) -> None:
    _add(package, module, line)
    done = _lint(package)
    assert done.returncode != 0, done.stdout
    broken_section = done.stdout.split("Broken contracts", 1)[-1]
    assert broken in broken_section, done.stdout
