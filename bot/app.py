"""The composition root: build the PTB ``Application`` and wire handlers and services.

No behaviour lives here. Services are opened in ``post_init`` (after ``getMe`` proved the
token) and closed in ``post_shutdown``; a running reindex and the digest scheduler are
stopped in ``post_stop``, while the bot can still send and edit messages.
"""

from __future__ import annotations

import logging

from telegram import BotCommand, BotCommandScopeChat, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import admin_handlers, handlers
from bot.alerts.commands import register_alert_handlers
from bot.alerts.delivery import AlertOptions
from bot.digests import DigestOptions, register_digest_handlers
from bot.health import HealthCheck, HealthServer
from bot.logs import register_secret
from bot.menu import ADMIN_COMMANDS, PUBLIC_COMMANDS, command_table
from bot.metrics import KEY as METRICS_KEY
from bot.metrics import BotMetrics, MeteredRequest, metrics_of
from bot.ratelimit import MAX_IN_FLIGHT, FloodControl
from bot.services import KEY, BotServices, services_of
from bot.settings import BotSettings
from index.embed import Embedder

log = logging.getLogger(__name__)

LIVE_GROUP = 1  # channel posts: a handler group of their own, whatever else matches them
METRICS_GROUP = -100  # sees every update first, whatever handles it
HEALTH_KEY = "health"


class MissingToken(ValueError):
    """TELEGRAM_BOT_TOKEN is not set."""


def file_url_for(base_url: str) -> str:
    """``http://host:8081/bot`` → ``http://host:8081/file/bot`` (the Bot API server layout)."""
    head, sep, _ = base_url.rstrip("/").rpartition("/bot")
    return f"{head}/file/bot" if sep else base_url.rstrip("/") + "/file/bot"


def build_application(
    settings: BotSettings,
    *,
    embedder: Embedder | None = None,
    digests: DigestOptions | None = None,
    alerts: AlertOptions | None = None,
) -> Application:
    """The bot, ready for :func:`bot.runner.running` (or PTB's own ``run_polling``).

    ``embedder`` lets a caller that already loaded the model (tests, benchmarks) share it;
    ``digests`` and ``alerts`` let tests run the digest scheduler and the alerts on their own
    clock.
    """
    secret = settings.telegram_bot_token
    token = secret.get_secret_value().strip() if secret else ""
    if not token:
        raise MissingToken("TELEGRAM_BOT_TOKEN is not set")
    register_secret(token)
    if settings.webhook_secret:
        register_secret(settings.webhook_secret.get_secret_value())

    metrics = BotMetrics()

    async def post_init(app: Application) -> None:
        services = await BotServices.open(settings, embedder, application=app,
                                          digest_options=digests, alert_options=alerts,
                                          metrics=metrics)
        app.bot_data[KEY] = services
        if settings.metrics_port:
            app.bot_data[HEALTH_KEY] = await start_health(app, services, settings)
        await services.start_retention(app)
        await set_commands(app, settings)
        await services.digests.start()
        await services.alerts.start()
        if services.live is not None:
            await services.live.start(app.bot, services, just_read=services.just_read)

    async def post_stop(app: Application) -> None:
        services: BotServices | None = app.bot_data.get(KEY)
        if services is not None:
            await services.digests.stop()
            await services.alerts.stop()
            if services.live is not None:
                await services.live.stop()
            await services.reindexer.close()

    async def post_shutdown(app: Application) -> None:
        health: HealthServer | None = app.bot_data.pop(HEALTH_KEY, None)
        if health is not None:
            await health.stop()
        services: BotServices | None = app.bot_data.pop(KEY, None)
        if services is not None:
            await services.close()

    builder: ApplicationBuilder = (
        Application.builder()
        .token(token)
        .concurrent_updates(max(1, settings.bot_concurrency))
        # PTB's own HTTP client (its defaults), counting Bot API errors and getUpdates.
        .request(MeteredRequest(metrics, connection_pool_size=MAX_IN_FLIGHT + 2))
        .get_updates_request(MeteredRequest(metrics, connection_pool_size=1))
        .rate_limiter(FloodControl(
            overall_max_rate=settings.telegram_max_rate,
            group_max_rate=settings.telegram_group_rate,
            max_retries=settings.telegram_retries,
        ))
        .defaults(Defaults(
            parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        ))
        .post_init(post_init)
        .post_stop(post_stop)
        .post_shutdown(post_shutdown)
    )
    if settings.telegram_api_url:
        base = settings.telegram_api_url.rstrip("/")
        builder = builder.base_url(base).base_file_url(file_url_for(base))
    app = builder.build()
    app.bot_data[METRICS_KEY] = metrics
    if settings.webhook_url:
        app.add_handler(TypeHandler(Update, _count_webhook_update), group=METRICS_GROUP)
    add_handlers(app)
    register_digest_handlers(app, lambda context: services_of(context).digests)
    register_alert_handlers(app, lambda context: services_of(context).alerts)
    return app


async def _count_webhook_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    metrics = metrics_of(context.application)
    if metrics is not None:
        metrics.webhook_update()


async def start_health(app: Application, services: BotServices,
                       settings: BotSettings) -> HealthServer:
    """``/healthz`` and ``/metrics`` on METRICS_PORT (bot/health.py)."""
    metrics = services.metrics
    check = HealthCheck(
        metrics=metrics,
        max_update_age=settings.health_max_update_age,
        webhook=bool(settings.webhook_url),
        sqlite_paths=[settings.sqlite_path, settings.bot_state_path],
        live_probe=services.probe_store,
        webhook_info=app.bot.get_webhook_info,
    )
    server = HealthServer(check, metrics, host=settings.metrics_listen,
                          port=settings.metrics_port)
    await server.start()
    return server


def add_handlers(app: Application) -> None:
    new_message = filters.UpdateType.MESSAGE  # edits of old questions are not new questions
    app.add_handler(CommandHandler("start", handlers.start, filters=new_message))
    app.add_handler(CommandHandler("help", handlers.help_command, filters=new_message))
    app.add_handler(CommandHandler("ask", handlers.ask_command, filters=new_message))
    app.add_handler(CommandHandler("reindex", admin_handlers.reindex_command, filters=new_message))
    app.add_handler(CommandHandler("stats", admin_handlers.stats_command, filters=new_message))
    app.add_handler(CommandHandler("whoami", handlers.whoami_command, filters=new_message))
    app.add_handler(CommandHandler("forgetme", handlers.forgetme_command, filters=new_message))
    app.add_handler(CommandHandler("sources", admin_handlers.sources_command, filters=new_message))
    app.add_handler(MessageHandler(filters.UpdateType.CHANNEL_POSTS, handlers.channel_post),
                    group=LIVE_GROUP)
    app.add_handler(MessageHandler(
        new_message & filters.ChatType.PRIVATE & filters.TEXT & ~filters.COMMAND,
        handlers.private_text,
    ))
    app.add_handler(MessageHandler(
        new_message & filters.ChatType.PRIVATE & filters.COMMAND, handlers.help_command
    ))
    app.add_handler(MessageHandler(
        new_message & filters.ChatType.GROUPS & filters.TEXT & ~filters.COMMAND,
        handlers.group_text,
    ))
    app.add_handler(CallbackQueryHandler(handlers.more_button, pattern=r"^m:"))
    app.add_handler(CallbackQueryHandler(handlers.feedback_button, pattern=r"^f:"))
    app.add_handler(InlineQueryHandler(handlers.inline_query))
    app.add_error_handler(handlers.on_error)


def _commands(names: tuple[str, ...], lang: str) -> list[BotCommand]:
    return [BotCommand(n, d) for n, d in command_table(names, lang, digests=True).items()]


async def set_commands(app: Application, settings: BotSettings) -> None:
    """The command menu: everyone's, and a longer one in each admin's private chat.

    Setting an admin's scope fails until that admin has started the bot (Telegram does not
    know the chat yet); that is logged and the bot serves anyway.
    """
    bot = app.bot
    for lang, code in (("en", None), ("it", "it")):
        await bot.set_my_commands(_commands(PUBLIC_COMMANDS, lang), language_code=code)
        for admin_id in settings.admin_ids:
            try:
                await bot.set_my_commands(
                    _commands(PUBLIC_COMMANDS + ADMIN_COMMANDS, lang),
                    scope=BotCommandScopeChat(admin_id),
                    language_code=code,
                )
            except TelegramError as exc:
                log.warning("could not set the admin command menu",
                            extra={"kv": {"admin": admin_id, "error": str(exc)}})
