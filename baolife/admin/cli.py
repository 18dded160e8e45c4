"""``baolife admin ...``: the admin API from a shell or a script.

Speaks to one worker's HTTP listener (``--url``, default
``$BAOLIFE_ADMIN_URL`` or ``http://127.0.0.1:8080``) with the token in
``$BAOLIFE_ADMIN_TOKEN`` (never an argument: arguments show in ``ps``).
``--json`` prints the API's answer as it is (one JSON document on stdout,
the error's too); otherwise a short text. ``baolife admin token`` makes a
new token offline.

Exit status (scripts can trust it): 0 done; 1 refused as a bad request (400,
413, 429); 2 wrong usage (arguments, no token set); 3 the token is missing,
wrong or not allowed (401, 403); 4 no such player (404); 5 conflict, e.g.
an erased player (409); 6 the server is unreachable or failing (5xx).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import datetime
from typing import Any

import httpx
import orjson

from .tokens import new_token, token_line

__all__ = ["EXIT", "add_parser", "run"]

DEFAULT_URL = "http://127.0.0.1:8080"
TOKEN_ENV = "BAOLIFE_ADMIN_TOKEN"  # noqa: S105 - the variable's name, not a secret
URL_ENV = "BAOLIFE_ADMIN_URL"
EXIT = {"ok": 0, "refused": 1, "usage": 2, "auth": 3, "not_found": 4, "conflict": 5, "unavailable": 6}
_STATUS_EXIT = {400: 1, 401: 3, 403: 3, 404: 4, 409: 5, 413: 1, 429: 1}
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class UsageError(Exception):
    """Wrong arguments or environment: exit 2."""


def add_parser(sub: Any) -> None:
    """Add ``admin`` and its subcommands to the ``baolife`` parser's subparsers."""
    admin = sub.add_parser(
        "admin",
        help="the operators' actions on a running server (its admin API)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    admin.add_argument("--url", help=f"a worker's HTTP listener (default ${URL_ENV} or {DEFAULT_URL})")
    admin.add_argument("--json", action="store_true", help="print the API's JSON answer as it is")
    admin.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds to wait (default 10)")
    cmds = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")

    token = cmds.add_parser("token", help="make a new token and print it with its BAOLIFE_ADMIN_TOKENS entry")
    token.add_argument("name", help="who holds it (the audit log's 'who')")
    token.add_argument("role", choices=["viewer", "operator"])

    cmds.add_parser("whoami", help="the token's name and role")
    find = cmds.add_parser("find", help="players by id or name prefix")
    find.add_argument("query")
    find.add_argument("--limit", type=int, default=20)
    cmds.add_parser("show", help="a player's page").add_argument("player", type=int)
    kick = cmds.add_parser("kick", help="end a player's session")
    kick.add_argument("player", type=int)
    kick.add_argument("--reason", default="", help="shown to the player")
    ban = cmds.add_parser("ban", help="ban a player (ends their session; login answers banned)")
    ban.add_argument("player", type=int)
    ban.add_argument("--reason", required=True, help="shown to the player")
    end = ban.add_mutually_exclusive_group()
    end.add_argument("--until", help="end: unix seconds or an ISO date-time with its zone")
    end.add_argument("--for", dest="duration", help="end after a time: 30m, 12h, 7d, 2w")
    cmds.add_parser("unban", help="lift a ban").add_argument("player", type=int)
    cmds.add_parser("mute", help="turn a player's NPC talk off").add_argument("player", type=int)
    cmds.add_parser("unmute", help="turn a player's NPC talk back on").add_argument("player", type=int)
    export = cmds.add_parser("export", help="everything stored about a player, as one JSON document")
    export.add_argument("player", type=int)
    export.add_argument("--out", metavar="FILE", help="write it to FILE instead of stdout")
    erase = cmds.add_parser("erase", help="erase a player for good (account, lives, usage, conversations)")
    erase.add_argument("player", type=int)
    erase.add_argument("--confirm", type=int, required=True, metavar="ID", help="the same player id again")

    notice = cmds.add_parser("notice", help="the announcement: show, set or clear it")
    notice_cmds = notice.add_subparsers(dest="notice_command", required=True, metavar="SUBACTION")
    notice_cmds.add_parser("show", help="the announcement in force")
    set_notice = notice_cmds.add_parser("set", help="announce to every player now and at login until it ends")
    set_notice.add_argument("text", help="1 to 280 characters")
    notice_end = set_notice.add_mutually_exclusive_group(required=True)
    notice_end.add_argument("--until", help="end: unix seconds or an ISO date-time with its zone")
    notice_end.add_argument("--for", dest="duration", help="end after a time: 30m, 12h, 7d")
    notice_cmds.add_parser("clear", help="withdraw the announcement")

    llm = cmds.add_parser("llm", help="today's LLM calls, spend, cache hit rate and budget")
    llm.add_argument("--budget", type=float, metavar="AMOUNT", help="set today's budget (every worker)")
    cmds.add_parser("worker", help="this worker's live figures")
    cmds.add_parser("drain", help="readiness false on this worker (players move to the others)")
    cmds.add_parser("undrain", help="ready again")
    log = cmds.add_parser("audit", help="the audit log, newest first")
    log.add_argument("--limit", type=int, default=50)
    log.add_argument("--player", type=int)


def _end(until: str | None, duration: str | None, now: float) -> int | None:
    if duration:
        found = _DURATION.match(duration.strip())
        if not found:
            raise UsageError(f"--for {duration!r}: use a number and s, m, h, d or w (e.g. 12h)")
        return int(now) + int(found.group(1)) * _UNITS[found.group(2)]
    if until:
        if until.strip().isdigit():
            return int(until)
        try:
            moment = datetime.fromisoformat(until.strip())
        except ValueError:
            raise UsageError(f"--until {until!r}: unix seconds or an ISO date-time (2026-05-01T12:00Z)") from None
        if moment.tzinfo is None:
            raise UsageError(f"--until {until!r}: give the zone (Z or +02:00)")
        return int(moment.timestamp())
    return None


def _request(args: argparse.Namespace, now: float) -> tuple[str, str, Any]:
    """(method, path under /admin/api/, body) of the command."""
    c = args.admin_command
    if c == "whoami":
        return "GET", "whoami", None
    if c == "find":
        return "GET", "players?" + str(httpx.QueryParams({"q": args.query, "limit": args.limit})), None
    if c == "show":
        return "GET", f"players/{args.player}", None
    if c == "kick":
        return "POST", f"players/{args.player}/kick", {"reason": args.reason}
    if c == "ban":
        return (
            "POST",
            f"players/{args.player}/ban",
            {"reason": args.reason, "until": _end(args.until, args.duration, now)},
        )
    if c == "unban":
        return "POST", f"players/{args.player}/unban", {}
    if c in ("mute", "unmute"):
        return "POST", f"players/{args.player}/mute", {"muted": c == "mute"}
    if c == "export":
        return "GET", f"players/{args.player}/export", None
    if c == "erase":
        return "POST", f"players/{args.player}/erase", {"confirm": args.confirm}
    if c == "notice":
        if args.notice_command == "set":
            return "POST", "notice", {"text": args.text, "until": _end(args.until, args.duration, now)}
        if args.notice_command == "clear":
            return "DELETE", "notice", None
        return "GET", "notice", None
    if c == "llm":
        if args.budget is not None:
            return "POST", "llm/budget", {"budget": args.budget}
        return "GET", "llm", None
    if c == "worker":
        return "GET", "worker", None
    if c in ("drain", "undrain"):
        return "POST", c, {}
    if c == "audit":
        params: dict[str, Any] = {"limit": args.limit}
        if args.player is not None:
            params["player"] = args.player
        return "GET", "audit?" + str(httpx.QueryParams(params)), None
    raise UsageError(f"unknown action {c}")


def run(args: argparse.Namespace) -> int:
    """Run ``baolife admin ...``; returns the exit status."""
    if args.admin_command == "token":
        token = new_token()
        line = token_line(args.name, args.role, token)
        if args.json:
            sys.stdout.write(orjson.dumps({"token": token, "entry": line}).decode() + "\n")
        else:
            print(f"token (give it to {args.name}; it is not stored anywhere): {token}")
            print(f"BAOLIFE_ADMIN_TOKENS entry: {line}")
        return 0
    try:
        method, path, body = _request(args, time.time())
    except UsageError as exc:
        print(f"baolife admin: {exc}", file=sys.stderr)
        return EXIT["usage"]
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"baolife admin: set {TOKEN_ENV} to an admin token", file=sys.stderr)
        return EXIT["usage"]
    base = (args.url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
    try:
        with httpx.Client(timeout=args.timeout) as http:
            response = http.request(
                method,
                f"{base}/admin/api/{path}",
                content=None if body is None else orjson.dumps(body),
                headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
            )
    except httpx.HTTPError as exc:
        print(f"baolife admin: cannot reach {base}: {exc}", file=sys.stderr)
        return EXIT["unavailable"]
    try:
        answer = response.json()
    except ValueError:
        answer = {"error": f"http_{response.status_code}", "message": response.text[:200]}
    if response.status_code != 200:
        if args.json:
            sys.stdout.write(orjson.dumps(answer).decode() + "\n")
        message = answer.get("message") if isinstance(answer, dict) else None
        code = answer.get("error") if isinstance(answer, dict) else None
        print(f"baolife admin: {response.status_code} {code}" + (f": {message}" if message else ""), file=sys.stderr)
        if response.status_code >= 500:
            return EXIT["unavailable"]
        return _STATUS_EXIT.get(response.status_code, EXIT["refused"])
    if args.admin_command == "export" and args.out:
        with open(args.out, "wb") as fh:
            fh.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2))
        if not args.json:
            print(f"wrote {args.out}")
        else:
            sys.stdout.write(orjson.dumps({"ok": True, "file": args.out}).decode() + "\n")
        return 0
    if args.json or args.admin_command == "export":
        sys.stdout.write(orjson.dumps(answer).decode() + "\n")
    else:
        print(_text(args.admin_command, answer))
    return 0


def _text(command: str, answer: Any) -> str:
    """A short human reading of an answer."""
    if command == "find":
        lines = [
            f"{p['id']:>8}  {p['name']:<32}  {'online on ' + str(p['worker']) if p['online'] else 'offline'}"
            + ("  BANNED" if p["banned"] else "")
            for p in answer["players"]
        ]
        return "\n".join(lines) or "no player found"
    if command == "audit":
        lines = [
            f"{datetime.fromtimestamp(e['at']).isoformat(timespec='seconds')}  {e['who']:<12} {e['action']:<16}"
            f" {'' if e['player'] is None else e['player']!s:>8}  {orjson.dumps(e['detail']).decode()}"
            f"  from {e['from']}"
            for e in answer["entries"]
        ]
        return "\n".join(lines) or "the audit log is empty"
    if isinstance(answer, dict) and answer.get("ok") is True and len(answer) == 1:
        return "ok"
    return orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode()
