"""The commands each reader may use: one table for Telegram's menu and for /help."""

from __future__ import annotations

from bot import texts
from bot.alerts import texts as alert_texts
from bot.digests import texts as digest_texts

PUBLIC_COMMANDS = ("start", "help", "ask", "whoami", "forgetme")
ADMIN_COMMANDS = ("reindex", "stats", "sources")


def command_table(names: tuple[str, ...], lang: str, *, digests: bool) -> dict[str, str]:
    """Command → description in ``lang``; ``digests`` adds the digest and alert commands."""
    table = {name: texts.raw(f"cmd_{name}", lang) for name in names}
    if digests:
        table.update(dict(digest_texts.command_menu(lang)))
        table.update(dict(alert_texts.command_menu(lang)))
    return table
