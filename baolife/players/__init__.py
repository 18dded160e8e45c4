"""Players in memory and their way to the database.

:mod:`.directory` holds the loaded players (load at login, LRU, dirty
tracking, eviction); :mod:`.saver` writes the dirty ones behind, in batches.
They live together because the saver works the directory's bookkeeping
(versions, fencing, eviction after a save) and nothing else does; below
them :mod:`baolife.db` only stores bytes and knows nothing of players'
state, so the database layer stays a leaf.
"""

from __future__ import annotations

from .directory import Directory, DirectoryFull, DirectoryStatistics, Entry, apply_progress, progress_of
from .saver import Saver, SaverStatistics

__all__ = [
    "Directory",
    "DirectoryFull",
    "DirectoryStatistics",
    "Entry",
    "Saver",
    "SaverStatistics",
    "apply_progress",
    "progress_of",
]
