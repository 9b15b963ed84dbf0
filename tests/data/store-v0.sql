BEGIN TRANSACTION;
CREATE TABLE article_bands(
    band_key INTEGER NOT NULL,
    article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE
);
INSERT INTO "article_bands"("band_key", "article_id") VALUES(1000,'a1');
INSERT INTO "article_bands"("band_key", "article_id") VALUES(2000,'a1');
INSERT INTO "article_bands"("band_key", "article_id") VALUES(1001,'a2');
INSERT INTO "article_bands"("band_key", "article_id") VALUES(2001,'a2');
INSERT INTO "article_bands"("band_key", "article_id") VALUES(1002,'a3');
INSERT INTO "article_bands"("band_key", "article_id") VALUES(2002,'a3');
CREATE TABLE articles(
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
INSERT INTO "articles"("id", "title", "text", "url", "published", "published_ts", "source", "source_key", "lang", "content_hash", "raw_hash", "origin", "canonical_id", "dup_kind", "similarity", "minhash", "embedded", "indexed_at", "indexed_ts", "run_id") VALUES('a1','Il porto di Genova riapre','Il porto di Genova ha riaperto dopo la mareggiata. Le navi sono tornate in rada.','https://example.org/genova','2026-11-20T09:00:00+00:00',1795165200,'Il Secolo XIX','il secolo xix','it','hash-a1','raw-a1','news.jsonl:1',NULL,NULL,NULL,X'00000000000000000000000000000000',1,'2026-12-03T10:35:44.725474+00:00',1796294144,1);
INSERT INTO "articles"("id", "title", "text", "url", "published", "published_ts", "source", "source_key", "lang", "content_hash", "raw_hash", "origin", "canonical_id", "dup_kind", "similarity", "minhash", "embedded", "indexed_at", "indexed_ts", "run_id") VALUES('a2','Flood barrier opens in Venice','The MOSE flood barrier was raised again on Tuesday. Venice stayed dry.','https://example.org/venice','2026-11-21T09:00:00+00:00',1795251600,'Venice Post','venice post','en','hash-a2','raw-a2','news.jsonl:2',NULL,NULL,NULL,X'01010101010101010101010101010101',1,'2026-12-03T10:35:44.725474+00:00',1796294144,1);
INSERT INTO "articles"("id", "title", "text", "url", "published", "published_ts", "source", "source_key", "lang", "content_hash", "raw_hash", "origin", "canonical_id", "dup_kind", "similarity", "minhash", "embedded", "indexed_at", "indexed_ts", "run_id") VALUES('a3','Vendemmia anticipata in Piemonte','La vendemmia in Piemonte comincia con due settimane di anticipo per il caldo. I viticoltori sono preoccupati.',NULL,'2026-11-22T09:00:00+00:00',1795338000,'La Stampa','la stampa','it','hash-a3','raw-a3','news.jsonl:3',NULL,NULL,NULL,X'02020202020202020202020202020202',1,'2026-12-03T10:35:44.725474+00:00',1796294144,1);
INSERT INTO "articles"("id", "title", "text", "url", "published", "published_ts", "source", "source_key", "lang", "content_hash", "raw_hash", "origin", "canonical_id", "dup_kind", "similarity", "minhash", "embedded", "indexed_at", "indexed_ts", "run_id") VALUES('a4','Il porto di Genova riapre','Il porto di Genova ha riaperto dopo la mareggiata. Le navi sono tornate in rada.',NULL,'2026-11-20T09:00:00+00:00',1795165200,'Genova24','genova24','it','hash-a1','raw-a4','news.jsonl:4','a1','exact',1.0,NULL,0,'2026-12-03T10:35:44.725474+00:00',1796294144,1);
CREATE TABLE chunks(
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL
);
INSERT INTO "chunks"("rowid", "id", "article_id", "ord", "start", "end", "text") VALUES(1,'a1::h0::0','a1',0,0,50,'Il porto di Genova ha riaperto dopo la mareggiata.');
INSERT INTO "chunks"("rowid", "id", "article_id", "ord", "start", "end", "text") VALUES(2,'a1::h0::1','a1',1,51,80,'Le navi sono tornate in rada.');
INSERT INTO "chunks"("rowid", "id", "article_id", "ord", "start", "end", "text") VALUES(3,'a2::h1::0','a2',0,0,51,'The MOSE flood barrier was raised again on Tuesday.');
INSERT INTO "chunks"("rowid", "id", "article_id", "ord", "start", "end", "text") VALUES(4,'a2::h1::1','a2',1,52,70,'Venice stayed dry.');
INSERT INTO "chunks"("rowid", "id", "article_id", "ord", "start", "end", "text") VALUES(5,'a3::h2::0','a3',0,0,77,'La vendemmia in Piemonte comincia con due settimane di anticipo per il caldo.');
INSERT INTO "chunks"("rowid", "id", "article_id", "ord", "start", "end", "text") VALUES(6,'a3::h2::1','a3',1,78,109,'I viticoltori sono preoccupati.');
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    body, tokenize = "unicode61 remove_diacritics 2"
);
INSERT INTO "chunks_fts"("rowid", "body") VALUES(1,'il port di genov riapr il port di genov ha riapert dop la maregg');
INSERT INTO "chunks_fts"("rowid", "body") VALUES(2,'il port di genov riapr le nav son torn in rad');
INSERT INTO "chunks_fts"("rowid", "body") VALUES(3,'flood barrier open in venic the mose flood barrier was rais again on tuesday');
INSERT INTO "chunks_fts"("rowid", "body") VALUES(4,'flood barrier open in venic venic stay dri');
INSERT INTO "chunks_fts"("rowid", "body") VALUES(5,'vendemm anticip in piemont la vendemm in piemont cominc con due settiman di anticip per il cald');
INSERT INTO "chunks_fts"("rowid", "body") VALUES(6,'vendemm anticip in piemont i viticoltor son preoccup');
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta"("key", "value") VALUES('schema_version','1');
INSERT INTO "meta"("key", "value") VALUES('embedding_model','hashing-8');
CREATE TABLE runs(
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    stats TEXT
);
INSERT INTO "runs"("id", "started_at", "finished_at", "status", "stats") VALUES(1,'2026-12-03T10:35:44.723099+00:00','2026-12-03T10:35:44.738274+00:00','done','{"added": 4}');
CREATE TABLE source_files(
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY(source, path)
) WITHOUT ROWID;
CREATE TABLE source_inbox(
    article_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    payload TEXT NOT NULL,
    version INTEGER NOT NULL,
    received_ts REAL NOT NULL
);
INSERT INTO "source_inbox"("article_id", "source", "payload", "version", "received_ts") VALUES('p1','channel-x','{"id": "p1", "text": "Un post dal canale.", "title": "Post", "url": null, "published": null, "source": null, "lang": "it", "origin": "channel", "extra": {}}',1,1764000100.0);
CREATE TABLE source_state(
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
INSERT INTO "source_state"("name", "kind", "target", "etag", "last_modified", "last_attempt_ts", "last_success_ts", "last_error", "last_error_ts", "failures", "added_total", "added_last", "newest_ts", "next_attempt_ts", "alerted", "polls", "not_modified", "last_added_ts") VALUES('feed-genova','feed','https://example.org/feed.xml',NULL,NULL,1764000000.0,NULL,NULL,NULL,0,0,0,NULL,NULL,0,1,0,NULL);
CREATE TABLE stale_vectors(chunk_id TEXT PRIMARY KEY);
INSERT INTO "stale_vectors"("chunk_id") VALUES('gone::h9::0');
CREATE INDEX article_bands_article ON article_bands(article_id);
CREATE INDEX article_bands_key ON article_bands(band_key);
CREATE INDEX articles_canonical ON articles(canonical_id);
CREATE INDEX articles_hash ON articles(content_hash);
CREATE INDEX articles_indexed ON articles(indexed_ts);
CREATE INDEX articles_lang ON articles(lang);
CREATE INDEX articles_meta ON articles(
    id, source_key, lang, dup_kind, published_ts, indexed_ts, title, url, published, source,
    canonical_id
);
CREATE INDEX articles_published ON articles(published_ts);
CREATE INDEX articles_source ON articles(source_key);
CREATE INDEX articles_when ON articles(
    coalesce(published_ts, indexed_ts), source_key, lang, dup_kind, id, published_ts, indexed_ts
);
CREATE INDEX chunks_article_ids ON chunks(article_id, id);
COMMIT;
