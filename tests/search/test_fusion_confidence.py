"""Fusion weighted by each list's confidence and the languages, and the soft recency prior."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from index.search.fusion import Evidence, FusionParams, evidence, fuse, weights
from index.search.query_parse import parse_question_full
from index.search.recency import RECENT_CUE, WEEK_CUE, recency_cue, recency_weights

ROME = ZoneInfo("Europe/Rome")

P = FusionParams(dense_weight=1.0, dense_power=1.0, bm25_power=1.0, gap_ref=0.1,
                 gap_floor=0.2, gap_cap=2.0, margin_ref=0.2, margin_floor=0.5,
                 margin_cap=2.0, same_lang_dense=0.5)


def test_evidence_reads_gap_margin_languages_and_agreement():
    dense = [("a1", 0.9), ("b1", 0.5), ("c1", 0.5)]
    bm25 = [("a2", 10.0), ("x", 5.0)]
    ev = evidence(dense, bm25, 0.5, "en", {"a2": "en", "x": "it"}, {"a1": "A", "a2": "A"})
    assert ev.dense_gap is not None and abs(ev.dense_gap - 0.4) < 1e-9
    assert ev.bm25_margin is not None and abs(ev.bm25_margin - 0.5) < 1e-9
    assert ev.same_lang == 0.5
    assert ev.agree == "a2"  # both lists' tops are passages of article A
    flat = evidence([("a", 0.5), ("b", 0.5)], [("c", 3.0), ("d", 3.0)], 0.5, None, {})
    assert flat.dense_gap == 0.0 and flat.bm25_margin == 0.0
    assert flat.same_lang is None and flat.agree is None


def test_a_flat_dense_list_loses_weight_and_a_confident_one_gains():
    flat = weights(Evidence(0.5, dense_gap=0.0, bm25_margin=0.2), P)
    sharp = weights(Evidence(0.5, dense_gap=0.3, bm25_margin=0.2), P)
    assert flat[0] < sharp[0] and flat[1] == sharp[1]
    # Off by default: the match fraction alone decides.
    assert weights(Evidence(0.5, dense_gap=0.0), FusionParams()) == weights(
        Evidence(0.5), FusionParams())


def test_same_language_keyword_head_lowers_the_dense_weight():
    cross = weights(Evidence(0.5, same_lang=0.0), P)
    same = weights(Evidence(0.5, same_lang=1.0), P)
    assert same[0] == cross[0] * 0.5 and same[1] == cross[1]


def test_confident_keyword_list_wins_over_a_flat_dense_list():
    dense = [("d1", 0.52), ("k1", 0.51), ("d3", 0.50)]
    bm25 = [("k1", 12.0), ("k2", 3.0)]
    ev = evidence(dense, bm25, 0.5, "en", {"k1": "en", "k2": "en"})
    assert fuse(dense, bm25, ev, P)[0].chunk_id == "k1"
    # The float form still works (match fraction only).
    assert fuse(dense, bm25, 0.0, P)[0].chunk_id == "d1"


def test_boost_reorders_without_removing():
    dense = [("old", 0.9), ("new", 0.8), ("z", 0.1)]
    ranked = fuse(dense, [], 0.0, P, boost={"old": 0.2})
    assert [r.chunk_id for r in ranked][:2] == ["new", "old"]
    assert {r.chunk_id for r in ranked} == {"old", "new", "z"}


def test_recency_cue_words_in_both_languages():
    for q in ["What did the bank decide this week?", "Cosa è successo nei giorni scorsi a Roma?",
              "Chi ha vinto questa settimana?", "What happened in recent days in Gaza?"]:
        assert recency_cue(q) == WEEK_CUE, q
    for q in ["Who recently resigned?", "The latest on the strike", "Ultime notizie sul Papa",
              "Chi ha firmato di recente l'accordo?", "Which new law was passed?"]:
        assert recency_cue(q) == RECENT_CUE, q
    for q in ["Who won the 1973 war?", "Quando è nato Garibaldi?"]:
        assert recency_cue(q) is None, q


def test_recency_weights_fade_with_age_and_faster_after_the_moment():
    now = datetime(2025, 9, 5, 12, tzinfo=UTC)
    pub = {"in": now - timedelta(days=3), "month": now - timedelta(days=40),
           "year": now - timedelta(days=400), "late": now - timedelta(days=9),
           "after": now + timedelta(days=2.5), "undated": None}
    w = recency_weights(pub, now, WEEK_CUE)
    assert w["in"] == 1.0
    assert 1.0 > w["month"] > w["year"] >= 1.0 - WEEK_CUE.strength
    assert w["after"] < w["late"]  # 2.5 days after the moment vs 2 days before the window
    assert min(w.values()) >= 1.0 - WEEK_CUE.strength  # never a cut


def test_this_week_in_a_search_is_vague_but_yesterday_is_not():
    now = datetime(2025, 9, 8, 12, tzinfo=ROME)  # a Monday
    week = parse_question_full("Who resigned this week?", now=now, tz=ROME)
    assert week.vague_dates and week.relative_dates and week.query == "Who resigned?"
    ieri = parse_question_full("Chi si è dimesso ieri questa settimana?", now=now, tz=ROME)
    assert not ieri.vague_dates
    assert not parse_question_full("news from last week", now=now, tz=ROME).vague_dates
