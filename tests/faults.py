"""Figures of the fault tests (issue 18): each test that replays a fault
records what it measured (game days lost, seconds to ready, handshake
outcomes) with :func:`record`. ``scripts/faults`` runs them with
``BAOLIFE_FAULT_REPORT`` set to a file and prints the figures as a table;
in the ordinary suite (no such variable) recording does nothing."""

from __future__ import annotations

import os
from typing import Any

import orjson


def record(case: str, **figures: Any) -> None:
    """Append one case's figures (a JSON line) to ``$BAOLIFE_FAULT_REPORT``."""
    path = os.environ.get("BAOLIFE_FAULT_REPORT")
    if not path:
        return
    with open(path, "ab") as out:  # noqa: ASYNC230 - a few bytes, once per test
        out.write(orjson.dumps({"case": case, **figures}) + b"\n")
