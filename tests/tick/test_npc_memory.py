"""NPC memory: the cap, and the running summary of the turns that fall off."""

from __future__ import annotations

from baolife.model import LIMITS, Npc, Turn
from baolife.tick.memory import fold_summary, remember


def npc() -> Npc:
    return Npc(id=1, name="Lan", role="mother", closeness=50, persona="warm_parent")


def test_turns_past_the_cap_fold_into_the_summary() -> None:
    n = npc()
    remember(n, Turn("player", "I got the job at the bank today. It pays well."))
    remember(n, Turn("npc", "Wonderful news, my dear!"))
    remember(n, Turn("player", "hi"))
    for i in range(LIMITS.npc_memory - 3):
        remember(n, Turn("npc", f"line {i}"))
    assert n.summary == ""  # nothing fell off yet
    remember(n, Turn("player", "ok"))
    assert n.summary == '"I got the job at the bank today."'
    assert len(n.memory) == LIMITS.npc_memory
    remember(n, Turn("npc", "x"))
    remember(n, Turn("player", "y"))  # a greeting and an NPC line add nothing
    assert n.summary == '"I got the job at the bank today."'


def test_the_summary_stays_within_its_bound_dropping_the_oldest_notes() -> None:
    summary = ""
    for i in range(100):
        summary = fold_summary(summary, [Turn("player", f"Fact number {i} about my life is here")], 200)
        assert len(summary) <= 200
    notes = summary.split("; ")
    # Whole notes only, the newest ones, in order.
    assert all(n.startswith('"Fact number ') and n.endswith(' is here"') for n in notes)
    numbers = [int(n.split()[2]) for n in notes]
    assert numbers == list(range(100 - len(numbers), 100)) and len(numbers) >= 4


def test_long_and_multi_line_statements_become_one_short_note() -> None:
    text = "My grandmother; who raised me\nin the village " + "and " * 40
    note = fold_summary("", [Turn("player", text)], 400)
    assert "\n" not in note and "; " not in note
    assert len(note) <= 92 and note.endswith('\u2026"')


def test_a_remembered_turn_is_cut_to_what_prompts_use() -> None:
    from baolife.model import LIMITS, Npc, Turn
    from baolife.tick.memory import remember

    npc = Npc(id=1, name="Mai", role="friend", closeness=50, persona="p")
    remember(npc, Turn(who="player", text="x" * 500))
    assert len(npc.memory[0].text) == LIMITS.turn_chars
