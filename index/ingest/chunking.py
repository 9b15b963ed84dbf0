"""Articles into passages that the embedding model reads whole, cut at sentence boundaries.

A chunk is a pair of offsets into the cleaned text, never rewritten text: replies quote
chunks verbatim, so ``chunk.text == text[chunk.start:chunk.end]`` always holds.

Size is measured with the model's own tokenizer. A chunk over the model's window would be
silently truncated and its tail never found, so the limit is a hard one; sentences are
tokenised once, in one batch, and whole chunks are re-counted only near the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from index.embed import TokenCounter
from index.models import Chunk

__all__ = ["chunk_text", "split_sentences"]

Span = tuple[int, int]

# -- sentences ------------------------------------------------------------------------------

# Abbreviations that stand before a name and so never end a sentence. None of them is also
# a word that could end one ("ago", "set", "on" are: see the two sets below).
_TITLES = frozenset((
    "mr", "mrs", "ms", "mx", "dr", "prof", "profssa", "gen", "col", "lt", "capt", "cpt", "sgt",
    "maj", "adm", "gov", "hon", "sig", "sigg", "sigra", "dott", "dottssa", "ing", "avv",
    "arch", "geom", "rag", "cav", "comm", "mons", "egr", "spett", "gent", "preg", "vs", "cfr",
    "viz", "approx", "es", "ibid", "eds",
))  # fmt: skip
# Titles only when capitalised: lower-case they are words ("move on.", "sales rep.").
_TITLES_CAPITALISED = frozenset(("On", "St", "Mt", "Fr", "Rep", "Sen", "Rev", "Pres"))
# Abbreviations followed by a number ("art. 5", "p. 12", "Jan. 5", "ca. 300"): no break
# before a digit, a break before anything else ("two years ago. Then").
_NUMBERED = frozenset((
    "no", "nr", "num", "nn", "art", "artt", "pag", "pagg", "pp", "fig", "figg", "vol", "voll",
    "cap", "capp", "par", "tab", "sez", "tit", "ca", "cit", "op", "jan", "feb", "febr", "mar",
    "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "gen", "mag", "giu", "lug",
    "ago", "set", "ott", "dic",
))  # fmt: skip
_DOTTED = re.compile(r"(?:[^\W\d_]{1,3}\.)+[^\W\d_]{1,3}")  # U.S, e.g, S.p.A, p.es
_OPENERS = "\"'«“‘„([{—–-¡¿"
_CLOSERS = "\"'»”’)]}"
# A run of sentence-final punctuation, optional closing quotes/brackets, then whitespace.
# (One character class, not an alternation: the regex engine then skips to the next stop
# at C speed, ~4x faster over a passage; it matches the same runs.)
_CANDIDATE = re.compile(r"[.!?…]+[\"'»”’)\]}]*(?=\s)")
_LINE = re.compile(r"[^\n]+")
_BLANK_GAP = re.compile(r"\n[^\S\n]*\n")


def _segments(text: str) -> list[Span]:
    """Lines, re-joined where a hard wrap cut a sentence in two.

    A line break ends a sentence (headlines, bylines and list items rarely end with a dot)
    unless it sits inside a paragraph, the line does not end like a sentence and the next
    line starts in lower case: that is a text wrapped at a fixed width.
    """
    out: list[Span] = []
    for m in _LINE.finditer(text):
        a, b = m.start(), m.end()
        if not text[a:b].strip():
            continue
        if out:
            pa, pb = out[-1]
            gap = text[pb:a]
            prev = text[pa:pb].rstrip()
            nxt = text[a:b].lstrip()
            if (
                gap.count("\n") == 1
                and prev
                and prev[-1] not in ".!?…:;" + _CLOSERS
                and nxt[:1].islower()
            ):
                out[-1] = (pa, b)
                continue
        out.append((a, b))
    return out


def _next_word(text: str, i: int, end: int) -> tuple[str, str]:
    """(first character, first alphanumeric character) of what follows position ``i``."""
    while i < end and text[i].isspace():
        i += 1
    first = text[i] if i < end else ""
    while i < end and text[i] in _OPENERS:
        i += 1
    return first, (text[i] if i < end else "")


def _is_boundary(text: str, seg_start: int, m: re.Match[str], seg_end: int) -> bool:
    first, alnum = _next_word(text, m.end(), seg_end)
    if not first or alnum.islower():
        return False  # "ha detto il sig. rossi", "Ciao! come stai": not a new sentence
    punct = m.group(0).rstrip(_CLOSERS)
    if punct != ".":
        return True  # "!", "?", "?!", "...", "…" before a capital or a digit
    # One dot: is the word before it an abbreviation, an initial or a dotted acronym?
    j = m.start()
    k = j
    while k > seg_start and not text[k - 1].isspace():
        k -= 1
    word = text[k:j].lstrip(_OPENERS)
    if not word:
        return True
    low = word.lower().replace(".", "")
    if len(word) == 1 and word.isalpha():
        return False  # an initial: "J. Smith", "Mark S. Zuckerberg"
    if _DOTTED.fullmatch(word):
        return False  # "U.S. officials", "e.g. Rome", "S.p.A. Milano"
    if low in _TITLES or word in _TITLES_CAPITALISED:
        return False  # "Dott. Rossi", "Mr. Dorsey", "ecc." is not here: it ends sentences
    return not (low in _NUMBERED and alnum.isdigit())


def split_sentences(text: str) -> list[Span]:
    """Character spans of the sentences of ``text``, trimmed of surrounding whitespace.

    Italian and English news: titles ("Sig.", "Dott.", "Mr.") and initials never end a
    sentence, dotted acronyms ("U.S.", "e.g.") neither, a dot inside a number ("3.5") is
    never followed by a space, quotes and brackets after the final stop stay with their
    sentence, and a line break always ends one unless it is a hard wrap (see ``_segments``).
    A new sentence has to start with something other than a lower-case letter.
    """
    spans: list[Span] = []
    for seg_start, seg_end in _segments(text):
        start = seg_start
        for m in _CANDIDATE.finditer(text, seg_start, seg_end):
            if _is_boundary(text, seg_start, m, seg_end):
                spans.append((start, m.end()))
                start = m.end()
        spans.append((start, seg_end))
    out: list[Span] = []
    for a, b in spans:
        a, b = trim_span(text, a, b)
        if a < b:
            out.append((a, b))
    return out


def trim_span(text: str, a: int, b: int) -> Span:
    """``(a, b)`` without the whitespace at either end (empty when it is all whitespace)."""
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


# -- chunks ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Unit:
    """A sentence, or a piece of one too long to fit a chunk alone."""

    start: int
    end: int
    tokens: int
    paragraph_before: bool  # a line break separates it from the previous unit


def _split_long(
    text: str, start: int, end: int, counter: TokenCounter, max_tokens: int
) -> list[_Unit]:
    """Cut one over-long sentence at token boundaries, preferring the gaps between words.

    Token offsets come from the tokenizer; each piece is re-counted as the text it will be,
    because a word cut in two can tokenise differently from its halves.
    """
    sentence = text[start:end]
    toks = counter.token_spans(sentence)
    if not toks:
        return [_Unit(start, end, max_tokens, False)]
    pieces: list[_Unit] = []
    i = 0
    n = len(toks)
    while i < n:
        take = min(max_tokens, n - i)
        while True:
            j = i + take  # exclusive token index of the cut
            if j < n:
                # Back off to a word gap if one is in the last quarter of the window.
                floor = i + max(1, (take * 3) // 4)
                for c in range(j, floor - 1, -1):
                    if c > i and toks[c][0] > toks[c - 1][1]:
                        j = c
                        break
            a = toks[i][0]
            b = toks[j - 1][1]
            while a < b and sentence[a].isspace():
                a += 1
            while b > a and sentence[b - 1].isspace():
                b -= 1
            count = counter.count_tokens([sentence[a:b]])[0]
            if count <= max_tokens or j - i <= 1:
                break
            take = max(1, min(j - i - 1, (j - i) - (count - max_tokens)))
        if a < b:
            pieces.append(_Unit(start + a, start + b, count, False))
        i = j
    return pieces


def _units(text: str, counter: TokenCounter, max_tokens: int) -> list[_Unit]:
    spans = split_sentences(text)
    counts = counter.count_tokens([text[a:b] for a, b in spans])
    units: list[_Unit] = []
    prev_end = 0
    for (a, b), n in zip(spans, counts, strict=True):
        para = bool(units) and "\n" in text[prev_end:a]
        if n <= max_tokens:
            units.append(_Unit(a, b, n, para))
        else:
            pieces = _split_long(text, a, b, counter, max_tokens)
            if pieces:
                pieces[0].paragraph_before = para
            units.extend(pieces)
        prev_end = b
    return units


def chunk_text(
    article_id: str,
    text: str,
    counter: TokenCounter,
    *,
    max_tokens: int,
    overlap_sentences: int = 1,
) -> list[Chunk]:
    """Pack consecutive sentences into chunks of at most ``max_tokens`` model tokens.

    Greedy, but a chunk that has to end inside a paragraph ends at the last paragraph break
    instead, if it is at least half full there. When a cut falls inside a paragraph the
    next chunk repeats the last ``overlap_sentences`` sentences of the previous one, so a
    fact split across the cut is still whole in one of them. The overlap is capped at half
    a chunk and shrinks further whenever it would leave no room for a new sentence:
    every chunk advances.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, not {max_tokens}")
    units = _units(text, counter, max_tokens)
    overlap = max(0, overlap_sentences)
    chunks: list[Chunk] = []

    exact: dict[int, tuple[int, int]] = {}  # chunk start -> (last unit, tokens) counted

    def fits(i: int, j: int, estimate: int) -> bool:
        """Do units i..j (inclusive) fit? Sums are exact for tokenizers that split on
        whitespace first; allowing one token per junction for any other, the whole slice is
        counted once the sum gets close, and later sums build on that count."""
        known = exact.get(i)
        if known is not None and known[0] <= j:
            last, counted = known
            estimate = counted + sum(u.tokens for u in units[last + 1 : j + 1])
            slack = j - last
        else:
            slack = j - i
        if estimate + slack <= max_tokens:
            return True
        if estimate > max_tokens + slack:
            return False
        counted = counter.count_tokens([text[units[i].start : units[j].end]])[0]
        exact[i] = (j, counted)
        return counted <= max_tokens

    start = 0
    prev_end = 0  # first unit not yet in any chunk
    n = len(units)
    while start < n:
        # Overlap may not stop the chunk from reaching one unit beyond the previous chunk.
        while start < prev_end and not fits(
            start, prev_end, sum(u.tokens for u in units[start : prev_end + 1])
        ):
            start += 1
        end = start  # inclusive index of the last unit
        total = units[start].tokens
        while end + 1 < n and fits(start, end + 1, total + units[end + 1].tokens):
            end += 1
            total += units[end].tokens
        if end + 1 < n and not units[end + 1].paragraph_before:
            # Cut inside a paragraph: back up to the last paragraph break if half full there.
            run = total
            for k in range(end, max(start, prev_end), -1):
                run -= units[k].tokens
                if units[k].paragraph_before:
                    if run * 2 >= max_tokens:
                        end = k - 1
                    break
        a, b = units[start].start, units[end].end
        chunks.append(Chunk(article_id=article_id, ord=len(chunks), start=a, end=b,
                            text=text[a:b]))
        prev_end = end + 1
        if prev_end >= n:
            break
        # Overlap: trailing sentences of this chunk, within half a chunk, not across a
        # paragraph break (a paragraph is where a fact ends anyway).
        next_start, carried = prev_end, 0
        if not units[prev_end].paragraph_before:
            while (
                next_start > max(start + 1, prev_end - overlap)
                and carried + units[next_start - 1].tokens <= max_tokens // 2
            ):
                next_start -= 1
                carried += units[next_start].tokens
        start = next_start
    return chunks
