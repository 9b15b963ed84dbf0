"""Shared pytest fixtures. Each block belongs to one component; keep them delimited."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

# ---------------------------------------------------------------------------------------------
# BEGIN fake Telegram Bot API (tests/fakebotapi) -- fixture: fake_bot_api
# ---------------------------------------------------------------------------------------------
from fakebotapi import TEST_TOKEN, FakeBotApi


@pytest.fixture
async def fake_bot_api() -> AsyncIterator[FakeBotApi]:
    """A fake Bot API on 127.0.0.1 for this test, accepting ``TEST_TOKEN``.

    The test fails at teardown if the bot made calls Telegram would reject (violations), so
    API misuse cannot hide behind a bot that swallows errors. A test that provokes them on
    purpose takes them with ``server.pop_violations()`` (or sets ``fail_on_violations=False``).
    """
    server = FakeBotApi(TEST_TOKEN)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
    if server.fail_on_violations and server.violations:
        pytest.fail(
            "Bot API violations (calls Telegram would reject):\n"
            + "\n".join(f"  - {v}" for v in server.violations),
            pytrace=False,
        )


# ---------------------------------------------------------------------------------------------
# END fake Telegram Bot API
# ---------------------------------------------------------------------------------------------
