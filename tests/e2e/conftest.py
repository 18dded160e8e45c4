"""Fixtures of the web client tests: Chromium, fast settings, and worlds that
keep a browser scenario deterministic.

Chromium is Debian's ``chromium`` (``scripts/test`` installs it as root),
driven by Playwright's Python package with ``executable_path``; Playwright's
own browser downloads are never used. Without Chromium the browser tests
skip with the reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil

import attrs
import pytest

from baolife.config import Settings
from baolife.content.schema import Content


def _chromium_problem() -> tuple[str | None, str]:
    path = os.environ.get("BAOLIFE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        return None, "Chromium is not installed (scripts/test installs Debian's chromium when run as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None, "the playwright package is missing (it is in the test extras: pip install -e '.[test]')"
    return path, ""


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium executable, or a skip (a failure when CI=true)."""
    path, problem = _chromium_problem()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the browser tests cannot run: {problem}")
        pytest.skip(problem)
    return path


@pytest.fixture
def calm_content(content: Content) -> Content:
    """The game's content with its clock loosened for a browser: prompts
    wait 600 days for their answer, actions cool down for 1000 days (so a
    second try is refused every time), nobody dies of chance."""
    world = content.world
    return attrs.evolve(
        content,
        world=attrs.evolve(
            world,
            timeout_days=600,
            hazard=attrs.evolve(world.hazard, base=0.0, infant=0.0, npc_base=0.0),
        ),
        events={k: attrs.evolve(e, timeout_days=0) for k, e in content.events.items()},
        actions={k: attrs.evolve(a, cooldown_days=1000) for k, a in content.actions.items()},
    )


@pytest.fixture
def deadly_content(content: Content) -> Content:
    """The game's content in a world where every life ends on its first day."""
    world = content.world
    return attrs.evolve(content, world=attrs.evolve(world, hazard=attrs.evolve(world.hazard, infant=1e9)))


@pytest.fixture
def browser_settings(settings: Settings) -> Settings:
    """Fast, but slow enough to watch: 10 game days a second and 10 days a
    year, so a two-year-old can act about two seconds after birth."""
    return settings.replace(day_ticks=5, year_days=10)


@pytest.fixture
def lasting_content(content: Content) -> Content:
    """The game's content as it is, except that the player does not die of
    chance: a life lasts as long as a scenario needs to watch it."""
    world = content.world
    hazard = attrs.evolve(world.hazard, base=0.0, infant=0.0)
    return attrs.evolve(content, world=attrs.evolve(world, hazard=hazard))


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    """A fast clock (BAOLIFE_TICK_HZ=100, BAOLIFE_DAY_TICKS=1,
    BAOLIFE_YEAR_DAYS=20): a childhood of 18 years in seconds."""
    return settings.replace(tick_hz=100, day_ticks=1, year_days=20)
