"""Schema migrations: versioned SQL files, ``NNNN_name.sql``, one folder per dialect.

A migration is applied once, in one transaction where the dialect allows,
and recorded in ``schema_migrations``.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

__all__ = ["Migration", "load_migrations"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_HERE = Path(__file__).parent


@attrs.frozen
class Migration:
    version: int
    name: str
    sql: str

    @property
    def statements(self) -> list[str]:
        """The statements of the file, split at semicolons that end a line
        (our migrations keep semicolons out of string literals)."""
        text = "\n".join(line for line in self.sql.splitlines() if not line.strip().startswith("--"))
        return [s.strip() for s in re.split(r";\s*(?:\n|$)", text) if s.strip()]


def load_migrations(dialect: str) -> list[Migration]:
    """All migrations of ``dialect`` (``sqlite`` or ``mysql``), in order."""
    out = []
    for path in sorted((_HERE / dialect).glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file name {path.name!r} is not NNNN_name.sql")
        out.append(Migration(int(match.group(1)), path.stem, path.read_text(encoding="utf-8")))
    versions = [m.version for m in out]
    if versions != sorted(set(versions)):
        raise ValueError(f"{dialect} migrations have duplicate versions: {versions}")
    return out
