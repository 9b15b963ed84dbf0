"""A real HTTP server on 127.0.0.1 serving feeds the test changes as it goes (tests/ingest/test_live*.py,
tests/bot/test_live_bot.py).

Each path is a :class:`Route` the test edits between polls: the body, its ETag / Last-Modified
(honoured like a real server: a matching ``If-None-Match`` / ``If-Modified-Since`` gets a 304
without a body), or a failure — a status code, a hang (the request is never answered until the
test lets it go), an oversize body (sent without ``Content-Length``, so only the reader's own
cap stops it). Every request is recorded with its headers and time, and waiting on them is an
event, not a sleep.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None
    status: int = 200
    hang: bool = False
    oversize: int = 0  # bytes of junk streamed instead of the body


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    at: float
    status: int = 0


@dataclass
class FeedServer:
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def start(self) -> FeedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def hits(self, path: str) -> list[Request]:
        with self._cond:
            return [r for r in self.requests if r.path == path]

    def wait_hits(self, path: str, count: int, timeout: float = 30.0) -> list[Request]:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        with self._cond:
            while len([r for r in self.requests if r.path == path]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{path}: {len(self.hits_unlocked(path))} requests, "
                                       f"wanted {count}")
                self._cond.wait(left)
            return [r for r in self.requests if r.path == path]

    def hits_unlocked(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        route = self.routes.get(path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        status = 404 if route is None else route.status
        if route is not None and route.status == 200 and not route.hang and not route.oversize:
            fresh_etag = route.etag and headers.get("if-none-match") == route.etag
            fresh_date = (route.last_modified and not route.etag
                          and headers.get("if-modified-since") == route.last_modified)
            if fresh_etag or fresh_date:
                status = 304
        with self._cond:
            self.requests.append(Request(path, headers, time.monotonic(), status))
            self._cond.notify_all()
        if route is None:
            handler.send_error(404)
            return
        if route.hang:
            self._release.wait(60)
            return
        if route.oversize:
            handler.send_response(200)
            handler.send_header("Content-Type", route.content_type)
            handler.end_headers()
            chunk = b"<!-- " + b"x" * 4090 + b" -->\n"
            sent = 0
            try:
                while sent < route.oversize:
                    handler.wfile.write(chunk)
                    sent += len(chunk)
            except OSError:
                pass  # the reader hung up at its cap
            return
        if status >= 400:
            handler.send_response(status)
            if status in (429, 503):
                handler.send_header("Retry-After", "1")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(status)
        if route.etag:
            handler.send_header("ETag", route.etag)
        if route.last_modified:
            handler.send_header("Last-Modified", route.last_modified)
        if status == 304:
            handler.end_headers()
            return
        handler.send_header("Content-Type", route.content_type)
        handler.send_header("Content-Length", str(len(route.body)))
        handler.end_headers()
        handler.wfile.write(route.body)


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def rss(title: str, items: list[dict[str, str]], link: str = "https://wire.example/") -> bytes:
    """An RSS 2.0 feed; each item: link, title, text, published (ISO or RFC 822)."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>{escape(link)}</link><language>it</language>",
    ]
    for item in items:
        parts.append(
            "<item>"
            f"<title>{escape(item['title'])}</title>"
            f"<link>{escape(item['link'])}</link>"
            f"<guid>{escape(item['link'])}</guid>"
            f"<pubDate>{escape(item['published'])}</pubDate>"
            f"<description>{escape(item['text'])}</description>"
            "</item>"
        )
    parts.append("</channel></rss>")
    return "\n".join(parts).encode("utf-8")


# Invented places: no article anywhere else mentions them.
TOWNS = ["Zorvenia", "Quillabrano", "Maretosso", "Brivellina", "Cantavorre", "Ulmeria"]
THINGS = ["lanterne di carta", "orologi ad acqua", "mappe celesti", "organetti a manovella",
          "bambole di legno", "vetrate colorate"]


def story(i: int) -> dict[str, str]:
    town, thing = TOWNS[i], THINGS[i]
    return {
        "link": f"https://wire.example/{town.lower()}",
        "title": f"A {town} apre il museo delle {thing}",
        "text": (
            f"Il comune di {town} ha inaugurato sabato il nuovo museo delle {thing}. "
            f"La collezione di {town} conta oltre trecento pezzi donati dalle famiglie del "
            f"paese. Il sindaco di {town} ha detto che il museo resterà aperto tutti i giorni."
        ),
        "published": http_date(1_717_232_400 + i * 3600),  # June 2024
    }
