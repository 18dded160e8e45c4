"""The web client's files as the HTTP listener answers them, without a
socket: versioned paths cached for a year, the page revalidated with its
placeholder filled, nothing outside the folder reachable, and the browser
defences on every answer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from baolife.net.http import HttpListener, Reply, Request
from baolife.net.webfiles import IMMUTABLE, WebFiles, WebSite, content_security_policy

PAGE = b'<link rel="stylesheet" href="%ASSETS%/style.css"><script type="module" src="%ASSETS%/main.js"></script>'
CONFIG = {"ws_port": 9100, "ws_tls": False, "http_port": 9200, "ws_path": "/ws"}


@pytest.fixture
def web(tmp_path: Path) -> Path:
    """A client folder with modules in a subfolder, a dotfile and a secret
    beside the folder (which no path may reach)."""
    folder = tmp_path / "web"
    (folder / "lib").mkdir(parents=True)
    (folder / "index.html").write_bytes(PAGE)
    (folder / "main.js").write_text('import { net } from "./lib/net.js";\n')
    (folder / "lib" / "net.js").write_text("export const net = 1;\n")
    (folder / "style.css").write_text("body { margin: 0 }\n")
    (folder / "icon.svg").write_text("<svg/>")
    (folder / "app.webmanifest").write_text("{}")
    (folder / ".env").write_text("SECRET=1")
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("secret")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", folder / "leak.txt")
    return folder


def get(files: WebFiles, path: str, **headers: str) -> Reply | None:
    return files.answer(Request("GET", path, {k.replace("_", "-"): v for k, v in headers.items()}))


def header(reply: Reply | None, name: str) -> str | None:
    assert reply is not None
    return dict(reply.headers).get(name)


def test_every_file_is_served_under_the_version_for_a_year(web: Path) -> None:
    files = WebFiles.load(web)
    assert sorted(files.files) == ["app.webmanifest", "icon.svg", "index.html", "lib/net.js", "main.js", "style.css"]
    types = {
        "main.js": "text/javascript; charset=utf-8",
        "lib/net.js": "text/javascript; charset=utf-8",
        "style.css": "text/css; charset=utf-8",
        "icon.svg": "image/svg+xml",
        "app.webmanifest": "application/manifest+json",
    }
    for rel, ctype in types.items():
        reply = get(files, f"/v/{files.version}/{rel}")
        assert reply is not None and reply.status == 200, rel
        assert reply.content_type == ctype
        assert reply.body == (web / rel).read_bytes()
        assert header(reply, "cache-control") == IMMUTABLE == "public, max-age=31536000, immutable"


def test_the_version_follows_the_content_and_nothing_else(web: Path) -> None:
    first = WebFiles.load(web).version
    assert len(first) == 12 and WebFiles.load(web).version == first  # every worker agrees
    os.utime(web / "main.js", (0, 0))
    assert WebFiles.load(web).version == first
    (web / "lib" / "net.js").write_text("export const net = 2;\n")
    assert WebFiles.load(web).version != first


def test_another_version_is_not_found_and_not_stored(web: Path) -> None:
    files = WebFiles.load(web)
    for path in ("/v/0123456789ab/main.js", "/v//main.js", f"/v/{files.version}/missing.js", f"/v/{files.version}/"):
        reply = get(files, path)
        assert reply is not None and reply.status == 404, path
        assert header(reply, "cache-control") == "no-store"


def test_the_page_is_revalidated_with_its_assets_versioned(web: Path) -> None:
    files = WebFiles.load(web)
    reply = get(files, "/")
    assert reply is not None and reply.status == 200
    assert reply.content_type == "text/html; charset=utf-8"
    assets = f"/v/{files.version}"
    assert reply.body == PAGE.replace(b"%ASSETS%", assets.encode())
    assert f'src="{assets}/main.js"'.encode() in reply.body
    assert header(reply, "cache-control") == "no-cache"
    etag = header(reply, "etag")
    assert etag and etag.startswith('"')
    assert get(files, "/index.html") == reply
    for tag in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = get(files, "/", if_none_match=tag)
        assert again is not None and again.status == 304 and again.body == b"", tag
        assert header(again, "etag") == etag and header(again, "cache-control") == "no-cache"
    changed = get(files, "/", if_none_match='"other"')
    assert changed is not None and changed.status == 200


def test_unversioned_paths_still_work_revalidated(web: Path) -> None:
    files = WebFiles.load(web)
    for rel in ("main.js", "lib/net.js", "style.css"):
        reply = get(files, f"/{rel}")
        assert reply is not None and reply.status == 200
        assert reply.body == (web / rel).read_bytes()
        assert header(reply, "cache-control") == "no-cache"
    assert get(files, "/nothing.js") is None  # the listener's 404


@pytest.mark.parametrize(
    "path",
    [
        "/v/{v}/../secret.txt",
        "/v/{v}/lib/../../secret.txt",
        "/v/{v}/%2e%2e/secret.txt",
        "/v/{v}/%2E%2E%2Fsecret.txt",
        "/v/{v}/lib%2f..%2f..%2fsecret.txt",
        "/v/{v}/..%5csecret.txt",
        "/v/{v}/%252e%252e/secret.txt",
        "/v/{v}//etc/passwd",
        "/v/{v}/%2Fetc%2Fpasswd",
        "/v/{v}/./main.js",
        "/v/{v}/lib//net.js",
        "/v/{v}/.env",
        "/v/{v}/.git/config",
        "/v/{v}/%2egit/config",
        "/v/{v}/leak.txt",
        "/v/{v}/main.js%00.txt",
        "/v/{v}/%ff.js",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "//etc/passwd",
        "/.env",
        "/leak.txt",
        "/lib/../main.js",
        "http://evil.example/main.js",
    ],
)
def test_nothing_outside_the_folder_or_hidden_is_reachable(web: Path, path: str) -> None:
    files = WebFiles.load(web)
    reply = get(files, path.format(v=files.version))
    assert reply is None or reply.status == 404, reply
    assert reply is None or b"secret" not in reply.body


def test_percent_encoded_names_are_the_same_file(web: Path) -> None:
    files = WebFiles.load(web)
    reply = get(files, f"/v/{files.version}/lib/%6Eet.js")
    assert reply is not None and reply.status == 200 and reply.body == (web / "lib" / "net.js").read_bytes()


def test_the_policy_allows_the_page_origin_and_its_websocket() -> None:
    csp = content_security_policy("Game.example:9200", CONFIG)
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives == {
        "default-src": "'none'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "connect-src": "'self' ws://game.example:9200 wss://game.example:9200 ws://game.example:9100",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    tls = content_security_policy("[::1]", {**CONFIG, "ws_tls": True})
    assert "connect-src 'self' ws://[::1] wss://[::1] wss://[::1]:9100;" in tls


@pytest.mark.parametrize("host", [None, "", "a b", "x; script-src *", "evil.example:80 'unsafe-inline'", "h:99999x"])
def test_a_strange_host_is_left_out_of_the_policy(host: str | None) -> None:
    csp = content_security_policy(host, CONFIG)
    assert "connect-src 'self';" in csp
    assert csp.count(";") == 7


def test_the_listener_adds_the_defences_and_keeps_probes_unstored(web: Path) -> None:
    site = WebSite(WebFiles.load(web), lambda: CONFIG)
    routes = {"/healthz": lambda: (200, "application/json", b"{}")}
    listener = HttpListener("127.0.0.1", 0, routes, site, max_connections=4)
    probe = listener.reply(Request("GET", "/healthz"))
    assert probe.status == 200 and dict(probe.headers)["cache-control"] == "no-store"
    config = listener.reply(Request("GET", "/config.json"))
    assert config.status == 200 and config.content_type == "application/json"
    assert dict(config.headers)["cache-control"] == "no-cache"
    assert listener.reply(Request("POST", "/")).status == 405
    assert listener.reply(Request("GET", "/missing")).status == 404
    defences = dict(site.security_headers(Request("GET", "/", {"host": "127.0.0.1:9200"})))
    assert defences["x-frame-options"] == "DENY"
    assert defences["referrer-policy"] == "no-referrer"
    assert "ws://127.0.0.1:9100" in defences["content-security-policy"]
