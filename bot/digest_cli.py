"""``newsbot digest``: a digest in the terminal, for a subscribed chat or for any period.

Nothing is sent and no state changes: ``--chat ID --dry-run`` builds what that chat's next
digest would hold right now (since its watermark, with its topic and language), and
``--since DATE`` builds one for any period. Sending belongs to ``newsbot serve``, where the
exactly-once bookkeeping lives.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from bot.settings import BotSettings

EXIT_USAGE = 2


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "digest", parents=[common],
        help="print a news digest: a chat's next one (--chat ID --dry-run) or any period",
        description=(
            "Print a news digest (plain text; --html for the Telegram HTML). Either the digest a "
            "subscribed chat would get now (--chat ID --dry-run) or one for any period "
            "(--since DATE [--until DATE]). Nothing is sent and no state changes."
        ),
    )
    p.add_argument("--chat", type=int, help="a subscribed chat's id (see /subscriptions)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the chat's digest instead of sending it (required with --chat)")
    p.add_argument("--since", help="start of the period: YYYY-MM-DD or an ISO date-time")
    p.add_argument("--until", help="end of the period, exclusive (default: now)")
    p.add_argument("--topic", help="keep only stories about these words (same retrieval as ask)")
    p.add_argument("--max", type=int, default=None,
                   help="stories at most (default DIGEST_MAX_STORIES)")
    p.add_argument("--lang", choices=["en", "it"], default=None,
                   help="language of the labels (default: the chat's, else en)")
    p.add_argument("--html", action="store_true", help="print the Telegram HTML messages")
    p.set_defaults(func=_digest)


def parse_when(value: str, tz: ZoneInfo) -> datetime:
    """A date means its local midnight in the configured time zone; a naive date-time is
    local too; an aware one is taken as given."""
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=tz)
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD) or ISO date-time") from exc
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=tz)


def _fail(message: str) -> int:
    print(f"newsbot digest: {message}", file=sys.stderr)
    return EXIT_USAGE


async def _digest(args: argparse.Namespace, settings: BotSettings) -> int:
    tz = ZoneInfo(settings.timezone)
    if args.chat is None and not args.since:
        return _fail("name a subscribed chat (--chat ID --dry-run) or a period (--since DATE)")
    if args.chat is not None and not args.dry_run:
        return _fail(
            "digests are sent by `newsbot serve`; add --dry-run to print this chat's digest"
        )
    if args.chat is not None and (args.since or args.until or args.topic):
        return _fail("--chat uses the chat's own period and topic: drop --since/--until/--topic")
    try:
        since = parse_when(args.since, tz) if args.since else None
        until = parse_when(args.until, tz) if args.until else datetime.now(UTC)
    except ValueError as exc:
        return _fail(str(exc))
    if since is not None and since >= until:
        return _fail("--since must be before --until")
    if args.max is not None:
        settings.digest_max_stories = max(1, args.max)

    from bot.digests import DigestStore, build_subscription_digest
    from index.digest.render import render_digest_html, render_digest_plain
    from index.digest.stories import build_digest
    from index.runtime import open_services

    sub = None
    exclude: set[str] = set()
    if args.chat is not None:
        if not settings.bot_state_path.exists():
            return _fail(f"no subscriptions yet ({settings.bot_state_path} does not exist)")
        state = await DigestStore.open(settings.bot_state_path)
        try:
            sub = await state.subscription(args.chat)
            known = [s.chat_id for s in await state.subscriptions()]
            exclude = await state.sent_article_ids(args.chat) if sub else set()
        finally:
            await state.close()
        if sub is None:
            listed = ", ".join(str(c) for c in known) or "none"
            return _fail(f"chat {args.chat} has no subscription (subscribed chats: {listed})")

    services = await open_services(settings)
    try:
        if await services.is_empty():
            return _fail("the store is empty: run `newsbot index` first")
        vectors = await services.vectors()
        retriever = await services.retriever()  # in the settings' zone, as ``tz``
        now = datetime.now(UTC)
        if sub is not None:
            digest = await build_subscription_digest(sub, retriever, settings, now,
                                                     exclude=exclude)
            lang = args.lang or sub.lang
            out_tz = sub.zone
        else:
            assert since is not None
            digest = await build_digest(
                services.store, vectors, since=since, until=until,
                max_stories=settings.digest_max_stories, topic=args.topic,
                retriever=retriever,
            )
            lang = args.lang or "en"
            out_tz = tz
    finally:
        await services.close()

    if args.html:
        messages = render_digest_html(digest, lang=lang, tz=out_tz, empty_line=True)
        for i, m in enumerate(messages, 1):
            if len(messages) > 1:
                print(f"----- message {i}/{len(messages)} -----")
            print(m.html)
    else:
        print(render_digest_plain(digest, lang=lang, tz=out_tz))
    return 0

