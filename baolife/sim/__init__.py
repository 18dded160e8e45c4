"""Balance by simulation: bot players live whole lives on virtual time.

:func:`simulate` drives the real :class:`~baolife.tick.engine.World` (the
rules the server runs) on virtual time, one tick for one real second of
play (a step of the player's clock), with no trio and no sockets, in worker
processes; bots answer prompts and take actions by a :class:`Policy`. The result is a
:class:`BalanceReport`, printed by ``baolife simulate`` as Markdown or JSON
and drawn as PNG charts by :mod:`baolife.sim.plots` (needs matplotlib).
"""

from .bots import IDLE, NEUTRAL, Bot, Policy
from .report import BalanceReport, LifeRecord
from .run import simulate

__all__ = ["IDLE", "NEUTRAL", "BalanceReport", "Bot", "LifeRecord", "Policy", "simulate"]
