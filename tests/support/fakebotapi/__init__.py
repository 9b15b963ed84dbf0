"""A fake Telegram Bot API server for end-to-end tests of the real PTB ``Application``.

Usage (the ``fake_bot_api`` fixture in ``tests/conftest.py`` starts and stops one)::

    app = fake_bot_api.application_builder().build()   # token + base_url preset
    user = fake_bot_api.user("Ada", language_code="it")
    chat = fake_bot_api.private_chat(user)
    fake_bot_api.user_sends(chat, user, "/start")
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        (reply,) = await fake_bot_api.wait_for_messages(chat["id"])
        ...
"""

from .server import (
    TEST_TOKEN,
    ApiError,
    FakeBotApi,
    Fault,
    RecordedCall,
    Violation,
    WebhookDelivery,
)
from .spec import SPEC_PATH, BotApiSpec, load_spec
from .telegram_html import HtmlParseError, ParsedText, parse_html, utf16_len, visible_length

__all__ = [
    "SPEC_PATH",
    "TEST_TOKEN",
    "ApiError",
    "BotApiSpec",
    "FakeBotApi",
    "Fault",
    "HtmlParseError",
    "ParsedText",
    "RecordedCall",
    "Violation",
    "WebhookDelivery",
    "load_spec",
    "parse_html",
    "utf16_len",
    "visible_length",
]
