"""The directory of loaded players: load at login, LRU, dirty tracking, eviction.

An :class:`Entry` is held while a connection uses its player (``holds``);
held entries are never evicted. Every change the tick loop makes bumps the
entry's ``version``; the saver records the version it wrote. A step that
only moved what time moves (:class:`~baolife.db.store.Progress`: age, money,
lowest money) bumps ``moved`` instead, which a small progress row saves
(:func:`progress_of`, laid back over the state at load by
:func:`apply_progress`). An entry is *dirty* while either is ahead of what
was saved, and a dirty entry is never evicted, so a player leaves memory
only after their state is in the database.

When the directory is full of entries it may not evict (held or dirty),
:attr:`Directory.has_room` is False: logins are refused with ``busy`` and
readiness goes false, rather than losing anything.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable

import attrs
import trio

from ..db.store import Claim, Progress, Store, StoreCorrupt, StoreUnavailable
from ..model import SCHEMA_VERSION, Player, SaveError, dump_player, load_player

__all__ = ["Directory", "DirectoryFull", "DirectoryStatistics", "Entry", "apply_progress", "progress_of"]


def progress_of(player: Player) -> Progress:
    """What time alone moves of ``player`` (what a quiet step changes:
    baolife.tick.engine's ``World.take_progressed``)."""
    return Progress(player.age_days, player.money, player.low_money)


def apply_progress(player: Player, progress: Progress | None) -> Player:
    """``player`` (loaded from a saved state) with the progress saved since."""
    if progress is not None:
        player.age_days = progress.age_days
        player.money = progress.money
        player.low_money = progress.low_money
    return player


class DirectoryFull(Exception):  # noqa: N818 - a state the caller answers with busy
    """No room to load another player (every entry is held or unsaved)."""


@attrs.define(eq=False)
class Entry:
    player: Player
    epoch: int
    version: int = 0
    saved: int = 0
    holds: int = 0
    fenced: bool = False
    moved: int = 0
    moved_saved: int = 0

    @property
    def dirty(self) -> bool:
        """Something of the player is not saved yet."""
        return self.version > self.saved or self.moved > self.moved_saved

    @property
    def state_dirty(self) -> bool:
        """More than its progress is not saved yet: the state must be."""
        return self.version > self.saved


@attrs.frozen
class DirectoryStatistics:
    loaded: int
    held: int
    dirty: int
    capacity: int
    evictions: int
    loads: int
    coalesced: int


class Directory:
    """Players in memory, bounded by ``capacity``; see the module docstring."""

    def __init__(
        self,
        store: Store,
        born: Callable[[int, str], Player],
        *,
        capacity: int,
        claim: Callable[[int], Awaitable[Claim]] | None = None,
    ) -> None:
        self.store = store
        self.born = born
        self.capacity = capacity
        # How a player is taken: the store's claim, or the cluster's, which
        # waits for another worker to hand the player over (baolife.cluster).
        self.claim = claim
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        self._dirty: set[int] = set()
        self._loading: dict[int, trio.Event] = {}
        self.evictions = 0
        # False once an eviction pass found every entry held or dirty, until
        # one may be evicted again (released clean, saved, fenced, loaded):
        # a full directory is not scanned whole at every login, logout and
        # save, which made filling one quadratic in its size.
        self._may_evict = True
        self.loads = 0
        self.coalesced = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, pid: int) -> bool:
        return pid in self._entries

    def get(self, pid: int) -> Entry | None:
        return self._entries.get(pid)

    def loading(self, pid: int) -> bool:
        """A login of ``pid`` is loading it now."""
        return pid in self._loading

    def statistics(self) -> DirectoryStatistics:
        return DirectoryStatistics(
            loaded=len(self._entries),
            held=sum(1 for e in self._entries.values() if e.holds),
            dirty=len(self._dirty),
            capacity=self.capacity,
            evictions=self.evictions,
            loads=self.loads,
            coalesced=self.coalesced,
        )

    @property
    def has_room(self) -> bool:
        """True when another player can be loaded (now or after evicting)."""
        if len(self._entries) < self.capacity:
            return True
        return self._may_evict and any(not e.holds and not e.dirty for e in self._entries.values())

    # ----------------------------------------------------------------- loading

    async def acquire(self, pid: int) -> Entry:
        """The entry of ``pid``, loaded (and claimed) if needed, with one more hold.

        Two concurrent acquires of one player load it once. Raises
        :class:`DirectoryFull`, or the store's errors (``StoreUnavailable``).
        """
        while True:
            entry = self._entries.get(pid)
            if entry is not None and entry.holds:
                # Online in this process: we own it and it is live.
                entry.holds += 1
                self._entries.move_to_end(pid)
                return entry
            loading = self._loading.get(pid)
            if loading is None:
                break
            self.coalesced += 1
            await loading.wait()
        done = self._loading[pid] = trio.Event()
        try:
            entry = await self._load(pid)
        finally:
            del self._loading[pid]
            done.set()
        entry.holds += 1
        return entry

    async def _load(self, pid: int) -> Entry:
        cached = self._entries.get(pid)
        if cached is None and not self.has_room:
            raise DirectoryFull(f"{len(self._entries)} players loaded and none can be evicted")
        try:
            claim = await (self.claim or self.store.claim)(pid)
        except StoreUnavailable:
            if cached is not None and not cached.fenced:
                # The database is away but we hold this player's latest state;
                # our saves will be fenced if another process took it meanwhile.
                return cached
            raise
        self.loads += 1
        cached = self._entries.get(pid)
        if cached is not None and not cached.fenced and claim.previous_epoch == cached.epoch:
            # Nobody else took the player since we had it: our copy is current.
            cached.epoch = claim.epoch
            self._entries.move_to_end(pid)
            return cached
        if claim.state is None:
            player = self.born(pid, claim.name)
            entry = Entry(player=player, epoch=claim.epoch, version=1)
            self._dirty.add(pid)
        else:
            try:
                player = apply_progress(load_player(claim.state), claim.progress)
            except SaveError as exc:
                # A saved state that does not load is the store's corrupt row,
                # whatever layer found it: callers catch one tree.
                raise StoreCorrupt(f"player {pid}: {exc}") from exc
            player.id = pid
            entry = Entry(player=player, epoch=claim.epoch)
        if cached is not None:
            self._dirty.discard(pid)
        self._entries[pid] = entry
        self._entries.move_to_end(pid)
        self._may_evict = True  # not held yet
        self.evict()
        return entry

    async def register(self, name: str, token_hash: bytes) -> Entry:
        """Create an account whose first life is saved with it, in one store
        transaction, and hold its entry once. A client is told of the account
        only after this returns, so a crash can never re-roll a life the
        client has seen (the next login loads this same state).

        Raises :class:`DirectoryFull`, or the store's errors (nothing is held then).
        """
        if not self.has_room:
            raise DirectoryFull("no room for a new player")
        # Born here, in the thread that runs the game (the rules' dice are not
        # shared with a store's worker thread); the store only numbers it.
        player = self.born(0, name)

        def first_state(pid: int) -> tuple[bytes, int]:
            # Called inside the store's transaction (maybe in its thread): the
            # player is nobody else's until this returns.
            player.id = pid
            return dump_player(player), SCHEMA_VERSION

        pid = await self.store.create_account(name, token_hash, first_state)
        player.id = pid
        entry = Entry(player=player, epoch=1, version=1, saved=1, holds=1)
        self._entries[pid] = entry
        self.evict()
        return entry

    def create(self, pid: int, name: str, epoch: int = 1) -> Entry:
        """The entry of a player whose account exists with no state yet (born
        now, dirty, held once): for tests and tools that make accounts
        without a first state."""
        entry = Entry(player=self.born(pid, name), epoch=epoch, version=1, holds=1)
        self._entries[pid] = entry
        self._dirty.add(pid)
        self.evict()
        return entry

    def release(self, pid: int) -> None:
        """Drop one hold (a connection stopped using the player)."""
        entry = self._entries.get(pid)
        if entry is not None and entry.holds:
            entry.holds -= 1
            self._entries.move_to_end(pid)
            if not entry.holds and not entry.dirty:
                self._may_evict = True
            self.evict()

    # ----------------------------------------------------------------- dirty tracking

    def mark_dirty(self, pids: set[int]) -> None:
        """These players' states changed."""
        self._mark(pids, state=True)

    def mark_progressed(self, pids: set[int]) -> None:
        """These players' steps moved only their progress (age, money, lowest money)."""
        self._mark(pids, state=False)

    def _mark(self, pids: set[int], *, state: bool) -> None:
        entries = self._entries
        for pid in pids:
            entry = entries.get(pid)
            if entry is not None and not entry.fenced:
                if state:
                    entry.version += 1
                else:
                    entry.moved += 1
                self._dirty.add(pid)

    def dirty_entries(self) -> list[Entry]:
        """Entries with unsaved changes (oldest change first is not promised)."""
        return [self._entries[pid] for pid in self._dirty if pid in self._entries]

    @property
    def dirty_count(self) -> int:
        return len(self._dirty)

    def saved(self, entry: Entry, version: int, moved: int) -> None:
        """The saver wrote ``entry`` at ``version`` and ``moved``."""
        if version > entry.saved:
            entry.saved = version
        if moved > entry.moved_saved:
            entry.moved_saved = moved
        if not entry.dirty:
            self._dirty.discard(entry.player.id)
            if not entry.holds:
                self._may_evict = True

    def fence(self, entry: Entry) -> None:
        """Another process owns this player now: our copy is stale; never save it."""
        entry.fenced = True
        entry.saved = entry.version
        entry.moved_saved = entry.moved
        self._dirty.discard(entry.player.id)
        if not entry.holds:
            self._may_evict = True

    def distrust(self) -> None:
        """This process may have lost its players to another (its lease
        lapsed): no saved copy here is served again without a load. Unsaved
        ones stay, to be saved if they are still ours (refused if not)."""
        for entry in self._entries.values():
            if not entry.dirty:
                self.fence(entry)

    def evict(self) -> int:
        """Drop least-recently-used entries that are neither held nor dirty
        until within capacity; returns how many were dropped."""
        over = len(self._entries) - self.capacity
        if over <= 0 or not self._may_evict:
            return 0
        victims = []
        for pid, entry in self._entries.items():
            if not entry.holds and not entry.dirty:
                victims.append(pid)
                if len(victims) >= over:
                    break
        if len(victims) < over:
            self._may_evict = False  # every entry left is held or dirty
        for pid in victims:
            del self._entries[pid]
        self.evictions += len(victims)
        return len(victims)
