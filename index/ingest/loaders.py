"""Reading articles from files, folders and feeds into ``Article`` records: which inputs a
run reads and which format's loader reads each (``json_files``, ``text_files``,
``html_pages``, ``feeds``; what they share is in ``records``).

Loading never stops at the first bad input: every unreadable file, broken line or empty
record becomes a ``LoadError`` naming where it is (``path``, ``path:line``, ``path#entry``)
and why, and the rest of the run goes on. Ids are derived deterministically so re-indexing
the same input finds the same articles.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from index.ingest.feeds import load_feed_file, load_url
from index.ingest.html_pages import load_html
from index.ingest.json_files import load_json, load_jsonl
from index.ingest.records import Item, guarded
from index.ingest.text_files import load_text
from index.models import Article, LoadError


@dataclass(frozen=True, slots=True)
class Preloaded:
    """Articles the caller has already read (a downloaded feed, Telegram posts), indexed like
    any other input; ``origin`` names where they came from (index/ingest/live.py)."""

    origin: str
    items: tuple[Item, ...]

    def __str__(self) -> str:
        return self.origin


# What an index run reads: a file, a folder, a feed URL, or articles read already.
Target = str | Path | Preloaded

JSONL_EXT = frozenset({".jsonl", ".ndjson"})
JSON_EXT = frozenset({".json"})
TEXT_EXT = frozenset({".txt", ".md"})
HTML_EXT = frozenset({".html", ".htm"})
FEED_EXT = frozenset({".xml", ".rss", ".atom"})
SUPPORTED_EXT = JSONL_EXT | JSON_EXT | TEXT_EXT | HTML_EXT | FEED_EXT
FETCH_TIMEOUT_S = 20.0


def iter_articles(
    paths: Iterable[Target] | str | Path,
    *,
    max_file_bytes: int = 20_000_000,
    fetch_timeout: float = FETCH_TIMEOUT_S,
) -> Iterator[Article | LoadError]:
    """Yield every article (or error) found under ``paths``, in a deterministic order.

    Folders are walked recursively in name order so ids, origins and duplicate decisions
    ("the first one seen is canonical") do not depend on the file system's listing order.
    """
    if isinstance(paths, str | Path):  # one path, not an iterable of its characters
        paths = [paths]
    for target in paths:
        if isinstance(target, Preloaded):
            yield from target.items
            continue
        name = str(target)
        if _is_url(name):
            yield from guarded(name, load_url(name, max_file_bytes, fetch_timeout))
            continue
        path = Path(target)
        try:
            is_dir, exists = path.is_dir(), path.exists()
        except OSError as exc:
            yield LoadError(name, f"cannot access: {_os_reason(exc)}")
            continue
        if is_dir:
            yield from _load_folder(path, max_file_bytes)
        elif exists:
            yield from _load_file(path, max_file_bytes, explicit=True)
        else:
            yield LoadError(name, "no such file or folder")


def list_files(target: Path) -> tuple[list[Path], list[LoadError]]:
    """The files a folder (or a single file) source would read, in the order they are read,
    without reading them: what a rescan compares by size and modification time."""
    if not target.is_dir():
        return ([target], []) if target.exists() else ([], [LoadError(str(target),
                                                                       "no such file or folder")])
    files: list[Path] = []
    errors: list[LoadError] = []
    for path, error in _walk(target):
        if error is not None:
            errors.append(error)
        elif path.suffix.lower() in SUPPORTED_EXT:
            files.append(path)
    return files, errors


def _load_folder(folder: Path, max_file_bytes: int) -> Iterator[Item]:
    for path, error in _walk(folder):
        if error is not None:
            yield error
        elif path.suffix.lower() in SUPPORTED_EXT:
            yield from _load_file(path, max_file_bytes, explicit=False)


def _walk(folder: Path) -> Iterator[tuple[Path, LoadError | None]]:
    """Files under ``folder`` in name order, skipping hidden entries (``.git``, ``.DS_Store``)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        yield folder, LoadError(str(folder), f"cannot list folder: {_os_reason(exc)}")
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = folder / entry.name
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(path)
        else:
            yield path, None


def _load_file(path: Path, max_file_bytes: int, *, explicit: bool) -> Iterator[Item]:
    origin = str(path)
    ext = path.suffix.lower()
    loader = _LOADERS.get(ext)
    if loader is None:
        if explicit:
            supported = ", ".join(sorted(SUPPORTED_EXT))
            yield LoadError(origin, f"unsupported file type {ext or '(none)'!r}; use {supported}")
        return
    data = _read_bytes(path, max_file_bytes)
    if isinstance(data, LoadError):
        yield data
        return
    if ext not in FEED_EXT and b"\x00" in data[:65536]:
        yield LoadError(origin, "binary file (contains NUL bytes), not text")
        return
    yield from guarded(origin, loader(data, origin))


def _read_bytes(path: Path, max_file_bytes: int) -> bytes | LoadError:
    origin = str(path)
    try:
        size = path.stat().st_size
        if size > max_file_bytes:
            return LoadError(origin, _too_big(size, max_file_bytes))
        return path.read_bytes()
    except OSError as exc:
        return LoadError(origin, f"cannot read file: {_os_reason(exc)}")


def _too_big(size: int, limit: int) -> str:
    megabytes = f" ({size / 1e6:.1f} MB > {limit / 1e6:.1f} MB)" if limit >= 100_000 else ""
    return (
        f"file is {size:,} bytes, over the limit of {limit:,} bytes{megabytes}; "
        "raise MAX_FILE_MB to load it"
    )


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc)


_LOADERS: dict[str, Callable[[bytes, str], Iterator[Item]]] = {
    **dict.fromkeys(JSONL_EXT, load_jsonl),
    **dict.fromkeys(JSON_EXT, load_json),
    **dict.fromkeys(TEXT_EXT, load_text),
    **dict.fromkeys(HTML_EXT, load_html),
    **dict.fromkeys(FEED_EXT, load_feed_file),
}


def _is_url(name: str) -> bool:
    return name.lower().startswith(("http://", "https://"))
