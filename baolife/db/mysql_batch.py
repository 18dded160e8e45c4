"""Statements sent to MySQL/MariaDB in one round trip: the asyncio side of
:func:`baolife.db.mysql_dialect.batch`, shared by the store
(:mod:`baolife.db.mysql`) and the cluster's statements
(:mod:`baolife.db.cluster`).

Why batches: with the database 50 ms away (issue 13, "Beyond one machine")
every round trip is 50 ms of a login's wait or of a connection held by a
save. A transaction sent as one multi-statement query costs one round trip
however many statements it holds; tests/db/test_login_round_trips.py and
tests/db/test_save_round_trips.py count them on the wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from .mysql_dialect import batch, bounded

__all__ = ["Result", "send_batch"]


@attrs.frozen
class Result:
    """What one statement of a batch returned."""

    rowcount: int
    lastrowid: int
    rows: list[Any]


async def send_batch(
    cur: Any,
    steps: Sequence[tuple[str, Sequence[object]]],
    bound: float,
    mariadb: bool,
    *,
    begin: bool = False,
    commit: bool = False,
) -> list[Result]:
    """Send ``steps`` (statement, parameters; each bounded on the server for
    ``bound`` seconds on MariaDB) on the aiomysql cursor ``cur`` in one round
    trip, after a BEGIN and before a COMMIT when asked, and read every
    result: one per step. The server stops at a statement that fails; its
    error is raised here, with the transaction left open: the caller's
    connection must be closed then (the stores' ``_guarded`` does)."""
    texts = ["BEGIN"] if begin else []
    params: list[object] = []
    for text, args in steps:
        statement, bound_args = bounded(text, args, bound, mariadb)
        texts.append(statement)
        params += bound_args
    if commit:
        texts.append("COMMIT")
    statements = batch(texts)
    await cur.execute(statements, params)
    results = []
    for i in range(len(texts)):
        if i:
            await cur.nextset()
        if (begin and i == 0) or (commit and i == len(texts) - 1):
            continue
        results.append(Result(int(cur.rowcount), int(cur.lastrowid or 0), list(await cur.fetchall())))
    return results
