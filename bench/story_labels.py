"""Which items of the current-events sample are on a followed story: strictly, and by the
portal's own story hierarchy.

The sample files each item of Wikipedia's current-events portal under the headings it sits
beneath: ``story`` holds the top heading(s) ("Russo-Ukrainian war"), ``title`` the
sub-heading(s) it is listed under ("Kharkiv strikes"), or the story again when there is none.
Scoring a follow against the top heading alone counts as wrong what the portal itself files
under the followed story one level down: an item headed "Middle Eastern crisis ›
Israel–Hezbollah conflict" is on the Israel–Hezbollah conflict, and the portal renamed
"Russian invasion of Ukraine" to "Russo-Ukrainian war" at the end of September while filing
the same sub-headings ("Kyiv strikes", "Attacks in Russia during …") under both.

- **strict**: the followed name is one of the item's top headings, spelling aside (case,
  the dash used, a trailing "(2022–present)").
- **same story** (the correction): the followed name is one of the item's headings at any
  level (top or sub-heading), or one of the item's sub-headings is filed under the followed
  name somewhere in the sample. It is derived from the data, the same rule for every story,
  with no list of pairs; an umbrella story ("Middle Eastern crisis") gets everything filed
  beneath it, so its gold grows too and recall is measured against that. Top headings that
  merely co-occur on one item ("Russian invasion of Ukraine, Russia–NATO relations") are not
  joined: co-occurrence says an event touches two stories, not that they are one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

_DASHES = re.compile(r"[\u2010-\u2015\u2212-]")
_QUALIFIER = re.compile(r"\s*\([^)]*\)$")


def norm(label: str) -> str:
    """A heading without its spelling variants: case, dash, a trailing qualifier."""
    return _QUALIFIER.sub("", _DASHES.sub("-", label.strip().lower())).strip()


def split(field: str | None) -> list[str]:
    return [x.strip() for x in (field or "").split(",") if x.strip()]


class StoryLabels:
    """The sample's headings, read once: each item's top and sub-headings, and each
    sub-heading's parents across the sample."""

    def __init__(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self.top: dict[str, set[str]] = {}
        self.sub: dict[str, set[str]] = {}
        self.parents: dict[str, set[str]] = {}
        spelling: dict[str, Counter[str]] = {}
        for r in rows:
            tops = split(r.get("story"))
            for t in tops:
                spelling.setdefault(norm(t), Counter())[t] += 1
            top = {norm(t) for t in tops}
            # Without a story, the title is the portal's section ("Armed conflicts and
            # attacks"), not a heading.
            sub = {norm(t) for t in split(r.get("title"))} - top if top else set()
            self.top[r["id"]] = top
            self.sub[r["id"]] = sub
            for s in sub:
                self.parents.setdefault(s, set()).update(top)
        self.counts = {n: sum(c.values()) for n, c in spelling.items()}
        self.name = {n: c.most_common(1)[0][0] for n, c in spelling.items()}

    def stories(self, min_items: int) -> list[str]:
        """Stories with at least ``min_items`` items, each by its most used spelling."""
        return sorted(self.name[n] for n, c in self.counts.items() if c >= min_items)

    def strict(self, item_id: str, name: str) -> bool:
        return norm(name) in self.top.get(item_id, set())

    def same_story(self, item_id: str, name: str) -> bool:
        n = norm(name)
        if n in self.top.get(item_id, set()):
            return True
        sub = self.sub.get(item_id, set())
        return n in sub or any(n in self.parents.get(s, set()) for s in sub)
