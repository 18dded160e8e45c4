"""The players' side of a handoff to another worker (baolife.cluster.ownership).

:class:`Vacate` stops a player here and saves it: its session (if any) is
told ``bye`` ``replaced`` and closed with 4000 at the next tick, which also
takes the player out of the world; once no connection holds it and no
login of it is loading here, its latest state is written out of turn
(:meth:`Saver.flush_player`) and the entry is fenced, so this process never
saves or serves that copy again (a later login here loads it afresh).
"""

from __future__ import annotations

import trio

from ..cluster.ownership import VacateFailed
from ..protocol import CloseCode
from ..tick.loop import Inbox, Kick, TickLoop
from .directory import Directory
from .saver import Saver

__all__ = ["Vacate", "VacateFailed"]


class Vacate:
    """``await vacate(pid)``: the epoch ``pid`` was saved under, or None
    when it is not loaded here. Wakes when the app reports the player
    offline (:meth:`offline`, from the tick loop's presence hook), and
    looks again every tick anyway; the caller bounds the wait."""

    def __init__(self, loop: TickLoop, inbox: Inbox, directory: Directory, saver: Saver) -> None:
        self.loop = loop
        self.inbox = inbox
        self.directory = directory
        self.saver = saver
        self._offline: dict[int, trio.Event] = {}

    def offline(self, pid: int) -> None:
        """The tick loop took ``pid`` offline (a connection let it go)."""
        event = self._offline.pop(pid, None)
        if event is not None:
            event.set()

    async def __call__(self, pid: int) -> int | None:
        kicked = None
        while True:
            session = self.loop.by_player.get(pid)
            if session is not None and session is not kicked:
                self.inbox.put(Kick(session, "replaced", CloseCode.REPLACED), force=True)
                kicked = session
            entry = self.directory.get(pid)
            loading = self.directory.loading(pid)
            if entry is None and not loading:
                return None
            if session is None and not loading and entry is not None and not entry.holds:
                break
            event = self._offline.setdefault(pid, trio.Event())
            with trio.move_on_after(self.loop.period):
                await event.wait()
        # A fenced copy has nothing of ours to save (it was saved when fenced,
        # or another worker took it: then the release's epoch check fails).
        if not entry.fenced and not await self.saver.flush_player(pid):
            raise VacateFailed(f"player {pid} could not be saved here")
        self.directory.fence(entry)
        return entry.epoch
