"""Accepting connections when file descriptors run short.

``trio.serve_listeners`` retries an ``accept`` that fails for lack of
descriptors, but logs a multi-line plain-text traceback each time (about 800
a minute when a worker ran out), and a client whose connection the kernel
queued meanwhile hangs until its own timeout. Here instead:

- each listener has a :class:`Gate`: a bound on the streams it holds open
  (for WebSockets: ``max_connections`` plus room for handshakes under way).
  A connection over the bound is answered at once (an HTTP 503 where the
  listener speaks plain HTTP) and closed, so the process never reaches its
  descriptor limit through one listener and the others keep working
  (``/healthz`` answers while the WebSocket port is full);
- an ``accept`` that still fails for lack of resources (another part of the
  process, or the whole system, ran out) is logged as one JSON line at most
  every :data:`ERROR_LOG_EVERY` seconds, with the count since the last line;
- :func:`fit_descriptors` checks at start that the gates and a reserve fit
  the process's descriptor limit, raising the soft limit when allowed and
  otherwise saying what it lowered.
"""

from __future__ import annotations

import errno
import resource
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import structlog
import trio

__all__ = [
    "FD_RESERVE",
    "HANDSHAKE_ROOM",
    "MAX_REFUSING",
    "DescriptorFit",
    "Gate",
    "accept_loop",
    "fit_descriptors",
    "http_refusal",
]

log = structlog.get_logger("baolife.accept")

# Descriptors the process needs besides its listeners' streams: the store's
# pool or SQLite files, the AI client's pool, epoll, wake-up pipes, logs.
FD_RESERVE = 64
# WebSocket streams beyond max_connections that may be in their handshake
# (they are answered 503 after it) before new ones are refused at accept.
HANDSHAKE_ROOM = 64
# What a failing accept waits before the next try (as trio does).
ACCEPT_RETRY = 0.1
ERROR_LOG_EVERY = 10.0
# Refusals being written at once; past it the listener waits for one to end
# before it accepts again (the kernel queues the rest for those milliseconds).
MAX_REFUSING = 32
REFUSE_TIMEOUT = 1.0

_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})

Handler = Callable[[Any], Awaitable[None]]


@attrs.define
class Gate:
    """The streams one listener holds open, bounded by ``limit``.

    ``refused``: connections closed at accept for the bound; ``accept_errors``:
    accepts that failed for lack of descriptors or memory."""

    limit: int
    open: int = 0
    refused: int = 0
    accept_errors: int = 0
    refusing: trio.Semaphore = attrs.field(factory=lambda: trio.Semaphore(MAX_REFUSING))


async def accept_loop(
    listener: trio.abc.Listener[Any],
    handler: Handler,
    handler_nursery: trio.Nursery,
    gate: Gate,
    *,
    name: str,
    refusal: bytes = b"",
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept from ``listener`` until cancelled, running ``handler`` for each
    stream in ``handler_nursery`` while ``gate`` has room; over it, send
    ``refusal`` (if any) and close. The listener is closed on the way out."""
    last_logged = -ERROR_LOG_EVERY
    unlogged = 0
    async with listener:
        task_status.started()
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in _CAPACITY_ERRNOS:
                    raise
                gate.accept_errors += 1
                unlogged += 1
                now = trio.current_time()
                if now - last_logged >= ERROR_LOG_EVERY:
                    log.error(
                        "accept_failed",
                        listener=name,
                        error=errno.errorcode.get(exc.errno or 0, str(exc.errno)),
                        failures=unlogged,
                        open=gate.open,
                    )
                    last_logged, unlogged = now, 0
                await trio.sleep(ACCEPT_RETRY)
                continue
            if gate.open >= gate.limit:
                gate.refused += 1
                if refusal:
                    await gate.refusing.acquire()
                    handler_nursery.start_soon(_refuse, stream, refusal, gate)
                else:
                    await trio.aclose_forcefully(stream)
                continue
            gate.open += 1
            handler_nursery.start_soon(_run, handler, stream, gate)


async def _run(handler: Handler, stream: trio.abc.Stream, gate: Gate) -> None:
    try:
        await handler(stream)
    finally:
        gate.open -= 1


async def _refuse(stream: trio.abc.Stream, refusal: bytes, gate: Gate) -> None:
    try:
        with trio.move_on_after(REFUSE_TIMEOUT):
            await stream.send_all(refusal)
            # Closing with the client's request unread would reset the
            # connection and lose the answer: say we are done, then read
            # until the client closes (or the timeout).
            if isinstance(stream, trio.SocketStream):
                await stream.send_eof()
                while await stream.receive_some(4096):
                    pass
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        log.debug("refusal_not_sent", error=str(exc))  # the client left first
    finally:
        gate.refusing.release()
        await trio.aclose_forcefully(stream)


def http_refusal(status: int, reason: str, text: str) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection."""
    body = text.encode()
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
    return (head + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


@attrs.frozen
class DescriptorFit:
    """What :func:`fit_descriptors` found: the connections allowed, the
    descriptor limit in force, and whether it had to lower the setting."""

    max_connections: int
    limit: int
    needed: int
    lowered: bool


def fit_descriptors(max_connections: int, http_connections: int, *, reserve: int = FD_RESERVE) -> DescriptorFit:
    """Fit the listeners' bounds into the process's descriptor limit.

    Needed: ``max_connections + HANDSHAKE_ROOM + http_connections + reserve``
    and the refusals both listeners may be writing at once.
    The soft limit is raised toward the hard one when it is lower; if even
    that is short, ``max_connections`` is lowered to what fits (it may come
    out below 1: the caller refuses to start then).
    """
    needed = max_connections + HANDSHAKE_ROOM + http_connections + reserve + 2 * MAX_REFUSING
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and needed > soft:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError) as exc:  # not allowed here: lower the setting below instead
                log.debug("descriptor_limit_not_raised", error=str(exc))
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return DescriptorFit(max_connections, soft, needed, lowered=False)
    fitted = max_connections - (needed - soft)
    return DescriptorFit(fitted, soft, needed, lowered=True)
