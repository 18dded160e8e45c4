"""The chat client: real HTTP against the fake for statuses and failures,
httpx.MockTransport for malformed bodies."""

from __future__ import annotations

import httpx
import pytest
import trio

from baolife.ai.client import (
    MAX_RESPONSE_BYTES,
    ChatClient,
    UpstreamBadResponse,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
    parse_retry_after,
)
from baolife.ai.fake import FakeOpenAI

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 10, "user": "p1"}


async def test_a_completion_and_its_usage(fake: FakeOpenAI) -> None:
    client = ChatClient(fake.base_url, "k", max_connections=2, timeout=5)
    with trio.fail_after(5):
        done = await client.complete(BODY)
        await client.complete(BODY)
        await client.aclose()
    assert done.text.startswith("#1 (hello there)")
    assert (done.prompt_tokens, done.completion_tokens) == (3 + 4 + 3, 10)
    assert fake.stats.by_user["p1"] == 2


@pytest.mark.parametrize(
    ("outcome", "error", "retryable", "billed"),
    [
        ("500", UpstreamServerError, True, False),
        ("429", UpstreamRateLimited, True, False),
        ("close", UpstreamUnavailable, True, True),
    ],
)
async def test_failures_become_typed_errors(
    fake: FakeOpenAI, outcome: str, error: type[Exception], retryable: bool, billed: bool
) -> None:
    fake.behaviour.script = [outcome]
    fake.behaviour.retry_after = 2.5
    client = ChatClient(fake.base_url, "k", max_connections=2, timeout=5)
    with trio.fail_after(5):
        with pytest.raises(error) as caught:
            await client.complete(BODY)
        assert (await client.complete(BODY)).text  # the client is still usable
        await client.aclose()
    assert caught.value.retryable is retryable and caught.value.maybe_billed is billed  # type: ignore[attr-defined]
    if outcome == "429":
        assert caught.value.retry_after == 2.5  # type: ignore[attr-defined]


async def test_a_wrong_key_is_rejected_and_not_retryable(fake: FakeOpenAI) -> None:
    fake.behaviour.api_key = "right"
    client = ChatClient(fake.base_url, "wrong", max_connections=1, timeout=5)
    with trio.fail_after(5), pytest.raises(UpstreamRejected) as caught:
        await client.complete(BODY)
    await client.aclose()
    assert caught.value.status == 401 and not caught.value.retryable


async def test_a_hung_call_times_out_and_may_have_been_billed(fake: FakeOpenAI) -> None:
    fake.behaviour.script = ["hang"]
    client = ChatClient(fake.base_url, "k", max_connections=1, timeout=0.3)
    with trio.fail_after(5):
        with pytest.raises(UpstreamTimeout) as caught:
            await client.complete(BODY)
        await client.aclose()
        await fake.until(lambda s: s.in_flight == 0)
    assert caught.value.maybe_billed


async def test_nobody_listening_is_a_connection_error_that_cost_nothing() -> None:
    with trio.socket.socket() as sock:  # a port that is bound but never listens
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        client = ChatClient(f"http://127.0.0.1:{port}/v1", "k", max_connections=1, timeout=2)
        with trio.fail_after(5), pytest.raises(UpstreamUnavailable) as caught:
            await client.complete(BODY)
        await client.aclose()
    assert not caught.value.maybe_billed


def mock_client(body: bytes) -> ChatClient:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    return ChatClient("http://upstream.invalid/v1", "k", max_connections=1, timeout=2, transport=transport)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"choices": []}',
        b'{"choices": [{"message": {"content": "  "}}]}',
        b"x" * (MAX_RESPONSE_BYTES + 1),
    ],
)
async def test_malformed_or_huge_bodies_are_bad_responses(body: bytes) -> None:
    with trio.fail_after(5), pytest.raises(UpstreamBadResponse):
        await mock_client(body).complete(BODY)


async def test_missing_usage_is_reported_as_unknown_and_long_replies_are_cut() -> None:
    body = b'{"choices": [{"message": {"content": "' + b"la " * 1000 + b'"}}]}'
    with trio.fail_after(5):
        done = await mock_client(body).complete(BODY)
    assert done.prompt_tokens is None and done.completion_tokens is None
    assert len(done.text) <= 600


def test_retry_after_headers() -> None:
    def parse(**headers: str) -> float | None:
        return parse_retry_after(httpx.Headers(headers), now=1_000_000_000.0)

    assert parse() is None
    assert parse(**{"retry-after": "7"}) == 7.0
    assert parse(**{"retry-after": "-3"}) == 0.0
    assert parse(**{"retry-after": "99999999"}) == 3600.0
    assert parse(**{"retry-after": "nan"}) is None
    assert parse(**{"retry-after": "soon"}) is None
    assert parse(**{"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse(**{"retry-after": "Sun, 09 Sep 2001 01:46:50 GMT"}) == 10.0
