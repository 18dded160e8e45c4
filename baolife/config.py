"""Settings: one validated object built at start-up and passed down.

Every setting has an environment variable ``BAOLIFE_<NAME>`` and a key
``<name>`` in the optional TOML file given with ``--config``; the
environment wins over the file, the file over the default. Nothing reads the
environment at import time: :func:`load` is called once by the CLI.

A bad value raises :class:`ConfigError` whose message is one line naming the
setting and the reason; the CLI prints it and exits with status 2.

One piece: the settings table is one list, checked against the docs' table
(tests/test_ops_docs.py) and the --help text; the small validators here
serve only it.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from .dburl import check_db_url

__all__ = ["ADMIN_ROLES", "AdminToken", "ConfigError", "Settings", "load", "SETTINGS_DOC"]


class ConfigError(Exception):
    """A setting has a value the server cannot run with."""


def _parse_bind(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8765")
    host = host.strip("[]")
    value = int(port)
    if not 0 <= value <= 65535:
        raise ValueError("port must be between 0 and 65535")
    return host, value


def _number(kind: type, low: float, high: float) -> Callable[[Any], Any]:
    def parse(raw: Any) -> Any:
        if isinstance(raw, bool):
            raise ValueError("must be a number")
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            raise ValueError(f"must be {'an integer' if kind is int else 'a number'}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return parse


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = str(raw).lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def _text(raw: Any) -> str:
    return str(raw)


def _networks(raw: Any) -> tuple[Any, ...]:
    items = raw if isinstance(raw, list) else [x for x in str(raw).replace(",", " ").split() if x]
    try:
        return tuple(ipaddress.ip_network(str(x).strip(), strict=False) for x in items)
    except ValueError as exc:
        raise ValueError(f"must be IP addresses or networks separated by commas ({exc})") from None


def within(address: str, networks: tuple[Any, ...]) -> bool:
    """True if ``address`` (an IP address as text) is in one of ``networks``
    (as the ``trusted_proxies`` setting holds them); False for a non-address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def _parse_dsn(raw: Any) -> str:
    text = str(raw).strip()
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.username or not parts.hostname or not parts.path.strip("/"):
        raise ValueError("must be a Sentry DSN, https://KEY@HOST/PROJECT, or empty")
    return text


def _worker_id(raw: Any) -> str:
    text = str(raw).strip()
    if len(text) > 128 or any(not (c.isalnum() or c in "-_.:@") for c in text):
        raise ValueError("must be at most 128 letters, digits and - _ . : @")
    return text


def _flag(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


@attrs.frozen
class AdminToken:
    """One operator token of ``BAOLIFE_ADMIN_TOKENS``: a name for the audit
    log, a role (``viewer`` or ``operator``) and the SHA-256 of the token
    (hex); the token itself is never configured."""

    name: str
    role: str
    sha256: str


ADMIN_ROLES = ("viewer", "operator")


def _admin_tokens(raw: Any) -> tuple[AdminToken, ...]:
    """``name:role:sha256hex`` entries separated by commas or new lines, or
    ``@/path`` of a file holding them (``#`` starts a comment)."""
    text = str(raw).strip()
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ValueError(f"cannot read {text[1:]}: {exc.strerror}") from None
    tokens: list[AdminToken] = []
    for line in text.splitlines():
        for entry in line.split("#", 1)[0].split(","):
            entry = entry.strip()
            if not entry:
                continue
            name, role, digest = ([*entry.split(":"), "", ""])[:3]
            if entry.count(":") != 2 or not name or len(name) > 64:
                raise ValueError("each entry must be NAME:ROLE:SHA256HEX (`baolife admin token NAME ROLE` makes one)")
            if role not in ADMIN_ROLES:
                raise ValueError(f"{name}: role must be viewer or operator, not {role!r}")
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
                raise ValueError(f"{name}: the hash must be 64 hex digits (the token's SHA-256)")
            if any(t.name == name for t in tokens):
                raise ValueError(f"{name}: named twice")
            tokens.append(AdminToken(name, role, digest.lower()))
    return tuple(tokens)


@attrs.frozen
class _Spec:
    parse: Callable[[Any], Any]
    default: Any
    doc: str


# Floors of two bounds that must grow with other settings (see
# Settings.effective_inbox_limit and Settings.effective_health_window).
INBOX_PER_CONNECTION = 4
HEALTH_WINDOW_TICKS = 20

# The single table of settings: name -> how to parse it, its default, what it means.
_SPECS: dict[str, _Spec] = {
    "ws_bind": _Spec(_parse_bind, "127.0.0.1:8765", "WebSocket listener HOST:PORT (path /ws)"),
    "http_bind": _Spec(
        _parse_bind, "127.0.0.1:8080", "HTTP listener for /healthz, /readyz, /metrics and the web client"
    ),
    "db_url": _Spec(
        check_db_url,
        "sqlite:///var/baolife.db",
        "store: sqlite:///PATH or mysql://user:password@host:port/database[?option=value] (docs/MYSQL.md)",
    ),
    "db_pool": _Spec(_number(int, 1, 256), 8, "MySQL connection pool size"),
    "db_migrate": _Spec(_flag, True, "apply pending schema migrations when serve starts"),
    "worker_id": _Spec(
        _worker_id,
        "",
        "this worker's name in the cluster (who owns which player, docs/SCALING.md); "
        "empty: HOST:WS_PORT (HOST:pidPID.N when the port is 0)",
    ),
    "bus_url": _Spec(
        _choice("auto", "local", "db"),
        "auto",
        "how workers tell each other of handoffs: db (a table in the shared database, polled), "
        "local (this process only), auto (db with MySQL, local with SQLite)",
    ),
    "bus_poll": _Spec(_number(float, 0.01, 5), 0.1, "seconds between reads of the database bus (bus_url db)"),
    "lease_timeout": _Spec(
        _number(float, 2, 600),
        10.0,
        "seconds a worker's hold on its players outlives its last renewal; another worker takes them "
        "after it when the holder crashed or lost the database",
    ),
    "tick_hz": _Spec(_number(float, 1, 100), 10.0, "ticks per second"),
    "day_ticks": _Spec(_number(int, 1, 1000), 10, "ticks per game day"),
    "year_days": _Spec(_number(int, 4, 365), 365, "game days per game year"),
    "fast_forward_budget": _Spec(
        _number(int, 0, 10_000_000),
        10000,
        "extra game days (beyond the stages' pace) that players fast-forwarding may run in one tick; "
        "past it they run at x1 for that tick",
    ),
    "save_interval": _Spec(
        _number(float, 0.05, 600),
        5.0,
        "seconds between write-behind flushes (from the end of one to the start of the next)",
    ),
    "save_batch": _Spec(_number(int, 1, 10000), 500, "players per save statement batch"),
    "malloc_trim_interval": _Spec(
        _number(float, 0, 3600),
        10.0,
        "seconds between returns of freed C-heap memory to the system (glibc malloc_trim); 0 turns them off",
    ),
    "max_loaded_players": _Spec(
        _number(int, 10, 10_000_000), 20000, "players kept in memory (LRU of online and recently seen)"
    ),
    "max_connections": _Spec(
        _number(int, 1, 1_000_000), 10000, "WebSocket connections in total; over it the handshake is refused with 503"
    ),
    "http_max_connections": _Spec(
        _number(int, 1, 100_000), 64, "HTTP connections at once (probes, scrapes, the web client); over it 503"
    ),
    "conn_per_ip": _Spec(_number(int, 1, 1_000_000), 20, "concurrent WebSocket connections per client IP"),
    "register_per_ip_hour": _Spec(_number(int, 1, 1_000_000), 30, "registrations per client IP per hour"),
    "msg_rate": _Spec(_number(float, 0.1, 100000), 20.0, "messages per second per connection (token bucket refill)"),
    "msg_burst": _Spec(_number(int, 1, 100000), 40, "token bucket size of the per-connection message rate"),
    "rate_strikes": _Spec(
        _number(int, 1, 100000), 50, "messages dropped for rate in a row before the connection is closed 1008"
    ),
    "max_message_bytes": _Spec(_number(int, 256, 1_048_576), 4096, "largest inbound message; larger closes with 1009"),
    "trusted_proxies": _Spec(
        _networks, "", "comma-separated IPs or networks of front proxies whose X-Forwarded-For names the client"
    ),
    "login_timeout": _Spec(_number(float, 0.1, 3600), 10.0, "seconds to log in before close 1008"),
    "auth_timeout": _Spec(
        _number(float, 0.1, 600),
        3.0,
        "seconds a register, login or resume may take (store reads, loading the player) before it is answered busy",
    ),
    "inbox_limit": _Spec(
        _number(int, 1, 100_000_000),
        10000,
        "player messages waiting for the next tick before more are answered busy; "
        f"at least {INBOX_PER_CONNECTION} per allowed WebSocket connection",
    ),
    "store_probe_timeout": _Spec(
        _number(float, 0.1, 600),
        3.0,
        "seconds the store has to take the readiness probe write before it counts as not writable",
    ),
    "health_window": _Spec(
        _number(float, 0.1, 3600),
        2.0,
        f"seconds without a tick before /healthz reports the tick loop stalled; at least {HEALTH_WINDOW_TICKS} ticks",
    ),
    "idle_timeout": _Spec(
        _number(float, 1, 86400), 300.0, "seconds without a client message before bye idle and close 4001"
    ),
    "ping_interval": _Spec(
        _number(float, 0.5, 3600), 20.0, "seconds of silence before the server pings a client to find dead peers"
    ),
    "outbound_frames": _Spec(
        _number(int, 1, 100000), 64, "frames queued per connection before it counts as a slow client"
    ),
    "outbound_bytes": _Spec(
        _number(int, 1024, 1 << 30), 262144, "bytes queued per connection before it counts as a slow client"
    ),
    "shutdown_timeout": _Spec(_number(float, 0.5, 600), 20.0, "seconds a graceful shutdown may take in all"),
    "ai_workers": _Spec(_number(int, 1, 1024), 16, "NPC reply worker tasks"),
    "ai_queue": _Spec(_number(int, 1, 1_000_000), 256, "NPC reply jobs waiting for a worker; over it say gets busy"),
    "ai_base_url": _Spec(_text, "https://api.openai.com/v1", "OpenAI-compatible API base URL"),
    "ai_api_key": _Spec(_text, "", "API key; empty means the offline scripted NPC provider"),
    "ai_model": _Spec(_text, "gpt-4o-mini", "chat model name"),
    "ai_context_turns": _Spec(_number(int, 0, 20), 6, "conversation turns sent with each NPC prompt"),
    "ai_max_tokens": _Spec(_number(int, 16, 4096), 120, "max_tokens of each NPC reply"),
    "ai_timeout": _Spec(_number(float, 0.5, 300), 15.0, "deadline of one NPC reply job, retries included"),
    "ai_player_daily_calls": _Spec(_number(int, 0, 1_000_000), 30, "upstream calls per player per UTC day"),
    "ai_daily_budget": _Spec(_number(float, 0, 1e9), 5.0, "upstream spend per UTC day, in the currency of the prices"),
    "ai_price_in": _Spec(_number(float, 0, 1e6), 0.00015, "price per 1K input tokens"),
    "ai_price_out": _Spec(_number(float, 0, 1e6), 0.0006, "price per 1K output tokens"),
    "ai_retries": _Spec(
        _number(int, 0, 2), 2, "retries of an NPC reply call (timeouts, connection errors, 429, 5xx only)"
    ),
    "ai_cache_size": _Spec(_number(int, 0, 10_000_000), 10000, "cached greeting and small-talk replies (LRU)"),
    "ai_cache_ttl": _Spec(
        _number(float, 1, 604800), 86400.0, "seconds a cached small-talk reply is served (it holds nothing private)"
    ),
    "ai_breaker_failures": _Spec(
        _number(int, 1, 1000), 5, "NPC reply jobs failing upstream in a row that open the circuit breaker"
    ),
    "ai_breaker_cooldown": _Spec(
        _number(float, 0.1, 3600), 10.0, "seconds the breaker stays open before one probe call"
    ),
    "admin_tokens": _Spec(
        _admin_tokens,
        "",
        "operator tokens NAME:ROLE:SHA256HEX separated by commas, or @FILE of them; empty turns /admin/ off",
    ),
    "admin_rate": _Spec(_number(float, 0.1, 10000), 5.0, "admin API requests per second per client address"),
    "admin_burst": _Spec(_number(int, 1, 100000), 30, "token bucket size of the admin API rate"),
    "log_format": _Spec(
        _choice("auto", "json", "console"), "auto", "log format: json, console, or auto (console on a TTY)"
    ),
    "log_level": _Spec(_choice("debug", "info", "warning", "error"), "info", "lowest log level written"),
    "summary_interval": _Spec(
        _number(float, 1, 86400), 60.0, "seconds between summary log lines (and systemd STATUS updates)"
    ),
    "sentry_dsn": _Spec(_parse_dsn, "", "Sentry DSN for error tracking (needs baolife[sentry]); empty disables it"),
    "tls_cert": _Spec(
        _text,
        "",
        "PEM certificate chain; with tls_key the WebSocket listener speaks TLS (a reader task per "
        "connection: for many thousands of players, terminate TLS at the front proxy)",
    ),
    "tls_key": _Spec(_text, "", "PEM private key for tls_cert"),
    "seed": _Spec(_number(int, -1, 2**63 - 1), -1, "random seed of the game world; -1 draws one at start"),
}

SETTINGS_DOC: tuple[tuple[str, str, str], ...] = tuple(
    (f"BAOLIFE_{name.upper()}", str(spec.default), spec.doc) for name, spec in _SPECS.items()
)


@attrs.frozen(kw_only=True)
class Settings:
    """The server's validated configuration. Build it with :func:`load` or
    :meth:`defaults`; every field has already passed its check."""

    ws_bind: tuple[str, int]
    http_bind: tuple[str, int]
    db_url: str
    db_pool: int
    db_migrate: bool
    worker_id: str
    bus_url: str
    bus_poll: float
    lease_timeout: float
    tick_hz: float
    day_ticks: int
    year_days: int
    fast_forward_budget: int
    save_interval: float
    save_batch: int
    malloc_trim_interval: float
    max_loaded_players: int
    max_connections: int
    http_max_connections: int
    conn_per_ip: int
    register_per_ip_hour: int
    trusted_proxies: tuple[Any, ...]
    msg_rate: float
    msg_burst: int
    rate_strikes: int
    max_message_bytes: int
    login_timeout: float
    auth_timeout: float
    inbox_limit: int
    store_probe_timeout: float
    health_window: float
    idle_timeout: float
    ping_interval: float
    outbound_frames: int
    outbound_bytes: int
    shutdown_timeout: float
    ai_workers: int
    ai_queue: int
    ai_base_url: str
    ai_api_key: str
    ai_model: str
    ai_context_turns: int
    ai_max_tokens: int
    ai_timeout: float
    ai_player_daily_calls: int
    ai_daily_budget: float
    ai_price_in: float
    ai_price_out: float
    ai_retries: int
    ai_cache_size: int
    ai_cache_ttl: float
    ai_breaker_failures: int
    ai_breaker_cooldown: float
    admin_tokens: tuple[AdminToken, ...]
    admin_rate: float
    admin_burst: int
    log_format: str
    log_level: str
    summary_interval: float
    sentry_dsn: str
    tls_cert: str
    tls_key: str
    seed: int

    @classmethod
    def defaults(cls, **overrides: Any) -> Settings:
        """Settings with every default, then ``overrides`` (raw values, checked
        like environment values). Used by tests and tools."""
        return _build({name: spec.default for name, spec in _SPECS.items()} | overrides, {})

    @property
    def effective_inbox_limit(self) -> int:
        """The tick loop's inbox bound: ``inbox_limit``, raised to
        :data:`INBOX_PER_CONNECTION` per allowed connection."""
        return max(self.inbox_limit, INBOX_PER_CONNECTION * self.max_connections)

    @property
    def effective_health_window(self) -> float:
        """Seconds without a tick before the loop counts as stalled:
        ``health_window``, raised to :data:`HEALTH_WINDOW_TICKS` ticks."""
        return max(self.health_window, HEALTH_WINDOW_TICKS / self.tick_hz)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``. A string value is parsed and checked like
        an environment value; other values must already be of the field's type."""
        parsed = {}
        for name, value in changes.items():
            spec = _SPECS.get(name)
            if spec is None:
                raise ConfigError(f"{name}: unknown setting")
            try:
                parsed[name] = spec.parse(value) if isinstance(value, str) else value
            except ValueError as exc:
                raise ConfigError(f"{name}={value!r}: {exc}") from None
        return attrs.evolve(self, **parsed)


def _redact(url: Any) -> Any:
    """The database URL without its password, for error messages."""
    if not isinstance(url, str):
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(":" + parts.password + "@", ":***@", 1)).geturl()


def _build(raw: Mapping[str, Any], origin: Mapping[str, str]) -> Settings:
    values: dict[str, Any] = {}
    for name, value in raw.items():
        spec = _SPECS.get(name)
        if spec is None:
            raise ConfigError(f"{origin.get(name, name)}: unknown setting")
        try:
            values[name] = spec.parse(value)
        except ValueError as exc:
            shown = _redact(value) if name == "db_url" else value
            raise ConfigError(f"{origin.get(name, 'BAOLIFE_' + name.upper())}={shown!r}: {exc}") from None
    settings = Settings(**values)
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("BAOLIFE_TLS_CERT and BAOLIFE_TLS_KEY: set both or neither")
    return settings


def load(env: Mapping[str, str], config_file: str | None = None) -> Settings:
    """Build the settings from ``env`` (usually ``os.environ``) over the TOML
    ``config_file`` over the defaults.

    Raises:
        ConfigError: a file that cannot be read or parsed, an unknown key in
            it, or a value that fails its check. The message is one line.
    """
    raw: dict[str, Any] = {name: spec.default for name, spec in _SPECS.items()}
    origin: dict[str, str] = {}
    if config_file:
        try:
            with open(config_file, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"--config {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"--config {config_file}: not valid TOML ({exc})") from None
        for key, value in data.items():
            origin[key] = f"{config_file}: {key}"
            if key not in _SPECS:
                raise ConfigError(f"{config_file}: {key}: unknown setting")
            raw[key] = value
    for name in _SPECS:
        env_name = f"BAOLIFE_{name.upper()}"
        if env_name in env:
            raw[name] = env[env_name]
            origin[name] = env_name
    if not raw["ai_api_key"] and env.get("OPENAI_API_KEY"):
        raw["ai_api_key"] = env["OPENAI_API_KEY"]
    return _build(raw, origin)


def from_environ(config_file: str | None = None) -> Settings:
    """:func:`load` with the process environment."""
    return load(os.environ, config_file)
