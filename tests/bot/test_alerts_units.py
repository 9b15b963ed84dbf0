"""The alerts' pure parts: quiet hours, the hourly cap, the follow index's scores, the
messages' HTML (escaped, within Telegram's limit), the settings' checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from bot.alerts.lead import distinctive_groups, is_word_form, name_words
from bot.alerts.matching import Bars, Batch, FollowIndex
from bot.alerts.quiet import cap_room, parse_quiet_hours
from bot.alerts.store import Follow
from bot.alerts.texts import alert_html, summary_html, summary_line
from bot.settings import BotSettings
from index.storage.store import ArticleRecord
from tests.support.fakebotapi.telegram_html import parse_html

ROME = ZoneInfo("Europe/Rome")


def test_quiet_hours_across_midnight_end_in_the_morning_local_time() -> None:
    quiet = parse_quiet_hours("23-7")
    late = datetime(2025, 12, 2, 22, 30, tzinfo=UTC)  # 23:30 in Rome
    assert quiet.end_after(late, ROME) == datetime(2025, 12, 3, 6, 0, tzinfo=UTC)
    early = datetime(2025, 12, 3, 5, 0, tzinfo=UTC)  # 06:00 in Rome
    assert quiet.end_after(early, ROME) == datetime(2025, 12, 3, 6, 0, tzinfo=UTC)
    assert quiet.end_after(datetime(2025, 12, 3, 12, 0, tzinfo=UTC), ROME) is None
    day = parse_quiet_hours("13:30-14:00")
    assert day.end_after(datetime(2025, 12, 3, 12, 45, tzinfo=UTC), ROME) == datetime(
        2025, 12, 3, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["23", "25-7", "7-7", "ore 23-7", "23:75-7"])
def test_bad_quiet_hours_are_refused_naming_the_value(bad: str) -> None:
    with pytest.raises(ValueError, match="ALERT_QUIET_HOURS"):
        parse_quiet_hours(bad)
    with pytest.raises(ValueError, match="ALERT_QUIET_HOURS"):
        BotSettings(_env_file=None, alert_quiet_hours=bad)


def test_the_hourly_cap_counts_the_last_hour_and_says_when_it_frees() -> None:
    now = datetime(2025, 12, 3, 12, 0, tzinfo=UTC)
    recent = [now - timedelta(minutes=m) for m in (70, 50, 30, 10)]
    assert cap_room(recent, now, 5) == (2, now)
    room, frees = cap_room(recent, now, 3)
    assert room == 0 and frees == now - timedelta(minutes=50) + timedelta(hours=1)
    assert cap_room(recent, now, 0)[0] > 1000  # no cap


def _follow(i: int, vector: list[float], terms: list[list[str]], weights: list[float],
            **kw: object) -> Follow:
    return Follow(id=i, chat_id=i, chat_type="private", title="", query="", words="",
                  sources=list(kw.get("sources", [])), langs=list(kw.get("langs", [])),  # type: ignore[call-overload]
                  lang="en", model_id="m", vector=np.asarray(vector, dtype=np.float32),
                  terms=terms, weights=weights)


def _article(aid: str, source: str = "ANSA", lang: str = "it") -> ArticleRecord:
    return ArticleRecord(aid, "t", "x", None, None, source, lang, None, None,
                         datetime(2025, 12, 3, tzinfo=UTC))


def test_the_follow_index_takes_each_articles_best_chunk_and_rare_words_count_more() -> None:
    follows = [
        _follow(1, [1, 0, 0], [["gaza"], ["war"]], [3.0, 0.5]),
        _follow(2, [0, 1, 0], [["alluvion", "alluvione"], ["emilia"]], [2.0, 2.0]),
        _follow(3, [0, 0, 1], [["sudan"]], [4.0], sources=["reuters"]),
    ]
    index = FollowIndex.build(follows)
    batch = Batch(
        articles=[_article("a"), _article("b"), _article("c", source="Reuters")],
        chunk_article=np.asarray([0, 0, 1, 2]),
        chunk_vectors=np.asarray([[0.6, 0.8, 0], [1, 0, 0], [0, 1, 0], [0, 0.6, 0.8]],
                                 dtype=np.float32),
        chunk_stems=[frozenset({"war"}), frozenset({"gaza", "oggi"}),
                     frozenset({"alluvione"}), frozenset({"sudan", "war"})],
        leads=[frozenset({"war", "gaza"}), frozenset({"alluvioni"}), frozenset({"sudanese"})],
    )
    dense, match = index.scores(batch)
    assert dense[0].tolist() == pytest.approx([1.0, 0.0, 0.0])  # a's best chunk
    assert dense[1].tolist() == pytest.approx([0.8, 1.0, 0.6])
    # "gaza" alone carries 3/3.5 of follow 1's weight; "war" alone 0.5/3.5.
    assert match[0].tolist() == pytest.approx([3 / 3.5, 0.0, 0.5 / 3.5])
    assert match[1].tolist() == pytest.approx([0.0, 0.5, 0.0])
    got = index.match(batch, Bars(min_dense=0.9, min_match=0.5))
    # Follow 3 matches c by keyword, and only c passes its source filter anyway.
    assert got == {0: [0], 1: [1], 2: [2]}
    # Leads: a holds follow 1's rarest word, b a form of "alluvione" (its root "alluvi"), c
    # "sudanese" for "sudan"; "war" is not rare enough to count for follow 1.
    assert index.lead_held(batch).tolist() == [[True, False, False], [False, True, False],
                                              [False, False, True]]
    assert index.match(batch, Bars(0.5, 0.5, strong_dense=0.95)) == {0: [0], 1: [1], 2: [2]}



def test_a_word_form_is_an_inflection_or_gentilic_not_a_longer_other_name() -> None:
    forms = [("cameroon", "cameroonian"), ("ukraine", "ukrainian"), ("kidnapping", "kidnapped"),
             ("alluvione", "alluvioni"), ("sudan", "sudanese"), ("russia", "russo"),
             ("lebanon", "lebanese"), ("nigeria", "nigerian"), ("election", "elections")]
    others = [("niger", "nigeria"), ("india", "indiana"), ("mali", "malibu"),
              ("austria", "australia"), ("iran", "iraq")]
    for a, b in forms:
        assert is_word_form(a, b) and is_word_form(b, a), (a, b)
    for a, b in others:
        assert not is_word_form(a, b) and not is_word_form(b, a), (a, b)
    # In the lead-word rule: a lead naming Nigeria does not hold the follow of Niger.
    index = FollowIndex.build([_follow(1, [1, 0], [["niger"], ["insurg", "insurgency"]],
                                       [3.0, 1.0])])
    batch = Batch(
        articles=[_article("a"), _article("b"), _article("c")],
        chunk_article=np.asarray([0, 1, 2]),
        chunk_vectors=np.asarray([[1, 0], [1, 0], [1, 0]], dtype=np.float32),
        chunk_stems=[frozenset({"nigeria"}), frozenset({"niger"}), frozenset({"nigers"})],
        leads=[frozenset({"nigeria", "insurgency"}), frozenset({"niger"}), frozenset({"nigers"})],
    )
    assert index.lead_held(batch).tolist() == [[False, True, True]]


def test_a_follow_typed_with_names_needs_one_of_them_in_the_lead() -> None:
    assert name_words("2025 Czech parliamentary election") == {"czech"}
    assert name_words("Kidnapping in Nigeria") == {"nigeria"}  # the first word only starts it
    assert name_words("gaza war") == frozenset()
    terms = [["2025"], ["czech"], ["parliamentari", "parliamentary"], ["elect", "election"]]
    weights = [1.0, 3.0, 2.9, 1.2]
    # By rarity alone "parliamentary" is as distinctive as "Czech" ...
    assert distinctive_groups(terms, weights) == [["czech"], ["parliamentari", "parliamentary"]]
    # ... among the names only "Czech" is; without names, rarity decides as before.
    assert distinctive_groups(terms, weights, frozenset({"czech"})) == [["czech"]]
    assert distinctive_groups(terms, weights, frozenset({"paris"})) == distinctive_groups(
        terms, weights)
    # The lead needs a distinctive word and, the follow being typed with a name, that name.
    czech = _follow(1, [1, 0], terms, weights)
    czech.words = "2025 Czech parliamentary election"
    typed_lower = _follow(2, [1, 0], terms, weights)
    typed_lower.words = "2025 czech parliamentary election"
    index = FollowIndex.build([czech, typed_lower])
    batch = Batch(
        articles=[_article("a"), _article("b"), _article("c")],
        chunk_article=np.asarray([0, 1, 2]),
        chunk_vectors=np.asarray([[1, 0], [1, 0], [1, 0]], dtype=np.float32),
        chunk_stems=[frozenset(), frozenset(), frozenset()],
        leads=[frozenset({"nauru", "parliamentary", "election"}),
               frozenset({"czech", "parliamentary"}), frozenset({"czech"})],
    )
    assert index.lead_held(batch).tolist() == [[False, True, True], [True, True, True]]


def test_a_follow_with_alerted_stories_wants_more_from_an_article_unlike_them() -> None:
    index = FollowIndex.build([_follow(1, [1, 0], [["kalmaegi"]], [3.0]),
                               _follow(2, [1, 0], [["kalmaegi"]], [3.0])])

    def unit(cos: float) -> list[float]:
        return [cos, (1 - cos * cos) ** 0.5]

    batch = Batch(  # x reads somewhat like the follows, y clearly; both name the typhoon
        articles=[_article("x"), _article("y")],
        chunk_article=np.asarray([0, 1]),
        chunk_vectors=np.asarray([unit(0.32), unit(0.4)], dtype=np.float32),
        chunk_stems=[frozenset(), frozenset()],
        leads=[frozenset({"kalmaegi"}), frozenset({"kalmaegi"})],
    )
    bars = Bars(0.3, 0.6, strong_dense=0.6, story=(0.45, 0.15), unlike=(0.25, 0.35))
    # Follow 1 alerted a story x is unlike (0.1); follow 2 never alerted anything.
    story = np.asarray([[0.1, 0.1], [0.0, 0.0]], dtype=np.float32)
    assert index.match(batch, bars, story) == {0: [1], 1: [0, 1]}
    assert index.match(batch, bars) == {0: [0, 1], 1: [0, 1]}  # no memory read: the gate
    # Like the alerted story, x passes for follow 1 again.
    assert index.match(batch, bars, np.asarray([[0.3, 0.1], [0.0, 0.0]]))[0] == [0, 1]


def test_weak_dense_and_keyword_evidence_pass_together_only_when_both_agree() -> None:
    index = FollowIndex.build([_follow(1, [1, 0], [["pacific"], ["typhoon"], ["season"]],
                                       [2.0, 1.8, 0.5])])

    def unit(cos: float) -> list[float]:
        return [cos, (1 - cos * cos) ** 0.5]

    batch = Batch(
        articles=[_article("x"), _article("y"), _article("z")],
        chunk_article=np.asarray([0, 1, 2]),
        chunk_vectors=np.asarray([unit(0.27), unit(0.2), unit(0.27)], dtype=np.float32),
        chunk_stems=[frozenset({"typhoon"}), frozenset({"typhoon"}), frozenset({"season"})],
        leads=[frozenset({"typhoon"}), frozenset({"typhoon"}), frozenset({"season"})],
    )
    dense, match = index.scores(batch)
    assert match[0].tolist() == pytest.approx([1.8 / 4.3, 1.8 / 4.3, 0.5 / 4.3])
    # x: dense 0.27 and keywords 0.42, each below its own bar (0.3, 0.6), both above the
    # agreement's; y has the words but too little dense; z the dense but not the words.
    bars = Bars(0.3, 0.6, strong_dense=0.6, agree=(0.25, 0.4))
    assert index.match(batch, bars) == {0: [0]}
    assert index.match(batch, Bars(0.3, 0.6, strong_dense=0.6)) == {}


def test_an_alert_is_escaped_valid_html_within_the_limit() -> None:
    hostile = "<b>Zebra & crossings <script>x</script>" * 40
    html = alert_html(
        "zebra <crossings>", hostile, "javascript:alert(1)", hostile * 20, "The <Daily> & Co",
        datetime(2025, 12, 3, tzinfo=UTC), [("Other <i>outlet", "https://x.example/?a=1&b=2")] * 9,
        "it", ROME,
    )
    parsed = parse_html(html)
    text, entities = parsed.text, parsed.entities
    assert parsed.length <= 4096
    assert "javascript" not in html and "<script>" not in html
    assert "Ne parlano anche:" in text and "e altri 3" in text
    assert any(e["type"] == "blockquote" for e in entities)
    assert "3 dicembre 2025" in text


def test_a_summary_lists_what_fits_and_counts_the_rest() -> None:
    lines = [summary_line("Gaza", f"Headline {i} & more", f"https://x.example/{i}", "ANSA", "en")
             for i in range(40)]
    html = summary_html(lines, "en")
    parsed = parse_html(html)
    text = parsed.text
    assert text.startswith("🔔 40 more new articles on what you follow:")
    assert "Headline 0 & more" in text and text.endswith("… and 15 more.")
    assert parsed.length <= 4096
