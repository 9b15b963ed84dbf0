"""Cleaning of scraped news pages on the fixture corpus tests/data/scraped-news/: dateline
titles, seed and per-outlet boilerplate, boilerplate-only pages, and learned boilerplate
re-applied to articles indexed before it was learned. Real SQLite, real Chroma, real model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from index.embed import make_embedder
from index.ingest.boilerplate import strip_seed_boilerplate
from index.ingest.cleaning import clean_article, drop_debris, normalize_inline, normalize_text
from index.ingest.datelines import is_dateline
from index.ingest.loaders import iter_articles
from index.ingest.outlet_boilerplate import learned_patterns, strip_outlet_boilerplate
from index.models import Article, LoadError
from index.runtime import open_services
from index.sample import HERE as SAMPLE_DIR
from index.settings import Settings
from index.storage.store import Store, StoredState
from index.storage.vectors import VectorStore

DATA = Path(__file__).parent / "data"
SCRAPED = DATA / "scraped-news"

MORNING = "Meridian Morning: the five stories you need before breakfast"
TIP = "Have a tip? Reach the Meridian newsroom securely"
MEMBER = "The Northgate Courier is funded by its readers"
APP = "Scarica l'app del Corriere di Valdora"
SUBS = "Notiziario ASP Regioni riservato agli abbonati"
LEARNED = (MORNING, MEMBER, APP, SUBS, TIP)
SEEDED = (
    "Looking for a free mini puzzle?",
    "How relevant is this ad to you?",
    "Video player was slow to load content",
    "We use cookies",
    "Contributing: Reuters",
    "RIPRODUZIONE RISERVATA",
    "Leggi anche",
    "Iscriviti alla newsletter",
    "Questo sito utilizza cookie",
    "Sign up for Meridian's free",
)


def rows(name: str) -> list[dict]:
    with (SCRAPED / f"{name}.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def by_id(path: Path) -> dict[str, Article | LoadError]:
    out: dict[str, Article | LoadError] = {}
    for item in iter_articles([path]):
        assert isinstance(item, Article), item
        out[item.id] = clean_article(item)
    return out


def cleaned(article_id: str, path: Path) -> Article:
    result = by_id(path)[article_id]
    assert isinstance(result, Article), result
    return result


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Dateline titles
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        "London CNN —",
        "CNN —",
        "New York CNN Business —",
        "ROMA —",
        "(ANSA) - MILANO,",
        "WASHINGTON (AP) —",
        "Kyiv, Ukraine CNN —",
        "NEW YORK, May 3 (Reuters) -",
        "Hong Kong CNN -",
    ],
)
def test_datelines_are_recognised(title: str) -> None:
    assert is_dateline(title)


@pytest.mark.parametrize(
    "title",
    [
        "UK inflation falls to 3%",
        "Roma, il Consiglio dei ministri approva la manovra",
        "Northgate council approves tram extension to the airport",
        "London calling",
        "Milano — la città che sale",
        "(ANSA) - Il governo approva la manovra",
    ],
)
def test_headlines_are_not_datelines(title: str) -> None:
    assert not is_dateline(title)


def test_a_title_that_is_only_the_outlet_is_a_dateline() -> None:
    assert is_dateline("Meridian News", "Meridian News")
    assert not is_dateline("Meridian News", "The Northgate Courier")


def test_dateline_title_becomes_the_first_sentence_and_the_body_loses_its_dateline() -> None:
    art = cleaned("mer-001", SCRAPED / "meridian.jsonl")
    assert art.title == "The Bank of England held its main interest rate at 4% on Thursday"
    assert art.text.startswith("The Bank of England held its main interest rate")
    assert "London Meridian" not in art.text

    wire = cleaned("asp-001", SCRAPED / "asp.jsonl")
    assert wire.title == "Piazza Affari ha chiuso la seduta in rialzo dell'1,4%"
    assert wire.text.startswith("Piazza Affari ha chiuso")


def test_dateline_title_becomes_the_pages_own_title() -> None:
    # A record that kept the page's og:title (the JSON loader keeps unknown fields).
    kenya = cleaned("mer-012", SCRAPED / "meridian.jsonl")
    assert kenya.title == "Kenya to ban plastic bottles in national parks and on beaches"
    # A saved page whose og:title is the dateline: its <title>, without the site's name.
    (page,) = by_id(SCRAPED / "pages" / "valdora-tariffe-treni.html").values()
    assert isinstance(page, Article)
    assert page.title == "Treni regionali, le tariffe restano ferme fino al 2027"
    assert page.text.startswith("Le tariffe dei treni regionali")


def test_a_page_whose_titles_are_all_datelines_gets_its_first_sentence() -> None:
    (page,) = by_id(SCRAPED / "pages" / "meridian-glacier.html").values()
    assert isinstance(page, Article)
    assert page.title == "Switzerland lost 3% of its remaining glacier ice this year"
    assert "Ad Feedback" not in page.text and "mini puzzle" not in page.text


# ---------------------------------------------------------------------------------------------
# Seed boilerplate, and clean articles left alone
# ---------------------------------------------------------------------------------------------


def test_seed_boilerplate_is_removed_from_every_fixture_article() -> None:
    seen = 0
    for path in sorted(SCRAPED.rglob("*.*")):
        if path.suffix not in {".jsonl", ".html"}:
            continue
        for art in by_id(path).values():
            if isinstance(art, LoadError):
                continue
            seen += 1
            for phrase in SEEDED:
                assert phrase.casefold() not in art.text.casefold(), (art.id, phrase)
    assert seen >= 38


def test_ad_feedback_glued_into_a_paragraph_is_cut_out_of_it() -> None:
    text = (
        "The vote was close. Ad Feedback How relevant is this ad to you? Video player was "
        "slow to load content Ad froze or did not finish loading Send Cancel The bill passed."
    )
    stripped, removed = strip_seed_boilerplate(text)
    assert stripped == "The vote was close. The bill passed."
    assert removed


def test_boilerplate_only_page_is_a_failed_record_with_the_reason() -> None:
    result = by_id(SCRAPED / "meridian.jsonl")["mer-011"]
    assert isinstance(result, LoadError)
    assert result.origin.endswith("meridian.jsonl:11")
    assert "boilerplate" in result.reason


@pytest.mark.parametrize(
    "path",
    [
        DATA / "squad-it-articles-30.jsonl",
        SAMPLE_DIR / "wikinews-gum.jsonl",
        SAMPLE_DIR / "meantime-gm-stock-en-it.jsonl",
    ],
)
def test_clean_articles_keep_every_line_and_their_title(path: Path) -> None:
    """The new rules change nothing in articles that have no datelines or boilerplate."""
    checked = 0
    for item in iter_articles([path]):
        assert isinstance(item, Article)
        title = normalize_inline(item.title)
        before = drop_debris(normalize_text(item.text), title)
        after = clean_article(item)
        assert isinstance(after, Article), after
        assert after.text == before, item.id
        assert after.title == title, item.id
        checked += 1
    assert checked >= 30


# ---------------------------------------------------------------------------------------------
# Per-outlet boilerplate, learned while indexing
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    return make_embedder(Settings(_env_file=None, embedding_model="minilm"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", embedding_model="minilm")


async def stored_passages(settings: Settings) -> dict[str, str]:
    """Article id → its passages joined, as the index holds them."""
    store = await Store.open(settings.sqlite_path)
    try:
        async with store.db.execute("SELECT article_id, text FROM chunks ORDER BY ord") as cur:
            out: dict[str, str] = {}
            for aid, text in await cur.fetchall():
                out[aid] = out.get(aid, "") + "\n" + text
        return out
    finally:
        await store.close()


async def test_outlet_boilerplate_is_learned_and_removed(settings: Settings, minilm) -> None:
    services = await open_services(settings, minilm)
    try:
        report = await services.index([SCRAPED])
        patterns = await learned_patterns(services.store)
    finally:
        await services.close()

    failed = {e.origin: e.reason for e in report.failed}
    assert any(o.endswith("meridian.jsonl:11") and "boilerplate" in r for o, r in failed.items())
    assert len(report.failed) == 1
    learned = {(p.source_key, p.text.split(":")[0].split(".")[0]) for p in patterns}
    assert ("meridian news", "Meridian Morning") in learned
    assert ("the northgate courier", "The Northgate Courier is funded by its readers") in learned
    assert any(s == "corriere di valdora" and t.startswith(APP) for s, t in learned)
    assert any(s == "agenzia stampa padana" and t.startswith(SUBS) for s, t in learned)

    passages = await stored_passages(settings)
    assert "mer-011" not in passages
    assert (
        len(passages)
        == sum(len(rows(n)) for n in ("meridian", "northgate", "valdora", "asp")) - 1 + 2
    )
    for aid, text in passages.items():
        for line in (MORNING, MEMBER, APP, SUBS):
            assert line not in text, (aid, line)
    # Seen in four Meridian stories only: under the threshold of five, so kept.
    assert sum(TIP in t for t in passages.values()) == 4
    # Every article's own first sentence is still there.
    for name in ("meridian", "northgate", "valdora", "asp"):
        for r in rows(name):
            if r["id"] == "mer-011":
                continue
            first = next(
                p
                for p in r["text"].split("\n\n")
                if not strip_seed_boilerplate(p)[1] and not p.startswith(LEARNED)
            )
            assert first.split(" — ")[-1].split(" - ")[-1][:40] in passages[r["id"]], r["id"]


async def test_learned_boilerplate_leaves_already_indexed_articles_on_the_next_run(
    tmp_path: Path, settings: Settings, minilm
) -> None:
    meridian = {r["id"]: r for r in rows("meridian")}
    part1 = write_jsonl(
        tmp_path / "part1.jsonl", [meridian[i] for i in ("mer-001", "mer-002", "mer-003")]
    )
    part2 = write_jsonl(
        tmp_path / "part2.jsonl", [meridian[i] for i in ("mer-005", "mer-007", "mer-009")]
    )
    services = await open_services(settings, minilm)
    try:
        first = await services.index([part1])
        assert first.added == 3
        before = await stored_passages(settings)
        # Three stories carry the promo: not yet boilerplate.
        assert all(MORNING in before[i] for i in ("mer-001", "mer-002", "mer-003"))

        second = await services.index([part2])
        after = await stored_passages(settings)
        assert second.added == 3
        assert second.updated == 3  # the three earlier articles, re-cleaned from their rows
        assert any("boilerplate" in n for n in second.notices)
        for aid in ("mer-001", "mer-002", "mer-003", "mer-005", "mer-007", "mer-009"):
            assert MORNING not in after[aid], aid
        assert "Bank of England held its main interest rate" in after["mer-001"]

        third = await services.index([part1, part2])
        assert third.chunks_embedded == 0 and third.unchanged == 6
    finally:
        await services.close()

    store = await Store.open(settings.sqlite_path)
    try:
        sql_ids = set(await store.chunk_ids_with_articles())
    finally:
        await store.close()
    vectors = VectorStore.open(settings, minilm.model_id, minilm.dim)
    assert sql_ids == vectors.all_ids()


# ---------------------------------------------------------------------------------------------
# The learning threshold (real SQLite, no model)
# ---------------------------------------------------------------------------------------------


@dataclass
class _Item:
    article: Article
    raw_hash: str = "raw"
    content_hash: str = "content"
    state: StoredState | None = None


async def test_threshold_grows_with_the_outlet_and_copies_of_one_story_count_once(
    tmp_path: Path,
) -> None:
    def item(n: int, *lines: str, title: str | None = None) -> _Item:
        body = [f"Story number {n} tells of a different event in the city today.", *lines]
        return _Item(
            Article(
                id=f"a{n}",
                title=title or f"Story {n}",
                text="\n\n".join(body),
                source="Big Outlet",
                origin=f"big.jsonl:{n}",
            )
        )

    five = "Five stories carry this line, not enough for an outlet this large."
    six = "Six stories carry this line, which is one percent of six hundred."
    copied = "A paragraph of one story republished again and again by the outlet."
    items = [item(n, *([five] if n < 5 else []), *([six] if n < 6 else [])) for n in range(599)]
    # 599 stories above and one below, copied eight times: 600 stories, threshold 6.
    items += [item(1000 + n, copied, title="One story, many copies") for n in range(8)]
    store = await Store.open(tmp_path / "index.sqlite")
    try:
        result = await strip_outlet_boilerplate(store, items)
        patterns = {p.text for p in await learned_patterns(store)}
    finally:
        await store.close()
    assert patterns == {six}
    texts = {i.article.id: i.article.text for i in result.kept}
    assert six not in texts["a0"] and five in texts["a0"]
    assert copied in texts["a1000"]
    assert result.kept[0].content_hash != "content"  # re-hashed after stripping
