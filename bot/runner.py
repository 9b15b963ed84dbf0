"""Running an ``Application`` inside an event loop that someone else owns.

PTB's ``run_polling``/``run_webhook`` create and close their own loop, but ``newsbot`` runs
every subcommand under one ``asyncio.run`` and tests run the bot inside pytest's loop. This
is the same start-up and shutdown sequence, in PTB's order (initialize → post_init → updater
→ start … updater.stop → stop → post_stop → shutdown → post_shutdown), as an async context.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from telegram import Update
from telegram.ext import Application

from bot.logs import register_secret
from bot.settings import BotSettings

log = logging.getLogger(__name__)


def webhook_secret(settings: BotSettings) -> str:
    """WEBHOOK_SECRET, or a random one: Telegram then proves every delivery comes from it."""
    configured = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    value = configured or secrets.token_urlsafe(32)
    register_secret(value)
    return value


@asynccontextmanager
async def running(app: Application, settings: BotSettings) -> AsyncIterator[Application]:
    """Serve updates (long polling, or a webhook when WEBHOOK_URL is set) inside the block."""
    try:
        await app.initialize()  # getMe: an invalid token fails here, before anything else
    except BaseException:
        with contextlib.suppress(Exception):
            await app.bot.shutdown()  # close the HTTP clients initialize() opened
        raise
    try:
        if app.post_init:
            await app.post_init(app)
        assert app.updater is not None
        if settings.webhook_url:
            path = urlsplit(settings.webhook_url).path.strip("/")
            await app.updater.start_webhook(
                listen=settings.webhook_listen,
                port=settings.webhook_port,
                url_path=path,
                webhook_url=settings.webhook_url,
                secret_token=webhook_secret(settings),
                allowed_updates=Update.ALL_TYPES,
            )
            log.info("serving by webhook", extra={"kv": {
                "listen": settings.webhook_listen, "port": settings.webhook_port, "path": path,
            }})
        else:
            await app.updater.start_polling(
                poll_interval=0.0, timeout=settings.poll_timeout, allowed_updates=Update.ALL_TYPES,
            )
            log.info("serving by long polling", extra={"kv": {"bot": app.bot.username}})
        await app.start()
        try:
            yield app
        finally:
            if app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
            if app.post_stop:
                await app.post_stop(app)
    finally:
        await app.shutdown()
        if app.post_shutdown:  # also after a failed post_init: it closes what was opened
            await app.post_shutdown(app)
