"""The prompt of an NPC reply, and which replies may be shared between players.

A prompt is the NPC persona, the relationship, both ages (the player's
with their life stage), the running summary and the last ``context_turns``
turns, each cut to a bound, so its size is bounded whatever the player typed
before.

Greetings and small talk ("hi", "how are you?", "good night") get a
*generic* prompt instead: the persona, the role, the player's life stage, a
closeness band and a canonical phrase of the intent, with no names, ages,
summary or history. Its reply
depends on nothing private, so it may be cached and served to every player
who says the same kind of thing to the same kind of NPC
(:func:`small_talk` and :func:`cache_key`). Lines that answer something
("ok", "thanks", "yes") are not small talk: their meaning depends on the
conversation.

Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from ..content.schema import Content, Persona
from ..model import LIMITS
from ..tick.engine import SayJob

__all__ = [
    "CacheKey",
    "age_words",
    "cache_key",
    "closeness_band",
    "messages_for",
    "persona_of",
    "prompt_token_bound",
    "request_body",
    "small_talk",
]

# A turn quoted in a prompt is cut to this many characters: 6 turns of
# context then cost at most ~1.8K characters whatever the history holds.
TURN_CHARS = LIMITS.turn_chars

CacheKey = tuple[str, str, str, str, str]

# A message of more words than this is never small talk (the longest phrase
# below has five, leaving room for words of address and the NPC's name).
SMALL_TALK_WORDS = 8
# Closeness (0-100) below each bound reads as the word: the generic prompt's
# relationship and one part of the cache key.
CLOSENESS_BANDS = ((34, "distant"), (67, "friendly"))
CLOSEST_BAND = "close"
# Prompt tokens the chat format adds: to prime the answer, and per message.
PRIMING_TOKENS = 3
MESSAGE_TOKENS = 8
# Sampling temperature of every NPC reply: varied, still in character.
TEMPERATURE = 0.8

# The canonical phrase sent for each small-talk intent, and the ways players
# say it (after normalise: lower case, no accents or punctuation).
_CANONICAL = {
    "greeting": "Hi!",
    "how_are_you": "How are you?",
    "whats_up": "What's up?",
    "what_doing": "What are you doing?",
    "how_day": "How was your day?",
    "goodbye": "Bye, talk later!",
    "good_night": "Good night!",
    "miss_you": "I miss you.",
    "love_you": "I love you.",
}
_PHRASES = {
    "greeting": (
        "hi",
        "hello",
        "hey",
        "heya",
        "hiya",
        "yo",
        "howdy",
        "greetings",
        "good morning",
        "morning",
        "good afternoon",
        "good evening",
        "evening",
        "xin chao",
        "chao",
        "hey hey",
        "hi hi",
    ),
    "how_are_you": (
        "how are you",
        "how are you doing",
        "how r u",
        "how are u",
        "how you doing",
        "how ya doing",
        "hows it going",
        "how is it going",
        "how are things",
        "how have you been",
        "are you ok",
        "you ok",
        "how do you do",
    ),
    "whats_up": ("whats up", "what is up", "sup", "wassup", "whats new", "anything new"),
    "what_doing": ("what are you doing", "what you doing", "wyd", "what are you up to", "what r u doing"),
    "how_day": ("how was your day", "hows your day", "how is your day", "how is your day going", "how was work"),
    "goodbye": ("bye", "goodbye", "bye bye", "see you", "see ya", "see you later", "cya", "gotta go", "talk later"),
    "good_night": ("good night", "goodnight", "night", "nighty night", "sleep well", "sweet dreams"),
    "miss_you": ("i miss you", "miss you", "missed you", "i missed you"),
    "love_you": ("i love you", "love you", "love ya", "i love ya"),
}
_INTENT_OF = {phrase: intent for intent, phrases in _PHRASES.items() for phrase in phrases}
# Words of address that do not change what a greeting means ("hi mom").
_ADDRESS = frozenset(
    "there mom mum mommy mother dad daddy father bro sis brother sister boss buddy friend dude man "
    "honey babe baby love sweetie darling guys all everyone again".split()
)
_NOT_WORD = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")
_REPEATS = re.compile(r"(\w)\1{2,}")


def _normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("'", "").replace("\u2019", ""))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", _NOT_WORD.sub(" ", plain)).strip()


def small_talk(text: str, npc_name: str = "") -> str | None:
    """The small-talk intent of a whole message (``"greeting"``,
    ``"how_are_you"``, ...) or None when the message says anything else.

    Words of address and the NPC's own name around the phrase are ignored
    ("hey mom!", "Good night, Lan"); stretched letters are read as one or two
    ("heyyy", "goood morning").
    """
    words = _normalise(text).split()
    if not words or len(words) > SMALL_TALK_WORDS:
        return None
    names = set(_normalise(npc_name).split())
    while words and (words[-1] in _ADDRESS or words[-1] in names):
        words.pop()
    while words and words[0] in names:
        words.pop(0)
    phrase = " ".join(words)
    for candidate in (phrase, _REPEATS.sub(r"\1", phrase), _REPEATS.sub(r"\1\1", phrase)):
        intent = _INTENT_OF.get(candidate)
        if intent is not None:
            return intent
    return None


def closeness_band(closeness: int) -> str:
    """Closeness 0-100 in three words; the generic prompt's relationship."""
    for bound, word in CLOSENESS_BANDS:
        if closeness < bound:
            return word
    return CLOSEST_BAND


def persona_of(content: Content, job: SayJob) -> Persona:
    """The job's persona (the first one if the content no longer has it)."""
    return content.personas.get(job.persona) or next(iter(content.personas.values()))


def cache_key(job: SayJob, persona: Persona, intent: str) -> CacheKey:
    """What a generic reply depends on, and nothing more (the player's life
    stage, not their age: a mother greets her baby unlike her grown son)."""
    return (persona.id, job.role, job.player_stage, closeness_band(job.closeness), intent)


def age_words(years: int) -> str:
    """An age in years as the prompt says it ("under a year old" for a baby)."""
    return "under a year old" if years < 1 else "1 year old" if years == 1 else f"{years} years old"


_RULES = (
    "Stay in character. Answer in one or two short sentences of plain speech: "
    "no stage directions, no lists, never mention being an AI or a game."
)


def messages_for(
    job: SayJob, persona: Persona, *, context_turns: int, intent: str | None = None
) -> list[dict[str, str]]:
    """The chat messages of a job: generic when ``intent`` is given (see the
    module docstring), else persona, relationship, summary and the last
    ``context_turns`` turns."""
    if intent is not None:
        system = (
            f"You are a character in a life-simulation game: the player's {job.role}. "
            f"Personality: {persona.traits}. Manner of speaking: {persona.manner}. "
            f"The player is at the {job.player_stage} stage of life: speak as their {job.role} would to them. "
            f"Your relationship with the player is {closeness_band(job.closeness)}. "
            f"Do not use anyone's name. {_RULES}"
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": _CANONICAL[intent]}]
    system = (
        f"You are {job.npc_name}, {age_words(job.npc_years)}, a character in a life-simulation game: "
        f"the {job.role} of {job.player_name}, who is {age_words(job.player_years)} "
        f"(stage of life: {job.player_stage}); speak as their {job.role} would to them. "
        f"Personality: {persona.traits}. Manner of speaking: {persona.manner}. "
        f"Closeness between you: {job.closeness}/100 ({closeness_band(job.closeness)}). "
    )
    if job.summary:
        system += f"Earlier, {job.player_name} told you: {job.summary[: LIMITS.summary_chars]}. "
    messages = [{"role": "system", "content": system + _RULES}]
    turns = job.turns[-context_turns:] if context_turns > 0 else ()
    for who, text in turns:
        messages.append({"role": "user" if who == "player" else "assistant", "content": text[:TURN_CHARS]})
    messages.append({"role": "user", "content": job.text})
    return messages


def prompt_token_bound(messages: list[dict[str, str]]) -> int:
    """An upper bound of the prompt tokens the upstream will bill.

    A byte-level BPE token covers at least one byte, so a text has at most
    as many tokens as UTF-8 bytes; chat formatting adds a few per message
    and a few to prime the answer. The bound is ~4x the real count for
    English: it only holds budget during the call (the real usage is
    charged after), whereas a low estimate could overspend.
    """
    return PRIMING_TOKENS + sum(MESSAGE_TOKENS + len(m["role"]) + len(m["content"].encode("utf-8")) for m in messages)


def request_body(model: str, messages: list[dict[str, str]], *, max_tokens: int, user: str) -> dict[str, Any]:
    """The ``chat/completions`` request. ``user`` is a pseudonymous id the
    API uses for abuse monitoring (and the fake server to count per player)."""
    return {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": TEMPERATURE, "user": user}
