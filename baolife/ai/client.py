"""The OpenAI-compatible ``POST {base_url}/chat/completions`` client.

One :class:`ChatClient` per process holds one ``httpx.AsyncClient``: explicit
per-phase timeouts, a connection pool bounded by the number of AI workers
(a worker has at most one call out), no retries of its own (the policy is
:mod:`baolife.ai.llm`'s). A response body is read up to
:data:`MAX_RESPONSE_BYTES`, so a broken upstream cannot fill memory.

httpx's exceptions and the upstream's error statuses are translated here::

    UpstreamError                  .retryable   .maybe_billed
    ├── UpstreamTimeout            yes          after the request was sent
    ├── UpstreamUnavailable        yes          after the request was sent
    ├── UpstreamRateLimited (429)  yes          no   (.retry_after, seconds)
    ├── UpstreamServerError (5xx)  yes          no
    ├── UpstreamRejected (4xx)     no           no
    └── UpstreamBadResponse        no           yes

``maybe_billed`` tells the cost governor whether the call may have cost
tokens (the model may have run even though we got no usage back).
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import time
from collections.abc import AsyncGenerator
from typing import Any, cast

import attrs
import httpx
import orjson

__all__ = [
    "MAX_RESPONSE_BYTES",
    "ChatClient",
    "Completion",
    "UpstreamBadResponse",
    "UpstreamError",
    "UpstreamRateLimited",
    "UpstreamRejected",
    "UpstreamServerError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "parse_retry_after",
]

MAX_RESPONSE_BYTES = 256 * 1024
# A reply is a line of dialogue; anything longer is cut so memory and saves stay small.
MAX_REPLY_CHARS = 600
# Longest Retry-After we take literally; a day-long one is a broken header.
MAX_RETRY_AFTER = 3600.0
# A connect that takes longer is a dead host, whatever the attempt's timeout.
MAX_CONNECT_SECONDS = 5.0
# An idle pooled connection is closed after this many seconds.
KEEPALIVE_SECONDS = 30.0


class UpstreamError(Exception):
    """A chat completion that did not come back. ``kind`` labels metrics."""

    kind = "error"
    retryable = False

    def __init__(self, message: str, *, maybe_billed: bool = False) -> None:
        super().__init__(message)
        self.maybe_billed = maybe_billed


class UpstreamTimeout(UpstreamError):
    kind = "timeout"
    retryable = True


class UpstreamUnavailable(UpstreamError):
    """Could not connect, or the connection broke."""

    kind = "connection"
    retryable = True


class UpstreamRateLimited(UpstreamError):
    kind = "rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamServerError(UpstreamError):
    kind = "server_error"
    retryable = True

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class UpstreamRejected(UpstreamError):
    """A 4xx other than 429: our request or key is wrong; retrying will not help."""

    kind = "rejected"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class UpstreamBadResponse(UpstreamError):
    kind = "bad_response"

    def __init__(self, message: str) -> None:
        super().__init__(message, maybe_billed=True)


@attrs.frozen
class Completion:
    """The reply text and the tokens billed (None when the upstream did not say)."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or
    an HTTP date), between 0 and :data:`MAX_RETRY_AFTER`; None when absent
    or unreadable."""
    seconds: float | None = None
    ms = headers.get("retry-after-ms")
    if ms is not None and (value := _number(ms)) is not None:
        seconds = value / 1000.0
    elif (text := headers.get("retry-after")) is not None:
        seconds = _number(text)
        if seconds is None:
            try:
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError):
                return None
            seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds is None:
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


class ChatClient:
    """Chat completions over one pooled ``httpx.AsyncClient``.

    ``timeout`` bounds each phase of one attempt (connect is capped at
    :data:`MAX_CONNECT_SECONDS`); the caller bounds the whole job. ``transport`` replaces the network (for
    unit tests with ``httpx.MockTransport``). Close with :meth:`aclose`.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        max_connections: int,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(MAX_CONNECT_SECONDS, timeout)),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=KEEPALIVE_SECONDS,
            ),
            transport=transport,
            follow_redirects=False,
        )

    async def complete(self, body: dict[str, Any]) -> Completion:
        """POST one chat completion request; the reply or an :class:`UpstreamError`."""
        payload = orjson.dumps(body)
        try:
            async with self._http.stream("POST", "chat/completions", content=payload) as response:
                # Read even an error's body (bounded) so the connection can be reused.
                data = await _read_bounded(response)
                if response.status_code != 200:
                    raise _status_error(response)
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise UpstreamTimeout(f"{type(exc).__name__}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"{type(exc).__name__}: {exc}", maybe_billed=True) from exc
        except httpx.ConnectError as exc:
            raise UpstreamUnavailable(f"ConnectError: {exc}") from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(f"{type(exc).__name__}: {exc}", maybe_billed=True) from exc
        return _completion(data)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()


async def _read_bounded(response: httpx.Response) -> bytes:
    data = bytearray()
    # aclosing: leaving the loop early must close the generator here, not in the GC.
    async with contextlib.aclosing(cast(AsyncGenerator[bytes, None], response.aiter_bytes())) as chunks:
        async for chunk in chunks:
            data += chunk
            if len(data) > MAX_RESPONSE_BYTES:
                raise UpstreamBadResponse(f"response larger than {MAX_RESPONSE_BYTES} bytes")
    return bytes(data)


def _status_error(response: httpx.Response) -> UpstreamError:
    status = response.status_code
    if status == 429:
        return UpstreamRateLimited("429 Too Many Requests", retry_after=parse_retry_after(response.headers))
    if status >= 500:
        return UpstreamServerError(f"upstream status {status}", status=status)
    return UpstreamRejected(f"upstream status {status}", status=status)


def _completion(data: bytes) -> Completion:
    try:
        doc = orjson.loads(data)
        text = doc["choices"][0]["message"]["content"]
        usage = doc.get("usage") or {}
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise UpstreamBadResponse(f"not a chat completion: {exc!r}") from None
    if not isinstance(text, str) or not text.strip():
        raise UpstreamBadResponse("chat completion without text")
    prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    completion_tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return Completion(
        text=text.strip()[:MAX_REPLY_CHARS],
        prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else None,
        completion_tokens=completion_tokens if isinstance(completion_tokens, int) else None,
    )
