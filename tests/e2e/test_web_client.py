"""The web client in headless Chromium against a real server: a person
registers, answers a prompt, takes an action, talks to an NPC, reloads the
page, lives through a server restart, is taken over by a second tab, and
dies and starts again."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import trio
from browser import Server, in_browser, number
from playwright.sync_api import Page, expect

from baolife.config import Settings
from baolife.content.schema import Content

pytestmark = pytest.mark.browser

BUDGET = 45  # seconds for a scenario in the browser, browser start included
SLACK = 15  # for the server to start and stop around it
NAME = "Mai Tester"


def _same_life(page: Page, player: str, token: str) -> None:
    expect(page.locator("#me-name")).to_have_text(NAME)
    expect(page.locator("#me-life")).to_have_text("Life 1")
    expect(page.locator("#player-id")).to_have_text(player)
    assert page.evaluate("localStorage.getItem('baolife.token')") == token


def _a_life(server: Server, page: Page) -> None:
    page.goto(server.url)

    # Register: the page is born into a life and keeps the token.
    expect(page.locator("#start")).to_be_visible()
    page.fill("#name", NAME)
    page.click("#register-btn")
    expect(page.locator("#conn")).to_have_text("Online")
    expect(page.locator("#start")).to_be_hidden()
    expect(page.locator("#me-name")).to_have_text(NAME)
    expect(page.locator("#me-life")).to_have_text("Life 1")
    token = page.evaluate("localStorage.getItem('baolife.token')")
    assert token, "the token was not kept in localStorage"
    player = page.locator("#player-id").text_content() or ""
    assert player.isdigit()
    expect(page.locator("#stats meter")).to_have_count(4)
    expect(page.locator("#feed li")).not_to_have_count(0)
    expect(page.locator("#npcs li.npc")).not_to_have_count(0)

    # A prompt arrives with its choices and a countdown that runs.
    prompt = page.locator("#prompts li.prompt").first
    expect(prompt).to_be_visible(timeout=15_000)
    left = prompt.locator(".timeleft")
    expect(left).to_have_text(re.compile(r"^\d+ days? left · [\d.]+ s$"))
    page.wait_for_function(
        "([el, days]) => parseInt(el.textContent) < days",
        arg=[left.element_handle(), number(left.inner_text())],
    )
    prompt_id = prompt.get_attribute("data-prompt")
    choice = prompt.locator(".choices button").first
    label = choice.inner_text()
    choice.click()
    expect(page.locator("#prompt-result")).to_have_text(f"You chose: {label}")
    expect(page.locator(f'#prompts li[data-prompt="{prompt_id}"]')).to_have_count(0)

    # An action: done once; at once again, the server refuses (cooldown) and
    # the page says why.
    action = page.locator("#actions button").first
    expect(action).to_be_enabled(timeout=15_000)
    action_label = action.inner_text()
    action_id = action.get_attribute("data-action")
    action.click()
    expect(page.locator("#action-result")).to_have_text(f"Done: {action_label}")
    again = page.locator(f'#actions button[data-action="{action_id}"]')
    expect(again).to_be_enabled()
    again.click()
    expect(page.locator("#action-result")).to_have_text(re.compile(rf"^{re.escape(action_label)}: .*again in"))
    expect(page.locator("#notice")).to_be_visible()
    expect(page.locator("#notice-text")).to_have_text(re.compile(r"^Not possible now: .+"))

    # Talk to someone in the player's life and see the reply.
    npc = page.locator("#npcs li.npc:not(.gone)").first
    npc_name = npc.locator("strong").inner_text()
    npc.locator("button.talk-btn").click()
    expect(page.locator("#talk-name")).to_have_text(npc_name)
    page.fill("#talk-text", "Hello! How are you today?")
    page.click("#talk-send")
    expect(page.locator("#talk-log li.from-me")).to_have_text(re.compile(r"Hello! How are you today\?$"))
    reply = page.locator("#talk-log li.from-npc")
    expect(reply).to_have_count(1)
    expect(reply.locator(".speaker")).to_have_text(npc_name)
    said = (reply.text_content() or "").removeprefix(npc_name).strip()
    assert said, "the NPC's reply is empty"
    expect(page.locator("#talk-text")).to_have_value("")

    # Reload: the page logs in with the kept token and shows the same life.
    newest = page.locator("#feed li").first.inner_text()
    age_before = number(page.locator("#me-age").inner_text())
    page.reload()
    expect(page.locator("#conn")).to_have_text("Online")
    expect(page.locator("#start")).to_be_hidden()
    _same_life(page, player, token)
    expect(page.locator("#feed li", has_text=newest)).not_to_have_count(0)
    assert number(page.locator("#me-age").inner_text()) >= age_before

    # The server restarts: the page shows it, retries, and comes back.
    trio.from_thread.run(server.stop)
    conn = page.locator("#conn")
    expect(conn).to_have_attribute("data-state", "retrying")
    expect(conn).to_contain_text("Reconnecting in")
    waiting = page.locator("#prompts .timeleft")
    if waiting.count():  # a prompt's clock stops with the player's
        expect(waiting.first).to_have_text("Paused while offline")
    trio.from_thread.run(server.start)
    expect(conn).to_have_text("Online", timeout=20_000)
    _same_life(page, player, token)

    # A second tab takes the life over; this one says so and, unlike after a
    # drop, does not reconnect by itself (two tabs would take turns forever).
    other = page.context.new_page()
    other.goto(server.url)
    expect(other.locator("#conn")).to_have_text("Online")
    expect(conn).to_have_text("This life was opened in another tab or device.")
    expect(conn).to_have_attribute("data-state", "offline")
    expect(page.locator("#retry-now")).to_have_text("Play here")
    other.close()


async def test_a_life_in_the_browser(
    chromium: str, browser_settings: Settings, calm_content: Content, tmp_path: Path
) -> None:
    await _play(chromium, browser_settings, calm_content, tmp_path, "a_life", _a_life)


def _death(server: Server, page: Page) -> None:
    page.goto(server.url)
    page.fill("#name", NAME)
    page.click("#register-btn")
    death = page.locator("#death")
    expect(death).to_be_visible()
    expect(page.locator("#death-text")).to_have_text(re.compile(rf"^{NAME} died at \d+: .+\.$"))
    expect(page.locator("#actions button:enabled, #prompts button:enabled, #talk-send:enabled")).to_have_count(0)
    page.click("#new-life")
    expect(page.locator("#me-life")).to_have_text("Life 2")
    expect(death).to_be_visible()  # this world spares no one


async def test_death_and_a_new_life_in_the_browser(
    chromium: str, browser_settings: Settings, deadly_content: Content, tmp_path: Path
) -> None:
    await _play(chromium, browser_settings, deadly_content, tmp_path, "death", _death)


async def _play(
    chromium: str,
    settings: Settings,
    content: Content,
    tmp_path: Path,
    name: str,
    scenario: Callable[[Server, Page], None],
) -> None:
    """Start a server with ``content``, run ``scenario`` against it in the
    browser within the budget, stop the server."""
    with trio.fail_after(BUDGET + SLACK):
        async with trio.open_nursery() as nursery:
            server = Server(nursery, settings, content)
            await server.start()
            try:
                await in_browser(chromium, tmp_path, BUDGET, name, partial(scenario, server))
            finally:
                await server.stop()
