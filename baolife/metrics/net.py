"""The network's families: connections, handshakes, inbound messages,
per-client limits, outbound queues, and the read hub."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from ..net.http import HttpListener
from ..net.listener import WsListener
from . import counter, gauge

__all__ = ["families"]


def families(ws: WsListener, http: HttpListener) -> Iterator[Metric]:
    """Read the WebSocket listener (with its authenticator and read hub)
    and the HTTP listener's gate now."""
    st = ws.statistics()
    yield gauge("baolife_connections", "Open WebSocket connections", st.connections)
    yield counter("baolife_connections_accepted", "WebSocket handshakes accepted", st.accepted)
    yield counter("baolife_connections_refused", "WebSocket handshakes refused, by reason", st.refused, "reason")
    yield counter("baolife_connections_closed", "Connections ended, by reason", st.closed, "reason")
    yield counter(
        "baolife_accept_errors",
        "accept() calls that failed for lack of descriptors or memory, by listener",
        {"ws": st.accept_errors, "http": http.gate.accept_errors},
        "listener",
    )
    yield counter("baolife_inbound_messages", "Inbound messages by type", st.inbound, "type")
    yield gauge("baolife_outbound_queued_frames", "Frames waiting in connection writers", st.queued_frames)
    yield gauge("baolife_outbound_queued_frames_max", "Deepest connection queue", st.max_queued_frames)
    yield gauge("baolife_outbound_queued_bytes", "Bytes waiting in connection writers", st.queued_bytes)
    yield counter(
        "baolife_rate_limited",
        "Messages, connections and registrations refused by a per-client limit, by limit",
        {
            "messages": st.inbound.get("rate_limited", 0),
            "connections_per_ip": st.refused.get("per_ip", 0),
            "registrations_per_ip": ws.auth.registrations.refused,
        },
        "limit",
    )
    if ws.hub is not None:  # no epoll (not Linux): every connection has its own reader
        hub = ws.hub.statistics()
        yield gauge("baolife_read_hub_connections", "Connections watched by the read hub", hub.registered)
        yield counter("baolife_read_hub_rounds", "Times the read hub woke with connections to read", hub.rounds)
        yield counter("baolife_read_hub_callbacks", "Reads the read hub ran for ready connections", hub.callbacks)
        yield counter(
            "baolife_read_hub_failures", "Read callbacks that raised (that connection is no longer read)", hub.failures
        )
