"""What the MySQL store says to the server: session setup and SQL text.

Plain code with no I/O (but for reading the packaged compression
dictionaries of stored states), so it can be checked without a database. Every
statement is a constant or is assembled from constant fragments (a list of
``%s`` placeholders sized to a batch); values always travel as parameters.

The URL and its options (timeouts, in seconds) are read by
:class:`baolife.dburl.MysqlOptions`.

On MariaDB each statement is also bounded on the server (``SET STATEMENT
max_statement_time=N FOR ...``, N a little under its client deadline), so
a statement does not keep running, or holding row locks, long after its
client has given up.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Sequence
from importlib import resources

import zstandard

from ..dburl import MysqlOptions  # re-exported: the options this dialect serves

__all__ = [
    "CODECS",
    "CODEC_PLAIN",
    "CODEC_ZLIB",
    "CODEC_ZSTD",
    "CODEC_ZSTD_DICT",
    "STATE_DICT_ID",
    "ai_cache_put_statement",
    "ai_settle_players_statement",
    "batch",
    "MysqlOptions",
    "decode_state",
    "encode_state",
    "bounded",
    "lock_epochs_statement",
    "save_statement",
    "session_setup",
    "split_by_size",
]

# --------------------------------------------------------------------- statements

# READ COMMITTED: saves and claims take their row locks explicitly, and it
# avoids gap locks between processes saving neighbouring players.
ISOLATION = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
# sql_notes = 0: notes such as "table already exists" (re-runnable migrations)
# would each cost aiomysql a SHOW WARNINGS round trip and a Python warning.
_SESSION_MARIADB = "SET SESSION sql_notes = 0, innodb_lock_wait_timeout = %s, idle_transaction_timeout = %s"
_SESSION_MYSQL = "SET SESSION sql_notes = 0, innodb_lock_wait_timeout = %s"

# The store probe is a write (the one heartbeat row), so it fails whenever a
# save or a login's claim would: a read succeeds on a full disk or a locked table.
PING = "UPDATE heartbeat SET beat_at = %s WHERE id = 1"
FIND_ACCOUNT = "SELECT id FROM accounts WHERE token_hash = %s"
# A login's first round trip: the account and its ban together.
FIND_LOGIN = (
    "SELECT a.id, b.reason, b.until, b.by_name, b.at FROM accounts a"
    " LEFT JOIN bans b ON b.player_id = a.id WHERE a.token_hash = %s"
)
CREATE_ACCOUNT = "INSERT INTO accounts (token_hash, name, created_at) VALUES (%s, %s, %s)"
CREATE_PLAYER = (
    "INSERT INTO players (id, state, state_codec, schema_version, epoch, updated_at) VALUES (%s, %s, %s, %s, 1, %s)"
)
CLAIM_BUMP = "UPDATE players SET epoch = epoch + 1 WHERE id = %s"
# A claim of a batch that found the player held undoes its bump (under the
# row lock its bump took: nobody saw the bumped epoch).
CLAIM_UNBUMP = "UPDATE players SET epoch = epoch - 1 WHERE id = %s"
CLAIM_READ = (
    "SELECT a.name, p.state, p.state_codec, p.epoch, g.age_days, g.money, g.low_money"
    " FROM accounts a JOIN players p ON p.id = a.id"
    " LEFT JOIN player_progress g ON g.player_id = p.id WHERE a.id = %s"
)
ADD_AI_USAGE = (
    "INSERT INTO ai_usage (day, player_id, calls, cost) VALUES (%s, %s, %s, %s)"
    " ON DUPLICATE KEY UPDATE calls = calls + VALUES(calls), cost = cost + VALUES(cost)"
)
AI_USAGE = "SELECT player_id, calls, cost FROM ai_usage WHERE day = %s"

# The shared AI budget (baolife/ai/budget.py): each statement is atomic on
# the rows it changes, so a reservation needs no transaction and the hot
# ai_budget row is locked only while one UPDATE runs. Its condition is what
# keeps the cluster within the day's budget.
#
# A reservation: the player's call and the day's worst case, both or neither,
# in one statement and one round trip once both rows exist. Its rowcount is 2
# or 0 (nothing matched: a row missing, or a bound reached). Every statement
# that locks both rows locks one player's row, whose one call in flight is
# this one, so two of them cannot wait on each other.
AI_RESERVE_CALL = (
    "UPDATE ai_usage u JOIN ai_budget b ON b.day = u.day"
    " SET u.calls = u.calls + 1, b.reserved = b.reserved + %s, b.calls = b.calls + 1"
    " WHERE u.day = %s AND u.player_id = %s AND u.calls < %s"
    " AND b.spent + b.reserved + %s <= COALESCE(b.budget, %s)"
)
# After a refusal: was it the player's bound, and is the day's row there?
AI_RESERVE_REFUSED = (
    "SELECT (SELECT calls FROM ai_usage WHERE day = %s AND player_id = %s),"
    " (SELECT COUNT(*) FROM ai_budget WHERE day = %s)"
)
# Rows are made with ON DUPLICATE KEY UPDATE, not INSERT IGNORE: IGNORE's
# duplicate-key warning costs a round trip and a Python warning.
AI_PLAYER_ROW = (
    "INSERT INTO ai_usage (day, player_id, calls, cost) VALUES (%s, %s, 0, 0) ON DUPLICATE KEY UPDATE calls = calls"
)
# The day's row starts from what ai_usage already holds for the day (spent by
# workers of a release that wrote usage behind, before an upgrade mid-day).
AI_DAY_ROW = (
    "INSERT INTO ai_budget (day, spent, reserved, calls, budget)"
    " SELECT %s, COALESCE(SUM(cost), 0), 0, 0, NULL FROM ai_usage WHERE day = %s"
    " ON DUPLICATE KEY UPDATE calls = ai_budget.calls"
)
AI_SETTLE_DAY = "UPDATE ai_budget SET reserved = GREATEST(0, reserved - %s), spent = spent + %s WHERE day = %s"
AI_DAY = "SELECT spent, reserved, calls, budget FROM ai_budget WHERE day = %s"
AI_SET_DAY_BUDGET = (
    "INSERT INTO ai_budget (day, spent, reserved, calls, budget)"
    " SELECT %s, COALESCE(SUM(cost), 0), 0, 0, %s FROM ai_usage WHERE day = %s"
    " ON DUPLICATE KEY UPDATE budget = VALUES(budget)"
)
AI_CACHE_GET = "SELECT reply, expires_at FROM ai_reply_cache WHERE cache_key = %s AND expires_at > %s"
AI_CACHE_PRUNE = "DELETE FROM ai_reply_cache WHERE expires_at <= %s LIMIT %s"
_AI_SETTLE_PLAYERS_HEAD = "INSERT INTO ai_usage (day, player_id, calls, cost) VALUES "
_AI_SETTLE_PLAYERS_ROW = "(%s, %s, 0, %s)"
_AI_SETTLE_PLAYERS_TAIL = " ON DUPLICATE KEY UPDATE cost = cost + VALUES(cost)"
_AI_CACHE_PUT_HEAD = "INSERT INTO ai_reply_cache (cache_key, reply, expires_at) VALUES "
_AI_CACHE_PUT_ROW = "(%s, %s, %s)"
_AI_CACHE_PUT_TAIL = " ON DUPLICATE KEY UPDATE reply = VALUES(reply), expires_at = VALUES(expires_at)"

MIGRATE_LOCK = "SELECT GET_LOCK('baolife_migrate', %s)"
MIGRATE_UNLOCK = "SELECT RELEASE_LOCK('baolife_migrate')"
MIGRATE_NO_BOUND = "SET SESSION max_statement_time = 0"
MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INT NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL, applied_at BIGINT NOT NULL"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
)
MIGRATIONS_APPLIED = "SELECT version FROM schema_migrations"
MIGRATION_RECORD = "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)"

_BOUND_PREFIX = "SET STATEMENT max_statement_time = %s FOR "
_LOCK_EPOCHS = "SELECT id, epoch FROM players WHERE id IN ({}) FOR UPDATE"
_SAVE_HEAD = "INSERT INTO players (id, state, state_codec, schema_version, epoch, updated_at) VALUES "
# The state travels as base64: ASCII text, which PyMySQL escapes ten times
# faster than the bytes as they are (str.translate stays on its 1:1 fast
# path), which matters for megabytes per flush in the thread that runs the
# ticks; and a third larger than the state, where hex was twice it: less to
# send, and less held while a statement is built and sent (a batch of 500
# grown lives: 14.6 MB above its documents, 18.6 MB as hex; docs/BENCHMARKS.md,
# issue 15: the interpreter).
_SAVE_ROW = "(%s, FROM_BASE64(%s), %s, %s, %s, %s)"
# The rows were locked and their epochs checked in the same transaction; the
# IF keeps the statement itself unable to overwrite a newer owner's state.
_SAVE_TAIL = (
    " ON DUPLICATE KEY UPDATE"
    " state = IF(epoch = VALUES(epoch), VALUES(state), state),"
    " state_codec = IF(epoch = VALUES(epoch), VALUES(state_codec), state_codec),"
    " schema_version = IF(epoch = VALUES(epoch), VALUES(schema_version), schema_version),"
    " updated_at = IF(epoch = VALUES(epoch), VALUES(updated_at), updated_at)"
)


_PROGRESS_HEAD = "INSERT INTO player_progress (player_id, age_days, money, low_money) VALUES "
_PROGRESS_ROW = "(%s, %s, %s, %s)"
_PROGRESS_TAIL = (
    " ON DUPLICATE KEY UPDATE age_days = VALUES(age_days), money = VALUES(money), low_money = VALUES(low_money)"
)
_DROP_PROGRESS = "DELETE FROM player_progress WHERE player_id IN ({})"


def bounded(sql: str, args: Sequence[object], seconds: float, mariadb: bool) -> tuple[str, tuple[object, ...]]:
    """``sql`` limited to ``seconds`` of server time (MariaDB only; MySQL has
    no per-statement limit for writes and runs ``sql`` as it is)."""
    if not mariadb:
        return sql, tuple(args)
    return _BOUND_PREFIX + sql, (seconds, *args)


def batch(statements: Sequence[str]) -> str:
    """``statements`` as one multi-statement query, sent and answered in one
    round trip (aiomysql connects with CLIENT.MULTI_STATEMENTS); each keeps
    its own ``%s`` marks, the parameters go in order. The server runs them in
    order and stops at the first that fails."""
    return "; ".join(statements)


def lock_epochs_statement(count: int) -> str:
    """Lock ``count`` player rows (ids as parameters) and read their epochs."""
    return _LOCK_EPOCHS.format(", ".join(["%s"] * count))


def progress_statement(count: int) -> str:
    """Write ``count`` players' progress rows (baolife.db.store.Progress) in
    one statement; parameters are ``player_id, age_days, money, low_money``
    per row. Their player rows were locked and their epochs checked first."""
    return _PROGRESS_HEAD + ", ".join([_PROGRESS_ROW] * count) + _PROGRESS_TAIL


def drop_progress_statement(count: int) -> str:
    """Delete ``count`` players' progress rows (ids as parameters): their
    whole states were saved in the same transaction."""
    return _DROP_PROGRESS.format(", ".join(["%s"] * count))


def save_statement(count: int) -> str:
    """Write ``count`` player rows in one statement; parameters are
    ``id, state as base64 text, state_codec, schema_version, epoch, updated_at``
    per row."""
    return _SAVE_HEAD + ", ".join([_SAVE_ROW] * count) + _SAVE_TAIL


def ai_settle_players_statement(count: int) -> str:
    """Add the cost of ``count`` players' settled calls; parameters are
    ``day, player_id, cost`` per player."""
    return _AI_SETTLE_PLAYERS_HEAD + ", ".join([_AI_SETTLE_PLAYERS_ROW] * count) + _AI_SETTLE_PLAYERS_TAIL


def ai_cache_put_statement(count: int) -> str:
    """Store ``count`` shared replies; parameters are ``key, reply, expires_at`` per reply."""
    return _AI_CACHE_PUT_HEAD + ", ".join([_AI_CACHE_PUT_ROW] * count) + _AI_CACHE_PUT_TAIL


def split_by_size(sizes: Sequence[int], limit: int) -> list[range]:
    """Consecutive index ranges whose sizes add up to at most ``limit`` each
    (a single larger item gets a range of its own), so no statement exceeds
    the server's packet limit however large the players are."""
    out = []
    start = total = 0
    for i, size in enumerate(sizes):
        if i > start and total + size > limit:
            out.append(range(start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        out.append(range(start, len(sizes)))
    return out


# --------------------------------------------------------------------- stored state

CODEC_PLAIN = 0
CODEC_ZLIB = 1
CODEC_ZSTD = 2
CODEC_ZSTD_DICT = 3
# The codecs a worker may be told to write (the URL's ``state_codec``); it reads all four.
CODECS = {"zstd-dict": CODEC_ZSTD_DICT, "zstd": CODEC_ZSTD, "zlib": CODEC_ZLIB}
# The dictionary states are written with (CODEC_ZSTD_DICT): the package's
# ``db/dicts/state-N.zdict`` (scripts/train_state_dict.py). One in use is
# never changed or removed; a new one gets the next id, and rows written with
# an older one are read with it (its id is in each frame's header).
STATE_DICT_ID = 1

# No save document comes near this; a stored state that says it would is
# refused rather than decompressed.
MAX_STATE_BYTES = 64 << 20

# zstandard's compressors and decompressors are not safe to share between
# threads, and states are compressed in worker threads: one of each per thread.
_zstd = threading.local()
# The dictionaries by id, each loaded (and digested for level 1) once; a
# ZstdCompressionDict is read-only once made, and every thread's contexts share it.
_dicts: dict[int, zstandard.ZstdCompressionDict] = {}
_dicts_lock = threading.Lock()


def state_dict(dict_id: int) -> zstandard.ZstdCompressionDict:
    """The packaged dictionary ``dict_id``; ValueError if this version has none by that id."""
    found = _dicts.get(dict_id)
    if found is not None:
        return found
    with _dicts_lock:
        found = _dicts.get(dict_id)
        if found is None:
            path = resources.files(__package__).joinpath("dicts", f"state-{dict_id}.zdict")
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise ValueError(
                    f"zstd dictionary {dict_id} of stored states is not in this version"
                    f" (baolife/db/dicts/state-{dict_id}.zdict)"
                ) from None
            found = zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_FULLDICT)
            if found.dict_id() != dict_id:
                raise ValueError(f"dictionary file state-{dict_id}.zdict has id {found.dict_id()}")
            found.precompute_compress(level=1)
            _dicts[dict_id] = found
    return found


def encode_state(state: bytes, codec: int = CODEC_ZSTD_DICT) -> bytes:
    """A save document as stored with ``codec``.

    :data:`CODEC_ZSTD_DICT` (the default): a Zstandard frame at level 1 made
    with the packaged dictionary :data:`STATE_DICT_ID`, its content size and
    the dictionary's id in the header: a saved life's keys, roles and story
    lines are in the dictionary, so a grown life's state is about a fifth
    of its JSON, 0.57 of what zstd stores without it, in less time
    (docs/BENCHMARKS.md). :data:`CODEC_ZSTD`: the same without a
    dictionary, what versions before it wrote. :data:`CODEC_ZLIB`: the
    format of the server's COMPRESS() (uncompressed length, 4 bytes
    little-endian, then a zlib stream), at zlib's fastest level, what
    workers before the zstd codec wrote and read."""
    if not state:
        return b""
    if codec == CODEC_ZSTD_DICT or codec == CODEC_ZSTD:
        encoders = getattr(_zstd, "compressors", None)
        if encoders is None:
            encoders = _zstd.compressors = {}
        compressor = encoders.get(codec)
        if compressor is None:
            used = state_dict(STATE_DICT_ID) if codec == CODEC_ZSTD_DICT else None
            compressor = encoders[codec] = zstandard.ZstdCompressor(level=1, dict_data=used)
        # Copied to its size: python-zstandard's result keeps the buffer it
        # was compressed into, the input's size and more (13 KB held for a
        # state of 4 KB), and states wait in the saves in flight.
        return bytes(memoryview(compressor.compress(state)))
    if codec == CODEC_ZLIB:
        return struct.pack("<I", len(state)) + zlib.compress(state, 1)
    if codec == CODEC_PLAIN:
        return state
    raise ValueError(f"unknown state codec {codec}")


def decode_state(stored: bytes, codec: int) -> bytes:
    """The save document of a stored state. Raises ValueError for an unknown
    codec or data that does not decompress to its recorded length."""
    if codec == CODEC_PLAIN:
        return stored
    if codec not in (CODEC_ZLIB, CODEC_ZSTD, CODEC_ZSTD_DICT):
        raise ValueError(f"unknown state codec {codec}")
    if not stored:
        return b""
    if codec != CODEC_ZLIB:
        return _zstd_decode(stored, codec == CODEC_ZSTD_DICT)
    if len(stored) < 4:
        raise ValueError("compressed state is too short")
    (length,) = struct.unpack("<I", stored[:4])
    if length > MAX_STATE_BYTES:
        raise ValueError(f"compressed state says it is {length} bytes, over {MAX_STATE_BYTES}")
    # At most one byte past the header's length: a stream that would grow
    # beyond it is refused without being inflated whole.
    inflate = zlib.decompressobj()
    try:
        state = inflate.decompress(stored[4:], length + 1)
    except zlib.error as exc:
        raise ValueError(f"compressed state does not decompress: {exc}") from None
    if not inflate.eof and len(state) <= length:
        raise ValueError("compressed state does not decompress: the stream is cut short")
    if len(state) != length:
        raise ValueError(f"compressed state is {len(state)} bytes, its header says {length}")
    return state


def _zstd_decode(stored: bytes, with_dict: bool) -> bytes:
    try:
        header = zstandard.get_frame_parameters(stored)
    except zstandard.ZstdError as exc:
        raise ValueError(f"compressed state does not decompress: {exc}") from None
    length = header.content_size
    if length == zstandard.CONTENTSIZE_UNKNOWN:
        raise ValueError("compressed state has no content size in its header")
    if length > MAX_STATE_BYTES:
        raise ValueError(f"compressed state says it is {length} bytes, over {MAX_STATE_BYTES}")
    # A frame names the dictionary it was made with (0: none), and a codec 3
    # row must name one: a row is read with its own codec, or refused.
    dict_id = header.dict_id
    if with_dict != (dict_id != 0):
        raise ValueError(
            f"compressed state names zstd dictionary {dict_id}"
            if dict_id
            else "compressed state names no zstd dictionary"
        )
    decoders = getattr(_zstd, "decompressors", None)
    if decoders is None:
        decoders = _zstd.decompressors = {}
    decompressor = decoders.get(dict_id)
    if decompressor is None:
        used = state_dict(dict_id) if dict_id else None
        decompressor = decoders[dict_id] = zstandard.ZstdDecompressor(dict_data=used)
    try:
        state = decompressor.decompress(stored, max_output_size=length)
    except zstandard.ZstdError as exc:
        raise ValueError(f"compressed state does not decompress: {exc}") from None
    if len(state) != length:
        raise ValueError(f"compressed state is {len(state)} bytes, its header says {length}")
    return state


def session_setup(options: MysqlOptions, mariadb: bool) -> list[tuple[str, tuple[object, ...]]]:
    """Statements (with parameters) run on every new connection."""
    lock = max(1, round(options.lock_timeout))
    if mariadb:
        return [(ISOLATION, ()), (_SESSION_MARIADB, (lock, lock))]
    return [(ISOLATION, ()), (_SESSION_MYSQL, (lock,))]
