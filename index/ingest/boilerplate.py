"""Boilerplate inside scraped articles: promos, ad-feedback forms, cookie and subscription
notices, "Leggi anche" links.

Two kinds of rule, both removing whole lines (a reply quotes the cleaned text verbatim, so
a line is either kept as it is or gone):
- a small seed list of Italian and English patterns, applied everywhere from the first
  article of a new outlet (``strip_seed_boilerplate``);
- lines learned per outlet, because the outlet repeats them across many of its articles
  (index/ingest/outlet_boilerplate.py learns them; ``strip_learned`` applies them).
One inline rule removes the ad-feedback form that scrapers glue into a paragraph.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

MAX_LEARNED_WORDS = 80  # longer lines are never learned: real paragraphs, not promos
MIN_CONTENT_WORDS = 4  # a line this long is real content, so the article is not empty
REASON_SAMPLE_CHARS = 60


@dataclass(frozen=True, slots=True)
class _Seed:
    pattern: re.Pattern[str]
    max_words: int  # a longer line is content that happens to mention the phrase
    needle: str  # for a pattern that may match anywhere: a word the line must contain


def _seed(pattern: str, max_words: int = 30, needle: str = "") -> _Seed:
    return _Seed(re.compile(pattern, re.IGNORECASE), max_words, needle)


# Matched at the start of a line unless the pattern says otherwise (``.*`` for anywhere).
SEEDS: tuple[_Seed, ...] = (
    # English
    _seed(r"looking for a free mini puzzle\b", 60),
    _seed(r"contributing:\s", 20),
    _seed(r"\(?(?:additional )?reporting by\b.*\bediting by\b", 40),
    _seed(r"(?:ad feedback|how relevant is this ad to you\?|video player was slow to load)", 80),
    _seed(
        r"(?:advertisement|sponsored content|story continues below advertisement|"
        r"advertisement\W+scroll to continue)\W*$",
        6,
    ),
    _seed(r"(?:sign up|subscribe|register) (?:for|to)\b.{0,60}\bnewsletters?\b", 50),
    _seed(r"get (?:our|the) .{0,40}newsletter\b", 40),
    _seed(
        r"(?:already a subscriber\??|subscribe now\b|subscribe today\b|"
        r"this (?:article|story|content) is (?:only )?(?:available )?for subscribers|"
        r"to continue reading|you have reached your (?:free )?article limit|"
        r"you've reached your (?:free )?article limit)",
        40,
    ),
    _seed(r".*\b(?:we|this (?:site|website)|we and our partners) uses? cookies\b", 80, "cookie"),
    _seed(
        r"(?:accept (?:all )?cookies|cookie (?:policy|settings|preferences)|manage cookies)\b", 40
    ),
    _seed(r".*\bby continuing to (?:browse|use) (?:this|our) (?:site|website)\b", 80, "continuing"),
    _seed(r"(?:click|tap) here to\b", 25),
    _seed(r"(?:follow us on|download (?:the|our) app)\b", 20),
    _seed(r"read more:", 25),
    # Italian
    _seed(r".*\briproduzione riservata\b", 15, "riservata"),
    _seed(r".*\btutti i diritti riservati\b", 15, "riservati"),
    _seed(r"leggi anche\b", 30),
    _seed(
        r"(?:leggi l['’]articolo completo|leggi tutto\b|vedi anche\b|guarda anche\b|"
        r"ti potrebbe interessare|potrebbe interessarti|clicca qui\b)",
        30,
    ),
    _seed(r".*\biscriviti alla (?:nostra )?newsletter\b", 50, "newsletter"),
    _seed(
        r"(?:ricevi|resta aggiornato con) (?:le )?(?:notizie|news|ultime notizie)\b.{0,80}"
        r"(?:whatsapp|telegram|newsletter|email|e-mail)",
        40,
    ),
    _seed(
        r"(?:abbonati\b|sei già abbonato|per continuare a leggere|"
        r"contenuto riservato agli abbonati|questo articolo è riservato agli abbonati)",
        40,
    ),
    _seed(r"(?:pubblicità|contenuto sponsorizzato)\W*$", 4),
    _seed(r"seguici su\b", 15),
    _seed(
        r".*\b(?:questo sito (?:web )?(?:utilizza|usa)|utilizziamo|usiamo) (?:i )?cookie",
        80,
        "cookie",
    ),
    _seed(r"(?:accetta (?:tutti i )?cookie|informativa (?:sui )?cookie|cookie policy)\b", 40),
)

_MAX_SEED_WORDS = max(s.max_words for s in SEEDS)
_AT_START = re.compile(
    "|".join(f"(?:{s.pattern.pattern})" for s in SEEDS if not s.needle), re.IGNORECASE
)
_NEEDLES = tuple({s.needle for s in SEEDS if s.needle})

# The ad-feedback form as it reads when a scraper glues it into the text around it.
_AD_FEEDBACK = re.compile(
    r"(?:Ad Feedback\s*)?How relevant is this ad to you\?"
    r"(?:\s*(?:Video player was slow to load content|Video content never loaded|"
    r"Ad froze or did not finish loading|Video content did not start after ad|"
    r"Audio on advertisement was much louder than content|Other issues|Ad never loaded|"
    r"Ad prevented/slowed the page from loading|Content moved around while ad loaded|"
    r"Ad was repetitive to ads I've seen previously|Send|Cancel|Close|Thank You!|"
    r"Your effort and contribution in providing this feedback is much\s+appreciated)[.!]?)*",
)
_NON_WORD = re.compile(r"[\W_]+")
_BLANK_RUNS = re.compile(r"\n{3,}")
_SPACE_RUNS = re.compile(r"[ \t]{2,}")


def line_key(line: str) -> str:
    """Case-folded words only: two copies of a promo differ in case and punctuation."""
    return " ".join(_NON_WORD.sub(" ", line.casefold()).split())


def key_hash(key: str) -> int:
    """A signed 64-bit hash of a line's key, as SQLite stores integers."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big", signed=True)


def learnable_lines(text: str) -> dict[int, str]:
    """Hash → line for the lines of ``text`` an outlet may be repeating."""
    out: dict[int, str] = {}
    for line in text.split("\n"):
        key = line_key(line)
        if key and any(ch.isalpha() for ch in key) and key.count(" ") < MAX_LEARNED_WORDS:
            out.setdefault(key_hash(key), line.strip())
    return out


def strip_seed_boilerplate(text: str) -> tuple[str, list[str]]:
    """``text`` without lines matching the seed list, and the lines removed."""
    glued = _AD_FEEDBACK.sub("", text) if "relevant is this ad" in text else text
    removed: list[str] = []
    if glued != text:
        removed.append("How relevant is this ad to you?")
        glued = "\n".join(_SPACE_RUNS.sub(" ", line).strip() for line in glued.split("\n"))
    kept: list[str] = []
    for line in glued.split("\n"):
        if _is_seed(line):
            removed.append(line.strip())
        else:
            kept.append(line)
    if not removed:
        return text, []
    return _join(kept), removed


def strip_learned(text: str, learned: Collection[int]) -> tuple[str, list[str]]:
    """``text`` without the lines an outlet was learned to repeat, and the lines removed."""
    if not learned:
        return text, []
    kept: list[str] = []
    removed: list[str] = []
    for line in text.split("\n"):
        key = line_key(line)
        if key and key_hash(key) in learned:
            removed.append(line.strip())
        else:
            kept.append(line)
    if not removed:
        return text, []
    return _join(kept), removed


def has_real_content(text: str) -> bool:
    """At least one line that reads as a sentence, not a label or a lone link."""
    return any(len(line.split()) >= MIN_CONTENT_WORDS for line in text.split("\n"))


def boilerplate_only_reason(removed: Iterable[str]) -> str:
    """The failure a run reports for an article that was nothing but boilerplate."""
    sample = next((r for r in removed if r), "")
    if len(sample) > REASON_SAMPLE_CHARS:
        sample = sample[: REASON_SAMPLE_CHARS - 1].rstrip() + "…"
    return f"no article text left after removing boilerplate (such as {sample!r})"


def _is_seed(line: str) -> bool:
    stripped = line.strip().lstrip("©*•·-–—>» ")
    if not stripped:
        return False
    words = stripped.count(" ") + 1
    if words > _MAX_SEED_WORDS:
        return False
    # The ordinary line fails one anchored regex and a few substring tests: cleaning stays fast.
    folded = stripped.casefold()
    if not _AT_START.match(stripped) and not any(n in folded for n in _NEEDLES):
        return False
    return any(
        words <= s.max_words and (not s.needle or s.needle in folded) and s.pattern.match(stripped)
        for s in SEEDS
    )


def _join(lines: list[str]) -> str:
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
