"""How tests/data/store-v0.sql and bot-state-v0.sql were made (the upgrade test's input).

Run once with the code of commit b63c126 (before numbered migrations) on PYTHONPATH:
``python tests/data/make_v0_dumps.py /tmp/out``. Kept for the record: with today's code it
would write today's schema, not the old one. The dump is ``sqlite3 .dump``'s equivalent,
except that an FTS5 table is written as ``CREATE VIRTUAL TABLE`` plus its rows with their
rowids (Python's ``iterdump`` writes it through ``writable_schema`` and drops the rowids, which
a fresh database cannot load back).
"""

import asyncio
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import bot.delivery_failures as df
from bot.digests.schedule import Subscription
from bot.digests.store import DigestStore
from bot.state import BotState, Page, QuestionLog
from index.models import Article, Chunk
from index.storage import keywords
from index.storage.sources import SourceLedger
from index.storage.store import ArticleWrite, Store

OUT = Path(sys.argv[1])
ARTS = [
    (
        "a1",
        "Il porto di Genova riapre",
        "Il porto di Genova ha riaperto dopo la mareggiata. Le navi sono tornate in rada.",
        "Il Secolo XIX",
        "it",
        "https://example.org/genova",
    ),
    (
        "a2",
        "Flood barrier opens in Venice",
        "The MOSE flood barrier was raised again on Tuesday. Venice stayed dry.",
        "Venice Post",
        "en",
        "https://example.org/venice",
    ),
    (
        "a3",
        "Vendemmia anticipata in Piemonte",
        "La vendemmia in Piemonte comincia con due settimane di anticipo per il caldo. I viticoltori sono preoccupati.",
        "La Stampa",
        "it",
        None,
    ),
]


def dump(path: str) -> str:
    con = sqlite3.connect(path)
    master = con.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL"
        " AND name NOT LIKE 'sqlite_%' ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, name"
    ).fetchall()
    virtual = [
        n for t, n, _, s in master if t == "table" and s.upper().startswith("CREATE VIRTUAL")
    ]
    shadow = {n for t, n, _, _ in master if any(n.startswith(v + "_") for v in virtual)}
    out = ["BEGIN TRANSACTION;"]
    for type_, name, tbl, sql in master:
        if name in shadow or tbl in shadow:
            continue
        out.append(sql + ";")
        if type_ != "table":
            continue
        cols = [r[1] for r in con.execute(f'PRAGMA table_info("{name}")')]
        if name in virtual:
            cols = ["rowid", *cols]
        names = ", ".join(f'"{c}"' for c in cols)
        for row in con.execute(f'SELECT {names} FROM "{name}"'):
            values = ",".join(con.execute("SELECT quote(?)", (v,)).fetchone()[0] for v in row)
            out.append(f'INSERT INTO "{name}"({names}) VALUES({values});')
    out.append("COMMIT;")
    con.close()
    return "\n".join(out) + "\n"


async def main() -> None:
    data = OUT / "data"
    store = await Store.open(data / "newsbot.sqlite3")
    run_id, _ = await store.begin_run()
    writes = []
    base = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    for n, (aid, title, text, source, lang, url) in enumerate(ARTS):
        art = Article(
            id=aid,
            text=text,
            title=title,
            url=url,
            published=base + timedelta(days=n),
            source=source,
            lang=lang,
            origin=f"news.jsonl:{n + 1}",
        )
        cut = text.index(". ") + 1
        chunks = [
            Chunk(aid, 0, 0, cut, text[:cut]),
            Chunk(aid, 1, cut + 1, len(text), text[cut + 1 :]),
        ]
        cids = [f"{aid}::h{n}::{i}" for i in range(2)]
        bodies = [keywords.analyze(f"{title}\n{c.text}", lang) for c in chunks]
        writes.append(
            ArticleWrite(
                art,
                f"hash-{aid}",
                f"raw-{aid}",
                chunks,
                cids,
                bodies,
                [1000 + n, 2000 + n],
                signature=bytes([n]) * 16,
            )
        )
    dup = Article(
        id="a4",
        text=ARTS[0][2],
        title=ARTS[0][1],
        source="Genova24",
        lang="it",
        published=base,
        origin="news.jsonl:4",
    )
    writes.append(
        ArticleWrite(
            dup,
            "hash-a1",
            "raw-a4",
            [],
            [],
            [],
            [],
            canonical_id="a1",
            dup_kind="exact",
            similarity=1.0,
        )
    )
    await store.write_articles(writes, run_id)
    await store.db.execute("INSERT INTO stale_vectors(chunk_id) VALUES('gone::h9::0')")
    await store.finish_run(run_id, {"added": 4})
    await store.set_meta("embedding_model", "hashing-8")
    await store.close()

    ledger = await SourceLedger.open(data / "newsbot.sqlite3")
    await ledger.ensure("feed-genova", "feed", "https://example.org/feed.xml")
    await ledger.attempted("feed-genova", 1_764_000_000.0)
    await ledger.inbox_put(
        "channel-x",
        Article(id="p1", text="Un post dal canale.", title="Post", lang="it", origin="channel"),
        1_764_000_100.0,
    )
    await ledger.close()

    tz = ZoneInfo("Europe/Rome")
    state_path = data / "bot.sqlite3"
    state = await BotState.open(state_path, tz)
    page = Page(
        id="pg1",
        chat_id=42,
        user_id=7,
        lang="it",
        question="porto di Genova",
        start=0,
        k=3,
        hit_ids=["a1::h0::0"],
    )
    await state.save_page(page)
    await state.log_question(
        QuestionLog(7, 42, "private", "message", "it", "porto di Genova", 1, 123.4)
    )
    await state.flush()
    await state.record_feedback(page, 7, 1)
    await state.db.execute("UPDATE pages SET ts=4102444800.0 WHERE id='pg1'")
    await state.close()
    digests = await DigestStore.open(state_path)
    await digests.upsert(
        Subscription(
            chat_id=42,
            chat_type="private",
            title="",
            at="08:00",
            frequency="daily",
            weekday=0,
            tz="Europe/Rome",
            topic=None,
            lang="it",
            send_empty=False,
            created_by=7,
            created_at=base,
        )
    )
    await digests.close()
    db = sqlite3.connect(state_path)
    db.executescript(df._SCHEMA)
    db.execute(
        "INSERT INTO delivery_failures(kind, chat_id, ref, chat_title, what, since, last_at,"
        " attempts, reason) VALUES('digest', 42, '', 'Chat', '{}', ?, ?, 2, 'Forbidden')",
        (base.isoformat(), base.isoformat()),
    )
    db.commit()
    db.close()

    for name, path in (
        ("store-v0.sql", data / "newsbot.sqlite3"),
        ("bot-state-v0.sql", state_path),
    ):
        (OUT / name).write_text(dump(str(path)))


if __name__ == "__main__":
    asyncio.run(main())
