"""Telegram's flavour of HTML, as the Bot API parses ``parse_mode=HTML``.

The parser follows https://core.telegram.org/bots/api#html-style, with error messages worded
like the Bot API server's (tdlib's ``parse_html``) so test failures read like production logs.
It is deliberately *stricter* than tdlib in one respect, documented by Telegram but not
enforced by it: a bare ``&`` or ``>`` is an error, not a literal (``strict=False`` relaxes it). Such text renders fine today
but is exactly the sign of a missing ``html.escape`` that breaks on the next ``<``.

Lengths are counted in UTF-16 code units, the unit Telegram uses for entity offsets; for the
4096 limit this is the conservative choice (an emoji counts twice).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALLOWED_TAGS",
    "HtmlParseError",
    "ParsedText",
    "auto_entities",
    "parse_html",
    "utf16_len",
    "visible_length",
]

#: Tag name -> MessageEntity type. ``span``/``code``/``blockquote``/``a`` are refined by attributes.
ALLOWED_TAGS: dict[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "tg-emoji": "custom_emoji",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}

_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(#[0-9]{1,8}|#[xX][0-9a-fA-F]{1,7}|[a-zA-Z][a-zA-Z0-9]{0,31});")
_TAG_NAME_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")
_ATTR_NAME_RE = re.compile(r"[a-zA-Z0-9_-]+")


class HtmlParseError(ValueError):
    """The reason Telegram gives after ``Bad Request: can't parse entities: ``."""


@dataclass
class ParsedText:
    """What a Telegram client would show: the text without markup, and its entities."""

    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)

    @property
    def length(self) -> int:
        return utf16_len(self.text)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode("utf-8"))


@dataclass
class _Open:
    tag: str
    entity_type: str
    start: int  # UTF-16 offset in the visible text
    attrs: dict[str, str]
    byte_pos: int


def _decode_entity(source: str, i: int, *, strict: bool) -> tuple[str, int]:
    """Decode the entity at ``source[i] == '&'``; return (text, next index)."""
    m = _ENTITY_RE.match(source, i)
    if m is None:
        if strict:
            raise HtmlParseError(
                f"Character '&' is reserved and must be escaped as &amp; "
                f"(byte offset {_byte_offset(source, i)})"
            )
        return "&", i + 1
    body = m.group(1)
    if body.startswith("#"):
        code = int(body[2:], 16) if body[1:2] in ("x", "X") else int(body[1:])
        if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
            return chr(code), m.end()
    elif body in _NAMED_ENTITIES:
        return _NAMED_ENTITIES[body], m.end()
    if strict:
        raise HtmlParseError(
            f"Unsupported HTML entity \"{m.group(0)}\" at byte offset {_byte_offset(source, i)}; "
            "only &lt; &gt; &amp; &quot; and numeric entities are supported"
        )
    return m.group(0), m.end()


def _decode_attr_value(value: str, *, strict: bool) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "&":
            chunk, i = _decode_entity(value, i, strict=strict)
            out.append(chunk)
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _parse_attributes(
    source: str, i: int, tag: str, tag_pos: int, *, strict: bool
) -> tuple[dict[str, str], int]:
    """Parse attributes after the tag name up to and including ``>``."""
    attrs: dict[str, str] = {}
    n = len(source)
    while True:
        while i < n and source[i] in " \t\r\n":
            i += 1
        if i >= n:
            raise HtmlParseError(f"Unclosed start tag at byte offset {tag_pos}")
        if source[i] == ">":
            return attrs, i + 1
        m = _ATTR_NAME_RE.match(source, i)
        if m is None:
            raise HtmlParseError(
                f"Empty attribute name in the tag \"{tag}\" at byte offset {tag_pos}"
            )
        name = m.group(0).lower()
        i = m.end()
        while i < n and source[i] in " \t\r\n":
            i += 1
        if i < n and source[i] == "=":
            i += 1
            while i < n and source[i] in " \t\r\n":
                i += 1
            if i >= n:
                raise HtmlParseError(f"Unclosed start tag at byte offset {tag_pos}")
            if source[i] in "\"'":
                quote = source[i]
                end = source.find(quote, i + 1)
                if end < 0:
                    raise HtmlParseError(f"Unclosed start tag at byte offset {tag_pos}")
                raw = source[i + 1 : end]
                i = end + 1
            else:
                start = i
                while i < n and source[i] not in " \t\r\n>":
                    if source[i] in "\"'<":
                        raise HtmlParseError(
                            f"Unexpected character in the value of attribute \"{name}\" "
                            f"of the tag \"{tag}\" at byte offset {tag_pos}"
                        )
                    i += 1
                raw = source[start:i]
            attrs[name] = _decode_attr_value(raw, strict=strict)
        else:
            attrs[name] = ""


def parse_html(source: str, *, strict: bool = True) -> ParsedText:
    """Parse Telegram HTML into visible text and entities, or raise :class:`HtmlParseError`."""
    out: list[str] = []
    pos = 0  # UTF-16 length of ``out``
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []
    i = 0
    n = len(source)

    def emit(chunk: str) -> None:
        nonlocal pos
        out.append(chunk)
        pos += utf16_len(chunk)

    while i < n:
        ch = source[i]
        if ch == "&":
            chunk, i = _decode_entity(source, i, strict=strict)
            emit(chunk)
            continue
        if ch == ">":
            if strict:
                raise HtmlParseError(
                    f"Character '>' must be escaped as &gt; (byte offset {_byte_offset(source, i)})"
                )
            emit(ch)
            i += 1
            continue
        if ch != "<":
            j = i + 1
            while j < n and source[j] not in "<>&":
                j += 1
            emit(source[i:j])
            i = j
            continue

        tag_pos = _byte_offset(source, i)
        if i + 1 < n and source[i + 1] == "/":
            m = _TAG_NAME_RE.match(source, i + 2)
            name = m.group(0).lower() if m else ""
            j = m.end() if m else i + 2
            while j < n and source[j] in " \t\r\n":
                j += 1
            if j >= n or source[j] != ">":
                raise HtmlParseError(f"Unclosed end tag at byte offset {tag_pos}")
            if not stack:
                raise HtmlParseError(f"Unexpected end tag at byte offset {tag_pos}")
            top = stack[-1]
            if name != top.tag:
                raise HtmlParseError(
                    f"Unmatched end tag at byte offset {tag_pos}, expected \"</{top.tag}>\", "
                    f"found \"</{name}>\""
                )
            stack.pop()
            entity = _close_entity(top, pos, stack, entities)
            if entity is not None:
                entities.append(entity)
            i = j + 1
            continue

        m = _TAG_NAME_RE.match(source, i + 1)
        name = m.group(0).lower() if m else ""
        if name not in ALLOWED_TAGS:
            raise HtmlParseError(f"Unsupported start tag \"{name}\" at byte offset {tag_pos}")
        assert m is not None
        attrs, i = _parse_attributes(source, m.end(), name, tag_pos, strict=strict)
        entity_type = ALLOWED_TAGS[name]
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise HtmlParseError(
                f"Tag \"span\" must have class \"tg-spoiler\" at byte offset {tag_pos}"
            )
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise HtmlParseError(
                f"Custom emoji entity must contain a valid custom emoji identifier "
                f"at byte offset {tag_pos}"
            )
        if name == "blockquote":
            if any(o.tag == "blockquote" for o in stack):
                raise HtmlParseError(
                    f"Blockquote entities can't be nested (byte offset {tag_pos})"
                )
            if "expandable" in attrs:
                entity_type = "expandable_blockquote"
        stack.append(_Open(name, entity_type, pos, attrs, tag_pos))

    if stack:
        raise HtmlParseError(
            f"Can't find end tag corresponding to start tag \"{stack[-1].tag}\""
        )
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return ParsedText("".join(out), entities)


def _close_entity(
    opened: _Open, end: int, stack: list[_Open], entities: list[dict[str, Any]]
) -> dict[str, Any] | None:
    length = end - opened.start
    if length <= 0:
        return None  # Telegram silently drops empty entities
    entity: dict[str, Any] = {"type": opened.entity_type, "offset": opened.start, "length": length}
    if opened.tag == "a":
        href = opened.attrs.get("href", "")
        if not href:
            return None  # like tdlib: <a> without href is plain text
        if href.startswith("tg://user?id=") and href[len("tg://user?id=") :].isdigit():
            entity["type"] = "text_mention"
            entity["user"] = {
                "id": int(href[len("tg://user?id=") :]),
                "is_bot": False,
                "first_name": "",
            }
        else:
            entity["url"] = href
    elif opened.tag == "tg-emoji":
        entity["custom_emoji_id"] = opened.attrs["emoji-id"]
    elif opened.tag == "code":
        language = opened.attrs.get("class", "")
        parent = stack[-1] if stack else None
        if (
            language.startswith("language-")
            and parent is not None
            and parent.tag == "pre"
            and parent.start == opened.start
        ):
            # <pre><code class="language-x"> is one pre entity with a language
            parent.attrs["language"] = language[len("language-") :]
            return None
    elif opened.tag == "pre" and opened.attrs.get("language"):
        entity["language"] = opened.attrs["language"]
    return entity


def visible_length(source: str, *, parse_mode: str | None = "HTML") -> int:
    """Length Telegram checks against its limits: after entity parsing, in UTF-16 units."""
    if parse_mode is not None and parse_mode.upper() == "HTML":
        return parse_html(source).length
    return utf16_len(source)


_AUTO_ENTITY_RE = re.compile(
    r"(?P<url>https?://[^\s<>\"]+)"
    r"|(?<![\w/])(?P<bot_command>/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?)(?![\w@/])"
    r"|(?<![\w@])(?P<mention>@[A-Za-z0-9_]{4,32})(?!\w)"
    r"|(?<![\w#])(?P<hashtag>#\w+)"
)


def auto_entities(text: str) -> list[dict[str, Any]]:
    """Entities Telegram's clients/server attach to a plain user message (commands, mentions,
    URLs, hashtags), so that PTB's ``CommandHandler`` and filters see what they would in
    production."""
    entities: list[dict[str, Any]] = []
    for m in _AUTO_ENTITY_RE.finditer(text):
        kind = m.lastgroup
        assert kind is not None
        start = utf16_len(text[: m.start()])
        entities.append({"type": kind, "offset": start, "length": utf16_len(m.group(0))})
    return entities
