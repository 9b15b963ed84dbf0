"""Structured (key=value) logs that can never carry the bot token.

The token appears in every Bot API URL (``/bot<token>/method``) that httpx logs, and in the
messages of the exceptions PTB raises around those requests. A filter on our own handler is
not enough: pytest's caplog, a library's handler or one added by an operator would still see
the raw record. So redaction happens where records are *born*: a ``LogRecordFactory`` wrapper
rewrites the message, the arguments, the traceback text and the stack of every record before
any handler or filter sees it. The handler filter stays as a second line of defence.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from typing import Any

_TOKEN_RE = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}\b")
_secrets: set[str] = set()
_lock = threading.Lock()
_installed_factory: Any = None


def register_secret(secret: str | None) -> None:
    """Redact ``secret`` from every log record from now on (and install the redaction)."""
    if secret:
        with _lock:
            _secrets.add(secret)
    install_record_redaction()


def redact(text: str) -> str:
    for s in tuple(_secrets):
        if s in text:
            text = text.replace(s, "<redacted>")
    return _TOKEN_RE.sub("<redacted-token>", text)


def _needs_redaction(text: str) -> bool:
    return any(s in text for s in tuple(_secrets)) or _TOKEN_RE.search(text) is not None


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Make ``record`` safe in place: message, traceback and stack lose every secret.

    The exception object itself is dropped only when its text held a secret, because code
    further down (a formatter, Sentry) could render it again from ``exc_info``.
    """
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken %-format must not hide the record
        message = f"{record.msg!r} % {record.args!r}"
    if _needs_redaction(message):
        record.msg = redact(message)
        record.args = None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text and _needs_redaction(record.exc_text):
        record.exc_text = redact(record.exc_text)
        record.exc_info = None
    if record.stack_info and _needs_redaction(record.stack_info):
        record.stack_info = redact(record.stack_info)
    kv = getattr(record, "kv", None)
    if isinstance(kv, dict):
        record.kv = {k: redact(v) if isinstance(v, str) else v for k, v in kv.items()}
    return record


def install_record_redaction() -> None:
    """Wrap the current record factory once; wrapping twice would only cost time."""
    global _installed_factory
    with _lock:
        current = logging.getLogRecordFactory()
        if current is _installed_factory:
            return
        inner = current

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return redact_record(inner(*args, **kwargs))

        _installed_factory = factory
        logging.setLogRecordFactory(factory)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
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
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            base += "\n" + record.exc_text
        return redact(base)


def configure_logging(level: str = "INFO", *, quiet_console: bool = False) -> None:
    install_record_redaction()
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


install_record_redaction()
