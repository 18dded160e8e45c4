"""The cluster's families: this worker's lease, the workers it sees, the
handoffs it asked for and served, and its bus (baolife.cluster). Fenced
saves (another worker took the player) are the saver's:
``baolife_saves_fenced_total`` in :mod:`.players`."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import HistogramMetricFamily, Metric

from ..cluster import Bus
from ..cluster.dbbus import DbBus
from ..cluster.ownership import HANDOFF_BUCKETS, Ownership
from . import counter, gauge

__all__ = ["families"]


def families(ownership: Ownership, bus: Bus) -> Iterator[Metric]:
    """Read ``ownership`` and ``bus`` now."""
    st = ownership.statistics()
    yield gauge("baolife_cluster_workers", "Workers whose lease is live in the shared database (this one included)",
                st.live_workers)  # fmt: skip
    yield gauge("baolife_cluster_lease_lapsed", "1 while this worker's lease has lapsed (it serves no player)",
                float(st.lapsed))  # fmt: skip
    yield counter("baolife_cluster_lease_lapses", "Times this worker's lease lapsed", st.lapses)
    yield counter("baolife_cluster_lease_renew_failures", "Lease renewals that failed", st.renew_failures)
    yield counter("baolife_handoffs_requested", "Players this worker asked another worker to hand over",
                  st.handoffs_requested)  # fmt: skip
    yield counter("baolife_handoffs_served", "Players this worker stopped, saved and released for another",
                  st.handoffs_served)  # fmt: skip
    yield counter("baolife_handoffs_failed", "Handoff requests this worker could not serve (save failed)",
                  st.handoffs_failed)  # fmt: skip
    yield counter("baolife_handoff_takeovers", "Players taken after their owner's lease expired (no answer)",
                  st.takeovers)  # fmt: skip
    histogram = HistogramMetricFamily(
        "baolife_handoff_seconds", "From a login finding its player held elsewhere to claiming it"
    )
    histogram.add_metric(
        [],
        [(str(b), float(n)) for b, n in zip(HANDOFF_BUCKETS, st.handoff_buckets, strict=True)]
        + [("+Inf", float(st.handoff_count))],
        st.handoff_seconds,
    )
    yield histogram
    # A local bus has no database to read: its counts stay 0.
    published, received, polls, failures = (
        (bus.published, bus.received, bus.polls, bus.failures) if isinstance(bus, DbBus) else (0, 0, 0, 0)
    )
    yield counter("baolife_bus_events_published", "Events this worker put on the database bus", published)
    yield counter("baolife_bus_events_received", "Events this worker read from the database bus", received)
    yield counter("baolife_bus_polls", "Reads of the database bus", polls)
    yield counter("baolife_bus_failures", "Reads of the database bus that failed", failures)
