"""``newsbot ask`` and ``newsbot eval``: retrieval from the terminal.

Registered by :mod:`bot.cli`, which reads the settings once and passes them in.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.settings import BotSettings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ask", parents=[common], help="answer a question from the store")
    p.add_argument("question", nargs="+", help="the question (filters like source:ansa allowed)")
    p.add_argument("--k", type=int, default=None, help="passages to show (default ANSWER_K)")
    p.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--lang", default=None, help="language of the labels (it, en)")
    p.add_argument(
        "--asof", default=None, metavar="DATE",
        help="answer as of DATE (YYYY-MM-DD): relative dates and recency resolve against it",
    )
    p.set_defaults(func=_ask)

    p = sub.add_parser(
        "eval", parents=[common], help="retrieval quality on a question set (hit@k, answer@3, highlight@1)"
    )
    p.add_argument("dir", help="folder with articles.jsonl and questions-*.jsonl")
    p.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid")
    p.add_argument("--k", default="1,3,5", help="comma-separated k values (default 1,3,5)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=_eval)


async def _ask(args: argparse.Namespace, settings: BotSettings) -> int:
    from index.render.answer_json import answer_to_json
    from index.render.plain import render_plain
    from index.runtime import open_services

    services = await open_services(settings)
    try:
        if await services.is_empty():
            print("The store is empty: indexing the built-in sample first…", file=sys.stderr)
            await services.index()
        retriever = await services.retriever()  # the settings' zone, as the bot's
        question = " ".join(args.question)
        as_of = None
        if args.asof:
            try:
                as_of = _as_of_arg(args.asof, retriever.tz)
            except ValueError:
                print(f"newsbot ask: --asof takes a date like 2024-05-01, not {args.asof!r}",
                      file=sys.stderr)
                return 2
        answer = await retriever.answer(question, k=args.k, mode=args.mode, as_of=as_of)
        if args.json:
            print(json.dumps(answer_to_json(answer), ensure_ascii=False, indent=2))
        else:
            lang = args.lang or labels_lang(question)
            print(render_plain(answer, lang=lang, tz=retriever.tz))
        return 0
    finally:
        await services.close()


def _as_of_arg(value: str, tz: Any) -> datetime:
    """``--asof``: a date means its last instant in the settings' zone, as ``asof:`` does."""
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), time(23, 59, 59), tzinfo=tz)
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=tz)


# Below this confidence a question is too short to tell Italian from English ("maltempo",
# "Meloni"): the terminal's locale decides, as a reader's Telegram language does in the bot.
SURE_LABELS_LANG = 0.7


@functools.cache
def _it_en_identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(["it", "en"])  # the only label languages: no Latin, no Esperanto
    return identifier


def labels_lang(question: str, locale: str | None = None) -> str:
    """The language of ``newsbot ask``'s labels: the question's, Italian or English.

    ``locale`` (default: ``LC_ALL``, ``LC_MESSAGES`` or ``LANG``) breaks the tie when the
    question is too short to tell.
    """
    label, confidence = _it_en_identifier().classify(question)
    if confidence < SURE_LABELS_LANG:
        if locale is None:
            locale = next((os.environ[v] for v in ("LC_ALL", "LC_MESSAGES", "LANG")
                           if os.environ.get(v)), "")
        code = locale.split("_", 1)[0].split(".", 1)[0].lower()
        if code in ("it", "en"):
            return code
    return "it" if label == "it" else "en"


async def _eval(args: argparse.Namespace, settings: BotSettings) -> int:
    from rich.console import Console
    from rich.table import Table

    from index.evaluation import evaluate_files, summary_line
    from index.runtime import open_services

    folder = Path(args.dir)
    articles = folder / "articles.jsonl"
    files = sorted(folder.glob("questions-*.jsonl"))
    if not articles.exists() or not files:
        print(f"newsbot eval: {folder} needs articles.jsonl and questions-*.jsonl", file=sys.stderr)
        return 2
    try:
        ks = sorted({int(x) for x in args.k.split(",") if x.strip()})
    except ValueError:
        print(f"newsbot eval: --k takes numbers like 1,3,5, not {args.k!r}", file=sys.stderr)
        return 2
    tmp = None
    if not args.data_dir:
        tmp = tempfile.TemporaryDirectory(prefix="newsbot-eval-")
        settings.data_dir = Path(tmp.name)
    console = Console(stderr=True)
    services = await open_services(settings)
    try:
        console.print(f"indexing {articles} into {settings.data_dir} …")
        report = await services.index([articles])
        console.print(
            f"indexed: +{report.added} ~{report.updated} ={report.unchanged} "
            f"({report.chunks_embedded} chunks embedded in {report.seconds:.1f}s)"
        )
        retriever = await services.retriever()
        results = await evaluate_files(
            retriever, files, mode=args.mode, ks=ks,
            progress=(
                (lambda name, done, total: console.print(f"  {name}: {done}/{total}", end="\r"))
                if console.is_terminal
                else None
            ),
        )
    finally:
        await services.close()
        if tmp is not None:
            tmp.cleanup()
    if args.json:
        print(json.dumps([r.as_dict(ks) for r in results], indent=2))
    else:
        table = Table(title=f"newsbot eval — {args.mode}")
        cols = ["file", "n", *(f"hit@{k}" for k in ks), "answer@3", "highlight@1", "gold share@3",
                "not found"]
        for c in cols:
            table.add_column(c, justify="right" if c != "file" else "left")
        for r in results:
            d = r.as_dict(ks)
            table.add_row(
                d["file"], str(d["n"]), *(f"{d[f'hit@{k}']:.3f}" for k in ks),
                f"{d['answer@3']:.3f}", f"{d['highlight@1']:.3f}",
                f"{d['gold_share@3']:.3f}", f"{d['not_found']:.3f}",
            )
        Console().print(table)
    print(summary_line(results, ks))
    return 0
