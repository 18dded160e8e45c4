"""The end of a life: its summary, its achievements, and the past lives kept.

When a life ends, :func:`summarize` turns it into a compact
:class:`~baolife.model.PastLife` (what the ``died`` op's ``summary`` and the
``lives`` op show); :func:`keep` files it in the player's save, newest first
and bounded, where it stays across new lives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..content.schema import Achievement, Content
from ..model import LIMITS, PastLife, Player, Story
from .family import kin

__all__ = ["earned", "keep", "life_view", "summarize"]


def earned(content: Content, p: Player, year_days: int) -> list[str]:
    """The ids of the achievements ``p``'s life (as it is now) earns, in content order."""
    return [a.id for a in content.achievements.values() if _holds(a, content, p, year_days)]


def _holds(a: Achievement, content: Content, p: Player, year_days: int) -> bool:
    if p.age_days < a.min_age * year_days:
        return False
    if a.education and p.education not in a.education:
        return False
    if a.flags and not p.flags.issuperset(a.flags):
        return False
    if a.any_flags and p.flags.isdisjoint(a.any_flags):
        return False
    roles = {n.role for n in p.npcs}
    if any(role not in roles for role in a.npc_roles):
        return False
    if a.min_money is not None and p.money < a.min_money:
        return False
    if a.min_salary is not None:
        best = content.jobs.get(p.best_job or "")
        if best is None or best.salary < a.min_salary:
            return False
    return not (a.debt_free and p.low_money < 0)


def _spread(items: Sequence[tuple[int, str]], most: int) -> list[tuple[int, str]]:
    """At most ``most`` items spread evenly over ``items``, the first and last kept."""
    n = len(items)
    if n <= most:
        return list(items)
    if most <= 1:
        return list(items[-most:]) if most == 1 else []
    return [items[round(i * (n - 1) / (most - 1))] for i in range(most)]


def summarize(content: Content, p: Player, year_days: int) -> PastLife:
    """The summary of ``p``'s life as it stands (called when it ends)."""
    job = content.jobs.get(p.job or "")
    best = content.jobs.get(p.best_job or "")
    return PastLife(
        life=p.life,
        name=p.name,
        age_days=p.age_days,
        cause=p.cause_of_death or "",
        education=p.education,
        job=job.title if job else None,
        best_job=best.title if best else None,
        money=p.money,
        family=[(n.name, n.role, n.alive) for n in kin(p)],
        moments=Story(_spread(p.moments, LIMITS.life_moments)),
        achievements=earned(content, p, year_days),
    )


def keep(p: Player, past: PastLife) -> None:
    """File ``past`` first in the player's past lives, dropping the oldest beyond the bound."""
    p.lives.keep(past, LIMITS.lives)


def life_view(content: Content, past: PastLife) -> dict[str, Any]:
    """A past life as the client sees it (``died.summary``, the ``lives`` op)."""
    achievements = content.achievements
    return {
        "life": past.life,
        "name": past.name,
        "age_days": past.age_days,
        "cause": past.cause,
        "education": past.education,
        "job": past.job,
        "best_job": past.best_job,
        "money": past.money,
        "family": [{"name": name, "role": role, "alive": alive} for name, role, alive in past.family],
        "moments": [[age, text] for age, text in past.moments],
        "achievements": [
            {"id": ident, "label": achievements[ident].label if ident in achievements else ident.replace("_", " ")}
            for ident in past.achievements
        ],
    }
