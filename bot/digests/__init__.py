"""Digest subscriptions, scheduling and exactly-once delivery to groups and channels.

Wiring: the service is a field of the bot's services (``BotServices.digests``, opened and
started in ``post_init``, stopped in ``post_stop``, closed in ``post_shutdown``), and
``build_application`` adds the commands after the bot's own handlers::

    register_digest_handlers(app, lambda context: services_of(context).digests)

The parts:

- :mod:`~bot.digests.schedule`: when a subscription falls due (pure: no clock, no state);
- :mod:`~bot.digests.store`: the ``digest_*`` tables in the bot's SQLite;
- :mod:`~bot.digests.building`: the digest a subscription gets at a given moment;
- :mod:`~bot.digests.delivery`: the scheduler and the delivery state machine, with the
  failure reporting of :mod:`bot.delivery_failures`, on a :mod:`~bot.digests.clock`;
- :mod:`~bot.digests.commands`: the commands' arguments, permissions and handlers;
- :mod:`~bot.digests.texts`: every user-facing word, in English and Italian.
"""

from __future__ import annotations

from bot.digests.building import build_subscription_digest
from bot.digests.clock import Clock, SystemClock
from bot.digests.commands import (
    UsageError,
    parse_subscribe,
    register_digest_handlers,
)
from bot.digests.delivery import DigestOptions, DigestService
from bot.digests.schedule import Subscription
from bot.digests.store import DigestStore

__all__ = [
    "Clock",
    "DigestOptions",
    "DigestService",
    "DigestStore",
    "Subscription",
    "SystemClock",
    "UsageError",
    "build_subscription_digest",
    "parse_subscribe",
    "register_digest_handlers",
]
