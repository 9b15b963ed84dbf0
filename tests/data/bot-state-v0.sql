BEGIN TRANSACTION;
CREATE TABLE delivery_failures(
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
INSERT INTO "delivery_failures"("kind", "chat_id", "ref", "chat_title", "what", "since", "last_at", "attempts", "reason", "reported_at") VALUES('digest',42,'','Chat','{}','2026-11-20T09:00:00+00:00','2026-11-20T09:00:00+00:00',2,'Forbidden',NULL);
CREATE TABLE digest_messages(
    plan_id INTEGER NOT NULL REFERENCES digest_plans(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    html TEXT NOT NULL,
    story_ids TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    message_id INTEGER,
    sent_at TEXT,
    PRIMARY KEY(plan_id, seq)
);
CREATE TABLE digest_plans(
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
CREATE TABLE digest_sent_articles(
    chat_id INTEGER NOT NULL,
    article_id TEXT NOT NULL,
    plan_id INTEGER NOT NULL,
    ts TEXT NOT NULL,
    PRIMARY KEY(chat_id, article_id)
);
CREATE TABLE digest_subscriptions(
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
INSERT INTO "digest_subscriptions"("chat_id", "chat_type", "title", "at", "frequency", "weekday", "tz", "topic", "lang", "send_empty", "created_by", "created_at", "last_slot", "watermark", "last_sent") VALUES(42,'private','','08:00','daily',0,'Europe/Rome',NULL,'it',0,7,'2026-11-20T09:00:00+00:00',NULL,NULL,NULL);
CREATE TABLE feedback(
    page_id TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    vote INTEGER NOT NULL,
    question TEXT NOT NULL,
    hit_ids TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY(page_id, user_id)
);
INSERT INTO "feedback"("page_id", "user_id", "vote", "question", "hit_ids", "ts") VALUES('pg1',7,1,'porto di Genova','["a1::h0::0"]',1.79629414481826019285e+09);
CREATE TABLE pages(
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
INSERT INTO "pages"("id", "ts", "chat_id", "user_id", "lang", "question", "start", "k", "hit_ids", "followed") VALUES('pg1',4102444800.0,42,7,'it','porto di Genova',0,3,'["a1::h0::0"]',0);
CREATE TABLE questions(
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
INSERT INTO "questions"("id", "ts", "day", "user_id", "chat_id", "chat_type", "kind", "lang", "question", "hits", "latency_ms") VALUES(1,1.79629414481807112699e+09,'2026-12-03',7,42,'private','message','it','porto di Genova',1,123.4);
CREATE INDEX digest_plans_open ON digest_plans(status, chat_id);
CREATE INDEX pages_ts ON pages(ts);
CREATE INDEX questions_day ON questions(day);
COMMIT;
