"""``/reindex``: one background indexing run at a time, reported in one edited message.

The run gets its *own* index Services (a second SQLite connection) that share the already
loaded embedder and the answering side's Chroma client: the answering connection keeps
reading the last committed data (SQLite WAL) while the run writes, so questions are answered
throughout, from the old data until each batch is committed. The run holds the data dir's
write lock (index/storage/write_lock.py): a ``newsbot index`` from cron waits for it, and it waits
for one.

Only names from ``settings.sources`` (or ``all``) are accepted: a chat message can never make
the bot read an arbitrary path or URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telegram import Bot, ReplyParameters
from telegram.error import TelegramError

from bot import texts
from bot.logs import redact
from bot.settings import BotSettings
from index.embed import Embedder
from index.ingest.report import IndexReport, Progress
from index.runtime import NothingToIndex, Services, open_services
from index.sample import paths as sample_paths
from index.storage.vectors import VectorStore

log = logging.getLogger(__name__)

MAX_FAILURES_SHOWN = 3
MAX_REASON = 200


@dataclass(slots=True)
class Started:
    """What ``/reindex`` should answer: ``ok`` (a run started and owns a message) or a refusal."""

    ok: bool
    text: str = ""


class Reindexer:
    def __init__(
        self,
        settings: BotSettings,
        embedder: Embedder | None = None,
        *,
        opener: Callable[..., Awaitable[Services]] = open_services,
        vectors: VectorStore | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.vectors = vectors  # the answering side's: one client, so answers see the run
        self.opener = opener
        self.on_done: Callable[[], Awaitable[None]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._finished = asyncio.Event()
        self.last_report: IndexReport | None = None

    @property
    def running(self) -> bool:
        return self._busy

    def sources_line(self, lang: str) -> texts.Html:
        names = sorted(self.settings.sources)
        if not names:
            return texts.t("reindex_no_sources", lang)
        return texts.t("reindex_sources", lang, names=", ".join(["all", *names]))

    async def start(
        self, target: str, *, bot: Bot, chat_id: int, reply_to: int | None, lang: str
    ) -> Started:
        """Validate ``target``, post the progress message and start the run in the background."""
        name = target.strip()
        if not name:
            return Started(False, texts.t("reindex_usage", lang, sources=self.sources_line(lang)))
        if name != "all" and name not in self.settings.sources:
            return Started(False, texts.t("reindex_unknown", lang, name=name[:64],
                                          sources=self.sources_line(lang)))
        if self._busy:
            return Started(False, texts.t("reindex_busy", lang))
        self._busy = True  # set before any await: two concurrent /reindex start one run
        self._finished.clear()
        try:
            message = await bot.send_message(
                chat_id, texts.t("reindex_starting", lang, target=texts.target_label(name, lang)),
                reply_parameters=ReplyParameters(reply_to, allow_sending_without_reply=True)
                if reply_to else None,
            )
        except BaseException:
            self._busy = False
            self._finished.set()
            raise
        self._task = asyncio.create_task(
            self._run(name, bot, chat_id, message.message_id, lang), name=f"reindex-{name}"
        )
        return Started(True)

    async def wait(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Until the current run (if any) has ended; for tests and orderly shutdown."""
        if self._busy:
            await asyncio.wait_for(self._finished.wait(), timeout)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- the run ----------------------------------------------------------------------------

    def _paths(self, name: str) -> list[str | Path] | None:
        if name == "all":
            return None  # configured sources, else the sample (see _index)
        return [self.settings.sources[name]]

    async def _index(self, services: Services, name: str, progress: Any) -> IndexReport:
        paths = self._paths(name)
        if paths is None and not self.settings.sources:
            try:
                await services.resolve_targets(None)
            except NothingToIndex:
                # "all" without configured sources means the built-in sample, even when
                # the store currently holds something else.
                paths = list(sample_paths())
        return await services.index(paths, progress=progress)

    async def _run(self, name: str, bot: Bot, chat_id: int, message_id: int, lang: str) -> None:
        interval = max(0.0, self.settings.reindex_progress_seconds)
        t0 = time.monotonic()
        latest: list[Progress | None] = [None]
        last_edit = [time.monotonic()]
        shown: list[str] = [texts.t("reindex_starting", lang, target=texts.target_label(name, lang))]

        async def edit(text: str) -> bool:
            if text == shown[0]:
                return True
            try:
                await bot.edit_message_text(text, chat_id=chat_id, message_id=message_id)
            except TelegramError as exc:
                log.warning("could not edit the reindex progress message",
                            extra={"kv": {"error": str(exc)}})
                return False
            finally:
                last_edit[0] = time.monotonic()
            shown[0] = text
            return True

        async def ticker() -> None:
            while True:
                await asyncio.sleep(max(0.05, interval - (time.monotonic() - last_edit[0])))
                if time.monotonic() - last_edit[0] >= interval:
                    await edit(self._progress_text(name, latest[0], time.monotonic() - t0, lang))

        def on_progress(p: Progress) -> None:
            latest[0] = p

        log.info("reindex started", extra={"kv": {"target": name}})
        tick = asyncio.create_task(ticker())
        final: str
        try:
            services = await self.opener(
                self.settings, embedder=self.embedder, vectors=self.vectors
            )
            try:
                report = await self._index(services, name, on_progress)
            finally:
                await services.close()
            self.last_report = report
            final = self._summary(name, report, lang)
            log.info("reindex finished", extra={"kv": {"target": name, **{
                k: v for k, v in report.as_dict().items() if k != "failed"
            }, "failed": len(report.failed)}})
        except asyncio.CancelledError:
            tick.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.shield(edit(texts.t("reindex_cancelled", lang, target=texts.target_label(name, lang))))
            self._busy = False
            self._finished.set()
            raise
        except NothingToIndex as exc:
            final = texts.t("reindex_nothing", lang, reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - reported to the admin, logged in full
            log.exception("reindex failed", extra={"kv": {"target": name}})
            final = texts.t("reindex_failed", lang, target=texts.target_label(name, lang),
                            reason=redact(str(exc))[:MAX_REASON] or type(exc).__name__)
        finally:
            tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick
        try:
            if self.on_done is not None:
                await self.on_done()
            wait = interval - (time.monotonic() - last_edit[0])
            if wait > 0:
                await asyncio.sleep(wait)
            if not await edit(final):
                with contextlib.suppress(TelegramError):
                    await bot.send_message(chat_id, final)
        finally:
            self._busy = False
            self._finished.set()

    # -- texts ------------------------------------------------------------------------------

    @staticmethod
    def _progress_text(name: str, p: Progress | None, elapsed: float, lang: str) -> str:
        if p is None or p.phase == "loading":
            return texts.t("reindex_loading", lang, target=texts.target_label(name, lang), elapsed=texts.duration(elapsed))
        if p.phase == "pruning":
            return texts.t("reindex_pruning", lang, target=texts.target_label(name, lang))
        return texts.t(
            "reindex_progress", lang, target=texts.target_label(name, lang), done=p.articles_done, total=p.articles_total,
            rate=p.rate, eta=texts.duration(p.eta),
        )

    @staticmethod
    def _summary(name: str, report: IndexReport, lang: str) -> str:
        lines: list[str] = [texts.t(
            "reindex_done", lang, target=texts.target_label(name, lang), seconds=report.seconds, added=report.added,
            updated=report.updated, unchanged=report.unchanged, removed=report.removed,
            failed=len(report.failed),
        )]
        if report.failed:
            lines.append(texts.t("reindex_failures", lang))
            lines += [
                f"• {texts.esc(_tail(e.origin, 80))}: {texts.esc(_short(e.reason, MAX_REASON))}"
                for e in report.failed[:MAX_FAILURES_SHOWN]
            ]
        for notice in report.notices[:2]:
            lines.append(f"<i>{texts.esc(_short(notice, MAX_REASON))}</i>")
        return "\n".join(lines)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tail(text: str, limit: int) -> str:
    """The end of an origin (``…/feeds/ansa.xml:12``): the file and line are what matter."""
    text = " ".join(text.split())
    return text if len(text) <= limit else "…" + text[-(limit - 1):]
