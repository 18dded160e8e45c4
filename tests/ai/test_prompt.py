"""Prompts: what is small talk, what a prompt holds, and the token bound."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from npc_stack import say_job

from baolife.ai import prompt
from baolife.ai.fake import count_tokens
from baolife.content.schema import Content


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("hi", "greeting"),
        ("Hello!!", "greeting"),
        ("heyyy mom", "greeting"),
        ("Goood morning, Lan", "greeting"),
        ("Xin chào", "greeting"),
        ("how's it going?", "how_are_you"),
        ("How are you doing, dad?", "how_are_you"),
        ("wyd", "what_doing"),
        ("Good night", "good_night"),
        ("love you mum", "love_you"),
        ("bye!", "goodbye"),
    ],
)
def test_greetings_and_small_talk_are_recognised(text: str, intent: str) -> None:
    assert prompt.small_talk(text, "Lan Tran") == intent


@pytest.mark.parametrize(
    "text",
    ["ok", "thanks", "yes", "hi, can I borrow 500 dollars?", "how are you going to pay for it", "no", "Lan", ""],
)
def test_lines_whose_meaning_depends_on_the_conversation_are_not(text: str) -> None:
    assert prompt.small_talk(text, "Lan Tran") is None


def test_the_cache_key_holds_only_what_the_generic_reply_depends_on(content: Content) -> None:
    a = say_job(1, "hi", closeness=70, player_name="Ana", summary="x", turns=(("player", "y"),))
    b = say_job(2, "hello", closeness=90, player_name="Bo")
    persona = prompt.persona_of(content, a)
    assert prompt.cache_key(a, persona, "greeting") == prompt.cache_key(b, persona, "greeting")
    c = say_job(3, "hi", closeness=10)
    assert prompt.cache_key(c, persona, "greeting") != prompt.cache_key(a, persona, "greeting")


def test_a_full_prompt_is_persona_relationship_summary_and_the_last_turns(content: Content) -> None:
    turns = tuple(("player" if i % 2 == 0 else "npc", f"turn {i} " + "x" * 1000) for i in range(20))
    job = say_job(1, "What should I study?", summary='"I love maths"', turns=turns, closeness=80)
    persona = prompt.persona_of(content, job)
    messages = prompt.messages_for(job, persona, context_turns=6)
    system = messages[0]["content"]
    assert persona.traits in system and persona.manner in system
    assert "mother of Ana Tran" in system and "80/100 (close)" in system and "I love maths" in system
    assert [m["content"][:7] for m in messages[1:-1]] == [f"turn {i}" for i in range(14, 20)]
    assert [m["role"] for m in messages[1:3]] == ["user", "assistant"]
    assert messages[-1] == {"role": "user", "content": "What should I study?"}
    # However long the history, the prompt stays bounded.
    assert sum(len(m["content"]) for m in messages) < 4000
    assert len(prompt.messages_for(job, persona, context_turns=0)) == 2


@given(st.lists(st.text(max_size=300), min_size=1, max_size=8))
def test_the_token_bound_is_never_below_what_the_upstream_bills(texts: list[str]) -> None:
    messages = [{"role": "user", "content": t} for t in texts]
    bound = prompt.prompt_token_bound(messages)
    assert bound >= count_tokens(messages)
    # A byte-level BPE token is at least one byte: bytes plus overhead bounds any tokenizer of that kind.
    assert bound >= sum(len(t.encode()) for t in texts) + 3
    assert bound <= 3 + sum(8 + 4 + math.ceil(len(t.encode())) for t in texts)


def test_the_prompt_tells_the_model_both_ages_and_the_relation(content: Content) -> None:
    baby = say_job(1, "Look at me", player_years=0, player_stage="baby", npc_years=27)
    persona = prompt.persona_of(content, baby)
    system = prompt.messages_for(baby, persona, context_turns=6)[0]["content"]
    assert "Lan Tran, 27 years old" in system
    assert "the mother of Ana Tran, who is under a year old (stage of life: baby)" in system
    teen = say_job(1, "Look at me", player_years=15, player_stage="teen")
    assert (
        "who is 15 years old (stage of life: teen)" in prompt.messages_for(teen, persona, context_turns=6)[0]["content"]
    )
    # The generic (shared) prompt tells the stage, never the exact age or a name.
    generic = prompt.messages_for(baby, persona, context_turns=6, intent="greeting")[0]["content"]
    assert "the player's mother" in generic and "baby stage of life" in generic
    assert "27" not in generic and "Ana" not in generic


def test_a_generic_reply_is_shared_only_within_a_life_stage(content: Content) -> None:
    baby = say_job(1, "hi", player_years=0, player_stage="baby")
    toddler = say_job(2, "hi", player_years=2, player_stage="baby")
    adult = say_job(3, "hi", player_years=40, player_stage="adult")
    persona = prompt.persona_of(content, baby)
    assert prompt.cache_key(baby, persona, "greeting") == prompt.cache_key(toddler, persona, "greeting")
    assert prompt.cache_key(baby, persona, "greeting") != prompt.cache_key(adult, persona, "greeting")
