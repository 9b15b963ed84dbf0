"""Structured (key=value) logs that can never carry the bot token.

The token appears in every Bot API URL (``/bot<token>/method``) that httpx logs, so
redaction happens in a filter on the handlers, below every logger, not at call sites.
"""

from __future__ import annotations

import logging
import re
import sys

_TOKEN_RE = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}\b")
_secrets: set[str] = set()


def register_secret(secret: str | None) -> None:
    if secret:
        _secrets.add(secret)


def redact(text: str) -> str:
    for s in _secrets:
        text = text.replace(s, "<redacted>")
    return _TOKEN_RE.sub("<redacted-token>", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.msg = redact(message)
        record.args = None
        return True


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = (
            f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} level={record.levelname} "
            f"logger={record.name} msg={record.getMessage()!r}"
        )
        extra = getattr(record, "kv", None)
        if isinstance(extra, dict):
            base += "".join(f" {k}={v!r}" for k, v in extra.items())
        if record.exc_text:
            base += "\n" + record.exc_text
        return redact(base)


def configure_logging(level: str = "INFO", *, quiet_console: bool = False) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_newsbot", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler._newsbot = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    handler.setFormatter(KeyValueFormatter())
    handler.setLevel(logging.WARNING if quiet_console else getattr(logging, level.upper(), 20))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for noisy in ("httpx", "httpcore", "chromadb", "sentence_transformers", "urllib3",
                  "apscheduler", "trafilatura", "htmldate", "transformers"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
