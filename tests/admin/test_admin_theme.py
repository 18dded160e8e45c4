"""One theme for both pages: the game client's colours and dark mode are
defined once (baolife/web/theme.css), and the console serves that same file
from its own table (like game-dom.js) rather than a copy."""

from __future__ import annotations

import re

import httpx
import trio

from baolife.app import WEB_DIR, App

COLOUR = re.compile(r"#[0-9a-fA-F]{3,8}\b|prefers-color-scheme")


def test_the_pages_define_no_colour_of_their_own() -> None:
    theme = (WEB_DIR / "theme.css").read_text(encoding="utf-8")
    assert "prefers-color-scheme: dark" in theme and "--bad-ink" in theme
    for folder in (WEB_DIR, WEB_DIR / "admin"):
        style = (folder / "style.css").read_text(encoding="utf-8")
        assert COLOUR.findall(style) == [], folder
        page = (folder / "index.html").read_text(encoding="utf-8")
        # The theme first: each style.css only uses its names.
        assert page.index("%ASSETS%/theme.css") < page.index("%ASSETS%/style.css"), folder


async def test_both_pages_serve_the_one_theme(admin_app: App) -> None:
    theme = (WEB_DIR / "theme.css").read_bytes()
    css = "text/css; charset=utf-8"
    with trio.fail_after(20):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{admin_app.http_port}") as http:
            for path in ("/theme.css", "/admin/theme.css"):
                got = await http.get(path)
                assert (got.status_code, got.headers["content-type"], got.content) == (200, css, theme), path
            # The console's page loads it from its own versioned files.
            page = (await http.get("/admin/")).text
            assert re.search(r'href="/admin/v/[0-9a-f]+/theme\.css"', page), page
