"""The ``baolife`` command: ``serve``, ``migrate``, ``content``, ``simulate``, ``settings``, ``admin``.

Configuration errors print one line naming the setting and exit with 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

import orjson

from . import config
from .admin import cli as admin_cli

# The game (trio, structlog, the content, the store) is imported by the
# commands that run it: `baolife admin` starts in half the time without it.

__all__ = ["main"]

EPILOG = (
    "Settings come from BAOLIFE_* environment variables over the --config TOML file; `baolife settings` lists them."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="baolife", description="BaoLife game server.", epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the server until SIGTERM or SIGINT",
        description="Run the server until SIGTERM or SIGINT, then drain and exit 0 when every player was saved. "
        "Logs go to stdout (JSON lines, or a console format on a TTY). Under systemd Type=notify it reports "
        "READY=1, WATCHDOG=1 and STOPPING=1 to $NOTIFY_SOCKET.",
        epilog=EPILOG,
    )
    serve.add_argument("--config", metavar="FILE", help="TOML file of settings (environment variables win)")
    serve.add_argument(
        "--log-format", choices=["auto", "json", "console"], help="log format (default: BAOLIFE_LOG_FORMAT, auto)"
    )

    migrate = sub.add_parser("migrate", help="apply pending database schema migrations and exit", epilog=EPILOG)
    migrate.add_argument("--config", metavar="FILE", help="TOML file of settings (environment variables win)")

    content = sub.add_parser("content", help="check the game content")
    content_sub = content.add_subparsers(dest="content_command", required=True, metavar="SUBCOMMAND")
    for name, text in (
        ("stats", "print content counts as JSON; exit 1 if the content does not validate"),
        ("check", "validate the content; exit 1 with the first problem"),
    ):
        content_sub.add_parser(name, help=text).add_argument(
            "--content", metavar="DIR", help="a content folder to use instead of the built-in one"
        )

    simulate = sub.add_parser(
        "simulate",
        help="run bot players through whole lives and print a balance report",
        description="Run bot players through whole lives on the real game rules on virtual time (one tick is "
        "one real second of play), in worker processes, and print a balance report (Markdown, or JSON with "
        "--json) with pacing in real time, repeats and debt. The same seed and content give the same figures "
        "whatever the number of workers. Progress goes to stderr (a bar on a terminal).",
    )
    simulate.add_argument("--players", type=_positive, default=1000, metavar="N", help="lives to run (default 1000)")
    simulate.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (default 1)")
    simulate.add_argument(
        "--year-days",
        type=_positive,
        default=365,
        metavar="D",
        help="game days per game year, as the server's BAOLIFE_YEAR_DAYS (default 365)",
    )
    simulate.add_argument("--plots", metavar="DIR", help="also write PNG charts into DIR (needs baolife[sim])")
    simulate.add_argument("--json", action="store_true", help="print the report as JSON instead of Markdown")
    simulate.add_argument("--quiet", action="store_true", help="no progress on stderr")
    simulate.add_argument(
        "--workers", type=_positive, metavar="N", help="processes to run lives in (default: one per core)"
    )
    simulate.add_argument("--content", metavar="DIR", help="a content folder to use instead of the built-in one")

    sub.add_parser("settings", help="list every setting, its environment variable and default")
    admin_cli.add_parser(sub)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _settings(args: argparse.Namespace) -> config.Settings:
    return config.from_environ(getattr(args, "config", None))


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args)  # a bad setting is one line at once, before the server is imported

    import structlog
    import trio

    from .app import App
    from .content import load as load_content
    from .logs import configure_logging
    from .systemd import Notifier

    if args.log_format:
        settings = settings.replace(log_format=args.log_format)
    content = load_content()
    writer = configure_logging(settings.log_format, settings.log_level, sentry_dsn=settings.sentry_dsn)
    notifier = Notifier.from_environ(os.environ)
    app = App(settings, content=content, signals=True, notifier=notifier, log_writer=writer)
    try:
        return trio.run(app.run)
    except config.ConfigError:
        raise  # found at start (a worker id in use): one line and status 2, by main
    except Exception:
        # A crash is one structured line (traceback as data, sent to Sentry
        # when configured), then exit 1 so systemd's Restart=on-failure acts.
        structlog.get_logger("baolife").exception("crashed")
        return 1
    finally:
        notifier.close()
        writer.close()


def _migrate(args: argparse.Namespace) -> int:
    import trio

    from .db import open_store

    settings = _settings(args)

    async def run() -> list[str]:
        async with open_store(settings.db_url, pool_size=settings.db_pool) as store:
            return await store.migrate()

    applied = trio.run(run)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def _content(args: argparse.Namespace) -> int:
    from .content import load as load_content
    from .tick.registry import EventRegistry

    content = load_content(args.content)
    if args.content_command == "check":
        print(f"content ok: {len(content.events)} events, {len(content.actions)} actions")
        return 0
    registry = EventRegistry(content)
    stats = {
        "events": len(content.events),
        "random_events": registry.statistics().indexed,
        "followup_events": sum(1 for e in content.events.values() if e.followup),
        "actions": len(content.actions),
        "jobs": len(content.jobs),
        "education_levels": len(content.levels),
        "majors": len(content.majors),
        "flags": len(content.flags),
        "npc_personas": len(content.personas),
        "events_per_stage": registry.events_per_stage(),
    }
    sys.stdout.write(orjson.dumps(stats, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from .content import load as load_content
    from .sim import simulate
    from .sim.plots import PlotsUnavailable, require_matplotlib, write_plots
    from .sim.progress import Progress
    from .sim.run import default_workers

    if args.plots:
        try:
            require_matplotlib()  # fail before a long run, not after it
        except PlotsUnavailable as exc:
            print(f"baolife: {exc}", file=sys.stderr)
            return 2
    content = load_content(args.content)
    command = f"baolife simulate --players {args.players} --seed {args.seed}"
    if args.year_days != 365:
        command += f" --year-days {args.year_days}"
    if args.content:
        command += f" --content {args.content}"

    progress = None if args.quiet else Progress(sys.stderr)
    try:
        report = simulate(
            content,
            players=args.players,
            seed=args.seed,
            year_days=args.year_days,
            workers=args.workers or default_workers(),
            command=command,
            progress=progress,
        )
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        sys.stdout.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(report.markdown())
    if args.plots:
        for path in write_plots(report, args.plots):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _list_settings(_args: argparse.Namespace) -> int:
    width = max(len(name) for name, _, _ in config.SETTINGS_DOC)
    for name, default, doc in config.SETTINGS_DOC:
        print(f"{name:<{width}}  {default!r:>28}  {doc}")
    return 0


def _one_line(exc: Exception) -> str | None:
    """The one line that reports an error of the content or of the store
    (from `migrate`: the database is unreachable, a migration failed); None
    for any other. `serve` never gets here: _serve logs any failure, a
    behind schema included, as one `crashed` line."""
    from .content import ContentError
    from .db.store import StoreError

    if isinstance(exc, ContentError):
        return f"baolife: content: {exc}"
    if isinstance(exc, StoreError):
        return f"baolife: store: {exc}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = _parser().parse_args(argv)
    handlers = {
        "serve": _serve,
        "migrate": _migrate,
        "content": _content,
        "simulate": _simulate,
        "settings": _list_settings,
        "admin": admin_cli.run,
    }
    try:
        return handlers[args.command](args)
    except config.ConfigError as exc:
        print(f"baolife: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        line = _one_line(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 128 + signal.SIGINT  # as a shell reports a command ended by Ctrl-C
