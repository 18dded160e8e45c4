"""The shipped content loads and reaches every stage of life. Broken content
is covered in tests/content/test_content_errors.py."""

from __future__ import annotations

from baolife import content as content_pkg
from baolife.tick.registry import EventRegistry


def test_shipped_content_loads_and_every_prompt_has_its_default() -> None:
    content = content_pkg.load()
    for event in content.events.values():
        if event.choices:
            assert event.choice(event.default) is not None
    assert EventRegistry(content).statistics().indexed > 0
