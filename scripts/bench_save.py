#!/usr/bin/env python3
"""What a save's document costs to encode, for lives of every age.

Plays ``--templates`` lives on the real engine (``seed_lives.live_templates``:
every stage of a life, with their NPCs, stories and past lives), then times
:func:`baolife.model.dump_player` over them against cattrs' own generic
unstructuring of the same lives (what every save did before the hand-written
fields ``baolife.model`` hands to orjson as they are), alternated in one
run; both must make the same bytes. Also the parts of one save: the story's
lines as tuples (``Story.lines``) and orjson's encoding of the finished
document. Prints one JSON object: microseconds per life (best of
``--rounds``), the ratio, the mean document size, the command and the machine.

    .venv/bin/python scripts/bench_save.py --templates 80 --rounds 7
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from pathlib import Path

import cattrs
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed_lives import live_templates  # noqa: E402
from serverlib import machine  # noqa: E402

from baolife import model  # noqa: E402
from baolife.model import SCHEMA_VERSION, Memory, Player, Story, _converter, dump_player  # noqa: E402


def generic() -> Callable[[Player], bytes]:
    """The save document as cattrs makes it field by field (the reference):
    the story's lines, an NPC's turns and past lives item by item."""
    plain = cattrs.Converter(forbid_extra_keys=False, unstruct_collection_overrides={AbstractSet: sorted})
    plain.register_unstructure_hook(Story, Story.lines)
    plain.register_unstructure_hook(Memory, lambda memory: [{"who": t.who, "text": t.text} for t in memory])
    past_lives = getattr(model, "PastLives", None)  # absent from a tree before it (PYTHONPATH=<tree>)
    if past_lives is not None:
        plain.register_unstructure_hook(past_lives, lambda lives: [plain.unstructure(life) for life in lives])
    return lambda p: orjson.dumps({"v": SCHEMA_VERSION, "player": plain.unstructure(p)})


def per_life(encode: Callable[[Player], bytes], lives: list[Player], repeat: int) -> float:
    # Without the collector: its passes land in one timing or the other at
    # random (the server runs it with a high young threshold).
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(repeat):
            for p in lives:
                encode(p)
        return (time.perf_counter() - started) / (repeat * len(lives)) * 1e6
    finally:
        gc.enable()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--templates", type=int, default=80, help="lives played and encoded")
    parser.add_argument("--hours", type=float, default=2.0, help="most hours of play per life")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=20, help="encodings of every life per round")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    lives = live_templates(args.templates, args.hours, args.seed)
    reference = generic()
    mismatched = [p.id for p in lives if dump_player(p) != reference(p)]
    docs = {id(p): {"v": SCHEMA_VERSION, "player": _converter.unstructure(p)} for p in lives}
    ours: list[float] = []
    theirs: list[float] = []
    story: list[float] = []
    encoding: list[float] = []
    for _ in range(args.rounds):
        ours.append(per_life(dump_player, lives, args.repeat))
        theirs.append(per_life(reference, lives, args.repeat))
        story.append(per_life(lambda p: p.story.lines(), lives, args.repeat))
        encoding.append(per_life(lambda p: orjson.dumps(docs[id(p)]), lives, args.repeat))
    result = {
        "command": " ".join(["scripts/bench_save.py", *sys.argv[1:]]),
        "machine": machine(),
        "lives": len(lives),
        "npcs_mean": round(statistics.mean(len(p.npcs) for p in lives), 1),
        "story_lines_mean": round(statistics.mean(len(p.story) for p in lives), 1),
        "past_lives_mean": round(statistics.mean(len(p.lives) for p in lives), 2),
        "document_bytes_mean": round(statistics.mean(len(dump_player(p)) for p in lives)),
        "us_per_life": {
            "dump_player": round(min(ours), 2),
            "cattrs_generic": round(min(theirs), 2),
            "of_which_story_lines": round(min(story), 2),
            "of_which_orjson": round(min(encoding), 2),
        },
        "ratio_ours_over_generic": round(min(ours) / min(theirs), 3),
        "same_bytes": not mismatched,
    }
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
