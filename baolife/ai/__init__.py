"""NPC replies: the scripted lines, and an OpenAI-compatible LLM in front of them.

Modules, from the engine's side outwards::

    service   NpcService: the job channel and its workers; every job ends in one reply
    reply     what a provider returns: Reply or Fallback (with a FallbackReason)
    offline   ScriptedProvider: in-character lines with no network (and every fallback)
    llm       LlmProvider: cache, single-flight, breaker, budget, retries
    flight    SingleFlight: identical requests in flight share one call
    breaker   CircuitBreaker and the Retry-After hold
    budget    CostGovernor: per-player calls and the daily spend (in memory, or in the shared database)
    cache     ReplyCache: greetings and small talk, local and shared by the workers
    prompt    the prompt, small talk and its cache key (pure functions)
    client    ChatClient: one HTTP client, httpx's errors translated
    fake      a fake OpenAI-compatible server for tests and benchmarks

How a failure travels, one form per layer:

1. :mod:`~baolife.ai.client` raises an :class:`~baolife.ai.client.UpstreamError`
   (httpx's exceptions and error statuses are translated there and nowhere
   else).
2. :class:`~baolife.ai.llm.LlmProvider` catches it in one place, where it
   becomes a retry or the job's verdict; a refusal by the breaker or the cost
   governor is a :class:`~baolife.ai.reply.FallbackReason` value, never raised.
3. From there up the outcome is a value: ``str | Fallback`` out of a flight,
   ``Reply | Fallback`` out of a provider. The service answers a
   :class:`~baolife.ai.reply.Fallback` with a scripted line and counts its
   reason; any exception that reaches it is a fault in our code (reason
   ``error``, logged with its traceback).

The package's exceptions::

    UpstreamError                    a chat completion that did not come back
    ├── UpstreamTimeout              no answer within the attempt's time   (retried)
    ├── UpstreamUnavailable          no connection, or it broke            (retried)
    ├── UpstreamRateLimited          429, with .retry_after                (retried)
    ├── UpstreamServerError          5xx, with .status                     (retried)
    ├── UpstreamRejected             other 4xx, with .status
    └── UpstreamBadResponse          too large, not JSON, no text

``UpstreamError.kind`` is the ``outcome`` label of ``baolife_ai_calls_total``;
:class:`~baolife.ai.reply.FallbackReason` values are the ``reason`` label of
``baolife_npc_fallback_reasons_total``, and each field of
:class:`~baolife.ai.service.UpstreamStatistics` is the ``baolife_ai_*``
family of the same name (docs/AI.md, docs/OPERATIONS.md).
"""
