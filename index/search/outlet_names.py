"""Outlets named in prose ("according to ANSA", "secondo la Repubblica", "da Reuters"):
the names a user may give each known outlet, and the pattern that finds them."""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from functools import lru_cache

from index.search.date_phrases import AP, ART, GAP
from index.storage import keywords

__all__ = ["normalise_keys", "outlet_aliases", "source_matcher"]


def outlet_aliases(key: str) -> set[str]:
    """Ways a user may name an outlet: "ansa.it" → ansa; "la repubblica" → repubblica;
    "bbc news" → bbc; "wikinews (meantime)" → wikinews. Stop words never become names."""
    out = {key}
    bare = re.sub(r"^(?:https?://)?(?:www\.)?", "", key)
    bare = re.sub(r"\.(?:it|com|net|org|co\.uk|eu|news|info)(?:/.*)?$", "", bare)
    bare = re.sub(r"\s*\([^)]*\)\s*$", "", bare)
    out.add(bare)
    out.add(re.sub(r"\s+(?:news|notizie|online)$", "", bare))
    out |= {re.sub(r"^(?:the|il|lo|la|l['’])\s*", "", a) for a in list(out)}
    return {a.strip() for a in out if len(a.strip()) >= 2 and a.strip() not in keywords.STOPWORDS}


@lru_cache(maxsize=8)
def source_matcher(
    keys: tuple[str, ...],
) -> tuple[re.Pattern[str], re.Pattern[str], dict[str, list[str]]] | None:
    """The prose pattern ("according to X and Y"), a pattern for each name, and their keys."""
    owners: dict[str, list[str]] = {}
    for key in keys:
        for alias in outlet_aliases(key):
            owners.setdefault(alias.lower(), []).append(key)
    if not owners:
        return None
    names = (
        "(?:"
        + "|".join(
            r"\s+".join(re.escape(part) for part in alias.split())
            for alias in sorted(owners, key=len, reverse=True)
        )
        + r")(?!\w|\.\w)"
    )
    trig = (
        rf"according\s+to|as\s+reported\s+by|reported\s+by|from|secondo"
        rf"|stando\s+(?:al|allo|alla|ai|agli|alle|a|all{AP})"
        rf"|riportat[oaie]\s+(?:dal|dalla|dallo|da|dall{AP})"
        rf"|dalla|dallo|dagli|dai|dal|da|dall{AP}"
    )
    sep = rf"\s*(?:,|\s(?:and|or|e|ed|o|od)\s|&)\s*{ART}"
    rx = re.compile(
        rf"(?<![\w'’])(?:{trig}){GAP}{ART}(?P<names>{names}(?:{sep}{names})*)",
        re.I,
    )
    return rx, re.compile(names, re.I), owners


def normalise_keys(known: Collection[str]) -> tuple[str, ...]:
    if isinstance(known, frozenset):  # the retriever's cached outlet set: sort it once
        return _normalise_frozen(known)
    return tuple(sorted({k.strip().lower() for k in known if k and k.strip()}))


@functools.lru_cache(maxsize=8)
def _normalise_frozen(known: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted({k.strip().lower() for k in known if k and k.strip()}))
