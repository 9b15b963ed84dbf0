"""Live sources: each configured source re-read in the background, pushed posts indexed in batches.

Used by ``newsbot serve`` (bot/live.py) and ``newsbot index --watch``. Every source has its own
task: wait until due, *poll*, record the outcome in the ledger (index/storage/sources.py), and
compute when it is due again — ``every`` after a success; after a failure an exponential
back-off with jitter (``every · 2^(failures−1)``, capped, at least what ``Retry-After`` said),
never more often than once a second, so a failing source never delays another and a broken
server is not hammered.

A poll does the cheap part first, outside the data dir's write lock:

- **feed URL**: a conditional GET (index/ingest/fetch.py). A ``304`` ends the poll there: no
  parse, no embedding, no write, no lock. Otherwise entries whose id is already stored are
  dropped before any text is extracted or cleaned, and only new ones are indexed; the
  validators are kept only once they are, so a failed run downloads again;
- **folder or file**: ``stat`` of every file, compared with the size and mtime recorded at the
  last read; only new or changed files are read.

What is left goes through the same indexing path as ``/reindex`` and ``newsbot index``
(:meth:`index.runtime.Services.index`, which holds the write lock), one write run at a time in
this process. Pushed articles (Telegram channel posts) wait in the ledger's inbox and are
indexed a moment later in one small run; they leave the inbox only once indexed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from index.ingest.feeds import parse_download
from index.ingest.fetch import Fetcher, FetchError, Validators
from index.ingest.live_writers import Writer
from index.ingest.loaders import Preloaded, iter_articles, list_files
from index.ingest.polls import PollFailed, PollResult, file_stats, source_kind
from index.ingest.records import Item
from index.models import Article, LoadError
from index.settings import Settings, SourceSpec
from index.storage.sources import InboxItem, SourceHealth, SourceLedger

log = logging.getLogger(__name__)

__all__ = ["BACKOFF_MAX_S", "PUSH_BATCH_S", "LiveIndexer"]

BACKOFF_MAX_S = 6 * 3600.0  # a failing source is still tried at least this often
PUSH_BATCH_S = 1.0  # pushed posts arriving within this long are indexed in one run
MAX_REASON = 300

AlertFn = Callable[[str, SourceHealth], Awaitable[None]]  # ("failing" | "recovered", health)


class LiveIndexer:
    def __init__(
        self,
        settings: Settings,
        writer: Writer,
        *,
        specs: Mapping[str, SourceSpec] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        fetcher: Fetcher | None = None,
        on_change: Callable[[PollResult], Awaitable[None]] | None = None,
        on_poll: Callable[[PollResult], Awaitable[None]] | None = None,
        on_alert: AlertFn | None = None,
        push_delay: float = PUSH_BATCH_S,
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.specs: dict[str, SourceSpec] = dict(
            settings.source_specs if specs is None else specs
        )
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self.on_change = on_change  # after a poll that changed the store
        self.on_poll = on_poll  # after every poll, whatever its outcome
        self.on_alert = on_alert
        self.push_delay = push_delay
        self.ledger: SourceLedger | None = None
        self.fetcher = fetcher
        self._own_fetcher = fetcher is None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._source_locks: dict[str, asyncio.Lock] = {}
        self._write_turn = asyncio.Lock()  # one write run at a time in this process
        self._pushed = asyncio.Event()
        self._push_task: asyncio.Task[None] | None = None
        self._push_failures = 0
        self.history: deque[PollResult] = deque(maxlen=1000)
        self._changed = asyncio.Condition()
        self.running = False

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """The ledger and the HTTP client, without starting any task (to poll by hand)."""
        if self.ledger is None:
            self.ledger = await SourceLedger.open(self.settings.sqlite_path)
        if self.fetcher is None:
            self.fetcher = Fetcher(
                timeout=self.settings.fetch_timeout,
                max_bytes=int(self.settings.max_file_mb * 1_000_000),
            )
        for name, spec in self.specs.items():
            await self.ledger.ensure(name, source_kind(spec.path), spec.path)

    async def start(self, *, just_read: Sequence[str] = ()) -> None:
        """A task per scheduled source, and the push batcher (posts left in the inbox by a
        previous run are indexed now). ``just_read``: sources indexed a moment ago (the bot
        indexes an empty store before serving), next due one interval from now."""
        await self.open()
        ledger = self._ledger()
        now = self.clock()
        for name in just_read:
            if name in self.specs:
                await ledger.succeeded(name, now, next_attempt=self._next_ok(name, now))
        self.running = True
        for name, spec in self.specs.items():
            if spec.every and spec.every > 0:
                self._tasks[name] = asyncio.create_task(self._loop(name), name=f"source-{name}")
        self._push_task = asyncio.create_task(self._push_loop(), name="source-push")
        if await ledger.inbox_size():
            self._pushed.set()
        scheduled = [n for n, s in self.specs.items() if s.every]
        log.info("live sources started", extra={"kv": {
            "scheduled": ",".join(scheduled) or "-",
            "manual": ",".join(n for n in self.specs if n not in scheduled) or "-",
        }})

    async def stop(self) -> None:
        """Stop every task (a run in progress is cancelled; the store stays consistent and
        the inbox keeps what was not indexed) and close the ledger and the HTTP client."""
        self.running = False
        tasks = [*self._tasks.values(), *([self._push_task] if self._push_task else [])]
        self._tasks.clear()
        self._push_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.fetcher is not None and self._own_fetcher:
            await self.fetcher.aclose()
            self.fetcher = None
        if self.ledger is not None:
            await self.ledger.close()
            self.ledger = None

    def _ledger(self) -> SourceLedger:
        if self.ledger is None:
            raise RuntimeError("the live indexer is not open")
        return self.ledger

    # -- the schedule -----------------------------------------------------------------------

    async def _loop(self, name: str) -> None:
        state = await self._ledger().get(name)
        due = state.next_attempt if state and state.next_attempt else self.clock()
        while True:
            wait = due - self.clock()
            if wait > 0:
                await self.sleep(wait)
            result = await self.poll(name)
            if result.next_attempt is not None:
                due = result.next_attempt
            else:
                due = self.clock() + (self.specs[name].every or 60.0)

    def _next_ok(self, name: str, now: float) -> float | None:
        every = self.specs[name].every if name in self.specs else None
        return now + every if every else None

    def backoff(self, every: float | None, failures: int, retry_after: float | None = None) -> float:
        """Seconds until a source that failed ``failures`` times in a row is tried again."""
        base = max(every or 60.0, 1.0)
        delay = min(max(BACKOFF_MAX_S, base), base * 2 ** max(0, failures - 1))
        delay *= 0.5 + 0.5 * self.rng()  # jitter: sources failing together spread out
        if retry_after:
            delay = max(delay, min(retry_after, BACKOFF_MAX_S))
        return delay

    # -- one poll ---------------------------------------------------------------------------

    async def poll(self, name: str) -> PollResult:
        """Read source ``name`` once if anything changed, and record how it went."""
        lock = self._source_locks.setdefault(name, asyncio.Lock())
        async with lock:  # one run at a time per source
            return await self._poll(name)

    async def _poll(self, name: str) -> PollResult:
        spec = self.specs[name]
        ledger = self._ledger()
        kind = source_kind(spec.path)
        before = await ledger.ensure(name, kind, spec.path)
        now = self.clock()
        await ledger.attempted(name, now)
        result = PollResult(name, ok=False, at=now)
        newest: float | None = None
        validators: Validators | None = None
        try:
            if kind == "feed":
                newest, validators = await self._poll_feed(name, spec.path, before, result)
            else:
                newest = await self._poll_files(name, Path(spec.path), result)
        except asyncio.CancelledError:
            raise
        except PollFailed as exc:
            return await self._failed(name, result, exc.reason, exc.retry_after)
        except Exception as exc:  # noqa: BLE001 - recorded and retried; the loop never dies
            log.exception("source poll failed", extra={"kv": {"source": name}})
            return await self._failed(name, result, f"{type(exc).__name__}: {exc}")
        done = self.clock()
        report = result.report
        result.ok = True
        result.next_attempt = self._next_ok(name, done)
        result.health = await ledger.succeeded(
            name, done, next_attempt=result.next_attempt,
            added=report.added if report else 0, newest=newest,
            validators=(validators.etag, validators.last_modified) if validators else None,
            not_modified=result.not_modified,
        )
        if before.alerted:
            await self._alert("recovered", result.health)
            await ledger.set_alerted(name, False)
        log.info("source polled", extra={"kv": {
            "source": name, "not_modified": result.not_modified, "read": result.read,
            "skipped": result.skipped, "added": report.added if report else 0,
            "updated": report.updated if report else 0,
            "failed_items": len(report.failed) if report else 0,
        }})
        await self._finished(result)
        return result

    async def _failed(
        self, name: str, result: PollResult, reason: str, retry_after: float | None = None,
        *, retry_in: float | None = None,
    ) -> PollResult:
        ledger = self._ledger()
        reason = " ".join(reason.split())[:MAX_REASON]
        now = self.clock()
        current = await ledger.get(name)
        failures = (current.failures if current else 0) + 1
        every = self.specs[name].every if name in self.specs else None
        if retry_in is None:
            retry_in = self.backoff(every, failures, retry_after)
        result.next_attempt = now + retry_in
        result.error = reason
        health = await ledger.failed(name, now, reason, next_attempt=result.next_attempt)
        result.health = health
        log.warning("source failed", extra={"kv": {
            "source": name, "failures": health.failures, "reason": reason,
            "retry_in_s": round(result.next_attempt - now, 1),
        }})
        flagged = health.failures >= self.settings.source_alert_failures
        if flagged and not health.alerted and await self._alert("failing", health):
            await ledger.set_alerted(name, True)
        await self._finished(result)
        return result

    async def _alert(self, kind: str, health: SourceHealth) -> bool:
        if self.on_alert is None:
            if kind == "failing":
                log.error("source keeps failing", extra={"kv": {
                    "source": health.name, "failures": health.failures,
                    "reason": health.last_error}})
            return True
        try:
            await self.on_alert(kind, health)
        except Exception:  # noqa: BLE001 - told again at the next failure
            log.exception("could not report a failing source", extra={"kv": {
                "source": health.name}})
            return False
        return True

    async def _finished(self, result: PollResult) -> None:
        hooks = [self.on_poll, self.on_change if result.changed else None]
        for hook in hooks:
            if hook is None:
                continue
            try:
                await hook(result)
            except Exception:  # noqa: BLE001
                log.exception("after-poll hook failed", extra={"kv": {"source": result.name}})
        async with self._changed:
            self.history.append(result)
            self._changed.notify_all()

    async def wait_for(
        self, predicate: Callable[[Sequence[PollResult]], bool], timeout: float = 30.0  # noqa: ASYNC109
    ) -> None:
        """Until ``predicate(history)`` holds (tests, benchmarks)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(list(self.history)))

    # -- feeds ------------------------------------------------------------------------------

    async def _poll_feed(
        self, name: str, url: str, before: SourceHealth, result: PollResult
    ) -> tuple[float | None, Validators | None]:
        assert self.fetcher is not None
        sent = Validators(before.etag, before.last_modified)
        try:
            fetched = await self.fetcher.get(url, sent)
        except FetchError as exc:
            raise PollFailed(exc.reason, exc.retry_after) from None
        if fetched.not_modified:
            result.not_modified = True
            return None, None
        download = await asyncio.to_thread(
            parse_download, fetched.body, fetched.content_type, fetched.final_url, url
        )
        newest = download.newest()
        keys = [k for k in download.entry_keys() if k]
        known = await self._ledger().known_ids(keys)
        items = await asyncio.to_thread(lambda: tuple(download.items(known)))
        whole = [i for i in items if isinstance(i, LoadError) and i.origin == url]
        if whole and len(whole) == len(items):
            raise PollFailed(whole[0].reason)  # not a feed at all
        result.skipped = len(known)
        result.read = sum(isinstance(i, Article) for i in items)
        if result.read:
            async with self._write_turn, self.writer() as services:
                result.report = await services.index([Preloaded(url, items)])
        return (newest.timestamp() if newest else None), fetched.validators

    # -- folders and files ------------------------------------------------------------------

    async def _poll_files(self, name: str, target: Path, result: PollResult) -> float | None:
        ledger = self._ledger()
        files, errors = await asyncio.to_thread(list_files, target)
        if not files and errors:
            raise PollFailed(errors[0].reason)
        recorded = await ledger.files(name)
        stats = await asyncio.to_thread(file_stats, files)
        changed = [p for p in files if str(p) in stats and recorded.get(str(p)) != stats[str(p)]]
        gone = [p for p in recorded if p not in stats]
        result.skipped = len(files) - len(changed)
        if not changed:
            if gone:
                await ledger.set_files(name, {}, gone)
            return None
        max_bytes = int(self.settings.max_file_mb * 1_000_000)
        items: tuple[Item, ...] = await asyncio.to_thread(
            lambda: tuple(iter_articles(changed, max_file_bytes=max_bytes))
        )
        articles = [i for i in items if isinstance(i, Article)]
        result.read = len(articles)
        async with self._write_turn, self.writer() as services:
            result.report = await services.index([Preloaded(str(target), items)])
        await ledger.set_files(name, {str(p): stats[str(p)] for p in changed}, gone)
        dates = [a.published.timestamp() for a in articles if a.published is not None]
        return max(dates) if dates else None

    # -- pushed articles (Telegram channel posts) -------------------------------------------

    async def submit(self, source: str, target: str, articles: Sequence[Article]) -> None:
        """Queue ``articles`` of push source ``source`` (e.g. a channel) for the next batch;
        they are in the ledger (and survive a restart) when this returns."""
        ledger = self._ledger()
        await ledger.ensure(source, "channel", target)
        now = self.clock()
        for article in articles:
            await ledger.inbox_put(source, article, now)
        self._pushed.set()

    async def _push_loop(self) -> None:
        while True:
            await self._pushed.wait()
            await self.sleep(self.push_delay)  # let posts arriving together share one run
            self._pushed.clear()
            queued = await self._ledger().inbox()
            if not queued:
                continue
            retry_in = await self._index_pushed(queued)
            if retry_in is not None:
                await self.sleep(retry_in)
                self._pushed.set()
            elif await self._ledger().inbox_size():
                self._pushed.set()

    async def _index_pushed(self, queued: list[InboxItem]) -> float | None:
        """Index the queued posts; None when done, else seconds until the next try."""
        ledger = self._ledger()
        by_source: dict[str, list[InboxItem]] = {}
        for item in queued:
            by_source.setdefault(item.source, []).append(item)
        now = self.clock()
        for source in by_source:
            await ledger.attempted(source, now)
        known = await ledger.known_ids([i.article_id for i in queued])
        try:
            async with self._write_turn, self.writer() as services:
                targets = [
                    Preloaded(f"push:{source}", tuple(i.article for i in items))
                    for source, items in by_source.items()
                ]
                report = await services.index(targets)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - kept in the inbox, tried again
            log.exception("indexing pushed posts failed")
            self._push_failures += 1
            retry_in = self.backoff(5.0, self._push_failures)
            for source in by_source:
                await self._failed(source, PollResult(source, ok=False, at=now),
                                   f"{type(exc).__name__}: {exc}", retry_in=retry_in)
            return retry_in
        self._push_failures = 0
        await ledger.inbox_done(queued)
        done = self.clock()
        first = True
        for source, items in by_source.items():
            before = await ledger.get(source)
            added = sum(i.article_id not in known for i in items)
            dates = [i.article.published.timestamp() for i in items if i.article.published]
            health = await ledger.succeeded(
                source, done, next_attempt=None, added=added,
                newest=max(dates) if dates else None,
            )
            if before is not None and before.alerted:
                await self._alert("recovered", health)
                await ledger.set_alerted(source, False)
            # The run's report goes with the first source only: one run, one after-index hook.
            result = PollResult(source, ok=True, at=done, read=len(items),
                                report=report if first else None, health=health)
            first = False
            await self._finished(result)
        log.info("pushed posts indexed", extra={"kv": {
            "posts": len(queued), "added": report.added, "updated": report.updated,
            "failed": len(report.failed)}})
        return None

    # -- reading ----------------------------------------------------------------------------

    async def health(self) -> list[SourceHealth]:
        return await self._ledger().all()

