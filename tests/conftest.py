"""Shared fixtures. Servers bind 127.0.0.1 port 0; every app a test starts
is stopped by that test (see tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from baolife import content as content_pkg
from baolife.config import Settings
from baolife.content.schema import Content


@pytest.fixture(scope="session")
def content() -> Content:
    return content_pkg.load()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Fast settings for a server under test: loopback on free ports, a
    SQLite file in the test's folder, 50 ticks per second, one day per tick."""
    return Settings.defaults(
        ws_bind="127.0.0.1:0",
        http_bind="127.0.0.1:0",
        db_url=f"sqlite:///{tmp_path}/baolife.db",
        tick_hz=50,
        day_ticks=1,
        save_interval=0.2,
        shutdown_timeout=10,
        seed=7,
    )
