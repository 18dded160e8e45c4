"""Progress of a long simulation on stderr: lives done out of the total,
the rate and the time left.

On a terminal it is one bar redrawn in place; elsewhere (a log, a pipe, CI)
plain lines, one every :data:`LINE_EVERY_SECONDS` and one at the end, so a
log holds no carriage returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["LINE_EVERY_SECONDS", "Progress"]

# Plain progress lines (not a terminal): at most one per this many seconds.
LINE_EVERY_SECONDS = 10.0
# The terminal bar is redrawn at most this often (seconds), and is this wide.
BAR_EVERY_SECONDS = 0.2
BAR_WIDTH = 30


class Progress:
    """Call with (done, total) as lives end; :meth:`close` when the run is over."""

    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.clock = clock
        self.started = clock()
        self.shown = -1.0
        self.done = 0
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        now = self.clock()
        every = BAR_EVERY_SECONDS if self.tty else LINE_EVERY_SECONDS
        if done < total and self.shown >= 0 and now - self.shown < every:
            return
        self.shown = now
        self._show(now)

    def close(self) -> None:
        """End the bar's line (a terminal) after the last update."""
        if self.tty and self.shown >= 0:
            self.stream.write("\n")
            self.stream.flush()

    def line(self, now: float) -> str:
        """The progress text at ``now``: counts, rate and time left."""
        done, total = self.done, self.total
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else None
        left = _clock(eta) if eta is not None else "?"
        return f"{done:,}/{total:,} lives  {rate:,.1f} lives/s  elapsed {_clock(elapsed)}  ETA {left}"

    def _show(self, now: float) -> None:
        text = self.line(now)
        if self.tty:
            filled = BAR_WIDTH * self.done // max(1, self.total)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {text}\x1b[K")
        else:
            self.stream.write(f"simulate: {text}\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    """``seconds`` as m:ss (h:mm:ss from an hour)."""
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
