#!/usr/bin/env python3
"""Train the Zstandard dictionary the MySQL store compresses states with.

A save document is a JSON object of 2-20 KB whose keys, NPC roles, event ids
and story lines come from a few hundred strings: compressed alone, each
state pays again for spelling them out. A dictionary trained on real saves
gives the compressor those strings before the first byte
(``baolife/db/mysql_dialect.py``, ``state_codec`` 3). This script plays
``--lives`` accounts with the simulation's bots, as ``scripts/seed_lives.py``
does (every age, NPCs who remember talks, past lives), trains a dictionary
of ``--size`` bytes on their saves and writes it with the id ``--dict-id``.
Then it plays ``--held-out`` other lives with ``--held-seed`` (the load
test's seed by default: the lives it measures with were not trained on)
and prints, for those, the mean save and what it is stored as with zstd at
level 1 alone and with the dictionary, with the time to pack one.

    scripts/train_state_dict.py --out baolife/db/dicts/state-1.zdict

A dictionary in use is never changed or removed: rows stored with it are
read with it for as long as they exist. A new one gets the next id and
becomes the one written (``baolife/db/mysql_dialect.py``: ``STATE_DICT_ID``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import orjson
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed_lives import live_templates  # noqa: E402
from serverlib import machine  # noqa: E402

from baolife.model import dump_player  # noqa: E402


def _pack_times(compressor: zstandard.ZstdCompressor, docs: list[bytes], rounds: int = 5) -> tuple[float, int]:
    """Mean bytes stored and the best of ``rounds`` mean microseconds to pack one of ``docs``."""
    best = float("inf")
    stored = 0
    for _ in range(rounds):
        started = time.perf_counter()
        stored = sum(len(compressor.compress(doc)) for doc in docs)
        best = min(best, time.perf_counter() - started)
    return best / len(docs) * 1e6, stored // len(docs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="file to write the dictionary to")
    parser.add_argument("--dict-id", type=int, default=1, help="the id the dictionary's frames name (1, 2, ...)")
    parser.add_argument("--size", type=int, default=64 * 1024, help="dictionary bytes")
    parser.add_argument("--lives", type=int, default=600, help="lives played to train on")
    parser.add_argument("--hours", type=float, default=4.0, help="most real hours a life has played")
    parser.add_argument("--seed", type=int, default=101, help="the training lives' seed")
    parser.add_argument("--held-out", type=int, default=200, help="other lives to measure on")
    parser.add_argument("--held-seed", type=int, default=1, help="their seed (scripts/seed_lives.py's default)")
    args = parser.parse_args()
    if args.dict_id < 1:
        parser.error("--dict-id must be 1 or more (0 means no dictionary in a zstd frame)")

    started = time.perf_counter()
    samples = [dump_player(p) for p in live_templates(args.lives, args.hours, args.seed)]
    trained = zstandard.train_dictionary(args.size, samples, dict_id=args.dict_id, level=1)
    with open(args.out, "wb") as out:
        out.write(trained.as_bytes())
    training = time.perf_counter() - started

    held = [dump_player(p) for p in live_templates(args.held_out, args.hours, args.held_seed)]
    plain_us, plain = _pack_times(zstandard.ZstdCompressor(level=1), held)
    dict_us, packed = _pack_times(zstandard.ZstdCompressor(level=1, dict_data=trained), held)
    result = {
        "out": args.out,
        "dict_id": trained.dict_id(),
        "dict_bytes": len(trained.as_bytes()),
        "trained_on": {"lives": len(samples), "bytes": sum(map(len, samples)), "seed": args.seed},
        "held_out": {
            "lives": len(held),
            "seed": args.held_seed,
            "json_bytes_mean": round(statistics.fmean(map(len, held))),
            "zstd1_bytes_mean": plain,
            "zstd1_dict_bytes_mean": packed,
            "dict_over_plain": round(packed / plain, 3),
            "zstd1_pack_us": round(plain_us, 1),
            "zstd1_dict_pack_us": round(dict_us, 1),
        },
        "seconds": round(training, 1),
        "command": " ".join(["scripts/train_state_dict.py", *sys.argv[1:]]),
        "machine": machine(),
    }
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
