"""The simulation run the balance and target tests share."""

from __future__ import annotations

import pytest

from baolife.content.schema import Content
from baolife.sim import BalanceReport, simulate


@pytest.fixture(scope="session")
def report(content: Content) -> BalanceReport:
    """60 neutral lives on the server's calendar (365 days a year), on two workers."""
    return simulate(content, players=60, seed=11, workers=2)
