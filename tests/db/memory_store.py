"""An in-memory store with the real interface and semantics (epochs, fencing),
for tests that need many players fast. Not used by the server."""

from __future__ import annotations

from collections.abc import Sequence

from baolife.db.store import (
    AccountLogin,
    Claim,
    FirstState,
    Progress,
    QueryStats,
    SaveRow,
    StoreCorrupt,
    StoreStatistics,
)


class MemoryStore:
    kind = "memory"

    def __init__(self) -> None:
        self.accounts: dict[bytes, int] = {}
        self.rows: dict[int, list] = {}  # pid -> [name, state, epoch]
        self.progress: dict[int, Progress] = {}  # saved since the state
        self.usage: dict[tuple[str, int], list[float]] = {}
        self.saved_rows = 0

    async def migrate(self) -> list[str]:
        return []

    async def pending_migrations(self) -> list[str]:
        return []

    async def create_account(self, name: str, token_hash: bytes, first_state: FirstState | None = None) -> int:
        pid = len(self.rows) + 1
        self.accounts[token_hash] = pid
        self.rows[pid] = [name, first_state(pid)[0] if first_state is not None else None, 1]
        return pid

    async def find_account(self, token_hash: bytes) -> int | None:
        return self.accounts.get(token_hash)

    async def find_login(self, token_hash: bytes) -> AccountLogin | None:
        pid = self.accounts.get(token_hash)
        return None if pid is None else AccountLogin(pid)  # no operator bans here

    async def claim(self, player_id: int) -> Claim:
        row = self.rows.get(player_id)
        if row is None:
            raise StoreCorrupt(f"no player {player_id}")
        row[2] += 1
        return Claim(
            player_id=player_id,
            name=row[0],
            state=row[1],
            previous_epoch=row[2] - 1,
            epoch=row[2],
            progress=self.progress.get(player_id),
        )

    async def save(self, rows: Sequence[SaveRow]) -> set[int]:
        refused = set()
        for r in rows:
            row = self.rows[r.player_id]
            if row[2] != r.epoch:
                refused.add(r.player_id)
            elif r.state is not None:
                row[1] = r.state
                self.progress.pop(r.player_id, None)
                self.saved_rows += 1
            elif r.progress is not None:
                self.progress[r.player_id] = r.progress
                self.saved_rows += 1
        return refused

    async def add_ai_usage(self, day: str, player_id: int, calls: int, cost: float) -> None:
        got = self.usage.setdefault((day, player_id), [0, 0.0])
        got[0] += calls
        got[1] += cost

    async def ai_usage(self, day: str) -> tuple[dict[int, int], float]:
        calls = {pid: int(v[0]) for (d, pid), v in self.usage.items() if d == day}
        return calls, sum(v[1] for (d, _), v in self.usage.items() if d == day)

    async def get_ban(self, player_id: int) -> None:
        return None  # no operator bans here (baolife.admin: the real stores)

    async def ping(self) -> None:
        return None

    def statistics(self) -> StoreStatistics:
        """Nothing waits and nothing takes time in memory: zeros."""
        return QueryStats().report(
            self.kind, pool_size=1, pool_open=1, pool_in_use=0, pool_waiting=0, pool_acquires=0, pool_wait_seconds=0.0
        )

    async def aclose(self) -> None:
        return None
