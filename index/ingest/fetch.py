"""Every HTTP request the indexer makes, in one place: feeds and pages, fetched politely.

- a User-Agent that names the bot, so a publisher can tell who reads its feed;
- conditional requests: the ``ETag`` and ``Last-Modified`` of the last download go back as
  ``If-None-Match`` / ``If-Modified-Since``, and a ``304 Not Modified`` returns no body at all
  (index/ingest/live.py then parses, embeds and writes nothing);
- one deadline for the whole download (a server that accepts the connection and then
  trickles, or never answers, costs at most ``timeout`` seconds);
- a size cap (``MAX_FILE_MB``), checked on ``Content-Length`` before reading and again on the
  bytes as they arrive (after decompression, so a small gzip bomb is stopped too);
- ``Retry-After`` of a 429/503 is passed on to the caller's back-off.

The one seam is :class:`Fetcher`'s ``transport`` (an ``httpx`` transport); tests use none and
serve real HTTP from 127.0.0.1 instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

__all__ = ["USER_AGENT", "FetchError", "Fetched", "Fetcher", "Validators", "fetch_blocking"]

USER_AGENT = "newsbot/0.1 (news archive bot; reads RSS/Atom feeds, honours ETag and 304)"
DEFAULT_TIMEOUT_S = 20.0
MAX_REDIRECTS = 5
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, "
    "text/html;q=0.7, */*;q=0.5"
)


class FetchError(Exception):
    """A download that failed, with a reason fit to show an operator."""

    def __init__(
        self, reason: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after  # seconds the server asked us to wait (429/503)


@dataclass(frozen=True, slots=True)
class Validators:
    """What the server said identifies the version we have (sent back on the next request)."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.etag:
            out["If-None-Match"] = self.etag
        if self.last_modified:
            out["If-Modified-Since"] = self.last_modified
        return out


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str
    status: int
    body: bytes  # empty for a 304
    content_type: str
    final_url: str
    validators: Validators  # of this response (a 304 keeps the ones sent when it has none)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class Fetcher:
    """An HTTP client for feeds; one per event loop, reused across requests (keep-alive)."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109 - a setting, not a call's timeout
        max_bytes: int = 20_000_000,
        user_agent: str = USER_AGENT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.user_agent = user_agent
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": user_agent, "Accept": ACCEPT},
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self, url: str, validators: Validators | None = None) -> Fetched:
        """Download ``url`` (conditionally, with ``validators``); raises :class:`FetchError`."""
        sent = validators or Validators()
        try:
            async with asyncio.timeout(self.timeout):
                return await self._get(url, sent)
        except TimeoutError:
            raise FetchError(f"no answer within {self.timeout:g} s") from None
        except FetchError:
            raise
        except httpx.TooManyRedirects:
            raise FetchError(f"more than {MAX_REDIRECTS} redirects") from None
        except httpx.TimeoutException:
            raise FetchError(f"no answer within {self.timeout:g} s") from None
        except httpx.ConnectError as exc:
            raise FetchError(f"cannot reach {_host(url) or url}: {_reason(exc)}") from None
        except httpx.InvalidURL as exc:
            raise FetchError(f"invalid URL: {exc}") from None
        except httpx.UnsupportedProtocol:
            raise FetchError("only http:// and https:// URLs can be fetched") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"cannot fetch: {_reason(exc)}") from None

    async def _get(self, url: str, sent: Validators) -> Fetched:
        async with self._client.stream("GET", url, headers=sent.headers()) as response:
            status = response.status_code
            if status == 304:
                return Fetched(url, 304, b"", "", str(response.url),
                               _validators(response, fallback=sent))
            if status >= 400:
                raise FetchError(
                    f"HTTP error {status} {response.reason_phrase}".rstrip(),
                    status=status,
                    retry_after=_retry_after(response.headers.get("Retry-After")),
                )
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise FetchError(self._too_big(int(declared)), status=status)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise FetchError(self._too_big(None), status=status)
                chunks.append(chunk)
            return Fetched(
                url, status, b"".join(chunks), response.headers.get("Content-Type", ""),
                str(response.url), _validators(response),
            )

    def _too_big(self, size: int | None) -> str:
        said = f" ({size:,} bytes)" if size is not None else ""
        return (
            f"response{said} is over the limit of {self.max_bytes:,} bytes; "
            "raise MAX_FILE_MB to load it"
        )


def fetch_blocking(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109
    max_bytes: int = 20_000_000,
    validators: Validators | None = None,
) -> Fetched:
    """:meth:`Fetcher.get` for synchronous callers (the loaders, which run in a worker thread).

    Runs its own event loop, in another thread if this one already runs a loop."""

    async def once() -> Fetched:
        async with Fetcher(timeout=timeout, max_bytes=max_bytes) as fetcher:
            return await fetcher.get(url, validators)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(once())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, once()).result()


def _validators(response: httpx.Response, fallback: Validators | None = None) -> Validators:
    etag = response.headers.get("ETag")
    modified = response.headers.get("Last-Modified")
    if fallback is not None:
        etag = etag or fallback.etag
        modified = modified or fallback.last_modified
    return Validators(etag or None, modified or None)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After``: seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _reason(exc: Any) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def _host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None
