"""Names of a life and its family: one surname, first names unique within it.

A name of two or more words keeps its last word as the family surname; a
single word gets a surname drawn from the content's names. Family NPCs carry
the surname (a grandparent may carry another: the other side of the family),
and no two people of the life share a first name while the content has names
to spare; none shares the player's.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from ..model import Npc, Player

__all__ = ["FAMILY_ROLES", "KIN_ROLES", "first_of", "kin", "life_surname", "npc_name", "split_name"]

# Roles that carry the player's family name.
FAMILY_ROLES = frozenset({"mother", "father", "sibling", "child", "grandparent", "grandchild"})
# The people an end-of-life page lists as family: blood relatives and partners.
KIN_ROLES = FAMILY_ROLES | {"partner"}
# Chance that a second grandparent is from the other side of the family (another surname).
OTHER_SIDE = 0.5


def split_name(name: str) -> tuple[str, str]:
    """``(first, surname)`` of a name; the surname is ``""`` for a single word."""
    words = name.split()
    if len(words) >= 2:
        return " ".join(words[:-1]), words[-1]
    return " ".join(words), ""


def first_of(name: str) -> str:
    """The first name of an NPC's ``"First Surname"`` (the whole name if one word)."""
    return split_name(name)[0] or name


def _pick(rng: random.Random, pool: Sequence[str], avoid: Iterable[set[str]]) -> str:
    """A name of ``pool`` outside the first set of ``avoid`` that leaves any
    (each set is a weaker wish than the one before); any name if none does."""
    for taken in avoid:
        free = [n for n in pool if n not in taken]
        if free:
            return rng.choice(free)
    return rng.choice(pool)


def npc_name(rng: random.Random, p: Player, role: str, firsts: Sequence[str], lasts: Sequence[str]) -> str:
    """A ``"First Surname"`` for a new NPC of ``role`` in ``p``'s life."""
    mine = p.first_name
    family = {first_of(n.name) for n in p.npcs if n.role in FAMILY_ROLES} | {mine}
    everyone = {first_of(n.name) for n in p.npcs} | family
    first = _pick(rng, firsts, (everyone, family, {mine}))
    if role not in FAMILY_ROLES:
        surname = rng.choice(lasts)
    elif role == "grandparent" and any(n.role == "grandparent" for n in p.npcs) and rng.random() < OTHER_SIDE:
        surname = _pick(rng, lasts, ({p.surname},))
    else:
        surname = p.surname
    return f"{first} {surname}"


def life_surname(
    rng: random.Random, name: str, lasts: Sequence[str], avoid: str = "", *, first_only: bool = False
) -> tuple[str, str]:
    """``(full name, surname)`` of a new life called ``name``: its own surname
    if it has one, else one drawn from ``lasts`` other than ``avoid`` (the
    last life's, so a new life gets a new family). ``first_only``: ``name``
    is a first name, however many words it has."""
    first, surname = (" ".join(name.split()), "") if first_only else split_name(name)
    if not surname:
        surname = _pick(rng, lasts, ({avoid},))
    return f"{first} {surname}", surname


def kin(p: Player) -> list[Npc]:
    """The player's family (blood relatives and partners), alive or gone."""
    return [n for n in p.npcs if n.role in KIN_ROLES]
