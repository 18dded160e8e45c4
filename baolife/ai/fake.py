"""A local OpenAI-compatible ``chat/completions`` server for tests and benchmarks.

It answers ``POST .../chat/completions`` with a deterministic line and a
``usage`` block, and can misbehave on purpose: add latency, answer ``429``
with ``Retry-After``, answer ``500``, hang until the client gives up, or
drop the connection. It counts calls, outcomes, tokens, calls per ``user``
and requests in flight, so tests can check what really went upstream.

Why it lives in the package rather than under ``tests/``: the tests start it
in-process (``await nursery.start(fake.run)`` on 127.0.0.1 port 0),
``scripts/fake_openai`` and ``scripts/bench_ai`` run it standalone, and an
operator can smoke-test a deployment with ``python -m baolife.ai.fake``; all
of them import it without path tricks. It uses only trio and h11, which the
server already depends on, and the server never imports it.

Control over HTTP (for a fake in another process): ``GET /stats`` returns
the counters as JSON; ``POST /behaviour`` with a JSON object sets fields of
:class:`Behaviour`; ``POST /reset`` zeroes the counters.

Tokens are counted the way a BPE tokenizer roughly does for English: one
per four UTF-8 bytes of each message, plus 4 per message and 3 per request.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import signal
import sys
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import h11
import orjson
import trio

__all__ = ["Behaviour", "FakeOpenAI", "FakeStats", "main"]

OUTCOMES = ("ok", "500", "429", "hang", "close")
MAX_BODY = 1 << 20
_WORDS = "sure well honestly yes maybe darling okay right indeed lovely hmm listen".split()


@attrs.define
class Behaviour:
    """How the fake answers. ``script`` outcomes are used first, one per call;
    then each call fails with probability ``fail_rate`` (as ``failure``) or
    succeeds after ``latency`` seconds."""

    latency: float = 0.0
    fail_rate: float = 0.0
    failure: str = "500"
    retry_after: float | None = 1.0
    reply_tokens: int = 24
    script: list[str] = attrs.Factory(list)
    api_key: str | None = None

    def update(self, changes: dict[str, Any]) -> None:
        """Set fields from a JSON object (``POST /behaviour``); unknown or
        badly typed fields raise ValueError."""
        for key, value in changes.items():
            check = _CHECKS.get(key)
            if check is None:
                raise ValueError(f"unknown behaviour field {key!r}")
            if not check(value):
                raise ValueError(f"bad value for {key}: {value!r}")
            setattr(self, key, value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


_CHECKS: dict[str, Any] = {
    "latency": _number,
    "fail_rate": lambda v: _number(v) and v <= 1,
    "failure": lambda v: v in OUTCOMES,
    "retry_after": lambda v: v is None or _number(v),
    "reply_tokens": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
    "script": lambda v: isinstance(v, list) and all(o in OUTCOMES for o in v),
    "api_key": lambda v: v is None or isinstance(v, str),
}


@attrs.define
class FakeStats:
    """Counters since start (or the last :meth:`FakeOpenAI.reset`)."""

    calls: int = 0
    outcomes: Counter[str] = attrs.Factory(Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    by_user: Counter[str] = attrs.Factory(Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    client_gone: int = 0
    # trio.current_time() of the latest calls' arrivals, and their messages (bounded).
    arrivals: deque[float] = attrs.Factory(lambda: deque(maxlen=10000))
    requests: deque[list[Any]] = attrs.Factory(lambda: deque(maxlen=100))

    def cost(self, price_in: float, price_out: float) -> float:
        """What the calls answered so far cost at these prices per 1K tokens."""
        return self.prompt_tokens / 1000 * price_in + self.completion_tokens / 1000 * price_out

    def as_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "outcomes": dict(self.outcomes),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "users": len(self.by_user),
            "max_calls_per_user": max(self.by_user.values(), default=0),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "client_gone": self.client_gone,
        }


def count_tokens(messages: Sequence[Any]) -> int:
    """Prompt tokens of ``messages`` as this fake bills them."""
    total = 3
    for m in messages:
        content = m.get("content", "") if isinstance(m, dict) else ""
        total += 4 + math.ceil(len(str(content).encode("utf-8")) / 4)
    return total


class FakeOpenAI:
    """The fake server; see the module docstring. ``seed`` fixes which calls fail."""

    def __init__(self, behaviour: Behaviour | None = None, *, seed: int = 1) -> None:
        self.behaviour = behaviour or Behaviour()
        self.stats = FakeStats()
        self.port: int | None = None
        self._rng = random.Random(seed)  # noqa: S311 - which calls fail, not secrets
        self._ids = itertools.count(1)
        self._changed = trio.Event()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` once running."""
        return f"http://127.0.0.1:{self.port}/v1"

    async def until(self, predicate: Callable[[FakeStats], bool]) -> FakeStats:
        """Wait until ``predicate(stats)`` holds (checked at every call's
        start and end); the caller bounds the wait."""
        while not predicate(self.stats):
            await self._changed.wait()
        return self.stats

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def reset(self) -> None:
        """Zero the counters (requests in flight stay counted)."""
        in_flight = self.stats.in_flight
        self.stats = FakeStats(in_flight=in_flight)

    async def run(self, host: str = "127.0.0.1", port: int = 0, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``task_status.started(port)``."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._connection, listeners)
            task_status.started(self.port)

    # ----------------------------------------------------------------- HTTP

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_BODY)
        try:
            while True:
                request = await self._read_request(conn, stream)
                if request is None:
                    return
                keep = await self._respond(conn, stream, *request)
                if not keep or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    async def _read_request(self, conn: h11.Connection, stream: trio.SocketStream) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                conn.receive_data(data)  # b"" marks the end of the stream
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise h11.RemoteProtocolError("body too large")
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None  # noqa: S101 - h11 orders the events
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    async def _send(
        self, conn: h11.Connection, stream: trio.SocketStream, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> None:
        data = orjson.dumps(body)
        head = [("content-type", "application/json"), ("content-length", str(len(data))), *headers]
        await stream.send_all(conn.send(h11.Response(status_code=status, headers=head)) or b"")
        await stream.send_all(conn.send(h11.Data(data=data)) or b"")
        await stream.send_all(conn.send(h11.EndOfMessage()) or b"")

    async def _respond(self, conn: h11.Connection, stream: trio.SocketStream, req: h11.Request, body: bytes) -> bool:
        method, target = req.method.decode(), req.target.decode().split("?")[0]
        if method == "GET" and target == "/stats":
            await self._send(conn, stream, 200, self.stats.as_json(), [])
            return True
        if method == "POST" and target == "/reset":
            self.reset()
            await self._send(conn, stream, 200, {"ok": True}, [])
            return True
        if method == "POST" and target == "/behaviour":
            try:
                self.behaviour.update(orjson.loads(body))
            except (orjson.JSONDecodeError, ValueError, AttributeError) as exc:
                await self._send(conn, stream, 400, {"error": str(exc)}, [])
                return True
            await self._send(conn, stream, 200, attrs.asdict(self.behaviour), [])
            return True
        if method != "POST" or not target.endswith("/chat/completions"):
            await self._send(conn, stream, 404, {"error": {"message": "not found"}}, [])
            return True
        return await self._chat(conn, stream, req, body)

    async def _chat(self, conn: h11.Connection, stream: trio.SocketStream, req: h11.Request, body: bytes) -> bool:
        b, s = self.behaviour, self.stats
        auth = dict(req.headers).get(b"authorization", b"").decode()
        if not auth.startswith("Bearer ") or (b.api_key is not None and auth != f"Bearer {b.api_key}"):
            await self._send(conn, stream, 401, {"error": {"message": "bad key", "type": "invalid_request_error"}}, [])
            return True
        try:
            doc = orjson.loads(body)
            messages = doc["messages"]
            max_tokens = int(doc.get("max_tokens") or 4096)
            user = str(doc.get("user", ""))
            if not isinstance(messages, list) or not messages:
                raise ValueError("messages must be a non-empty list")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            await self._send(conn, stream, 400, {"error": {"message": f"bad request: {exc}"}}, [])
            return True
        number = next(self._ids)
        s.calls += 1
        s.by_user[user] += 1
        s.arrivals.append(trio.current_time())
        s.requests.append(messages)
        if b.script:
            outcome = b.script.pop(0)
        elif b.fail_rate and self._rng.random() < b.fail_rate:
            outcome = b.failure
        else:
            outcome = "ok"
        s.outcomes[outcome] += 1
        s.in_flight += 1
        s.max_in_flight = max(s.max_in_flight, s.in_flight)
        self._notify()
        try:
            if outcome == "close":
                return False
            if outcome == "hang":
                await self._wait(stream, math.inf)
                return False
            if outcome == "429":
                headers = [] if b.retry_after is None else [("retry-after", f"{b.retry_after:g}")]
                err = {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}
                await self._send(conn, stream, 429, err, headers)
                return True
            if outcome == "500":
                await self._send(conn, stream, 500, {"error": {"message": "The server had an error"}}, [])
                return True
            if b.latency and not await self._wait(stream, b.latency):
                return False
            prompt_tokens = count_tokens(messages)
            completion_tokens = max(1, min(max_tokens, b.reply_tokens))
            last = str(messages[-1].get("content", ""))[:40] if isinstance(messages[-1], dict) else ""
            words = [_WORDS[(number + i) % len(_WORDS)] for i in range(completion_tokens - 1)]
            text = f"#{number} ({last}) " + " ".join(words)
            s.prompt_tokens += prompt_tokens
            s.completion_tokens += completion_tokens
            reply = {
                "id": f"chatcmpl-fake-{number}",
                "object": "chat.completion",
                "model": str(doc.get("model", "")),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
            await self._send(conn, stream, 200, reply, [])
            return True
        finally:
            self.stats.in_flight -= 1  # self.stats: a reset() meanwhile carried the count over
            self._notify()

    async def _wait(self, stream: trio.SocketStream, seconds: float) -> bool:
        """Sleep ``seconds`` unless the client hangs up first (False then):
        a hung request must not outlive the client that gave up on it."""
        gone = False
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal gone
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                # EOF, or bytes of a pipelined request (which this fake does
                # not serve): either way the client is done with this one.
                del data
                gone = True
                self.stats.client_gone += 1
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            await trio.sleep(seconds)
            nursery.cancel_scope.cancel()
        return not gone


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fake_openai",
        description="A local OpenAI-compatible chat/completions server that can be slow, fail or hang on purpose.",
        epilog="GET /stats for counters; POST /behaviour with a JSON object to change behaviour; POST /reset.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8999, help="port (0 picks a free one; default 8999)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds before each successful answer")
    p.add_argument("--fail-rate", type=float, default=0.0, help="share of calls that fail (0-1)")
    p.add_argument("--failure", choices=[o for o in OUTCOMES if o != "ok"], default="500", help="how they fail")
    p.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds sent with 429")
    p.add_argument("--reply-tokens", type=int, default=24, help="completion tokens of each answer")
    p.add_argument("--api-key", default=None, help="accept only this bearer key (default: any)")
    p.add_argument("--seed", type=int, default=1, help="seed of which calls fail")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake until SIGINT or SIGTERM; print its counters at the end."""
    args = _parser().parse_args(argv)
    behaviour = Behaviour(
        latency=args.latency,
        fail_rate=args.fail_rate,
        failure=args.failure,
        retry_after=args.retry_after,
        reply_tokens=args.reply_tokens,
        api_key=args.api_key,
    )
    fake = FakeOpenAI(behaviour, seed=args.seed)

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(fake.run, args.host, args.port)
            print(f"fake OpenAI API at http://{args.host}:{port}/v1", flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            nursery.cancel_scope.cancel()

    trio.run(serve)
    print(orjson.dumps(fake.stats.as_json()).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
