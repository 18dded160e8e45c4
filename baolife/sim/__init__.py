"""Balance by simulation: bot players live whole lives on virtual time.

:func:`simulate` drives the real :class:`~baolife.tick.engine.World` (the
rules the server runs) one game day per tick, with no trio and no sockets;
bots answer prompts and take actions by a :class:`Policy`. The result is a
:class:`BalanceReport`, printed by ``baolife simulate`` as Markdown or JSON
and drawn as PNG charts by :mod:`baolife.sim.plots` (needs matplotlib).
"""

from .bots import NEUTRAL, Bot, Policy
from .report import BalanceReport, LifeRecord
from .run import simulate

__all__ = ["NEUTRAL", "BalanceReport", "Bot", "LifeRecord", "Policy", "simulate"]
