"""The database URL's grammar: its schemes, and the MySQL options with their
defaults and bounds.

Plain parsing (its only I/O: TLS files must exist) and nothing of the game, so that both
:mod:`baolife.config` (which checks ``BAOLIFE_DB_URL`` at start-up) and
:mod:`baolife.db.mysql` (which connects with it) read one definition without
the settings depending on the database layer.

The URL: ``mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?OPTION=VALUE&...]``
(``mariadb://`` is the same). User and password may be percent-encoded.
Options in seconds:

``connect_timeout`` (3)
    opening a connection, TCP and handshake.
``timeout`` (5)
    one login-path operation (find an account, claim, create, ping, AI usage),
    pool wait included.
``save_timeout`` (15)
    one save batch, pool wait included.
``migrate_timeout`` (300)
    applying the pending migrations.
``lock_timeout`` (5)
    ``innodb_lock_wait_timeout``: how long a statement waits for a row lock;
    on MariaDB also ``idle_transaction_timeout``: a transaction left idle
    that long (its client vanished) is ended by the server.
``max_idle`` (300)
    an idle pooled connection older than this is closed rather than reused.

TLS options (paths and a mode, not seconds):

``ssl_ca``
    PEM file of the CA(s) the server's certificate must chain to; setting it
    turns TLS on, in mode ``verify_identity`` unless ``ssl_mode`` says else.
``ssl_mode`` (``disabled``, or ``verify_identity`` with ``ssl_ca``)
    ``required`` (encrypted, the server not verified), ``verify_ca`` (its
    certificate chains to ``ssl_ca``, or to the system's CAs without it) or
    ``verify_identity`` (that, and it names the URL's host).
``ssl_cert``, ``ssl_key``
    a client certificate and its key, for servers that ask for one.

And how saved states are stored:

``state_codec`` (``zstd-dict``)
    ``zstd-dict`` (Zstandard, level 1, with the package's dictionary of
    saved states), ``zstd`` (the same without it, what versions before
    the dictionary wrote) or ``zlib`` (the format of the server's
    ``COMPRESS()``, what versions before the zstd codec wrote). Every
    worker reads all three; an older version reads only what it writes
    and those before it, so while such workers share the database (a
    rolling upgrade), give the new ones the codec the old ones write and
    switch once all run this version (docs/MYSQL.md).
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

__all__ = ["MysqlOptions", "check_db_url"]

_DEFAULTS = {
    "connect_timeout": 3.0,
    "timeout": 5.0,
    "save_timeout": 15.0,
    "migrate_timeout": 300.0,
    "lock_timeout": 5.0,
    "max_idle": 300.0,
}
_LIMITS = (0.1, 86400.0)
_SSL_MODES = ("disabled", "required", "verify_ca", "verify_identity")
_SSL_FILES = ("ssl_ca", "ssl_cert", "ssl_key")
_STATE_CODECS = ("zstd-dict", "zstd", "zlib")


@attrs.frozen
class MysqlOptions:
    """Where and how to connect; see the module docstring for the options."""

    host: str
    port: int
    user: str
    password: str
    database: str
    connect_timeout: float
    timeout: float
    save_timeout: float
    migrate_timeout: float
    lock_timeout: float
    max_idle: float
    ssl_mode: str = "disabled"
    ssl_ca: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    state_codec: str = "zstd-dict"

    @classmethod
    def from_url(cls, url: str) -> MysqlOptions:
        """Parse a ``mysql://`` URL. Raises ValueError with a one-line reason."""
        parts = urlsplit(url)
        if parts.scheme not in ("mysql", "mariadb"):
            raise ValueError("scheme must be mysql:// or mariadb://")
        if not parts.hostname:
            raise ValueError("must be mysql://user:password@host:port/database (no host)")
        database = unquote(parts.path.lstrip("/"))
        if not database or "/" in database:
            raise ValueError("must be mysql://user:password@host:port/database (no database)")
        try:
            port = parts.port or 3306
        except ValueError:
            raise ValueError("the port must be a number between 0 and 65535") from None
        values = dict(_DEFAULTS)
        tls: dict[str, str] = {}
        state_codec = "zstd-dict"
        for key, raw in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)):
            if key in _SSL_FILES or key == "ssl_mode":
                tls[key] = raw
                continue
            if key == "state_codec":
                if raw not in _STATE_CODECS:
                    raise ValueError(f"option state_codec must be one of {', '.join(_STATE_CODECS)}")
                state_codec = raw
                continue
            if key not in values:
                known = ", ".join(sorted([*_DEFAULTS, *_SSL_FILES, "ssl_mode", "state_codec"]))
                raise ValueError(f"unknown option {key!r} (known: {known})")
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"option {key} must be a number of seconds") from None
            if not _LIMITS[0] <= value <= _LIMITS[1]:
                raise ValueError(f"option {key} must be between {_LIMITS[0]:g} and {_LIMITS[1]:g} seconds")
            values[key] = value
        ssl_mode, ssl_ca, ssl_cert, ssl_key = _tls_options(tls)
        return cls(
            host=parts.hostname,
            port=port,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=database,
            connect_timeout=values["connect_timeout"],
            timeout=values["timeout"],
            save_timeout=values["save_timeout"],
            migrate_timeout=values["migrate_timeout"],
            lock_timeout=values["lock_timeout"],
            max_idle=values["max_idle"],
            ssl_mode=ssl_mode,
            ssl_ca=ssl_ca,
            ssl_cert=ssl_cert,
            ssl_key=ssl_key,
            state_codec=state_codec,
        )

    def server_bound(self, client_deadline: float) -> float:
        """Server-side statement limit for a client deadline: a little
        shorter, so the server has given up by the time the client does."""
        return round(max(0.1, client_deadline * 0.9), 3)

    def __repr__(self) -> str:  # never print the password
        return f"MysqlOptions({self.user}@{self.host}:{self.port}/{self.database})"


def _tls_options(given: dict[str, str]) -> tuple[str, str, str, str]:
    """Mode, CA, certificate and key from the URL's ssl_* options, checked:
    a known mode, files that exist, a key with its certificate."""
    mode = given.get("ssl_mode", "verify_identity" if given.get("ssl_ca") else "disabled")
    if mode not in _SSL_MODES:
        raise ValueError(f"option ssl_mode must be one of {', '.join(_SSL_MODES)}")
    for key in _SSL_FILES:
        path = given.get(key)
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"option {key}: no such file {path!r}")
    if mode == "disabled" and any(key in given for key in _SSL_FILES):
        raise ValueError("options ssl_ca, ssl_cert and ssl_key need TLS (ssl_mode is disabled)")
    if ("ssl_cert" in given) != ("ssl_key" in given):
        raise ValueError("options ssl_cert and ssl_key: give both or neither")
    return mode, given.get("ssl_ca", ""), given.get("ssl_cert", ""), given.get("ssl_key", "")


def check_db_url(text: str) -> str:
    """``text`` if it is a URL the server can open (``sqlite:///PATH`` or a
    MySQL URL with valid options). Raises ValueError with a one-line reason."""
    parts = urlsplit(text)
    if parts.scheme == "sqlite":
        if not (parts.path or parts.netloc):
            raise ValueError("sqlite URL needs a path, e.g. sqlite:///var/baolife.db")
        return text
    if parts.scheme in ("mysql", "mariadb"):
        MysqlOptions.from_url(text)  # raises ValueError naming what is wrong
        return text
    raise ValueError("scheme must be sqlite:// or mysql://")
