"""The alerts' lead-word rule, on articles indexed by the real pipeline with the default model (USE v3, whose bars
bench/alert_eval.py tuned).

A follow of "Cameroonian presidential election" reads, to the dense model and to the keyword
share alike, like any presidential election: without the rule another country's election
is alerted. With it the article's lead (headline and first sentences) must hold one of the
follow's distinctive words — here "Cameroonian", or a form of it such as "Cameroon" — and a
word further down the text does not count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.alerts.delivery import new_article_ids
from bot.alerts.matching import Bars, FollowIndex, follow_terms, load_batch
from bot.alerts.store import Follow
from index.runtime import open_services
from index.settings import Settings
from tests.support.bot import write_articles

pytestmark = pytest.mark.slow

FOLLOW = "Cameroonian presidential election"


def article(slug: str, title: str, text: str) -> dict[str, str]:
    return {"id": slug, "title": title, "text": text, "url": f"https://wire.example/{slug}",
            "published": "2025-10-13", "source": "Wire", "lang": "en"}


CAMEROON = article(
    "cameroon", "Biya declared winner of Cameroon's presidential election",
    "Cameroon's constitutional council declares Paul Biya the winner of the presidential "
    "election, giving the 92-year-old an eighth term. The opposition rejects the result.",
)
GUINEA = article(
    "guinea", "Guineans vote in a presidential poll after the coup",
    "Guineans vote for a president as incumbent Mamady Doumbouya seeks to be elected four "
    "years after leading a coup. Turnout is reported high in the capital, Conakry. Polling "
    "stations close in the evening. Counting begins overnight. Observers from Cameroon and "
    "Senegal follow the count.",
)
FILLER = [
    article("rain", "Heavy rain floods streets in Valencia",
            "Heavy rain flooded streets in Valencia on Monday, and schools were closed."),
    article("match", "City win the derby",
            "City won the derby two goals to one with a late header from their captain."),
    article("bank", "Central bank holds rates",
            "The central bank held interest rates steady and said inflation was easing."),
]


async def test_the_lead_must_hold_a_distinctive_word_of_the_follow(tmp_path: Path) -> None:
    services = await open_services(Settings(_env_file=None, data_dir=tmp_path / "data"))
    try:
        corpus = write_articles(tmp_path / "a.jsonl", [CAMEROON, GUINEA, *FILLER])
        await services.index([corpus])
        retriever = await services.retriever()
        vector = np.asarray(await retriever.encoder.encode(FOLLOW), dtype=np.float32)
        terms, weights = await follow_terms(services.store, FOLLOW)
        follow = Follow(id=1, chat_id=1, chat_type="private", title=FOLLOW, query=FOLLOW,
                        words=FOLLOW, sources=[], langs=[], lang="en",
                        model_id=services.embedder.model_id, vector=vector, terms=terms,
                        weights=weights)
        ids, _, _ = await new_article_ids(services.store, 0, 0)
        index = FollowIndex.build([follow])
        batch = await load_batch(services.store, await services.vectors(), ids)
    finally:
        await services.close()
    url = {a.url: row for row, a in enumerate(batch.articles)}
    cameroon, guinea = url[CAMEROON["url"]], url[GUINEA["url"]]
    bars = Bars.for_model(services.embedder.model_id)
    assert bars.strong_dense is not None
    dense, match = index.scores(batch)
    # Without the rule the gate lets the other country's election through ...
    without = index.match(batch, Bars(bars.min_dense, bars.min_match, None)).get(0, [])
    assert guinea in without, (dense[0, guinea], match[0, guinea])
    assert dense[0, guinea] < bars.strong_dense
    # ... whose text does name Cameroon, but only in its fifth sentence, not in its lead.
    assert "cameroon" in {w for s in batch.chunk_stems for w in s}
    held = index.lead_held(batch)
    assert held[0, cameroon] and not held[0, guinea]
    # With it, only the Cameroonian election is alerted ("Cameroon" is a form of the word).
    assert index.match(batch, bars).get(0, []) == [cameroon]
