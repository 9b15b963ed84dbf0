"""The bot's Prometheus metrics: one registry per ``Application``, and the hooks that feed it.

A registry of its own (not prometheus_client's global one) so that tests, benchmarks and
anything else running several bots in one process get separate, exact counts. The metrics
are always counted (a few dict updates per question); ``METRICS_PORT`` only decides whether
bot/health.py serves them.

Where they are counted, each in one place:

- questions, answer latency, not-found answers: :meth:`BotServices.log_question`, where every
  answer (message, "More", inline) is logged;
- feedback: :meth:`BotServices.record_feedback`;
- Bot API errors by HTTP status (429 included, even when PTB's rate limiter then retries the
  call) and the last successful ``getUpdates``: :class:`MeteredRequest`, the HTTP layer every
  Bot API call goes through;
- webhook deliveries: a handler in the first group (:func:`bot.app.add_handlers`);
- per-source ingestion: the live indexer's ``on_poll`` (bot/live.py);
- digest and alert deliveries: :func:`count_delivery`;
- the in-memory copy: read from the retriever at scrape time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest
from telegram.error import NetworkError, TimedOut
from telegram.request import HTTPXRequest, RequestData

__all__ = ["KEY", "BotMetrics", "MeteredRequest", "count_delivery", "metrics_of"]

# No ``*_created`` series beside every counter: they double the exposition and say nothing
# an operator needs (process-wide, like the rest of prometheus_client's output settings).
disable_created_metrics()

KEY = "metrics"  # application.bot_data[KEY]

# Seconds from the question's arrival to the answer sent: most answers take 50 ms - 2 s.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


class BotMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.questions = Counter(
            "newsbot_questions", "Questions answered, by kind (message, more, inline).",
            ["kind"], registry=r)
        self.answer_seconds = Histogram(
            "newsbot_answer_seconds", "Time from a question to its answer, seconds.",
            ["kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.not_found = Counter(
            "newsbot_not_found_answers", "Answers with no passage found, by kind.",
            ["kind"], registry=r)
        self.feedback = Counter(
            "newsbot_feedback", "Votes on answers (up = 👍, down = 👎).", ["vote"], registry=r)
        self.bot_api_errors = Counter(
            "newsbot_bot_api_errors",
            "Bot API calls that failed, by method and HTTP status (network, timeout: no answer).",
            ["method", "code"], registry=r)
        self.last_get_updates = Gauge(
            "newsbot_last_get_updates_timestamp_seconds",
            "Unix time of the last successful getUpdates (long polling).", registry=r)
        self.webhook_updates = Counter(
            "newsbot_webhook_updates", "Updates received by the webhook.", registry=r)
        self.last_webhook_update = Gauge(
            "newsbot_last_webhook_update_timestamp_seconds",
            "Unix time of the last update delivered to the webhook.", registry=r)
        self.source_last_success = Gauge(
            "newsbot_source_last_success_timestamp_seconds",
            "Unix time of the last successful read of each source.", ["source"], registry=r)
        self.source_failures = Counter(
            "newsbot_source_failures", "Failed reads of each source.", ["source"], registry=r)
        self.source_articles = Counter(
            "newsbot_source_articles",
            "Articles added or updated from each source.", ["source"], registry=r)
        self.digest_deliveries = Counter(
            "newsbot_digest_deliveries",
            "Digest deliveries by outcome (delivered, failed).", ["outcome"], registry=r)
        self.alerts_sent = Counter(
            "newsbot_alerts_sent", "Alerts (/follow) sent to readers.", registry=r)
        self.alert_failures = Counter(
            "newsbot_alert_failures", "Alerts that could not be delivered.", registry=r)
        self.memory_copy_bytes = Gauge(
            "newsbot_memory_copy_bytes",
            "Size of the in-memory copy of the corpus vectors (0 while off or loading).",
            registry=r)
        self.memory_copy_chunks = Gauge(
            "newsbot_memory_copy_chunks", "Passages in the in-memory copy.", registry=r)
        # Series that exist from the start, at 0, so that rate() and alerts see them.
        for kind in ("message", "more", "inline"):
            self.questions.labels(kind)
            self.answer_seconds.labels(kind)
            self.not_found.labels(kind)
        for vote in ("up", "down"):
            self.feedback.labels(vote)
        for outcome in ("delivered", "failed"):
            self.digest_deliveries.labels(outcome)
        # Monotonic times the health check compares (wall-clock gauges above are for humans).
        self.get_updates_ok_at: float | None = None
        self.webhook_update_at: float | None = None

    # -- hooks ------------------------------------------------------------------------------

    def answered(self, kind: str, seconds: float, hits: int) -> None:
        self.questions.labels(kind).inc()
        self.answer_seconds.labels(kind).observe(seconds)
        if hits == 0:
            self.not_found.labels(kind).inc()

    def voted(self, vote: int) -> None:
        self.feedback.labels("up" if vote > 0 else "down").inc()

    def got_updates(self) -> None:
        self.get_updates_ok_at = time.monotonic()
        self.last_get_updates.set(time.time())

    def webhook_update(self) -> None:
        self.webhook_update_at = time.monotonic()
        self.webhook_updates.inc()
        self.last_webhook_update.set(time.time())

    def api_error(self, method: str, code: int | str) -> None:
        self.bot_api_errors.labels(method, str(code)).inc()

    def polled(self, source: str, *, ok: bool, at: float, articles: int) -> None:
        if ok:
            self.source_last_success.labels(source).set(at)
            if articles:
                self.source_articles.labels(source).inc(articles)
        else:
            self.source_failures.labels(source).inc()

    def watch_memory_copy(self, status: Callable[[], Any]) -> None:
        """``status()`` → the retriever's CopyStatus, read at every scrape."""

        def mb() -> float:
            s = status()
            return float(s.nbytes) if s.state in ("ready", "stale", "loading") else 0.0

        self.memory_copy_bytes.set_function(mb)
        self.memory_copy_chunks.set_function(lambda: float(status().chunks))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def metrics_of(application: Any) -> BotMetrics | None:
    """The application's metrics (None for an Application not built by build_application)."""
    found = application.bot_data.get(KEY) if application is not None else None
    return found if isinstance(found, BotMetrics) else None


def count_delivery(application: Any, kind: str, *, ok: bool) -> None:
    """A digest (``kind="digest"``) or alert (``"alert"``) delivered, or given up for now."""
    metrics = metrics_of(application)
    if metrics is None:
        return
    if kind == "alert":
        (metrics.alerts_sent if ok else metrics.alert_failures).inc()
    else:
        metrics.digest_deliveries.labels("delivered" if ok else "failed").inc()


class MeteredRequest(HTTPXRequest):
    """PTB's HTTP client, counting what came back: a status other than 200 by method and
    code, a call that got no answer as ``network`` or ``timeout``; and, for ``getUpdates``,
    when it last succeeded (the health check's proof that updates still arrive)."""

    def __init__(self, metrics: BotMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[int, bytes]:
        # The method is the URL's last segment (after bot<token>/, never the token itself);
        # a file download's last segment is a file path: one label for all of them.
        endpoint = "file_download" if "/file/bot" in url else url.rsplit("/", 1)[-1]
        try:
            code, payload = await super().do_request(url, method, request_data, *args, **kwargs)
        except TimedOut:
            self.metrics.api_error(endpoint, "timeout")
            raise
        except NetworkError:
            self.metrics.api_error(endpoint, "network")
            raise
        if code == 200:
            if endpoint == "getUpdates":
                self.metrics.got_updates()
        else:
            self.metrics.api_error(endpoint, code if code else _code_in(payload))
        return code, payload


def _code_in(payload: bytes) -> int | str:
    try:
        return int(json.loads(payload).get("error_code"))
    except (ValueError, TypeError, AttributeError):
        return "unknown"
