"""The web client as the HTTP listener serves it: its files, the page, and
``/config.json``, with headers fit for a CDN and a browser's defences.

Caching: every file under ``baolife/web/`` is read once at start, and one
version string (a short hash of all of them) names the release. A file is
served at ``/v/<version>/<path>`` cached for a year and ``immutable``; the
page (``/``) is revalidated (``no-cache`` and an ETag) and the server
writes ``/v/<version>`` where it says ``%ASSETS%``, so a new release is
one revalidation away and its files never mix with the old ones in a cache.
A request for another version is a 404 that nothing may store: during a
rolling upgrade, a worker cannot serve a release it does not have, and
answering with its own files under the other name would poison caches.
The old unversioned paths (``/app.js``) stay, revalidated, so a page cached
before an upgrade still loads.

Safety: a path is looked up in the table of files read at start, never on
disk, so nothing outside the folder can be named; segments that are empty,
``.``/``..``, dotfiles, or hold a slash, backslash or control character
once percent-decoded are refused before the lookup anyway.

Defences: every answer carries a Content-Security-Policy that allows only
the page's own origin and its WebSocket (found from the request's Host and
the configuration /config.json gives the page), no framing, no referrer.

This module does no I/O after :meth:`WebFiles.load`; the listener passes
a :class:`~baolife.net.http.Request` in and sends the
:class:`~baolife.net.http.Reply` out.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import attrs
import orjson

from .http import Reply, Request

__all__ = ["WebFile", "WebFiles", "WebSite", "content_security_policy"]

ASSETS_PLACEHOLDER = b"%ASSETS%"
VERSION_PREFIX = "/v/"
VERSION_CHARS = 12  # hex digits of sha256: a collision between two releases is not a concern
IMMUTABLE = "public, max-age=31536000, immutable"  # a year: the longest caches honour
REVALIDATE = "no-cache"
NEVER_STORE = "no-store"

# Explicit, not the host's mimetypes table (it differs between distributions,
# and a module script must be served as JavaScript or the browser refuses it).
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
NOT_FOUND = Reply(404, "text/plain; charset=utf-8", b"not found\n", (("cache-control", NEVER_STORE),))

# A Host header as browsers send it: a DNS name or IPv4 address, or an IPv6
# literal in brackets, then an optional port. Anything else (it is the
# client's text) is left out of the policy rather than pasted into a header.
_HOST = re.compile(r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::(?P<port>[0-9]{1,5}))?")


@attrs.frozen
class WebFile:
    """One file of the web client, as served: body, type and entity tag."""

    body: bytes
    content_type: str
    etag: str

    @classmethod
    def of(cls, name: str, body: bytes) -> WebFile:
        """The file called ``name`` (for its type) holding ``body``."""
        ctype = CONTENT_TYPES.get(os.path.splitext(name)[1].lower(), DEFAULT_CONTENT_TYPE)
        return cls(body, ctype, '"' + hashlib.sha256(body).hexdigest()[:16] + '"')


@attrs.frozen
class WebFiles:
    """Every file of the web client by its path relative to the folder
    (``"app.js"``, ``"lib/net.js"``), and the release's version."""

    files: Mapping[str, WebFile]
    version: str

    @property
    def assets(self) -> str:
        """Where the page finds its files: ``/v/<version>``."""
        return VERSION_PREFIX + self.version

    @classmethod
    def load(
        cls, folder: Path, *, skip: tuple[str, ...] = (), mount: str = "", shared: Mapping[str, Path] | None = None
    ) -> WebFiles:
        """Read every file under ``folder`` (not dotfiles or dot folders, not
        symbolic links leading out of it, not the top folders named in
        ``skip``); a missing folder serves nothing. ``%ASSETS%`` in HTML
        files becomes ``<mount>/v/<version>`` (``mount``: the path prefix the
        files are served under, as the console's ``/admin``). ``shared``
        adds files from elsewhere under the given names (the console serves
        the game client's ``dom.js`` as ``game-dom.js``: one ``h()``, one
        escaping rule; its ``theme.css``: one set of colours; its ``base.css``:
        one set of base rules); they count in the version like the others."""
        raw: dict[str, bytes] = {name: path.read_bytes() for name, path in (shared or {}).items()}
        if folder.is_dir():
            root = folder.resolve()
            for top, dirs, names in os.walk(root):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (Path(top) == root and d in skip))
                for name in sorted(names):
                    path = Path(top) / name
                    if name.startswith(".") or not path.is_file() or not path.resolve().is_relative_to(root):
                        continue
                    raw[path.relative_to(root).as_posix()] = path.read_bytes()
        digest = hashlib.sha256()
        for rel in sorted(raw):  # the same files give the same version on every worker
            body = raw[rel]
            digest.update(b"%s\0%d\0%s" % (rel.encode(), len(body), body))
        version = digest.hexdigest()[:VERSION_CHARS]
        assets = (mount + VERSION_PREFIX + version).encode()
        files = {}
        for rel, body in raw.items():
            if rel.endswith(".html"):
                body = body.replace(ASSETS_PLACEHOLDER, assets)
            files[rel] = WebFile.of(rel, body)
        return cls(files, version)

    def answer(self, request: Request) -> Reply | None:
        """The reply to a GET or HEAD of ``request.path``, or None when the
        path is not the web client's (the listener answers 404)."""
        path = request.path
        if path == "/":
            return self._reply("index.html", REVALIDATE, request)
        if path.startswith(VERSION_PREFIX):
            version, _, rest = path[len(VERSION_PREFIX) :].partition("/")
            rel = _relative(rest)
            if version != self.version or rel is None:
                return NOT_FOUND
            return self._reply(rel, IMMUTABLE, request)
        rel = _relative(path[1:]) if path.startswith("/") else None
        if rel is None or rel not in self.files:
            return None
        return self._reply(rel, REVALIDATE, request)

    def _reply(self, rel: str, cache: str, request: Request) -> Reply:
        found = self.files.get(rel)
        if found is None:
            return NOT_FOUND
        headers = (("cache-control", cache), ("etag", found.etag))
        if _matches(request.headers.get("if-none-match"), found.etag):
            return Reply(304, found.content_type, b"", headers)
        return Reply(200, found.content_type, found.body, headers)


def _relative(rest: str) -> str | None:
    """``rest`` (``a/b.js``, percent-encoded) as a key of the file table, or
    None when a segment could step outside it or names a hidden file."""
    segments = []
    for raw in rest.split("/"):
        try:
            segment = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            return None
        if not segment or segment.startswith(".") or any(c in "/\\" or ord(c) < 0x20 for c in segment):
            return None
        segments.append(segment)
    return "/".join(segments)


def _matches(if_none_match: str | None, etag: str) -> bool:
    # Weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def content_security_policy(host: str | None, config: Mapping[str, Any]) -> str:
    """The policy for a page requested with ``Host: host``: its own origin,
    and the WebSocket where the page will look for it (``config`` is what
    /config.json tells the page): ``ws(s)://<host>`` behind a proxy on the
    same origin ('self' covers it in current browsers, older ones need it
    spelled), ``ws(s)://<host name>:<ws_port>`` when served directly."""
    connect = ["'self'"]
    found = _HOST.fullmatch(host or "")
    if found:
        origin, name = found.group(0).lower(), found.group("name").lower()
        connect += [f"ws://{origin}", f"wss://{origin}"]
        ws_port = config.get("ws_port")
        if isinstance(ws_port, int):
            scheme = "wss" if config.get("ws_tls") else "ws"
            connect.append(f"{scheme}://{name}:{ws_port}")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {' '.join(connect)}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


@attrs.define
class WebSite:
    """What the browser loads from the HTTP listener: the web client's files
    and ``/config.json`` (``config()`` gives its fields), every answer with
    the browser defences of :func:`security_headers`."""

    files: WebFiles
    config: Callable[[], Mapping[str, Any]]

    def answer(self, request: Request) -> Reply | None:
        """The reply for ``request``, or None when the path is not ours."""
        if request.path == "/config.json":
            # Revalidated, not stored: a CDN may keep it, but must ask first
            # (the WebSocket's port changes with a restart on port 0).
            body = orjson.dumps(dict(self.config()))
            return Reply(200, "application/json", body, (("cache-control", REVALIDATE),))
        return self.files.answer(request)

    def security_headers(self, request: Request) -> tuple[tuple[str, str], ...]:
        """Headers every answer of the HTTP listener carries."""
        return (
            ("content-security-policy", content_security_policy(request.headers.get("host"), self.config())),
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
        )
