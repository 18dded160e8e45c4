"""The web client's files as the HTTP listener serves them, /config.json
(how the page finds the WebSocket), and the rules the files must keep: no
resource from another host (the page works on a closed network) and no
HTML parsing of strings in the script (server text goes in as text)."""

from __future__ import annotations

import re
from pathlib import Path

import h11
import orjson
import trio
from helpers import Client, running_app

from baolife.app import WEB_DIR
from baolife.config import Settings


async def http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET to 127.0.0.1:port: status, headers, body."""
    conn = h11.Connection(h11.CLIENT)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        request = h11.Request(method="GET", target=path, headers=[("host", "127.0.0.1"), ("connection", "close")])
        await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
        status, headers, body = 0, {}, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return status, headers, body


async def test_the_page_and_its_files_are_served(settings: Settings) -> None:
    with trio.fail_after(10):
        async with running_app(settings) as app:
            assert app.http_port is not None
            status, headers, body = await http_get(app.http_port, "/")
            assert status == 200
            assert headers["content-type"] == "text/html; charset=utf-8"
            assert body == (WEB_DIR / "index.html").read_bytes()
            for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
                status, headers, body = await http_get(app.http_port, f"/{name}")
                assert status == 200, name
                assert kind in headers["content-type"], headers
                assert body == (WEB_DIR / name).read_bytes()


async def test_config_json_leads_the_page_to_the_websocket(settings: Settings) -> None:
    with trio.fail_after(10):
        async with running_app(settings) as app:
            assert app.http_port is not None
            status, headers, body = await http_get(app.http_port, "/config.json")
            assert status == 200
            assert headers["content-type"].startswith("application/json")
            cfg = orjson.loads(body)
            assert cfg["ws_port"] == app.ws_port != app.http_port
            assert cfg["http_port"] == app.http_port
            assert cfg["tick_hz"] == settings.tick_hz
            assert cfg["ws_tls"] is False
            # What it names is the game: a player can register there.
            async with Client.connect(cfg["ws_port"], cfg["ws_path"]) as client:
                token, welcome = await client.register("Config Reader")
                assert token and welcome["snapshot"]["name"] == "Config Reader"


def _web_files() -> dict[str, str]:
    return {p.name: p.read_text("utf-8") for p in sorted(Path(WEB_DIR).iterdir()) if p.is_file()}


def test_the_page_loads_nothing_from_another_host() -> None:
    files = _web_files()
    html = files["index.html"]
    for ref in re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html):
        if ref.startswith("data:"):
            continue
        assert ref in files, f"index.html refers to {ref!r}, which is not a file of {WEB_DIR}"
    for name, text in files.items():
        for url in re.findall(r"""["'(]\s*((?:https?:)?//[^"')\s]+)""", text):
            raise AssertionError(f"{name} refers to another host: {url}")
        assert "@import" not in text, f"{name} imports a stylesheet"


def test_the_script_never_parses_strings_as_html() -> None:
    script = _web_files()["app.js"]
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc"):
        assert sink not in script, f"app.js uses {sink}: put server text in with textContent"
