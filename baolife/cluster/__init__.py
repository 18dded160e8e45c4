"""What workers sharing one database tell each other (see docs/SCALING.md)."""

from .bus import Bus, BusEvent, Handler, LocalBus

__all__ = ["Bus", "BusEvent", "Handler", "LocalBus"]
