"""Saved HTML pages (main text by trafilatura) and HTML fragments as plain paragraphs."""

from __future__ import annotations

import re
from collections.abc import Iterator

from lxml import etree
from lxml import html as lxml_html

from index.ingest.datelines import page_titles
from index.ingest.records import Item, from_record, host_name
from index.models import LoadError


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment with one blank line between blocks.

    Feed entries are fragments, too short for main-text extraction; what matters is that
    paragraphs stay paragraphs so passages can be quoted sentence by sentence.
    """
    if not markup.strip():
        return ""
    try:
        root = lxml_html.fragment_fromstring(markup, create_parent="div")
    except (etree.ParserError, ValueError):
        return collapse_blank_lines(re.sub(r"<[^>]+>", " ", markup))
    etree.strip_tags(root, etree.Comment, etree.ProcessingInstruction)
    pieces: list[str] = []
    walker = etree.iterwalk(root, events=("start", "end"))
    for event, element in walker:
        tag = str(element.tag).lower()
        if event == "start":
            if tag in _SKIP_TAGS:
                walker.skip_subtree()
                continue
            pieces.append(_start_marker(tag))
            pieces.append(_inline(element.text or ""))
        else:
            if tag in _BLOCK_TAGS:
                pieces.append("\n\n")
            if element is not root:
                pieces.append(_inline(element.tail or ""))
    return collapse_blank_lines("".join(pieces))


def load_html(data: bytes, origin: str, url: str | None = None) -> Iterator[Item]:
    """Main text and metadata of a saved page; navigation, ads and footers are left out."""
    # Imported here: trafilatura is slow to import and most corpora have no HTML.
    import trafilatura

    try:
        doc = trafilatura.bare_extraction(
            data,
            url=url,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            date_extraction_params={
                "outputformat": "%Y-%m-%dT%H:%M:%S%z",
                "original_date": True,
            },
        )
    except Exception as exc:  # trafilatura raises assorted lxml/parser errors
        yield LoadError(origin, f"cannot parse HTML: {exc}")
        return
    text = _paragraphs(getattr(doc, "text", None) or "")
    if not text:
        yield LoadError(origin, "no article text found in the HTML page")
        return
    page_url = getattr(doc, "url", None) or url
    record: dict[str, object] = {
        "title": getattr(doc, "title", None) or "",
        "text": text,
        "url": page_url,
        "published": getattr(doc, "date", None),
        "source": getattr(doc, "sitename", None) or host_name(page_url),
        "lang": getattr(doc, "language", None),
    }
    author = getattr(doc, "author", None)
    if author:
        record["author"] = author
    record.update(page_titles(data))  # fallbacks for a headline that is only a dateline
    yield from_record(record, origin, "the page")


def _paragraphs(text: str) -> str:
    """Trafilatura puts one block per line; a blank line between them marks paragraphs."""
    return "\n\n".join(line.strip() for line in text.split("\n") if line.strip())


_BLOCK_TAGS = frozenset({
    "p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
    "tr", "table", "section", "article", "header", "footer", "figure", "figcaption", "dl",
    "dt", "dd", "hr", "address", "aside", "main", "nav",
})
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "head", "title"})


def _start_marker(tag: str) -> str:
    if tag == "br":
        return "\n"
    return "\n\n" if tag in _BLOCK_TAGS else ""


def _inline(text: str) -> str:
    """Source line breaks inside HTML text are just spaces."""
    return re.sub(r"\s+", " ", text)


def collapse_blank_lines(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.split("\n")]
    joined = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", joined).strip()
