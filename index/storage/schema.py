"""The index database's migrations, in order. Never edit one that has shipped: add the next.

``m001_initial`` is the schema as it stood before numbered migrations, and ``m002`` the live
sources' tables (index/storage/sources.py) added just before them; both are re-runnable, so a
data dir made by earlier code is recorded as migrated without being changed (see sqlite.py).
"""

from __future__ import annotations

from index.storage.sqlite import Migration

# articles, chunks, the keyword index, duplicate bands, stale vectors, runs and meta.
M001_INITIAL = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles(
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    url TEXT,
    published TEXT,
    published_ts INTEGER,
    source TEXT,
    source_key TEXT,
    lang TEXT,
    content_hash TEXT NOT NULL,
    raw_hash TEXT,
    origin TEXT,
    canonical_id TEXT,
    dup_kind TEXT,
    similarity REAL,
    minhash BLOB,
    embedded INTEGER NOT NULL DEFAULT 0,
    indexed_at TEXT NOT NULL,
    indexed_ts INTEGER NOT NULL,
    run_id INTEGER
);
CREATE INDEX IF NOT EXISTS articles_published ON articles(published_ts);
CREATE INDEX IF NOT EXISTS articles_indexed ON articles(indexed_ts);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source_key);
CREATE INDEX IF NOT EXISTS articles_lang ON articles(lang);
CREATE INDEX IF NOT EXISTS articles_hash ON articles(content_hash);
CREATE INDEX IF NOT EXISTS articles_canonical ON articles(canonical_id);
CREATE TABLE IF NOT EXISTS chunks(
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL
);
-- Filters never read an article's row: its long text comes before these columns, so reading
-- them walks the text's overflow pages (~100x slower at 100k chunks, see bench/query_bench.py).
CREATE INDEX IF NOT EXISTS articles_when ON articles(
    coalesce(published_ts, indexed_ts), source_key, lang, dup_kind, id, published_ts, indexed_ts
);
CREATE INDEX IF NOT EXISTS articles_meta ON articles(
    id, source_key, lang, dup_kind, published_ts, indexed_ts, title, url, published, source,
    canonical_id
);
DROP INDEX IF EXISTS chunks_article;
CREATE INDEX IF NOT EXISTS chunks_article_ids ON chunks(article_id, id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    body, tokenize = "unicode61 remove_diacritics 2"
);
CREATE TABLE IF NOT EXISTS article_bands(
    band_key INTEGER NOT NULL,
    article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS article_bands_key ON article_bands(band_key);
CREATE INDEX IF NOT EXISTS article_bands_article ON article_bands(article_id);
CREATE TABLE IF NOT EXISTS stale_vectors(chunk_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS runs(
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    stats TEXT
);
"""

# Live sources: health, files a folder rescan compares, pushed posts not yet indexed.
M002_LIVE_SOURCES = """
CREATE TABLE IF NOT EXISTS source_state(
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    last_attempt_ts REAL,
    last_success_ts REAL,
    last_error TEXT,
    last_error_ts REAL,
    failures INTEGER NOT NULL DEFAULT 0,
    added_total INTEGER NOT NULL DEFAULT 0,
    added_last INTEGER NOT NULL DEFAULT 0,
    newest_ts REAL,
    next_attempt_ts REAL,
    alerted INTEGER NOT NULL DEFAULT 0,
    polls INTEGER NOT NULL DEFAULT 0,
    not_modified INTEGER NOT NULL DEFAULT 0,
    last_added_ts REAL
);
CREATE TABLE IF NOT EXISTS source_files(
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY(source, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS source_inbox(
    article_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    payload TEXT NOT NULL,
    version INTEGER NOT NULL,
    received_ts REAL NOT NULL
);
"""

# Per-outlet boilerplate (index/storage/boilerplate.py): the lines each outlet's articles carry,
# one row per article seen, and the lines learned as boilerplate.
M003_OUTLET_BOILERPLATE = """
CREATE TABLE IF NOT EXISTS boilerplate_seen(
    article_id TEXT PRIMARY KEY,
    source_key TEXT NOT NULL,
    story INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS boilerplate_seen_source ON boilerplate_seen(source_key, story);
CREATE TABLE IF NOT EXISTS boilerplate_lines(
    source_key TEXT NOT NULL,
    line_key INTEGER NOT NULL,
    article_id TEXT NOT NULL,
    story INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS boilerplate_lines_key ON boilerplate_lines(source_key, line_key, story);
CREATE INDEX IF NOT EXISTS boilerplate_lines_article ON boilerplate_lines(article_id);
CREATE TABLE IF NOT EXISTS boilerplate_patterns(
    source_key TEXT NOT NULL,
    line_key INTEGER NOT NULL,
    text TEXT NOT NULL,
    stories INTEGER NOT NULL,
    outlet_stories INTEGER NOT NULL,
    learned_at TEXT NOT NULL,
    PRIMARY KEY(source_key, line_key)
);
"""

# What the in-memory copy's snapshot on disk (index/search/copy_snapshot.py) is checked
# against: a token drawn afresh by every write to a chunk, or to an article column the copy
# reads, whichever process or code makes it (triggers, not the store's methods, so nothing
# can forget). Random rather than a count, so a store restored from an older backup and
# written again never meets a token it had in another history. FTS5 bodies change only
# with their chunk rows (writes.py), and a virtual table cannot carry triggers.
_BUMP = (
    "BEGIN UPDATE corpus_generation SET n = n + 1, token = lower(hex(randomblob(8)))"
    " WHERE id = 1; END;"
)
M004_CORPUS_GENERATION = f"""
CREATE TABLE IF NOT EXISTS corpus_generation(
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n INTEGER NOT NULL,
    token TEXT NOT NULL
);
INSERT OR IGNORE INTO corpus_generation(id, n, token) VALUES(1, 0, lower(hex(randomblob(8))));
CREATE TRIGGER IF NOT EXISTS chunks_generation_insert AFTER INSERT ON chunks {_BUMP}
CREATE TRIGGER IF NOT EXISTS chunks_generation_delete AFTER DELETE ON chunks {_BUMP}
CREATE TRIGGER IF NOT EXISTS chunks_generation_update AFTER UPDATE ON chunks {_BUMP}
CREATE TRIGGER IF NOT EXISTS articles_generation_insert AFTER INSERT ON articles {_BUMP}
CREATE TRIGGER IF NOT EXISTS articles_generation_delete AFTER DELETE ON articles {_BUMP}
CREATE TRIGGER IF NOT EXISTS articles_generation_update AFTER UPDATE OF
    published_ts, indexed_ts, source_key, lang, dup_kind ON articles {_BUMP}
"""

INDEX_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "m001_initial", M001_INITIAL),
    Migration(2, "m002_live_sources", M002_LIVE_SOURCES),
    Migration(3, "m003_outlet_boilerplate", M003_OUTLET_BOILERPLATE),
    Migration(4, "m004_corpus_generation", M004_CORPUS_GENERATION),
)
