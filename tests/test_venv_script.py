"""scripts/lib/venv.sh: which interpreter `.venv` is made from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "lib" / "venv.sh"


def chosen(tmp_path: Path, system: Path, python: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    env["BAOLIFE_SYSTEM_PYTHON"] = str(system)
    if python is not None:
        env["PYTHON"] = python
    done = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        ["bash", "-c", f'. "{SCRIPT}"; _venv_python'],  # noqa: S607 - bash from PATH
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def fake_python(tmp_path: Path, version: tuple[int, int]) -> Path:
    """An executable that answers the script's check as a Python of ``version`` would."""
    path = tmp_path / f"python{version[0]}.{version[1]}"
    path.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import sys; sys.exit({version!r} < (3, 11))'\n")
    path.chmod(0o755)
    return path


def test_the_distributions_python_is_chosen_when_it_is_new_enough(tmp_path: Path) -> None:
    system = fake_python(tmp_path, (3, 11))
    assert chosen(tmp_path, system) == str(system)


def test_an_old_or_missing_distribution_python_falls_back_to_path(tmp_path: Path) -> None:
    assert chosen(tmp_path, fake_python(tmp_path, (3, 9))) == "python3"
    assert chosen(tmp_path, tmp_path / "no-such-python") == "python3"


@pytest.mark.parametrize("version", [(3, 9), (3, 12)])
def test_python_from_the_environment_wins(tmp_path: Path, version: tuple[int, int]) -> None:
    assert chosen(tmp_path, fake_python(tmp_path, version), python="/opt/py/bin/python3") == "/opt/py/bin/python3"
