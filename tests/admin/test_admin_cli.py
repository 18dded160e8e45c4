"""``baolife admin ...`` as a script runs it: a real process against a real
server, exit codes and ``--json`` output for success and every kind of
refusal, and ``baolife admin token`` making a token the server accepts."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import trio

from baolife.app import App
from baolife.config import Settings
from tests.admin.conftest import OPERATOR_TOKEN, VIEWER_TOKEN
from tests.admin.test_admin_api import login, new_player
from tests.helpers import running_app


async def cli(app: App | None, *args: str, token: str | None = OPERATOR_TOKEN) -> tuple[int, str, str]:
    """Run ``baolife admin`` with ``args``; (status, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAOLIFE_")}
    if token is not None:
        env["BAOLIFE_ADMIN_TOKEN"] = token
    url = [] if app is None else ["--url", f"http://127.0.0.1:{app.http_port}"]
    done = await trio.run_process(
        [sys.executable, "-m", "baolife", "admin", *url, *args],
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def as_json(out: str) -> Any:
    return orjson.loads(out)


async def test_actions_and_their_exit_codes(admin_app: App, tmp_path: Path) -> None:
    pid, token = await new_player(admin_app, "Cli Target")
    with trio.fail_after(120):
        status, out, _ = await cli(admin_app, "--json", "whoami")
        assert status == 0 and as_json(out) == {"name": "ops", "role": "operator"}
        status, out, _ = await cli(admin_app, "--json", "find", "Cli")
        assert status == 0 and [p["id"] for p in as_json(out)["players"]] == [pid]
        status, out, _ = await cli(admin_app, "find", "Cli")
        assert status == 0 and "Cli Target" in out and "offline" in out
        status, out, _ = await cli(admin_app, "--json", "show", str(pid))
        assert status == 0 and as_json(out)["name"] == "Cli Target"

        status, out, _ = await cli(admin_app, "--json", "ban", str(pid), "--reason", "spam", "--for", "2h")
        assert status == 0 and as_json(out)["until"] >= int(time.time()) + 7000
        assert (await login(admin_app, token))["code"] == "banned"
        status, out, _ = await cli(admin_app, "unban", str(pid))
        assert status == 0 and "was_banned" in out
        assert (await login(admin_app, token))["op"] == "welcome"

        status, out, err = await cli(admin_app, "--json", "ban", str(pid), "--reason", "x", "--until", "100")
        assert status == 1 and as_json(out)["error"] == "bad_request" and "past" in err
        status, _, err = await cli(admin_app, "ban", str(pid), "--reason", "x", "--for", "soon")
        assert status == 2 and "--for" in err
        status, out, _ = await cli(admin_app, "--json", "show", "999999")
        assert status == 4 and as_json(out)["error"] == "not_found"

        status, out, _ = await cli(admin_app, "mute", str(pid))
        assert status == 0 and pid in admin_app.world.muted
        status, out, _ = await cli(admin_app, "unmute", str(pid))
        assert status == 0 and pid not in admin_app.world.muted

        status, out, _ = await cli(admin_app, "notice", "set", "Restart soon", "--for", "30m")
        assert status == 0
        status, out, _ = await cli(admin_app, "--json", "notice", "show")
        assert as_json(out)["notice"]["text"] == "Restart soon"
        assert (await cli(admin_app, "notice", "clear"))[0] == 0

        status, out, _ = await cli(admin_app, "--json", "llm", "--budget", "3.5")
        assert status == 0 and as_json(out)["budget"] == 3.5
        status, out, _ = await cli(admin_app, "--json", "worker")
        assert status == 0 and as_json(out)["ready"] is True

        target = tmp_path / "export.json"
        status, out, _ = await cli(admin_app, "export", str(pid), "--out", str(target))
        assert status == 0 and orjson.loads(target.read_bytes())["account"]["id"] == pid

        status, out, _ = await cli(admin_app, "--json", "erase", str(pid), "--confirm", str(pid + 1))
        assert status == 1 and as_json(out)["error"] == "bad_request"
        status, out, _ = await cli(admin_app, "--json", "erase", str(pid), "--confirm", str(pid))
        assert status == 0 and as_json(out) == {"ok": True}
        status, out, _ = await cli(admin_app, "--json", "erase", str(pid), "--confirm", str(pid))
        assert status == 5 and as_json(out)["error"] == "conflict"

        status, out, _ = await cli(admin_app, "--json", "audit", "--limit", "3")
        assert status == 0 and [e["action"] for e in as_json(out)["entries"]] == ["erase", "export", "budget"]
        status, out, _ = await cli(admin_app, "audit", "--player", str(pid))
        assert status == 0 and "erase" in out and "ops" in out


async def test_auth_usage_and_unreachable_exit_codes(admin_app: App) -> None:
    with trio.fail_after(60):
        status, out, _ = await cli(admin_app, "--json", "whoami", token="bla_forged")  # noqa: S106 - a forged token
        assert status == 3 and as_json(out) == {"error": "unauthorized"}
        status, out, _ = await cli(admin_app, "--json", "drain", token=VIEWER_TOKEN)
        assert status == 3 and as_json(out)["error"] == "forbidden"
        assert not admin_app.health.draining
        status, _, err = await cli(admin_app, "whoami", token=None)
        assert status == 2 and "BAOLIFE_ADMIN_TOKEN" in err
        status, _, err = await cli(admin_app, "show", "not-a-number")
        assert status == 2
        with trio.socket.socket() as sock:  # a port nobody listens on
            await sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        status, _, err = await cli(None, "--url", f"http://127.0.0.1:{port}", "whoami")
        assert status == 6 and "cannot reach" in err


async def test_token_makes_an_entry_the_server_accepts(settings: Settings) -> None:
    with trio.fail_after(60):
        status, out, _ = await cli(None, "--json", "token", "night-shift", "operator", token=None)
        assert status == 0
        made = as_json(out)
        assert made["entry"].startswith("night-shift:operator:") and made["token"] not in made["entry"]
        status, _, _ = await cli(None, "token", "x", "admin", token=None)
        assert status == 2  # not a role
        async with running_app(settings.replace(admin_tokens=made["entry"])) as app:
            status, out, _ = await cli(app, "--json", "whoami", token=made["token"])
            assert status == 0 and as_json(out) == {"name": "night-shift", "role": "operator"}
