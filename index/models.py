"""Plain records passed between the indexer's stages and to the retrieval's callers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(slots=True)
class Article:
    """One article as loaded, before or after cleaning.

    ``origin`` names where it came from (``path`` or ``path:line``) so every error and
    every duplicate report can point back to the input.
    """

    id: str
    text: str
    title: str = ""
    url: str | None = None
    published: datetime | None = None  # timezone-aware, UTC
    source: str | None = None
    lang: str | None = None
    origin: str = ""
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class LoadError:
    """A record or file that could not be loaded, and why (shown to the user as is)."""

    origin: str
    reason: str


@dataclass(slots=True)
class Chunk:
    """A passage of an article's cleaned text: ``text == article.text[start:end]``."""

    article_id: str
    ord: int
    start: int
    end: int
    text: str


@dataclass(slots=True)
class OutletRef:
    """Another outlet that carried the same story (a near-duplicate article)."""

    article_id: str
    source: str | None
    url: str | None
    title: str = ""


@dataclass(slots=True)
class Hit:
    """One quoted passage of a reply.

    ``quote`` is an exact substring of the article's cleaned text starting at ``quote_start``;
    ``highlight_start``/``highlight_end`` are offsets *within the quote* of the sentence that
    best answers the question. ``ellipsis_before``/``ellipsis_after`` tell renderers the quote
    was cut from a longer text.
    """

    article_id: str
    title: str
    source: str | None
    url: str | None
    published: datetime | None
    lang: str | None
    quote: str
    quote_start: int
    highlight_start: int
    highlight_end: int
    score: float
    chunk_id: str = ""
    ellipsis_before: bool = False
    ellipsis_after: bool = False
    also_reported_by: list[OutletRef] = field(default_factory=list)

    @property
    def highlight(self) -> str:
        return self.quote[self.highlight_start : self.highlight_end]


@dataclass(slots=True)
class Filters:
    """Restrictions understood from a question (operators or natural date phrases)."""

    date_from: datetime | None = None  # inclusive, UTC
    date_to: datetime | None = None  # exclusive, UTC
    sources: list[str] = field(default_factory=list)  # lower-cased outlet names
    langs: list[str] = field(default_factory=list)  # ISO 639-1 codes
    # ``asof:`` — the moment the question is answered as of (aware): relative dates and
    # recency resolve against it. Not a restriction: later articles stay searchable.
    as_of: datetime | None = None

    def is_empty(self) -> bool:
        """No restriction on which passages qualify (``as_of`` restricts nothing)."""
        return not (self.date_from or self.date_to or self.sources or self.langs)

    def shown(self) -> bool:
        """Whether a reply has a filters line: a restriction or an ``asof:``."""
        return not self.is_empty() or self.as_of is not None


@dataclass(slots=True)
class Answer:
    """What the retrieval returns for one question; renderers turn it into text."""

    question: str
    query: str  # the question with filter operators and date phrases removed
    filters: Filters
    hits: list[Hit]
    suggestion: str | None = None  # shown when nothing relevant was found
    # Date phrases written in prose ("nell'aprile 2000") may name the event, not the
    # publication: when they exclude every relevant passage, the search is repeated without
    # them and the phrases that were set aside are kept here for the reply to mention.
    relaxed: Filters | None = None
    # The vector store failed (and failed again after reopening): the passages were ranked
    # by their words alone, and the reply says so.
    keyword_only: bool = False
    # The date filter's period holds no article at all (counted in the store, whatever the
    # question): only then may a reply say "nothing published".
    period_empty: bool = False
    # The question asked only for a period ("cosa è successo oggi?"): the hits are that
    # period's top stories, picked as a digest picks them (index/digest/stories.py).
    top_stories: bool = False

    @property
    def found(self) -> bool:
        return bool(self.hits)
