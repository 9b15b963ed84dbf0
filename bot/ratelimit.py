"""Two kinds of limits: how often one user may ask, and how fast the bot may talk to Telegram.

Incoming: a sliding one-minute window per user. A refused user hears it once per window, not
once per message, so flooding the bot cannot make the bot flood the chat back.

Outgoing: PTB's :class:`~telegram.ext.AIORateLimiter` keeps within Telegram's flood limits and
honours 429 ``retry_after``. It does not retry transport failures, which on a real network
happen (a 502 from Telegram's front, a connection reset). Those calls never reached the Bot
API's logic, so repeating them cannot duplicate a message. A *timeout* is different: the
request may have been executed, so it is not repeated (a duplicate answer is worse than a
late error).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from telegram.error import BadRequest, NetworkError, TimedOut
from telegram.ext import AIORateLimiter

log = logging.getLogger(__name__)

WINDOW = 60.0
MAX_IN_FLIGHT = 6  # concurrent Bot API requests (30 msg/s × ~100 ms RTT needs ~3)


@dataclass(slots=True)
class Decision:
    allowed: bool
    retry_in: float = 0.0
    notify: bool = False  # refused, and the user has not been told yet in this window


class UserRateLimiter:
    """At most ``per_minute`` actions per user in any 60-second window (0 = unlimited)."""

    def __init__(
        self, per_minute: int, *, window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.window = window
        self.clock = clock
        self._hits: dict[int, deque[float]] = {}
        self._told: set[int] = set()
        self._checks = 0

    def check(self, user_id: int) -> Decision:
        if self.per_minute <= 0:
            return Decision(True)
        now = self.clock()
        self._checks += 1
        if self._checks % 1024 == 0:
            self._forget_idle(now)
        hits = self._hits.setdefault(user_id, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) < self.per_minute:
            hits.append(now)
            self._told.discard(user_id)
            return Decision(True)
        retry_in = max(0.0, hits[0] + self.window - now)
        notify = user_id not in self._told
        self._told.add(user_id)
        return Decision(False, retry_in, notify)

    def _forget_idle(self, now: float) -> None:
        idle = [u for u, h in self._hits.items() if not h or h[-1] <= now - self.window]
        for u in idle:
            del self._hits[u]
            self._told.discard(u)


class FloodControl(AIORateLimiter):
    """:class:`AIORateLimiter` plus bounded retries of requests that failed in transit."""

    def __init__(
        self,
        *,
        overall_max_rate: float = 30,
        group_max_rate: float = 20,
        max_retries: int = 3,
        backoff: float = 0.25,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        super().__init__(
            overall_max_rate=overall_max_rate,
            overall_time_period=1 if overall_max_rate else 0,
            group_max_rate=group_max_rate,
            group_time_period=60 if group_max_rate else 0,
            max_retries=max_retries,
        )
        self.network_retries = max_retries
        self.backoff = backoff
        # Requests beyond this wait here rather than in httpx's pool, which would time them
        # out (PTB's pool_timeout is 1 s) and scans its connections per request (quadratic).
        self._in_flight = asyncio.Semaphore(max(1, max_in_flight))

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        async def limited(*a: Any, **kw: Any) -> bool | dict[str, Any] | list[dict[str, Any]]:
            async with self._in_flight:
                return await callback(*a, **kw)

        attempt = 0
        while True:
            try:
                return await super().process_request(
                    limited, args, kwargs, endpoint, data, rate_limit_args
                )
            except (TimedOut, BadRequest):  # maybe executed / will fail the same way again
                raise
            except NetworkError as exc:
                if attempt >= self.network_retries:
                    raise
                attempt += 1
                delay = self.backoff * 2 ** (attempt - 1)
                log.warning(
                    "Bot API call failed in transit; retrying",
                    extra={"kv": {"method": endpoint, "error": str(exc), "attempt": attempt,
                                  "delay_s": delay}},
                )
                await asyncio.sleep(delay)
