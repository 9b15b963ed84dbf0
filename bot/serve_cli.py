"""``newsbot serve``: settings → application → serve until SIGINT/SIGTERM.

Start-up failures an operator can fix (no token, a token Telegram rejects, an unreachable Bot
API server) end with one line on stderr and exit code 2, never a traceback: the traceback
would say nothing more, and PTB's InvalidToken message even quotes the token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.settings import BotSettings

log = logging.getLogger(__name__)

EXIT_CONFIG = 2


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "serve", parents=[common],
        help="run the Telegram bot (long polling; a webhook when WEBHOOK_URL is set)",
    )
    p.set_defaults(func=_serve)


def _fail(message: str) -> int:
    from bot.logs import redact

    print(f"newsbot serve: {redact(message)}", file=sys.stderr)
    return EXIT_CONFIG


async def _serve(args: argparse.Namespace, settings: BotSettings) -> int:
    from telegram.error import InvalidToken, NetworkError, TelegramError

    from bot.app import MissingToken, build_application
    from bot.runner import running
    from index.embed.process import EncoderError

    try:
        app = build_application(settings)
    except MissingToken:
        return _fail(
            "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and export its token"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    api = settings.telegram_api_url or "https://api.telegram.org/bot"
    try:
        async with running(app, settings):
            await stop.wait()
            log.info("stopping")
    except InvalidToken:
        return _fail("Telegram rejected TELEGRAM_BOT_TOKEN (401 Unauthorized): check the token")
    except NetworkError as exc:
        return _fail(f"cannot reach the Bot API at {api}: {exc}")
    except TelegramError as exc:
        return _fail(f"the Bot API refused to start the bot: {exc}")
    except EncoderError as exc:
        return _fail(f"cannot load the embedding model {settings.embedding_model!r}: {exc}")
    except OSError as exc:  # e.g. the webhook port is taken
        return _fail(f"cannot serve: {exc}")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    return 0
