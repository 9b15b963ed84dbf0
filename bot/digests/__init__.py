"""Digest subscriptions, scheduling and exactly-once delivery to groups and channels.

Wiring (from the bot's ``build_application``)::

    register_digest_handlers(app, settings)           # after the bot's own handlers
    await start_digest_scheduler(app)                  # in post_init, after services open
    await stop_digest_scheduler(app)                   # in post_stop

The parts:

- :mod:`~bot.digests.schedule`: when a subscription falls due (pure: no clock, no state);
- :mod:`~bot.digests.store`: the ``digest_*`` tables in the bot's SQLite;
- :mod:`~bot.digests.delivery`: the scheduler and the delivery state machine, with the
  failure reporting of :mod:`bot.delivery_failures`;
- :mod:`~bot.digests.commands`: the commands' arguments, permissions and handlers;
- :mod:`~bot.digests.texts`: every user-facing word, in English and Italian.
"""

from __future__ import annotations

from bot.digests.commands import (
    UsageError,
    parse_subscribe,
    register_digest_handlers,
)
from bot.digests.delivery import (
    Clock,
    DigestService,
    SystemClock,
    build_subscription_digest,
    start_digest_scheduler,
    stop_digest_scheduler,
)
from bot.digests.schedule import Subscription
from bot.digests.store import DigestStore

__all__ = [
    "Clock",
    "DigestService",
    "DigestStore",
    "Subscription",
    "SystemClock",
    "UsageError",
    "build_subscription_digest",
    "parse_subscribe",
    "register_digest_handlers",
    "start_digest_scheduler",
    "stop_digest_scheduler",
]
