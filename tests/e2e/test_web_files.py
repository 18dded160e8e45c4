"""The web client's files as the HTTP listener serves them (versioned,
cached, behind a Content-Security-Policy), /config.json (how the page finds
the WebSocket), and the rules the files must keep: no resource from another
host (the page works on a closed network) and no HTML parsing of strings in
the script (server text goes in as text)."""

from __future__ import annotations

import re
from pathlib import Path

import h11
import orjson
import trio
from helpers import Client, running_app

from baolife.app import WEB_DIR
from baolife.config import Settings
from baolife.net.webfiles import IMMUTABLE


async def http_get(port: int, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """One GET to 127.0.0.1:port of ``path`` sent as is: status, headers, body."""
    conn = h11.Connection(h11.CLIENT)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        sent = {"host": f"127.0.0.1:{port}", "connection": "close"}
        sent.update({k.replace("_", "-"): v for k, v in headers.items()})
        request = h11.Request(method="GET", target=path, headers=list(sent.items()))
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
            version = app.web.files.version
            status, headers, body = await http_get(app.http_port, "/")
            assert status == 200
            assert headers["content-type"] == "text/html; charset=utf-8"
            assert body == (WEB_DIR / "index.html").read_bytes().replace(b"%ASSETS%", f"/v/{version}".encode())
            assert b"%ASSETS%" not in body and f'"/v/{version}/'.encode() in body
            kinds = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
            # The console (admin/) is not the game's: served under /admin/ only with the admin API on.
            served = [
                name for name in _web_files() if name[name.rfind(".") :] in kinds and not name.startswith("admin/")
            ]
            assert any(name.endswith(".js") for name in served) and "style.css" in served
            for name in served:
                for path, cache in ((f"/v/{version}/{name}", IMMUTABLE), (f"/{name}", "no-cache")):
                    status, headers, body = await http_get(app.http_port, path)
                    assert status == 200, path
                    assert headers["content-type"] == kinds[name[name.rfind(".") :]]
                    assert headers["cache-control"] == cache
                    assert headers["x-content-type-options"] == "nosniff"
                    assert body == (WEB_DIR / name).read_bytes()


async def test_the_page_is_revalidated_and_guarded(settings: Settings) -> None:
    with trio.fail_after(10):
        async with running_app(settings) as app:
            assert app.http_port is not None
            status, headers, _ = await http_get(app.http_port, "/")
            assert status == 200 and headers["cache-control"] == "no-cache"
            assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"
            csp = headers["content-security-policy"]
            for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"):
                assert directive in csp
            assert f"ws://127.0.0.1:{app.ws_port}" in csp  # where /config.json sends the page
            status, again, body = await http_get(app.http_port, "/", if_none_match=headers["etag"])
            assert status == 304 and body == b"" and again["etag"] == headers["etag"]
            assert again["content-security-policy"] == csp
            status, headers, _ = await http_get(app.http_port, "/config.json")
            assert status == 200 and headers["cache-control"] == "no-cache"
            assert headers["content-security-policy"] == csp
            status, headers, _ = await http_get(app.http_port, "/healthz")
            assert status == 200 and headers["cache-control"] == "no-store"


async def test_another_version_or_a_way_out_of_the_folder_is_not_found(settings: Settings) -> None:
    with trio.fail_after(10):
        async with running_app(settings) as app:
            assert app.http_port is not None
            version = app.web.files.version
            other = "0" * len(version)
            paths = [
                f"/v/{other}/app.js",
                f"/v/{version}/../setup.cfg",
                f"/v/{version}/../../setup.cfg",
                f"/v/{version}/%2e%2e/%2e%2e/setup.cfg",
                f"/v/{version}/..%2f..%2fsetup.cfg",
                f"/v/{version}//etc/passwd",
                f"/v/{version}/%2Fetc%2Fpasswd",
                "/../setup.cfg",
                "/%2e%2e/%2e%2e/setup.cfg",
                "/../app.py",
                "//etc/passwd",
            ]
            for path in paths:
                status, headers, body = await http_get(app.http_port, path)
                assert status == 404, path
                assert headers["cache-control"] == "no-store", path
                assert body == b"not found\n"


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
    folder = Path(WEB_DIR)
    return {p.relative_to(folder).as_posix(): p.read_text("utf-8") for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_page_loads_nothing_from_another_host() -> None:
    files = _web_files()
    html = files["index.html"]
    for ref in re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html):
        if ref.startswith("data:"):
            continue
        ref = ref.removeprefix("%ASSETS%/")  # the server writes /v/<version> there
        assert ref in files, f"index.html refers to {ref!r}, which is not a file of {WEB_DIR}"
    for name, text in files.items():
        for url in re.findall(r"""["'(]\s*((?:https?:)?//[^"')\s]+)""", text):
            raise AssertionError(f"{name} refers to another host: {url}")
        assert "@import" not in text, f"{name} imports a stylesheet"


def test_the_script_never_parses_strings_as_html() -> None:
    scripts = {name: text for name, text in _web_files().items() if name.endswith(".js")}
    assert scripts
    sinks = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc")
    for name, script in scripts.items():
        for sink in sinks:
            assert sink not in script, f"{name} uses {sink}: put server text in with textContent"
