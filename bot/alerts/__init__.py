"""Alerts: /follow a topic, and get each new matching story as it arrives.

Wiring, as for digests (:mod:`bot.digests`): the service is a field of the bot's services
(``BotServices.alerts``, opened in ``BotServices.open``, started in ``post_init``, stopped in
``post_stop``, closed in ``post_shutdown``); ``BotServices.after_reindex`` tells it of every
ingested batch; ``build_application`` adds the commands::

    register_alert_handlers(app, lambda context: services_of(context).alerts)

The parts:

- :mod:`~bot.alerts.matching`: every new article against every follow, with the digests'
  topic gate, in one matrix product and an inverted index (pure but for the store reads);
- :mod:`~bot.alerts.quiet`: quiet hours and the hourly cap (pure);
- :mod:`~bot.alerts.store`: the ``alert_*`` tables in the bot's SQLite;
- :mod:`~bot.alerts.delivery`: the service: match, plan in one transaction, send once;
- :mod:`~bot.alerts.commands`: /follow, /following, /unfollow;
- :mod:`~bot.alerts.texts`: every word in English and Italian, and the alert messages.

Nothing is imported here, so ``bot.settings`` can check ``ALERT_QUIET_HOURS`` with
:mod:`bot.alerts.quiet` without loading the rest.
"""
