"""One theme for both pages: the game client's colours and dark mode are
defined once (baolife/web/theme.css), its base rules too (base.css), and the
console serves those same files from its own table (like game-dom.js) rather
than a copy; neither page's style.css repeats a base rule."""

from __future__ import annotations

import re

import httpx
import trio

from baolife.app import WEB_DIR, App

COLOUR = re.compile(r"#[0-9a-fA-F]{3,8}\b|prefers-color-scheme")
SHARED = ("theme.css", "base.css")
COMMENT = re.compile(r"/\*.*?\*/", re.S)


def _declarations(css: str) -> set[tuple[str, str]]:
    """(selector, property) of every declaration outside at-rules (a page's
    @media overrides for a phone are its own)."""
    found: set[tuple[str, str]] = set()
    depth, start, selector = 0, 0, ""
    css = COMMENT.sub("", css)
    for at, char in enumerate(css):
        if char == "{":
            if depth == 0:
                selector = " ".join(css[start:at].split())
            depth, start = depth + 1, at + 1
        elif char == "}":
            if depth == 1 and not selector.startswith("@"):
                for declaration in css[start:at].split(";"):
                    prop = declaration.partition(":")[0].strip()
                    if prop:
                        for one in selector.split(","):
                            found.add((one.strip(), prop))
            depth, start = depth - 1, at + 1
    return found


def test_the_pages_define_no_colour_of_their_own() -> None:
    theme = (WEB_DIR / "theme.css").read_text(encoding="utf-8")
    assert "prefers-color-scheme: dark" in theme and "--bad-ink" in theme
    assert COLOUR.findall((WEB_DIR / "base.css").read_text(encoding="utf-8")) == []
    for folder in (WEB_DIR, WEB_DIR / "admin"):
        style = (folder / "style.css").read_text(encoding="utf-8")
        assert COLOUR.findall(style) == [], folder
        page = (folder / "index.html").read_text(encoding="utf-8")
        # The theme first, then the base rules: each style.css only adds to them.
        order = [page.index(f"%ASSETS%/{name}") for name in (*SHARED, "style.css")]
        assert order == sorted(order), folder


def test_neither_page_repeats_a_base_rule() -> None:
    base = _declarations((WEB_DIR / "base.css").read_text(encoding="utf-8"))
    assert ("body", "font") in base and (".bar", "position") in base and (".card", "border") in base
    for folder in (WEB_DIR, WEB_DIR / "admin"):
        style = _declarations((folder / "style.css").read_text(encoding="utf-8"))
        assert sorted(base & style) == [], folder


async def test_both_pages_serve_the_one_theme(admin_app: App) -> None:
    css = "text/css; charset=utf-8"
    with trio.fail_after(20):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{admin_app.http_port}") as http:
            for name in SHARED:
                body = (WEB_DIR / name).read_bytes()
                for path in (f"/{name}", f"/admin/{name}"):
                    got = await http.get(path)
                    assert (got.status_code, got.headers["content-type"], got.content) == (200, css, body), path
            # The console's page loads them from its own versioned files.
            page = (await http.get("/admin/")).text
            for name in SHARED:
                assert re.search(rf'href="/admin/v/[0-9a-f]+/{re.escape(name)}"', page), page
