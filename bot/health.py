"""``/healthz`` and ``/metrics`` on ``METRICS_PORT``, in polling and webhook mode.

The HTTP server runs in a thread of its own, not on the bot's event loop, so that it can
still answer when the loop is stuck, and say so: ``/healthz`` hands a probe to the loop and
waits at most ``PROBE_TIMEOUT_S`` for it. It answers 200 ``ok`` only when

- the event loop ran the probe in time;
- the stores are readable: a query on the bot's open connection, and a fresh read-only
  connection to each SQLite file (a deleted, unmounted or unreadable file fails there, while
  the open connection would go on reading its cached pages);
- updates still arrive: the last successful ``getUpdates`` (long polling) or the last webhook
  delivery is at most ``HEALTH_MAX_UPDATE_AGE`` old (counted from start-up until the first).
  A webhook bot may simply be quiet, so before failing it asks Telegram (``getWebhookInfo``,
  at most once a minute): no pending updates and no recent delivery error means quiet, not
  broken;

and 503 with a one-line reason otherwise. ``/metrics`` is the Prometheus exposition of the
application's own registry (bot/metrics.py). Started in ``post_init``, stopped in
``post_shutdown``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.metrics import BotMetrics

__all__ = ["HealthCheck", "HealthServer"]

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0  # the loop must run the probe within this; the image's check waits 5 s
WEBHOOK_INFO_EVERY_S = 60.0


@dataclass
class HealthCheck:
    """The conditions of ``/healthz``, evaluated on the event loop."""

    metrics: BotMetrics
    max_update_age: float  # seconds; 0 = not checked
    webhook: bool
    sqlite_paths: Sequence[Path]
    live_probe: Callable[[], Awaitable[Any]]  # a query on the bot's open store connection
    webhook_info: Callable[[], Awaitable[Any]] | None = None  # Bot.get_webhook_info
    started: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = time.monotonic
    info_every: float = WEBHOOK_INFO_EVERY_S  # getWebhookInfo at most this often
    _info: tuple[float, Any] | None = None

    async def problem(self) -> str | None:
        """None when healthy, else why not (short, for the 503 body and the log)."""
        try:
            await self.live_probe()
            await asyncio.to_thread(self._read_files)
        except Exception as exc:  # noqa: BLE001 - whatever it is, the store is not readable
            return f"store unreadable: {type(exc).__name__}: {exc}"[:300]
        return await self._updates_problem()

    def _read_files(self) -> None:
        for path in self.sqlite_paths:
            try:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
                try:
                    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                finally:
                    conn.close()
            except sqlite3.Error as exc:
                raise sqlite3.OperationalError(f"{path.name}: {exc}") from exc

    async def _updates_problem(self) -> str | None:
        if self.max_update_age <= 0:
            return None
        now = self.clock()
        last = self.metrics.webhook_update_at if self.webhook else self.metrics.get_updates_ok_at
        age = now - (last if last is not None else self.started)
        if age <= self.max_update_age:
            return None
        what = "webhook delivery" if self.webhook else "successful getUpdates"
        since = "since start-up" if last is None else f"for {age:.0f} s"
        if self.webhook and self.webhook_info is not None:
            info = await self._webhook_info(now)
            if info is None:
                return f"no {what} {since}, and getWebhookInfo failed"
            pending = int(getattr(info, "pending_update_count", 0) or 0)
            error_at = getattr(info, "last_error_date", None)
            recent_error = error_at is not None and time.time() - error_at.timestamp() <= (
                self.max_update_age)
            if pending == 0 and not recent_error:
                return None  # quiet, not broken
            error = getattr(info, "last_error_message", None) or ""
            return (f"no {what} {since}: {pending} updates pending at Telegram"
                    + (f", last error: {error}" if recent_error and error else ""))[:300]
        return f"no {what} {since} (HEALTH_MAX_UPDATE_AGE={self.max_update_age:.0f} s)"

    async def _webhook_info(self, now: float) -> Any:
        if self._info is not None and now - self._info[0] < self.info_every:
            return self._info[1]
        assert self.webhook_info is not None
        try:
            info = await self.webhook_info()
        except Exception as exc:  # noqa: BLE001 - reported as the reason
            log.warning("getWebhookInfo failed", extra={"kv": {"error": str(exc)}})
            info = None
        self._info = (now, info)
        return info


class HealthServer:
    """The thread serving ``/healthz`` and ``/metrics``."""

    def __init__(self, check: HealthCheck, metrics: BotMetrics, *, host: str, port: int,
                 probe_timeout: float = PROBE_TIMEOUT_S) -> None:
        self.check = check
        self.metrics = metrics
        self.host, self.port = host, port
        self.probe_timeout = probe_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # scrapes every few seconds: no log
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    status, ctype, body = owner.healthz()
                elif path == "/metrics":
                    status, ctype, body = 200, CONTENT_TYPE_LATEST, owner.metrics.exposition()
                else:
                    status, ctype, body = 404, "text/plain; charset=utf-8", b"not found\n"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

        httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        self._thread = threading.Thread(target=httpd.serve_forever, name="newsbot-health",
                                        daemon=True)
        self._thread.start()
        log.info("health and metrics served", extra={"kv": {
            "listen": self.host, "port": self.port, "paths": "/healthz /metrics"}})

    async def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        await asyncio.to_thread(httpd.shutdown)
        httpd.server_close()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)

    def healthz(self) -> tuple[int, str, bytes]:
        """Runs in the server's thread: the probe itself runs on the bot's loop."""
        text = "text/plain; charset=utf-8"
        assert self._loop is not None
        try:
            future = asyncio.run_coroutine_threadsafe(self.check.problem(), self._loop)
        except RuntimeError:  # the loop is closed
            return 503, text, b"unhealthy: the event loop is not running\n"
        try:
            problem = future.result(self.probe_timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            problem = f"the event loop did not answer within {self.probe_timeout:g} s"
        except Exception as exc:  # noqa: BLE001
            problem = f"health probe failed: {type(exc).__name__}: {exc}"[:300]
        if problem is None:
            return 200, text, b"ok\n"
        log.warning("unhealthy", extra={"kv": {"reason": problem}})
        return 503, text, f"unhealthy: {problem}\n".encode()
