"""How long the bot keeps what users asked: QUESTION_LOG_DAYS, and /forgetme.

The question log and the votes carry Telegram user ids. They are kept ``QUESTION_LOG_DAYS``
(default 90; 0 keeps them) for ``/stats`` and for judging answers, then deleted: at start-up
and once a day by a JobQueue job. "More" pages, which hold the question too, live
``PAGE_TTL_DAYS`` (bot/state.py). ``/forgetme`` deletes a user's rows at once, wherever they
are keyed by the user's id (:meth:`bot.services.BotServices.forget_user`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from telegram.ext import Application, ContextTypes

if TYPE_CHECKING:
    from bot.services import BotServices

log = logging.getLogger(__name__)

PURGE_EVERY_S = 86400.0
JOB_NAME = "question-log-retention"


async def purge(services: BotServices) -> dict[str, int]:
    deleted = await services.state.purge(services.settings.question_log_days)
    if any(deleted.values()):
        log.info("old question log rows deleted", extra={"kv": {
            **deleted, "days": services.settings.question_log_days}})
    return deleted


async def start(app: Application, services: BotServices) -> dict[str, int]:
    """Purge now, then every day (the first time a day from now)."""
    deleted = await purge(services)
    if app.job_queue is not None:

        async def daily(context: ContextTypes.DEFAULT_TYPE) -> None:
            try:
                await purge(services)
            except Exception:  # noqa: BLE001 - tried again tomorrow
                log.exception("could not delete old question log rows")

        app.job_queue.run_repeating(daily, interval=PURGE_EVERY_S, first=PURGE_EVERY_S,
                                    name=JOB_NAME)
    else:
        log.warning("no job queue: old question log rows are deleted only at start-up")
    return deleted
