"""What kind of answer a question wants (a person, an amount, a moment, a place), and whether
a sentence holds one the question does not already contain.

The highlight is the sentence a reader looks at first. Term overlap alone picks the sentence
that repeats the question ("the coach said the match…") over the one that answers it ("they
beat Pro Patria 2-1"): the answer is, by definition, the part the question lacks. These are
surface cues only — no tagger — so they cost microseconds and work alike in Italian and
English.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Literal

Kind = Literal["who", "amount", "when", "where"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())

# Order matters: "in che anno" is "when" although "che" alone says nothing.
_KIND_PATTERNS: list[tuple[Kind, re.Pattern[str]]] = [
    (
        "when",
        re.compile(
            r"\b(quando|in (che|quale) (anno|giorno|mese|secolo|periodo|data|epoca)"
            r"|(che|quale) (anno|giorno|data|secolo)|da quanto tempo|fino a quando"
            r"|when|(what|which) (year|day|date|month|century|decade|time)|since when"
            r"|how long ago)\b"
        ),
    ),
    (
        "amount",
        re.compile(
            r"\b(quant[aeio]|che (percentuale|età|cifra|somma)|qual(e|'è)? (è )?(la|il) "
            r"(percentuale|numero|cifra|prezzo|costo|popolazione|età|altezza|lunghezza)"
            r"|how (many|much|old|long|far|big|large|tall|high)|what (percentage|proportion"
            r"|share|number|amount|price|age)|(what|which) is the (number|price|cost|population))\b"
        ),
    ),
    (
        "where",
        re.compile(
            r"\b(dove|da dove|in (che|quale) (città|paese|nazione|regione|luogo|stato|zona|parte)"
            r"|where|from where|in (what|which) (city|country|region|place|state|town|part))\b"
        ),
    ),
    (
        "who",
        re.compile(
            r"^\W*(a |da |di |con |per )?(chi|who|whom|whose)\b|\b(chi|who|whom|whose) "
            r"|\b(quale|which) (squadra|azienda|società|partito|persona|team|company|party|person"
            r"|player|giocatore|politico|politician|leader)\b"
        ),
    ),
]


# "Qual è stato il primo anno…", "which actress…", "what is the name of…": the noun after
# the interrogative says what is asked.
_HEAD = re.compile(
    r"\b(quale|quali|qual|che|what|which)\b(?:\s+(?:è|e'|era|sono|erano|fu|furono|is|was|are"
    r"|were|stato|stata|il|lo|la|i|gli|le|l'|the|a|an|primo|prima|ultimo|ultima|first|last"
    r"|main|principale|nuovo|nuova|new))*\s+(\w+)"
)
_HEAD_KINDS: dict[str, Kind] = {
    **dict.fromkeys(_words("anno anni data giorno mese secolo periodo epoca year date day month "
                    "century decade period era"), "when"),
    **dict.fromkeys(_words("città paese nazione regione luogo stato zona provincia comune quartiere "
                    "city country nation region place state area province town county "
                    "continent"), "where"),
    **dict.fromkeys(_words("numero percentuale prezzo costo cifra somma quantità popolazione età "
                    "altezza lunghezza distanza temperatura number percentage price cost "
                    "amount sum quantity population age height length distance "
                    "temperature"), "amount"),
    **dict.fromkeys(_words("nome persona attore attrice presidente giocatore allenatore squadra "
                    "azienda società partito gruppo band autore scrittore regista sindaco "
                    "name person actor actress president player coach team company party "
                    "group author writer director mayor leader"), "who"),
}


def question_kind(question: str) -> Kind | None:
    """The answer type a question asks for, or None when its words don't say."""
    q = " ".join(question.casefold().split())
    for kind, pattern in _KIND_PATTERNS:
        if pattern.search(q):
            return kind
    head = _HEAD.search(q)
    if head is not None:
        return _HEAD_KINDS.get(head.group(2))
    return None


_NUMBER_WORDS = _words(
    "uno una due tre quattro cinque sei sette otto nove dieci undici dodici venti trenta "
    "quaranta cinquanta cento mille mila milione milioni miliardo miliardi dozzina decine "
    "centinaia migliaia metà doppio triplo "
    "one two three four five six seven eight nine ten eleven twelve twenty thirty forty "
    "fifty hundred hundreds thousand thousands million millions billion billions dozen "
    "dozens half double twice"
)
_MONTHS = _words(
    "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre "
    "dicembre lunedì martedì mercoledì giovedì venerdì sabato domenica ieri oggi domani "
    "secolo secoli anni decennio "
    "january february march april may june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday yesterday today tomorrow "
    "century centuries decade"
)
_YEAR = re.compile(r"^(1[0-9]|20)\d\d$")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
# Capitalised words that start a clause or are function words, not names.
_NOT_NAMES = _words(
    "il lo la i gli le un una l dell della nel nella in a di da con per su tra fra e ma se "
    "che non è questo questa quello quella secondo dopo prima durante oggi ieri "
    "the a an in on at of for from by with and but if this that these those it he she they "
    "we i after before during according mr mrs ms dr"
)
_PLACE_PREP = _words("in a al nel nella nei dalla dal da at from to near di")


@lru_cache(maxsize=1 << 14)
def _fold(word: str) -> str:
    # Cached: every sentence of a reply's head passages folds each of its words here.
    w = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in w if not unicodedata.combining(c))


def sentence_answers(kind: Kind, sentence: str, question_words: frozenset[str]) -> bool:
    """Whether ``sentence`` holds something of ``kind`` that the question does not contain.

    ``question_words`` are the question's words folded with :func:`fold_words`.
    """
    words = [(m.group(0), m.start()) for m in _WORD.finditer(sentence)]
    for pos, (raw, _) in enumerate(words):
        folded = _fold(raw)
        if folded in question_words:
            continue
        if kind == "amount":
            if any(c.isdigit() for c in raw) and not _YEAR.match(raw):
                return True
            if folded in _NUMBER_WORDS:
                return True
        elif kind == "when":
            if _YEAR.match(raw) or folded in _MONTHS:
                return True
        elif raw[:1].isupper() and pos > 0 and folded not in _NOT_NAMES and len(raw) > 1:
            if kind == "who":
                return True
            prev = _fold(words[pos - 1][0])
            if prev in _PLACE_PREP:
                return True
    return False


def fold_words(text: str) -> frozenset[str]:
    return frozenset(_fold(m.group(0)) for m in _WORD.finditer(text))
