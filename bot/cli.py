"""The ``newsbot`` command: a thin composition root over ``index`` (and the bot for serve).

The settings are read once, here in :func:`main`, and handed to the subcommand as
``func(args, settings)``. This module imports the subcommand modules (:mod:`bot.commands`,
:mod:`bot.digest_cli`, :mod:`bot.serve_cli`), never the reverse.

Heavy modules (torch, chromadb, telegram) are imported inside each subcommand so that
``newsbot --help`` and an unchanged re-index start quickly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.settings import BotSettings
    from index.runtime import Services

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _settings(args: argparse.Namespace) -> BotSettings:
    from bot.settings import BotSettings

    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    return BotSettings(**overrides)


def _setup_logging(level: str, *, quiet_console: bool = False) -> None:
    from bot.logs import configure_logging

    configure_logging(level, quiet_console=quiet_console)


def _fmt_secs(s: float | None) -> str:
    if s is None:
        return "--:--"
    m, sec = divmod(int(s), 60)
    return f"{m:02d}:{sec:02d}"


# -- index ---------------------------------------------------------------------------------


async def _index(args: argparse.Namespace, settings: BotSettings) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from index.ingest.report import Progress as IndexProgress
    from index.runtime import NothingToIndex, open_services

    console = Console(stderr=True)
    if args.watch and args.prune:
        console.print("[red]newsbot index: --watch never prunes; run --prune on its own[/red]")
        return 2
    services = await open_services(settings)
    try:
        if args.drop_sample:
            removed = await services.drop_sample()
            console.print(f"removed the built-in sample: {removed} "
                          f"{'article' if removed == 1 else 'articles'}")
            if not args.paths and not settings.sources:
                return 0
        if args.watch:
            return await _watch(args, settings, services)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=args.json or not console.is_terminal,
        ) as bar:
            task = bar.add_task("loading", total=None, detail="")

            def on_progress(p: IndexProgress) -> None:
                if p.phase == "embedding":
                    detail = (
                        f"{p.articles_done}/{p.articles_total} articles · "
                        f"{p.chunks_done}/{p.chunks_total} chunks · {p.rate:.1f} chunks/s · "
                        f"ETA {_fmt_secs(p.eta)}"
                    )
                    bar.update(
                        task, description="embedding", total=p.chunks_total or None,
                        completed=p.chunks_done, detail=detail,
                    )
                else:
                    bar.update(task, description=p.phase, detail="")

            try:
                report = await services.index(args.paths, prune=args.prune, progress=on_progress)
            except NothingToIndex as exc:
                console.print(f"[red]newsbot index: {exc}[/red]")
                return 2
        if args.json:
            print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
            return 0
        out = Console()
        for notice in report.notices:
            out.print(f"[yellow]note:[/yellow] {notice}")
        table = Table(title=f"Indexed in {report.seconds:.1f}s", show_header=True)
        for col in ("added", "updated", "unchanged", "removed", "duplicates", "near dup.", "failed"):
            table.add_column(col, justify="right")
        table.add_row(
            str(report.added), str(report.updated), str(report.unchanged), str(report.removed),
            str(report.duplicates), str(report.near_duplicates), str(len(report.failed)),
        )
        out.print(table)
        out.print(f"{report.chunks_embedded} chunks embedded with {services.embedder.model_id}")
        if report.failed:
            fails = Table(title="Failed", show_header=True)
            fails.add_column("where")
            fails.add_column("reason")
            for err in report.failed[:50]:
                fails.add_row(err.origin, err.reason)
            out.print(fails)
            if len(report.failed) > 50:
                out.print(f"… and {len(report.failed) - 50} more (see the log)")
        return 0
    finally:
        await services.close()


async def _watch(args: argparse.Namespace, settings: BotSettings, services: Services) -> int:
    """``newsbot index --watch``: the bot's background scheduler, in the foreground."""
    import signal
    from datetime import datetime

    from rich.console import Console

    from index.ingest.live import LiveIndexer
    from index.ingest.live_writers import shared_writer
    from index.ingest.polls import PollResult
    from index.settings import SourceSpec

    out = Console(soft_wrap=True)  # one line per poll, however long (logs, pipes)
    if args.paths:
        every = settings.ingest_every or 900.0
        specs = {str(p): SourceSpec(str(p), every) for p in args.paths}
    else:
        specs = dict(settings.source_specs)
    scheduled = {n: s for n, s in specs.items() if s.every}
    if not scheduled:
        Console(stderr=True).print(
            "[red]newsbot index --watch: nothing to watch: set NEWSBOT_SOURCES (with INGEST_EVERY "
            "or a source's \"every\" above 0), or name feeds and folders[/red]"
        )
        return 2

    async def show(r: PollResult) -> None:
        when = datetime.fromtimestamp(r.at).strftime("%H:%M:%S")
        if not r.ok:
            failures = r.health.failures if r.health else 0
            wait = (r.next_attempt or r.at) - r.at
            out.print(f"{when} [red]{r.name}: failed[/red] ({failures} in a row): {r.error}; "
                      f"next try in {wait:.0f} s")
        elif r.not_modified:
            out.print(f"{when} {r.name}: not modified")
        else:
            rep = r.report
            added, updated = (rep.added, rep.updated) if rep else (0, 0)
            failed = len(rep.failed) if rep else 0
            out.print(f"{when} {r.name}: +{added} ~{updated}, {r.read} read, "
                      f"{r.skipped} unchanged/known skipped, {failed} failed")

    live = LiveIndexer(settings, shared_writer(services), specs=scheduled, on_poll=show)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await live.start()
        out.print(f"watching {', '.join(scheduled)} (Ctrl-C stops)")
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await live.stop()
    out.print("stopped")
    return 0


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    if s < 90:
        return f"{s} s"
    if s < 5400:
        return f"{round(s / 60)} min"
    if s < 129600:
        return f"{round(s / 3600)} h"
    return f"{round(s / 86400)} d"


async def _source_health(settings: BotSettings) -> list[dict[str, Any]]:
    """Every configured source (and channel) with what the ledger knows of it."""
    import time

    from index.ingest.polls import source_kind
    from index.storage.sources import SourceLedger

    ledger = await SourceLedger.open(settings.sqlite_path)
    try:
        known = {h.name: h for h in await ledger.all()}
    finally:
        await ledger.close()
    now = time.time()
    rows: list[dict[str, Any]] = []
    names = [*settings.source_specs, *settings.channel_sources]
    for name in names:
        spec = settings.source_specs.get(name)
        h = known.get(name)
        row: dict[str, Any] = h.as_dict(now) if h else {
            "name": name, "kind": source_kind(spec.path) if spec else "channel",
            "target": spec.path if spec else name, "last_attempt": None, "last_success": None,
            "last_error": None,
            "consecutive_failures": 0, "articles_added": 0, "lag_seconds": None,
        }
        row["every_seconds"] = spec.every if spec else None
        row["flagged"] = row.get("consecutive_failures", 0) >= settings.source_alert_failures
        rows.append(row)
    return rows


# -- status --------------------------------------------------------------------------------


async def _status(args: argparse.Namespace, settings: BotSettings) -> int:
    import time
    from datetime import datetime

    from rich.console import Console
    from rich.table import Table

    from index.storage.store import Store

    if not settings.sqlite_path.exists():
        print(f"No store at {settings.data_dir} yet: run `newsbot index` to build one.")
        return 0
    store = await Store.open(settings.sqlite_path)
    try:
        counts = await store.counts()
        overview = await store.corpus_overview()
        last = await store.last_run()
        model = await store.get_meta("embedding_model")
    finally:
        await store.close()
    health = await _source_health(settings)
    from index.storage.chroma_client import server_description

    where = (
        server_description(settings) if settings.chroma_host
        else f"embedded chroma at {settings.chroma_path}"
    )
    info: dict[str, Any] = {
        "data_dir": str(settings.data_dir),
        "sqlite": str(settings.sqlite_path),
        "vectors": where,
        "model": model,
        **counts,
        "languages": overview["languages"],
        "published_range": [
            d.date().isoformat() if d else None
            for d in (overview["first_published"], overview["last_published"])
        ],
        "last_run": last,
        "live_sources": health,
    }
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2, default=str))
        return 0
    table = Table(show_header=False, title="newsbot status")
    table.add_column("", style="bold")
    table.add_column("")
    for key in ("data_dir", "sqlite", "vectors", "model", "articles", "chunks",
                "exact_duplicates", "near_duplicates", "sources"):
        table.add_row(key, str(info[key]))
    table.add_row("languages", ", ".join(f"{k} {v}" for k, v in overview["languages"].items()))
    table.add_row("published", " … ".join(str(x) for x in info["published_range"]))
    if last:
        st = last["stats"]
        table.add_row(
            "last run",
            f"{last['finished_at']} ({last['status']}): +{st.get('added', 0)} "
            f"~{st.get('updated', 0)} -{st.get('removed', 0)} "
            f"failed {len(st.get('failed', []))}",
        )
    Console().print(table)
    if health:
        src = Table(title=f"sources (flagged after {settings.source_alert_failures} failures "
                          "in a row)")
        for col in ("source", "kind", "every", "last attempt", "last success", "added", "lag",
                    "failures", "last error"):
            src.add_column(col)

        def ago(value: str | None) -> str:
            """How long ago an ISO stamp of the JSON was (which keeps the stamp itself)."""
            if not value:
                return "never"
            return _ago(time.time() - datetime.fromisoformat(value).timestamp()) + " ago"

        for h in health:
            every = h.get("every_seconds")
            src.add_row(
                ("⚠ " if h["flagged"] else "") + h["name"], h["kind"],
                "live" if h["kind"] == "channel" else (_ago(every) if every else "manual"),
                ago(h.get("last_attempt")), ago(h.get("last_success")),
                str(h.get("articles_added", 0)), _ago(h.get("lag_seconds")),
                str(h.get("consecutive_failures", 0)),
                (h.get("last_error") or "")[:80] if h.get("consecutive_failures") else "",
            )
        wide = Console()
        if not wide.is_terminal:  # a pipe or a log file: no 80-column wrapping of the reasons
            wide = Console(width=160)
        wide.print(src)
    return 0


# -- parser --------------------------------------------------------------------------------


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--data-dir", default=default,
        help="where the store lives (default ./data, or NEWSBOT_DATA_DIR)",
    )
    parser.add_argument(
        "--log-level", default=default, help="DEBUG, INFO, WARNING (default INFO)"
    )


def build_parser() -> argparse.ArgumentParser:
    # The global options are accepted before and after the subcommand (`newsbot --data-dir X
    # status` and `newsbot status --data-dir X`); SUPPRESS keeps a subcommand that was not
    # given the option from resetting what was given before it.
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, default=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="newsbot",
        description="Answer questions about a news corpus with quoted, sourced passages.",
    )
    _global_options(parser, default=None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "index", parents=[common], help="index articles (files, folders, feeds; default: sample)"
    )
    p.add_argument("paths", nargs="*", help="JSONL/JSON, .txt/.md/.html files, folders, RSS/Atom")
    p.add_argument("--prune", action="store_true", help="remove articles no longer present")
    p.add_argument("--drop-sample", action="store_true",
                   help="remove the built-in sample's articles (and never add them back)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--watch", action="store_true",
        help="keep reading NEWSBOT_SOURCES (or the paths given) on their schedule, as "
             "`newsbot serve` does, until Ctrl-C",
    )
    p.set_defaults(func=_index)

    p = sub.add_parser("status", parents=[common], help="what the store holds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_status)

    _register_more(sub, common)
    return parser


def _register_more(sub: Any, common: argparse.ArgumentParser) -> None:
    """Subcommands defined in their own modules (ask, eval, backup, restore, digest, serve)."""
    from bot import backup_cli, commands

    commands.register(sub, common)
    backup_cli.register(sub, common)
    try:
        from bot import digest_cli, serve_cli
    except ImportError:  # the Telegram side is optional for index-only installs
        return
    digest_cli.register(sub, common)
    serve_cli.register(sub, common)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = _settings(args)
    except Exception as exc:  # noqa: BLE001 - pydantic's message is the useful part
        print(f"newsbot: invalid configuration: {exc}", file=sys.stderr)
        return 2
    level = args.log_level or settings.log_level
    _setup_logging(level, quiet_console=args.command in {"index", "ask", "eval", "digest"})
    try:
        return int(asyncio.run(args.func(args, settings)) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())


logging.getLogger("chromadb").setLevel(logging.WARNING)
