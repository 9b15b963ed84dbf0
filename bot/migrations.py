"""The bot state database's migrations (``bot.sqlite3``), in order. Never edit one that has
shipped: add the next.

One list for the whole file, though four connections open it (``BotState``, ``DigestStore``,
``AlertStore`` and ``DeliveryFailures`` each keep their own, see bot/digests/store.py): whichever opens first
applies what is missing, under ``BEGIN IMMEDIATE``, and the others find it done.
``m001_initial`` is the schema as it stood before numbered migrations; it is re-runnable, so a
state file made by earlier code is recorded as migrated without being changed.
"""

from __future__ import annotations

from index.storage.sqlite import Migration

M001_INITIAL = (
    # The question log, "More" pages and votes (bot/state.py).
    """
CREATE TABLE IF NOT EXISTS questions(
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    day TEXT NOT NULL,
    user_id INTEGER,
    chat_id INTEGER,
    chat_type TEXT,
    kind TEXT NOT NULL,
    lang TEXT,
    question TEXT NOT NULL,
    hits INTEGER NOT NULL,
    latency_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS questions_day ON questions(day);
CREATE TABLE IF NOT EXISTS pages(
    id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    chat_id INTEGER,
    user_id INTEGER,
    lang TEXT NOT NULL,
    question TEXT NOT NULL,
    start INTEGER NOT NULL,
    k INTEGER NOT NULL,
    hit_ids TEXT NOT NULL,
    followed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS pages_ts ON pages(ts);
CREATE TABLE IF NOT EXISTS feedback(
    page_id TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    vote INTEGER NOT NULL,
    question TEXT NOT NULL,
    hit_ids TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY(page_id, user_id)
);
"""
    # Digest subscriptions, plans, their messages and the articles sent (bot/digests/store.py).
    """
CREATE TABLE IF NOT EXISTS digest_subscriptions(
    chat_id INTEGER PRIMARY KEY,
    chat_type TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL,
    frequency TEXT NOT NULL,
    weekday INTEGER NOT NULL DEFAULT 0,
    tz TEXT NOT NULL,
    topic TEXT,
    lang TEXT NOT NULL,
    send_empty INTEGER NOT NULL DEFAULT 0,
    created_by INTEGER,
    created_at TEXT NOT NULL,
    last_slot TEXT,
    watermark TEXT,
    last_sent TEXT
);
CREATE TABLE IF NOT EXISTS digest_plans(
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    slot TEXT NOT NULL,
    since TEXT NOT NULL,
    until TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    retry_at TEXT
);
CREATE INDEX IF NOT EXISTS digest_plans_open ON digest_plans(status, chat_id);
CREATE TABLE IF NOT EXISTS digest_messages(
    plan_id INTEGER NOT NULL REFERENCES digest_plans(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    html TEXT NOT NULL,
    story_ids TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    message_id INTEGER,
    sent_at TEXT,
    PRIMARY KEY(plan_id, seq)
);
CREATE TABLE IF NOT EXISTS digest_sent_articles(
    chat_id INTEGER NOT NULL,
    article_id TEXT NOT NULL,
    plan_id INTEGER NOT NULL,
    ts TEXT NOT NULL,
    PRIMARY KEY(chat_id, article_id)
);
"""
    # Deliveries that keep failing, for the admins (bot/delivery_failures.py).
    """
CREATE TABLE IF NOT EXISTS delivery_failures(
    kind TEXT NOT NULL,
    chat_id INTEGER NOT NULL,
    ref TEXT NOT NULL DEFAULT '',
    chat_title TEXT NOT NULL DEFAULT '',
    what TEXT NOT NULL DEFAULT '{}',
    since TEXT NOT NULL,
    last_at TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    reported_at TEXT,
    PRIMARY KEY(kind, chat_id, ref)
);
"""
)

# Alerts: follows with their encoding, the planned messages, what was seen (bot/alerts/store.py).
M002_ALERTS = """
CREATE TABLE IF NOT EXISTS alert_follows(
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    chat_type TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    query TEXT NOT NULL,
    words TEXT NOT NULL,
    sources TEXT NOT NULL DEFAULT '[]',
    langs TEXT NOT NULL DEFAULT '[]',
    lang TEXT NOT NULL,
    created_by INTEGER,
    created_at TEXT NOT NULL,
    model_id TEXT NOT NULL,
    vector BLOB NOT NULL,
    terms TEXT NOT NULL,
    weights TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_follows_chat ON alert_follows(chat_id);
CREATE TABLE IF NOT EXISTS alert_meta(
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_seen(
    article_id TEXT PRIMARY KEY,
    ts TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_messages(
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    follow_id INTEGER,
    kind TEXT NOT NULL,
    lang TEXT NOT NULL,
    html TEXT NOT NULL,
    items TEXT NOT NULL DEFAULT '[]',
    article_ids TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL DEFAULT 'pending',
    not_before TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    message_id INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    retry_at TEXT
);
CREATE INDEX IF NOT EXISTS alert_messages_open ON alert_messages(state, chat_id);
CREATE INDEX IF NOT EXISTS alert_messages_chat ON alert_messages(chat_id, created_at);
CREATE TABLE IF NOT EXISTS alert_sent_articles(
    chat_id INTEGER NOT NULL,
    article_id TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    ts TEXT NOT NULL,
    PRIMARY KEY(chat_id, article_id)
);
"""

# What each follow alerted lately (bot/alerts/store.py): later reports of those stories match
# through them (bot/alerts/matching.py, story_scores).
M003_ALERT_MEMORY = """
CREATE TABLE IF NOT EXISTS alert_follow_stories(
    follow_id INTEGER NOT NULL,
    article_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    PRIMARY KEY(follow_id, article_id)
);
CREATE INDEX IF NOT EXISTS alert_follow_stories_ts ON alert_follow_stories(ts);
"""

BOT_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "m001_initial", M001_INITIAL),
    Migration(2, "m002_alerts", M002_ALERTS),
    Migration(3, "m003_alert_memory", M003_ALERT_MEMORY),
)
