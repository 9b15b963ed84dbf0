"""``newsbot backup DIR`` and ``newsbot restore DIR`` (index/storage/backup.py does the work).

Registered by :mod:`bot.cli`, which reads the settings once and passes them in. The bot's
state file (BOT_STATE_PATH) is a bot setting, so it is resolved here and handed to the index
side as a plain path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.settings import BotSettings

EXIT_REFUSED = 2


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "backup", parents=[common],
        help="copy the store, the vectors and the bot's state into DIR (safe while the bot runs)",
    )
    p.add_argument("dir", help="a new or empty folder")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=_backup)

    p = sub.add_parser(
        "restore", parents=[common],
        help="bring a backup (DIR) back into an empty data dir",
    )
    p.add_argument("dir", help="a folder made by `newsbot backup`")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=_restore)


def _summary(verb: str, result: Any) -> str:
    m = result.manifest
    store, state = m["store"], m.get("bot_state") or {}
    return (
        f"{verb} {result.path} in {result.seconds:.1f} s: {store['articles']} articles, "
        f"{store['chunks']} passages, {m['vectors_count']} vectors ({m['vectors']}), "
        f"{state.get('questions', 0)} logged questions, "
        f"{state.get('digest_subscriptions', 0)} digest subscriptions"
    )


async def _backup(args: argparse.Namespace, settings: BotSettings) -> int:
    from index.storage.backup import BackupError, backup
    from index.storage.write_lock import LockBusy

    try:
        result = await asyncio.to_thread(
            backup, settings, Path(args.dir), bot_state=settings.bot_state_path
        )
    except (BackupError, LockBusy, OSError) as exc:
        print(f"newsbot backup: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if args.json:
        print(json.dumps(result.manifest, ensure_ascii=False, indent=2))
    else:
        if result.manifest.get("waited_for_writer"):
            print(f"waited for the index run of process {result.manifest['waited_for_writer']}")
        print(_summary("backed up into", result))
    return 0


async def _restore(args: argparse.Namespace, settings: BotSettings) -> int:
    from index.storage.backup import BackupError, RestoreRefused, restore

    try:
        result = await asyncio.to_thread(
            restore, settings, Path(args.dir), bot_state=settings.bot_state_path
        )
    except RestoreRefused as exc:
        print(f"newsbot restore: {exc}; nothing was changed. Restore into an empty data dir "
              "(--data-dir, NEWSBOT_DATA_DIR) and a bot state file that does not exist yet.",
              file=sys.stderr)
        return EXIT_REFUSED
    except (BackupError, OSError) as exc:
        print(f"newsbot restore: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if args.json:
        print(json.dumps(result.manifest, ensure_ascii=False, indent=2))
    else:
        print(_summary("restored into", result))
    return 0
