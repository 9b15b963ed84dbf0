"""A feed server on 127.0.0.1 for the benchmarks: the outside world's news site.

A trimmed copy of the tests' feed server (tests/feedserver.py, which also fails, hangs and
floods on request): here a route only serves its body, with an ``ETag``, and answers a
conditional GET whose ``If-None-Match`` matches with ``304``, as a real site does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape


@dataclass(frozen=True, slots=True)
class Route:
    body: bytes
    etag: str


class FeedServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.polls = 0  # requests answered, 304s included
        self.not_modified = 0
        self._lock = threading.Lock()
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

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def start(self) -> FeedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def set(self, path: str, body: bytes, etag: str) -> None:
        with self._lock:
            self.routes[path] = Route(body, etag)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            route = self.routes.get(handler.path.split("?", 1)[0])
            self.polls += 1
            fresh = route is not None and handler.headers.get("If-None-Match") == route.etag
            self.not_modified += int(fresh)
        if route is None:
            handler.send_error(404)
            return
        handler.send_response(304 if fresh else 200)
        handler.send_header("ETag", route.etag)
        if fresh:
            handler.end_headers()
            return
        handler.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        handler.send_header("Content-Length", str(len(route.body)))
        handler.end_headers()
        handler.wfile.write(route.body)


def rss(title: str, items: list[dict[str, str]], link: str = "https://wire.example/") -> bytes:
    """An RSS 2.0 feed; each item: link, title, text, published (RFC 822)."""
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


# Invented places and things: no article anywhere else mentions them.
TOWNS = ["Zorvenia", "Quillabrano", "Maretosso", "Brivellina", "Cantavorre", "Ulmeria",
         "Dravonzo", "Felcastro", "Gessaronda", "Lumbricale", "Pratoverga", "Sassimbrone",
         "Tortelvia", "Vallorsina", "Cerbonaglia", "Fiumarosso"]  # fmt: skip
THINGS = ["lanterne di carta", "orologi ad acqua", "mappe celesti", "organetti a manovella",
          "bambole di legno", "vetrate colorate", "trottole di latta", "clessidre di vetro",
          "aquiloni di seta", "carillon d'ottone", "maschere di cuoio", "barche in bottiglia",
          "pipe di radica", "ventagli dipinti", "lanterne magiche", "bussole antiche"]  # fmt: skip


def story(i: int, when: float) -> dict[str, str]:
    """Article ``i`` of the wire: a museum opening in an invented town, published ``when``."""
    town, thing = TOWNS[i % len(TOWNS)], THINGS[i % len(THINGS)]
    return {
        "link": f"https://wire.example/{town.lower()}-{i}",
        "title": f"A {town} apre il museo delle {thing}",
        "text": (
            f"Il comune di {town} ha inaugurato sabato il nuovo museo delle {thing}. "
            f"La collezione di {town} conta oltre trecento pezzi donati dalle famiglie del "
            f"paese. Il sindaco di {town} ha detto che il museo resterà aperto tutti i giorni."
        ),
        "published": formatdate(when, usegmt=True),
    }
