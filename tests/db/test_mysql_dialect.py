"""The MySQL store's URL options and statement shapes (no database needed)."""

from __future__ import annotations

import gc
import threading
import tracemalloc

import pytest
import zstandard

from baolife.config import ConfigError, load
from baolife.content.schema import Content
from baolife.db.migrations import load_migrations
from baolife.db.mysql_dialect import (
    CODEC_PLAIN,
    CODEC_ZLIB,
    CODEC_ZSTD,
    CODEC_ZSTD_DICT,
    STATE_DICT_ID,
    MysqlOptions,
    bounded,
    decode_state,
    encode_state,
    lock_epochs_statement,
    save_statement,
    split_by_size,
    state_dict,
)
from baolife.model import dump_player
from tests.tick.harness import Harness


def test_url_gives_credentials_database_and_defaults() -> None:
    o = MysqlOptions.from_url("mysql://bao:p%40ss%3Aword@db.internal:3307/baolife")
    assert (o.host, o.port, o.user, o.password, o.database) == ("db.internal", 3307, "bao", "p@ss:word", "baolife")
    assert (o.connect_timeout, o.timeout, o.save_timeout, o.lock_timeout) == (3.0, 5.0, 15.0, 5.0)
    assert "p@ss" not in repr(o)
    assert MysqlOptions.from_url("mariadb://root@127.0.0.1/x").port == 3306
    assert o.state_codec == "zstd-dict"


def test_url_chooses_the_state_codec() -> None:
    assert MysqlOptions.from_url("mysql://root@h/x?state_codec=zlib").state_codec == "zlib"
    assert MysqlOptions.from_url("mysql://root@h/x?state_codec=zstd&timeout=2").state_codec == "zstd"
    assert MysqlOptions.from_url("mysql://root@h/x?state_codec=zstd-dict").state_codec == "zstd-dict"
    with pytest.raises(ValueError, match="state_codec must be one of zstd-dict, zstd, zlib"):
        MysqlOptions.from_url("mysql://root@h/x?state_codec=lz4")


def test_url_options_override_the_timeouts() -> None:
    o = MysqlOptions.from_url("mysql://root@h/db?timeout=1.5&save_timeout=4&connect_timeout=0.5")
    assert (o.timeout, o.save_timeout, o.connect_timeout) == (1.5, 4.0, 0.5)
    assert o.server_bound(4.0) < 4.0


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://root@h/", "no database"),
        ("mysql:///db", "no host"),
        ("mysql://root@h/db?timeout=soon", "must be a number"),
        ("mysql://root@h/db?timeout=0", "between"),
        ("mysql://root@h/db?pool=3", "unknown option"),
        ("postgres://root@h/db", "scheme"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        MysqlOptions.from_url(url)


def test_a_bad_database_url_is_a_config_error_that_hides_the_password() -> None:
    with pytest.raises(ConfigError, match="unknown option") as caught:
        load({"BAOLIFE_DB_URL": "mysql://bao:hunter2@h/db?retries=3"})
    assert "hunter2" not in str(caught.value)


def test_statements_are_bounded_on_mariadb_only() -> None:
    assert bounded("SELECT 1", (), 2.5, mariadb=True) == ("SET STATEMENT max_statement_time = %s FOR SELECT 1", (2.5,))
    assert bounded("SELECT %s", (7,), 2.5, mariadb=False) == ("SELECT %s", (7,))


def test_batch_statements_have_one_placeholder_group_per_row() -> None:
    assert lock_epochs_statement(3).count("%s") == 3
    statement = save_statement(4)
    assert statement.count("(%s, FROM_BASE64(%s), %s, %s, %s, %s)") == 4
    assert statement.startswith("INSERT INTO players")
    assert "ON DUPLICATE KEY UPDATE state = IF(epoch = VALUES(epoch)" in statement


def test_split_by_size_keeps_each_part_under_the_limit() -> None:
    assert split_by_size([], 10) == []
    assert split_by_size([3, 3, 3, 3], 10) == [range(0, 3), range(3, 4)]
    assert split_by_size([12, 1, 1], 10) == [range(0, 1), range(1, 3)]  # an oversize item alone
    sizes = [5, 7, 1, 9, 2, 2, 2, 10, 3]
    parts = split_by_size(sizes, 10)
    assert [i for part in parts for i in part] == list(range(len(sizes)))
    assert all(sum(sizes[i] for i in part) <= 10 or len(part) == 1 for part in parts)


def test_mysql_schema_mirrors_sqlite_and_indexes_every_lookup() -> None:
    text = " ".join(s for m in load_migrations("mysql") for s in m.statements)
    for table in ("accounts", "players", "ai_usage", "heartbeat"):
        assert f"CREATE TABLE IF NOT EXISTS {table}" in text
        assert "utf8mb4" in text
    assert "UNIQUE KEY accounts_token_hash (token_hash)" in text
    assert "epoch" in text and "PRIMARY KEY (day, player_id)" in text
    assert [m.name for m in load_migrations("sqlite")] == [m.name for m in load_migrations("mysql")]


@pytest.mark.parametrize("codec", [CODEC_ZSTD_DICT, CODEC_ZSTD, CODEC_ZLIB])
def test_states_are_stored_compressed_and_read_back_exactly(codec: int) -> None:
    state = b'{"v":1,"player":{"feed":["' + "Bảo went to school 🐉".encode() * 200 + b'"]}}'
    stored = encode_state(state, codec)
    assert len(stored) < len(state) / 5
    assert decode_state(stored, codec) == state
    assert decode_state(state, CODEC_PLAIN) == state
    assert decode_state(encode_state(b"", codec), codec) == b""
    # The codecs are not interchangeable: a row is read with its own.
    for other in {CODEC_ZSTD_DICT, CODEC_ZSTD, CODEC_ZLIB} - {codec}:
        with pytest.raises(ValueError, match="decompress|header|over|dictionary"):
            decode_state(stored, other)


@pytest.mark.parametrize("codec", [CODEC_ZSTD_DICT, CODEC_ZSTD, CODEC_ZLIB])
def test_a_compressed_state_holds_only_its_bytes(codec: int) -> None:
    # Compressed states wait in the saves in flight (thousands at 19,500
    # players); zstandard's own result held its input's size for a third of it.
    states = [
        b'{"v":2,"player":{"story":[' + f'[{n},"Day {n} of a life."],'.encode() * 300 + b"[1,1]]}}" for n in range(200)
    ]
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        stored = [encode_state(state, codec) for state in states]
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    size = sum(map(len, stored))
    assert size < sum(map(len, states)) / 10
    assert held <= size + 100 * len(stored), f"{held} bytes held for {size} bytes of compressed states"


def test_the_default_codec_is_zstd_with_the_dictionary_and_threads_may_share_it() -> None:
    state = b'{"v":1,"player":{"story":[' + b'[1,"a day"],' * 500 + b'[2,"end"]]}}'
    assert (
        encode_state(state) == encode_state(state, CODEC_ZSTD_DICT) and encode_state(state)[:4] == b"\x28\xb5\x2f\xfd"
    )
    assert zstandard.get_frame_parameters(encode_state(state)).dict_id == STATE_DICT_ID
    assert zstandard.get_frame_parameters(encode_state(state, CODEC_ZSTD)).dict_id == 0
    with pytest.raises(ValueError, match="unknown state codec 9"):
        encode_state(state, 9)
    # Each thread keeps its own compressor and decompressor (zstandard's are
    # not safe to share): many threads at once all read back what they wrote.
    results: list[bool] = []

    def work(n: int) -> None:
        for i in range(50):
            doc = state + str(n * 1000 + i).encode()
            results.append(decode_state(encode_state(doc), CODEC_ZSTD_DICT) == doc)
            results.append(decode_state(encode_state(doc, CODEC_ZSTD), CODEC_ZSTD) == doc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 800 and all(results)


@pytest.mark.parametrize(
    ("stored", "codec", "reason"),
    [
        (b"{}", 7, "unknown state codec"),
        (b"\x01", CODEC_ZLIB, "too short"),
        (b"\x10\x00\x00\x00not zlib", CODEC_ZLIB, "does not decompress"),
        (
            encode_state(b"hello", CODEC_ZLIB)[:4].replace(b"\x05", b"\x09") + encode_state(b"hello", CODEC_ZLIB)[4:],
            CODEC_ZLIB,
            "header",
        ),
        (b"\xff\xff\xff\x7f" + encode_state(b"hello", CODEC_ZLIB)[4:], CODEC_ZLIB, "over"),
        (b"\x05\x00\x00\x00" + encode_state(b"hello " * 1000, CODEC_ZLIB)[4:], CODEC_ZLIB, "header says"),
        (encode_state(b"hello " * 1000, CODEC_ZLIB)[:-8], CODEC_ZLIB, "cut short"),
        (b"not zstd at all", CODEC_ZSTD, "does not decompress"),
        (encode_state(b"hello " * 100, CODEC_ZSTD)[:-4], CODEC_ZSTD, "does not decompress"),
        (zstandard.ZstdCompressor(write_content_size=False).compress(b"hello"), CODEC_ZSTD, "no content size"),
        (zstandard.ZstdCompressor().compress(b"\0" * (65 << 20)), CODEC_ZSTD, "over"),
        # A row is read with the codec it was written with: codec 3 frames
        # name their dictionary, codec 2 frames none.
        (encode_state(b"hello " * 100, CODEC_ZSTD), CODEC_ZSTD_DICT, "names no zstd dictionary"),
        (encode_state(b"hello " * 100, CODEC_ZSTD_DICT), CODEC_ZSTD, "names zstd dictionary 1"),
        (encode_state(b"hello " * 100, CODEC_ZSTD_DICT)[:-4], CODEC_ZSTD_DICT, "does not decompress"),
        # A dictionary a later version made (an upgrade rolled back) is named, not guessed at.
        (
            zstandard.ZstdCompressor(
                dict_data=zstandard.train_dictionary(4096, [b"%d hello" % n for n in range(2000)], dict_id=99)
            ).compress(b"hello"),
            CODEC_ZSTD_DICT,
            "zstd dictionary 99 of stored states is not in this version",
        ),
    ],
)
def test_damaged_stored_states_are_errors(stored: bytes, codec: int, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_state(stored, codec)


def test_the_packaged_dictionary_stores_played_lives_in_little_more_than_half(content: Content) -> None:
    """Lives played on the engine (a newborn's first days to a grown life
    with a job, NPCs who remember talks and a story) are stored with the
    dictionary in under 0.7 of zstd's bytes without it (0.57 on the load
    test's lives, scripts/train_state_dict.py), and read back exactly."""
    states = []
    for seed, years in enumerate((0, 3, 12, 25, 40)):
        harness = Harness(content, year_days=365, seed=seed)
        player = harness.world.rules.new_life(seed + 1, f"Life {seed}", 1)
        harness.world.join(player, 0)
        harness.live(
            player,
            max(2, years * 365),
            talk_every=90,
            say=lambda day, living: (living[day % len(living)], "How are you?"),
            reply=lambda job: "Fine, thanks.",
        )
        states.append(dump_player(player))
    with_dict = [encode_state(state, CODEC_ZSTD_DICT) for state in states]
    without = [encode_state(state, CODEC_ZSTD) for state in states]
    assert [decode_state(stored, CODEC_ZSTD_DICT) for stored in with_dict] == states
    assert sum(map(len, with_dict)) < 0.7 * sum(map(len, without)), (list(map(len, with_dict)), list(map(len, without)))
    assert state_dict(STATE_DICT_ID).dict_id() == STATE_DICT_ID
