"""Turning a loaded article into the text that is chunked, quoted and deduplicated.

Replies quote the cleaned text verbatim, so cleaning is deliberately conservative: it fixes
encoding noise and whitespace everywhere, but removes lines only at the very top and
bottom of an article, only when they are short and match a known kind of scraping debris
(repeated headlines, bylines, photo credits, share buttons, lone dates). A real sentence is
never dropped. Scraped pages get two more rules, in their own modules: the seed boilerplate
lines (index/ingest/boilerplate.py: promos, ad-feedback forms, cookie and subscription
notices, anywhere in the text) and dateline titles (index/ingest/datelines.py). What an
outlet repeats across its own articles is learned and removed at index time
(index/ingest/outlet_boilerplate.py).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import replace

from py3langid import langid

from index.ingest.boilerplate import (
    boilerplate_only_reason,
    has_real_content,
    strip_seed_boilerplate,
)
from index.ingest.datelines import retitle
from index.models import Article, LoadError

LanguageDetector = Callable[[str], str | None]

HEAD_LINES = 8
TAIL_LINES = 5
MAX_DEBRIS_WORDS = 12  # a boilerplate line is shorter than this (in words)
MAX_TITLE_LINE_WORDS = 40  # a line equal to the title is dropped up to this length
MAX_DERIVED_TITLE = 120
DETECT_CHARS = 3000  # language is clear long before; keeps detection ~0.3 ms
MIN_DETECT_LETTERS = 20
MIN_DETECT_CONFIDENCE = 0.5

DETECTED_LANGUAGES = (
    "it", "en", "fr", "de", "es", "pt", "nl", "ca", "ro", "pl", "cs", "sv", "da", "no", "fi",
    "el", "ru", "uk", "tr", "ar", "zh", "ja",
)

_LANG_ALIASES = {
    "ita": "it", "italian": "it", "italiano": "it", "eng": "en", "english": "en",
    "fra": "fr", "fre": "fr", "french": "fr", "deu": "de", "ger": "de", "german": "de",
    "spa": "es", "spanish": "es", "por": "pt", "portuguese": "pt", "nld": "nl", "dut": "nl",
    "dutch": "nl",
}


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def clean_article(
    article: Article, *, detect_language: LanguageDetector | None = None
) -> Article | LoadError:
    """A copy of ``article`` with normalised title and text, debris removed, language set.

    ``detect_language`` is injectable so tests and other callers can avoid loading the
    language model; by default a shared py3langid detector is used.
    """
    title = normalize_inline(article.title)
    text, removed = strip_seed_boilerplate(drop_debris(normalize_text(article.text), title))
    if removed and not has_real_content(text):
        return LoadError(article.origin, boilerplate_only_reason(removed))
    title, text = retitle(title, text, source=article.source, extra=article.extra)
    if not text:
        return LoadError(article.origin, "empty text after cleaning")
    if not title:
        title = derive_title(text)
    lang = normalize_lang(article.lang)
    if lang is None:
        detector = detect_language or default_language_detector()
        lang = detector(f"{title}\n{text[:DETECT_CHARS]}")
    return replace(article, title=title, text=text, lang=lang)


def normalize_text(text: str) -> str:
    """NFC text with plain spaces, trimmed lines and at most one blank line in a row.

    Different outlets' copies of one story differ in exactly these invisible ways; making
    them equal lets exact duplicates hash the same and quotes match what readers see.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", text)
    # A C-speed search first: most texts hold none of the table's characters, and
    # ``translate`` looks every character up in the table (a third of the cleaning's cost).
    if _TRANSLATED.search(text):
        text = text.translate(TRANSLATION)
    # After the table the only whitespace left is " " and "\n" (every other character that
    # ``str.strip`` removes is in it), so trimming each line is one pass over the text.
    text = _LINE_EDGES.sub("\n", _SPACES.sub(" ", text))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def normalize_inline(text: str) -> str:
    """Like ``normalize_text`` but on one line: titles never span lines."""
    return " ".join(normalize_text(text or "").split())


def normalize_lang(lang: str | None) -> str | None:
    """ISO 639-1 from what inputs carry (``it-IT``, ``en_US``, ``ITA``, ``Italian``)."""
    if not lang:
        return None
    code = re.split(r"[-_\s]", lang.strip().lower(), maxsplit=1)[0]
    code = _LANG_ALIASES.get(code, code)
    return code if re.fullmatch(r"[a-z]{2}", code) else None


def derive_title(text: str) -> str:
    """A headline for an untitled article: its first sentence, cut at a word if too long."""
    first = text.split("\n", 1)[0].strip()
    sentence = _SENTENCE_END.split(first, maxsplit=1)[0].strip()
    if len(sentence) <= MAX_DERIVED_TITLE:
        # A headline has no full stop, but "U.S." keeps its own.
        return sentence[:-1] if re.search(r"\w{2,}\.$", sentence) else sentence
    cut = sentence[: MAX_DERIVED_TITLE - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-–—") + "…"


class PyLangIdDetector:
    """py3langid restricted to the languages a news corpus plausibly has.

    Restricting the candidates removes the classic confusions of short texts (Italian read
    as Latin or Esperanto), and a confidence floor returns ``None`` rather than a guess.
    """

    def __init__(self, languages: tuple[str, ...] = DETECTED_LANGUAGES) -> None:
        self._identifier = langid.LanguageIdentifier.from_model_file(
            langid.MODEL_FILE, norm_probs=True
        )
        self._identifier.set_languages(list(languages))

    def __call__(self, text: str) -> str | None:
        if sum(ch.isalpha() for ch in text[:400]) < MIN_DETECT_LETTERS:
            return None
        label, confidence = self._identifier.classify(text)
        return str(label) if confidence >= MIN_DETECT_CONFIDENCE else None


@functools.cache
def default_language_detector() -> LanguageDetector:
    """One detector per process: loading the model takes about half a second."""
    return PyLangIdDetector()


# ---------------------------------------------------------------------------------------------
# Debris at the top and bottom of an article
# ---------------------------------------------------------------------------------------------


def drop_debris(text: str, title: str) -> str:
    """``text`` without scraping debris in its first and last few lines."""
    lines = text.split("\n")
    content = [i for i, line in enumerate(lines) if line]
    dropped = _head_debris(lines, content[:HEAD_LINES], title)
    tail = [i for i in content[-TAIL_LINES:] if i not in dropped]
    dropped |= _tail_debris(lines, tail)
    if not dropped:
        return text
    kept = "\n".join(line for i, line in enumerate(lines) if i not in dropped)
    return _BLANK_RUNS.sub("\n\n", kept).strip()


def _head_debris(lines: list[str], head: list[int], title: str) -> set[int]:
    """Debris lines from the top, stopping at the first line that is real content."""
    title_key = _key(title)
    keys = [_key(lines[i]) for i in head]
    repeated = {k for k in keys if k and keys.count(k) > 1 and _words(k) < MAX_DEBRIS_WORDS}
    dropped: set[int] = set()
    for index, key in zip(head, keys, strict=True):
        line = lines[index]
        is_title = bool(title_key) and key == title_key and _words(key) <= MAX_TITLE_LINE_WORDS
        if is_title or key in repeated or _is_head_debris(line):
            dropped.add(index)
        else:
            break
    return dropped


def _tail_debris(lines: list[str], tail: list[int]) -> set[int]:
    """Debris lines from the bottom, stopping at the first line that is real content."""
    dropped: set[int] = set()
    for index in reversed(tail):
        if not _is_tail_debris(lines[index]):
            break
        dropped.add(index)
    return dropped


def _is_head_debris(line: str) -> bool:
    if len(line.split()) >= MAX_DEBRIS_WORDS:
        return False
    return _is_common_debris(line) or _is_author_only(line)


def _is_tail_debris(line: str) -> bool:
    if len(line.split()) >= MAX_DEBRIS_WORDS:
        return False
    return _is_common_debris(line) or bool(_COPYRIGHT.search(line))


def _is_common_debris(line: str) -> bool:
    """Kinds of debris that can sit either above or below an article."""
    return (
        _is_byline(line)
        or bool(_ANONYMOUS.fullmatch(_key(line)))
        or bool(_CREDIT.match(line))
        or bool(_READ_MORE.match(line))
        or _is_share_line(line)
        or _is_date_line(line)
    )


def _is_byline(line: str) -> bool:
    """``By Jane Doe``, ``di Redazione``, ``Par Jean Dupont``: a marker then names only."""
    match = _BYLINE_MARKER.match(line)
    return match is not None and _is_name_list(line[match.end() :])


def _is_author_only(line: str) -> bool:
    """A line that is just a person's name (``Mario Rossi``), as bylines are often scraped."""
    tokens = line.split()
    return (
        2 <= len(tokens) <= 4
        and all(_is_name_token(t) or t.lower() in _NAME_CONNECTORS for t in tokens)
        and not _has_sentence_end(line)
        and not re.search(r"['’]s\b", line)
    )


def _is_name_list(text: str) -> bool:
    tokens = [t for t in re.split(r"[\s,|/&]+", text.strip(" -–—:")) if t]
    if not tokens or len(tokens) > 8 or not _is_name_token(tokens[0]):
        return False
    return all(_is_name_token(t) or _is_date_token(t.lower()) for t in tokens)


def _is_date_token(token: str) -> bool:
    """Name lists often end with when: ``By Jane Doe | 5 March 2024, 10:30``."""
    return (
        token in _NAME_CONNECTORS
        or token in _DATE_WORDS
        or bool(_DATE_TOKEN.fullmatch(token))
    )


def _is_name_token(token: str) -> bool:
    return bool(_NAME_TOKEN.fullmatch(token)) and token[0].isupper()


def _has_sentence_end(line: str) -> bool:
    return line.rstrip().endswith(("!", "?", ";")) or bool(re.search(r"\w{3,}\.$", line))


def _is_share_line(line: str) -> bool:
    key = _key(line)
    if _SHARE.fullmatch(key):
        return True
    tokens = key.split()
    return bool(tokens) and all(t in _SOCIAL_WORDS for t in tokens)


def _is_date_line(line: str) -> bool:
    """A line that is only a date or time, perhaps with "Updated"/"Aggiornato il"."""
    key = _key(line)
    if not any(ch.isdigit() for ch in key):
        return False
    leftover = [t for t in key.split() if not _is_date_token(t)]
    return not leftover and (bool(_NUMERIC_DATE.search(line)) or _has_month(key))


def _has_month(key: str) -> bool:
    return any(t in _MONTHS for t in key.split())


def _key(line: str) -> str:
    """Case-folded words only: how a line is compared with the title and other lines."""
    return " ".join(_NON_WORD.sub(" ", line.casefold()).split())


def _words(key: str) -> int:
    return key.count(" ") + 1 if key else 0


# ---------------------------------------------------------------------------------------------
# Tables and patterns
# ---------------------------------------------------------------------------------------------


def _translation_table() -> dict[int, str | None]:
    """Invisible characters deleted, exotic spaces made plain, control characters removed.

    Zero-width (non-)joiners are kept: Persian, Indic scripts and emoji need them.
    """
    table: dict[int, str | None] = {c: None for c in range(32) if c not in (9, 10)}
    table |= {c: None for c in range(127, 160)}
    table |= dict.fromkeys([0x00AD, 0x200B, 0x2060, 0xFEFF, 0x180E, 0x200E, 0x200F])
    table |= {c: " " for c in (0x09, 0x00A0, 0x1680, 0x202F, 0x205F, 0x3000)}
    table |= {0x0B: "\n", 0x0C: "\n"}
    table |= {c: " " for c in range(0x2000, 0x200B)}
    table |= {0x2028: "\n", 0x2029: "\n", 0x0085: "\n"}
    return table


def _wordset(*chunks: str) -> frozenset[str]:
    return frozenset(" ".join(chunks).split())


TRANSLATION = _translation_table()
_TRANSLATED = re.compile("[" + "".join(map(re.escape, map(chr, sorted(TRANSLATION)))) + "]")
_SPACES = re.compile(r"[ \t]+")
_LINE_EDGES = re.compile(r" ?\n ?")
_BLANK_RUNS = re.compile(r"\n{3,}")
_NON_WORD = re.compile(r"[\W_]+")
# A full stop after an initial or a title (U.S., Mr.) does not end a sentence.
_SENTENCE_END = re.compile(
    r"(?<=[.!?…])(?<!\b[A-Z]\.)(?<!\bMr\.)(?<!\bMrs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\bSig\.)"
    r"\s+(?=[\"'“‘«(\[]?[A-ZÀ-Ý0-9])"
)

_BYLINE_MARKER = re.compile(
    r"^(?:by|di|a cura di|von|par|por|door)\s+", re.IGNORECASE
)
_NAME_TOKEN = re.compile(r"[^\W\d_][\w'’.\-]*")
_NAME_CONNECTORS = _wordset(
    "and e ed y und et en for per of de di da del della dei van von der den le la du"
)
_ANONYMOUS = re.compile(
    r"anonim[oaie]?|anonymous|anonyme|anónimo|redazione(?: \w+)?|staff|staff reporter|"
    r"editorial staff|newsroom|the editors"
)
_CREDIT = re.compile(
    r"^(?:photo|photos|foto|image|immagine|picture|credit|credits|credito|caption|video|"
    r"fonte|source|quelle|crédit)s?\s*(?:[:|©]|by\b|di\b|-|–)",
    re.IGNORECASE,
)
_READ_MORE = re.compile(
    r"^(?:read more|read also|see also|related:|related (?:articles|stories|coverage|news)|"
    r"continue reading|more on this|"
    r"leggi anche|leggi l[’']articolo|leggi tutto|approfondisci|vedi anche|potrebbe interessarti|"
    r"lire aussi|à lire aussi|mehr zum thema|lesen sie auch|lee también|leia também|"
    r"lees ook)\b",
    re.IGNORECASE,
)
_SHARE = re.compile(
    r"(?:share|shares|condividi|condividi su|condividi l articolo|partager|teilen|compartir|"
    r"compartilhar|delen)(?: (?:this|this article|this story|on|via|su|sur|auf|en|em|"
    r"facebook|twitter|x|whatsapp|linkedin|telegram|email|e mail))*"
)
_SOCIAL_WORDS = _wordset(
    "facebook twitter x whatsapp linkedin telegram email e mail print stampa pinterest reddit",
    "copy link copia messenger threads bluesky",
)
_COPYRIGHT = re.compile(
    r"(?:©|\(c\)\s*\d{4}|all rights reserved|riproduzione riservata|tutti i diritti riservati|"
    r"tous droits réservés|alle rechte vorbehalten|todos los derechos reservados)",
    re.IGNORECASE,
)
_MONTHS = _wordset(
    "january february march april may june july august september october november december",
    "jan feb mar apr jun jul aug sep sept oct nov dec",
    "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre",
    "dicembre gen giu lug ago set ott dic",
    "janvier février fevrier mars avril mai juin juillet août aout septembre octobre novembre",
    "décembre januar februar märz april juni juli oktober dezember",
    "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
)
_DATE_WORDS = _MONTHS | _wordset(
    "monday tuesday wednesday thursday friday saturday sunday mon tue wed thu fri sat sun",
    "lunedì martedì mercoledì giovedì venerdì sabato domenica lunedi martedi mercoledi",
    "giovedi venerdi lundi mardi mercredi jeudi vendredi samedi dimanche montag dienstag",
    "mittwoch donnerstag freitag samstag sonntag",
    "updated published posted last modified on at am pm h ore alle il del aggiornato",
    "aggiornamento pubblicato publié mis à jour le aktualisiert veröffentlicht am um uhr",
    "actualizado publicado el de st nd rd th utc gmt cet cest est edt pst",
)
_DATE_TOKEN = re.compile(r"\d+(?:st|nd|rd|th|º|°)?|[\d:./\-]+")
_NUMERIC_DATE = re.compile(r"\b\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}\b|\b\d{1,2}:\d{2}\b")
