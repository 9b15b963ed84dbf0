"""The admin commands: /reindex, /stats and /sources (ADMIN_IDS only; a refusal is logged).

Thin, as :mod:`bot.handlers`: the reindexer, the stores and the failure log do the work."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from telegram import Update
from telegram.ext import ContextTypes

from bot import texts
from bot.delivery_failures import failing_deliveries, failures_html
from bot.handlers import lang_of
from bot.services import BotServices, services_of

log = logging.getLogger(__name__)


def _admin(update: Update, context: ContextTypes.DEFAULT_TYPE, command: str) -> bool:
    user = update.effective_user
    if services_of(context).is_admin(user.id if user else None):
        return True
    chat = update.effective_chat
    log.warning("refused admin command", extra={"kv": {
        "command": command, "user": user.id if user else None, "chat": chat.id if chat else None,
    }})
    return False


async def reindex_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return
    lang = lang_of(update)
    if not _admin(update, context, "reindex"):
        await message.reply_text(texts.t("admin_only", lang))
        return
    started = await services_of(context).reindexer.start(
        " ".join(context.args or []), bot=context.bot, chat_id=chat.id,
        reply_to=message.message_id, lang=lang,
    )
    if not started.ok:
        await message.reply_text(started.text)


def local_time(iso: str | None, tz: ZoneInfo) -> str:
    """A stored UTC timestamp in the bot's time zone, as "2026-12-03 08:15"."""
    if not iso:
        return ""
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return iso[:16].replace("T", " ")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M")


async def stats_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None:
        return
    lang = lang_of(update)
    if not _admin(update, context, "stats"):
        await message.reply_text(texts.t("admin_only", lang))
        return
    services = services_of(context)
    counts = await services.index.store.counts()
    last = await services.index.store.last_run()
    st = await services.state.stats()
    none = texts.raw("none", lang)
    if last:
        s = last.get("stats") or {}
        last_run = texts.t(
            "stats_run", lang, when=local_time(last.get("finished_at"), services.tz),
            status=texts.run_status(last.get("status", ""), lang), added=s.get("added", 0), updated=s.get("updated", 0),
            removed=s.get("removed", 0), failed=len(s.get("failed", [])),
            failed_word=texts.noun(len(s.get("failed", [])), "failed", lang),
        )
    else:
        last_run = texts.t("stats_no_run", lang)
    votes = st["up"] + st["down"]
    ratio = f"{100 * st['up'] / votes:.0f}% 👍" if votes else none

    def ms(v: float | None) -> str:
        return f"{v:.0f} ms" if v is not None else none

    body = texts.t(
        "stats", lang, articles=counts["articles"], chunks=counts["chunks"], last_run=last_run,
        today=st["questions_today"], up=st["up"], down=st["down"], ratio=ratio,
        p50=ms(st["p50_ms"]), p95=ms(st["p95_ms"]),
    )
    memory = texts.memory_lines(services.retriever.memory.status(),
                                services.retriever.vectors, lang)
    failing = await failing_deliveries(context.application)
    await message.reply_text("\n".join([
        body, *memory, *await _sources_lines(services, lang), failures_html(failing, lang, services.tz),
    ]))


async def sources_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/sources``: every source's health (bot/live.py)."""
    message = update.effective_message
    if message is None:
        return
    lang = lang_of(update)
    if not _admin(update, context, "sources"):
        await message.reply_text(texts.t("admin_only", lang))
        return
    live = services_of(context).live
    if live is None:
        await message.reply_text(texts.t("src_none", lang))
        return
    await message.reply_text(await live.sources_html(lang))


async def _sources_lines(services: BotServices, lang: str) -> list[str]:
    """What /stats adds about the sources (nothing when none is configured)."""
    if services.live is None:
        return []
    try:
        line = await services.live.stats_line(lang)
    except Exception:  # noqa: BLE001 - /stats must answer even if the ledger does not
        log.exception("could not read the sources' health")
        return []
    return [line] if line else []
