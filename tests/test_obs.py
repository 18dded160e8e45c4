"""Observability: log lines (context, tracebacks, a writer that never
blocks), Sentry forwarding (against a fake ingest server), store timing."""

from __future__ import annotations

import gc
import gzip
import io
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import h11
import orjson
import pytest
import structlog
import trio
from helpers import metric_samples

from baolife.db import TimedStore, open_store
from baolife.db.store import StoreCorrupt
from baolife.logs import Deferred, LogWriter, configure_logging
from baolife.metrics import Metrics


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes structlog's process-wide config: put it back."""
    try:
        yield
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def lines_of(buffer: io.BytesIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_lines_carry_deferred_context_and_structured_tracebacks(restore_logging: None) -> None:
    buffer = io.BytesIO()
    writer = configure_logging("json", "info", buffer)
    state = {"tick": 5, "player": None}
    structlog.contextvars.bind_contextvars(
        tick=Deferred(lambda: state["tick"]), player=Deferred(lambda: state["player"]), session=3
    )
    log = structlog.get_logger("test")
    log.info("before_login")
    state.update(tick=6, player=42)
    try:
        raise ExceptionGroup("many", [ValueError("boom")])
    except ExceptionGroup:
        log.exception("it_broke")
    log.debug("filtered_out")
    writer.close()
    first, second = lines_of(buffer)
    assert first["event"] == "before_login" and first["tick"] == 5 and first["session"] == 3
    assert "player" not in first  # None: not logged in yet, so left out
    assert second["tick"] == 6 and second["player"] == 42 and second["level"] == "error"
    exc = second["exception"]
    assert isinstance(exc, list) and exc[0]["exc_type"] == "ExceptionGroup"
    assert exc[0]["frames"][-1]["name"] == test_json_lines_carry_deferred_context_and_structured_tracebacks.__name__
    assert any(sub["exc_type"] == "ValueError" and sub["exc_value"] == "boom" for sub in exc[0]["exceptions"][0])


def test_console_format_is_for_people(restore_logging: None) -> None:
    buffer = io.BytesIO()
    writer = configure_logging("console", "info", buffer)
    structlog.contextvars.bind_contextvars(tick=Deferred(lambda: 77))
    structlog.get_logger("test").warning("slow_disk", seconds=2)
    writer.close()
    text = buffer.getvalue().decode()
    assert "slow_disk" in text and "tick=77" in text and "seconds=2" in text and not text.startswith("{")


class StuckStream(io.RawIOBase):
    """A stdout whose reader stalled: write blocks until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.data: list[bytes] = []

    def write(self, data: Any) -> int:
        self.release.wait(10)
        self.data.append(bytes(data))
        return len(data)


def test_log_writer_never_blocks_and_counts_what_it_drops() -> None:
    stream = StuckStream()
    writer = LogWriter(stream, maxsize=3)  # type: ignore[arg-type]
    started = time.perf_counter()
    for i in range(20):
        writer.write(f"line {i}\n")
    assert time.perf_counter() - started < 0.5  # the stall did not reach the caller
    stream.release.set()
    writer.close()
    written = b"".join(stream.data).decode().splitlines()
    assert writer.dropped >= 16 and writer.dropped + len(written) == 20
    assert written[0] == "line 0" and writer.written == len(written)


async def test_timed_store_observes_each_call(tmp_path: Path) -> None:
    metrics = Metrics()
    with trio.fail_after(20):
        async with open_store(f"sqlite:///{tmp_path}/t.db") as raw:
            store = TimedStore(raw, metrics.observe_store)
            await store.migrate()
            pid = await store.create_account("Timed", b"h" * 32)
            assert await store.find_account(b"h" * 32) == pid
            await store.ping()
            with pytest.raises(StoreCorrupt):
                await store.claim(pid + 100)
    got = metric_samples(metrics.render())
    assert got[("baolife_store_seconds_count", (("op", "create_account"),))] == 1
    assert got[("baolife_store_seconds_count", (("op", "claim"),))] == 1
    assert got[("baolife_store_errors_total", (("op", "claim"),))] == 1
    assert ("baolife_store_errors_total", (("op", "ping"),)) not in got
    assert got[("baolife_build_info", (("version", "0.1.0"),))] == 1
    assert got[("process_open_fds", ())] > 0


def test_gc_passes_are_timed_by_generation_while_installed() -> None:
    metrics = Metrics()
    timer = metrics.gc_timer()
    count = "baolife_gc_pause_seconds_count"
    with timer.installed():
        assert timer in gc.callbacks
        before = metric_samples(metrics.render()).get((count, (("generation", "2"),)), 0)
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
        inside = metric_samples(metrics.render())
    assert timer not in gc.callbacks
    assert inside[(count, (("generation", "0"),))] >= 1
    assert inside[(count, (("generation", "2"),))] >= before + 2
    assert inside[("baolife_gc_pause_seconds_sum", (("generation", "2"),))] > 0
    gc.collect(2)  # after the block: not counted
    assert metric_samples(metrics.render())[(count, (("generation", "2"),))] == inside[(count, (("generation", "2"),))]


# ----------------------------------------------------------------- Sentry

SENTRY_PROBE = """
import sentry_sdk, structlog
from baolife.logs import configure_logging
writer = configure_logging("json", "info", sentry_dsn=DSN)
structlog.contextvars.bind_contextvars(session=7, player=42)
log = structlog.get_logger("probe")
log.info("not_for_sentry")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("tick_failed", detail="x")
log.error("saves_failing", players=3)
sentry_sdk.flush(10)
writer.close()
"""


class FakeSentry:
    """Accepts Sentry envelopes over HTTP and keeps the events in them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.got = trio.Event()

    async def handle(self, stream: trio.SocketStream) -> None:
        # Keep-alive: the SDK may send its next envelope on the same
        # connection; closing after one request made it drop that one.
        conn = h11.Connection(h11.SERVER)
        while True:
            body, headers = b"", {}
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Request):
                    headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
            if isinstance(event, h11.ConnectionClosed):
                break
            if headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            for line in body.splitlines()[1:]:  # an envelope: its header, then item headers and payloads
                item = orjson.loads(line) if line.startswith(b"{") else None
                if isinstance(item, dict) and "event_id" in item:
                    self.events.append(item)
                    self.got.set()
            reply = conn.send(h11.Response(status_code=200, headers=[("content-length", "2")]))
            await stream.send_all(reply + conn.send(h11.Data(data=b"{}")) + conn.send(h11.EndOfMessage()))
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                break
            conn.start_next_cycle()
        await stream.aclose()


async def test_error_lines_go_to_sentry_with_their_context(tmp_path: Path) -> None:
    sentry = FakeSentry()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, sentry.handle, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            script = SENTRY_PROBE.replace("DSN", repr(f"http://publickey@127.0.0.1:{port}/1"))
            done = await trio.run_process([sys.executable, "-c", script], capture_stdout=True, capture_stderr=True)
            nursery.cancel_scope.cancel()
    logged = [orjson.loads(line)["event"] for line in done.stdout.splitlines()]
    assert logged == ["not_for_sentry", "tick_failed", "saves_failing"]  # stdout logging goes on as before
    assert len(sentry.events) == 2, sentry.events
    crash = next(e for e in sentry.events if "exception" in e)
    assert crash["exception"]["values"][-1]["type"] == "ZeroDivisionError"
    assert crash["tags"]["session"] == "7" and crash["tags"]["player"] == "42"
    assert crash["contexts"]["log"]["detail"] == "x" and crash["release"] == "baolife@0.1.0"
    message = next(e for e in sentry.events if "exception" not in e)
    assert message["message"] == "saves_failing" and message["level"] == "error"
    assert message["contexts"]["log"]["players"] == 3
