"""Thin update handlers: find the question and the user's language, call the services, send.

Nothing here retrieves or renders by itself (that is :mod:`index`), and nothing keeps state
across updates (that is :mod:`bot.state`), so updates can be processed concurrently: the
retrieval's encoder batches questions that arrive together.
"""

from __future__ import annotations

import logging
import math
import re
import time

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError, TimedOut
from telegram.ext import ContextTypes

from bot import followups, texts
from bot.menu import ADMIN_COMMANDS, PUBLIC_COMMANDS, command_table
from bot.services import BotServices, Reply, services_of
from bot.state import Page
from index.models import Answer
from index.render import i18n
from index.render.telegram_html import render_telegram_html

log = logging.getLogger(__name__)

MAX_QUESTION = 1000  # characters kept of a question: longer ones are pasted articles
MAX_INLINE = 50  # Telegram's cap on results per inline query
INLINE_CACHE_SECONDS = 10
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


def lang_of(update: Update) -> str:
    user = update.effective_user
    return texts.user_lang(user.language_code if user else None)


# -- conversation --------------------------------------------------------------------------


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None:
        return
    counts, overview = await services_of(context).overview()
    await message.reply_text(
        texts.start_html(lang_of(update), counts, overview, context.bot.username)
    )


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.effective_message is None:
        return
    lang = lang_of(update)
    user = update.effective_user
    admin = user is not None and services_of(context).is_admin(user.id)
    await update.effective_message.reply_text(texts.help_html(
        lang, context.bot.username,
        command_table(PUBLIC_COMMANDS, lang, digests=True),
        command_table(ADMIN_COMMANDS, lang, digests=False) if admin else None,
    ))


async def whoami_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The ids an operator needs for ADMIN_IDS (and digests of a chat), on request."""
    message, user, chat = update.effective_message, update.effective_user, update.effective_chat
    if message is None or chat is None:
        return
    lang = lang_of(update)
    uid = user.id if user is not None else 0
    admin = services_of(context).is_admin(uid)
    await message.reply_text("\n".join([
        texts.t("whoami", lang, user=uid, chat=chat.id),
        texts.t("whoami_admin" if admin else "whoami_not_admin", lang),
    ]))


async def forgetme_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Delete what the bot keeps of this user, and say how much that was."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    services = services_of(context)
    deleted = await services.forget_user(user.id)
    await message.reply_text(texts.forgetme_html(
        deleted, lang_of(update), services.settings.question_log_days
    ))


async def private_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None or not message.text:
        return
    if await continue_answer(update, context, message.text):
        return
    await answer_question(update, context, message.text)


async def continue_answer(
    update: Update, context: ContextTypes.DEFAULT_TYPE, text: str
) -> bool:
    """A reply to one of the bot's answers: its next passages ("e poi?") or the same
    question narrowed by the reply's words. False when the message replies to no answer."""
    message, user, chat = update.effective_message, update.effective_user, update.effective_chat
    if message is None or chat is None:
        return False
    page_id = followups.answered_page(message.reply_to_message, context.bot.id)
    if page_id is None:
        return False
    services = services_of(context)
    page = await services.state.page(page_id)
    if page is None:
        return False
    if not followups.asks_for_more(text):
        await answer_question(update, context, followups.refined(page.question, text))
        return True
    started = time.perf_counter()
    lang = lang_of(update)
    if user is not None:
        decision = services.limiter.check(user.id)
        if not decision.allowed:
            if decision.notify:
                await message.reply_text(texts.t(
                    "rate_limited", lang, seconds=max(1, math.ceil(decision.retry_in))
                ))
            return True
    if not await services.state.claim_next_page(page.id):
        # Its next passages were sent already ("More" or an earlier "e poi?"): not twice.
        await message.reply_text(texts.raw("more_shown", page.lang))
        return True
    reply = await services.reply(
        page.question, page.lang, offset=page.next_offset, chat_id=chat.id,
        user_id=user.id if user else None, started=started,
    )
    if not reply.answer.hits:
        await message.reply_text(texts.raw("no_more", page.lang))
        return True
    await send_reply(message, reply, page.lang)
    replied = message.reply_to_message
    if replied is not None:
        await _drop_more_button(replied, page)
    await _log_safely(services, reply, "more", page.lang, update)
    return True


async def ask_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None or not message.text:
        return
    question = command_argument(message)
    if not question:
        lang = lang_of(update)
        await message.reply_text(texts.t("ask_usage", lang, example=texts.example(lang)))
        return
    await answer_question(update, context, question)


async def group_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Groups: answer mentions of the bot and replies to its messages, ignore the rest."""
    message = update.effective_message
    if message is None or not message.text:
        return
    question = addressed_question(message, context.bot.id, context.bot.username)
    if question is None:
        return
    if question and await continue_answer(update, context, question):
        return
    if not question:
        lang = lang_of(update)
        await message.reply_text(texts.t(
            "mention_usage", lang, bot=context.bot.username, example=texts.example(lang)
        ))
        return
    await answer_question(update, context, question)


def command_argument(message: Message) -> str:
    """The text after ``/ask`` (or ``/ask@bot``), newlines kept, unlike ``context.args``."""
    text = message.text or ""
    for entity in message.entities:
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            return text[len(message.parse_entity(entity)):].strip()
    return text.strip()


def addressed_question(message: Message, bot_id: int, username: str | None) -> str | None:
    """The question if the message speaks to the bot (mention or reply to it), else None."""
    text = message.text or ""
    mentioned = False
    if username:
        me = "@" + username.lower()
        mentions = message.parse_entities([MessageEntity.MENTION]).values()
        mentioned = any(value.lower() == me for value in mentions)
        if mentioned:
            text = re.sub(rf"@{re.escape(username)}\b", " ", text, flags=re.IGNORECASE)
    replied = message.reply_to_message
    to_bot = bool(replied and replied.from_user and replied.from_user.id == bot_id)
    if not (mentioned or to_bot):
        return None
    return " ".join(text.split())


async def answer_question(
    update: Update, context: ContextTypes.DEFAULT_TYPE, question: str
) -> None:
    """One question → exactly one answer (or one polite refusal), replying to it."""
    started = time.perf_counter()
    services = services_of(context)
    message, user, chat = update.effective_message, update.effective_user, update.effective_chat
    if message is None or chat is None:
        return
    lang = lang_of(update)
    if user is not None:
        decision = services.limiter.check(user.id)
        if not decision.allowed:
            log.info("rate limited", extra={"kv": {"user": user.id, "chat": chat.id}})
            if decision.notify:
                await message.reply_text(texts.t(
                    "rate_limited", lang, seconds=max(1, math.ceil(decision.retry_in))
                ))
            return
    question = question.strip()[:MAX_QUESTION]
    reply = await services.reply(
        question, lang, chat_id=chat.id, user_id=user.id if user else None, started=started
    )
    await send_reply(message, reply, lang)
    await _log_safely(services, reply, "message", lang, update)


async def send_reply(reply_to: Message, reply: Reply, lang: str) -> None:
    """The answer's messages; the first replies to ``reply_to``, the last carries the buttons."""
    markup = keyboard(reply.page, lang, more=reply.has_more) if reply.page else None
    last = len(reply.messages) - 1
    for i, html_text in enumerate(reply.messages):
        await reply_to.reply_text(
            html_text,
            reply_parameters=ReplyParameters(reply_to.message_id, allow_sending_without_reply=True)
            if i == 0 else None,
            do_quote=None if i == 0 else False,
            reply_markup=markup if i == last else None,
        )


def keyboard(page: Page, lang: str, *, more: bool) -> InlineKeyboardMarkup:
    row = []
    if more:
        row.append(InlineKeyboardButton(texts.raw("button_more", lang),
                                        callback_data=f"m:{page.id}"))
    row += [
        InlineKeyboardButton("👍", callback_data=f"f:{page.id}:+"),
        InlineKeyboardButton("👎", callback_data=f"f:{page.id}:-"),
    ]
    return InlineKeyboardMarkup([row])


async def _log_safely(
    services: BotServices, reply: Reply | Answer, kind: str, lang: str, update: Update
) -> None:
    """The answer is already out: a failing log write must not turn into an apology."""
    user, chat = update.effective_user, update.effective_chat
    started = reply.started if isinstance(reply, Reply) else time.perf_counter()
    try:
        await services.log_question(
            reply, kind=kind, lang=lang, user_id=user.id if user else None,
            chat_id=chat.id if chat else None, chat_type=chat.type if chat else None,
            started=started,
        )
    except Exception:  # noqa: BLE001
        log.exception("could not log a question")


# -- buttons -------------------------------------------------------------------------------


async def more_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The next passages, sent below the answer; its "More" button is then removed."""
    started = time.perf_counter()
    query = update.callback_query
    if query is None or query.data is None or query.from_user is None:
        return
    services = services_of(context)
    lang = lang_of(update)
    page = await services.state.page(query.data[2:])
    if page is None or not isinstance(query.message, Message):
        await query.answer(texts.raw("page_gone", lang), show_alert=True)
        return
    decision = services.limiter.check(query.from_user.id)
    if not decision.allowed:
        await query.answer(
            texts.t("rate_limited", lang, seconds=max(1, math.ceil(decision.retry_in))),
            show_alert=True,
        )
        return
    if not await services.state.claim_next_page(page.id):
        await query.answer(texts.raw("more_shown", lang))
        return
    try:
        reply = await services.reply(
            page.question, page.lang, offset=page.next_offset, chat_id=page.chat_id,
            user_id=query.from_user.id, started=started,
        )
    except BaseException:
        await services.state.release_page(page.id)
        raise
    if not reply.answer.hits:
        await query.answer(texts.raw("no_more", lang))
        await _drop_more_button(query.message, page)
        return
    await query.answer()
    try:
        await send_reply(query.message, reply, page.lang)
    except BaseException:
        await services.state.release_page(page.id)
        raise
    await _drop_more_button(query.message, page)
    await _log_safely(services, reply, "more", page.lang, update)


async def _drop_more_button(message: Message, page: Page) -> None:
    try:
        await message.edit_reply_markup(keyboard(page, page.lang, more=False))
    except BadRequest as exc:  # e.g. "message is not modified", or deleted meanwhile
        log.debug("could not update the answer's buttons", extra={"kv": {"error": str(exc)}})


async def feedback_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None or query.data is None or query.from_user is None:
        return
    services = services_of(context)
    lang = lang_of(update)
    _, page_id, vote = (query.data.split(":", 2) + ["", ""])[:3]
    page = await services.state.page(page_id)
    if page is None or vote not in ("+", "-"):
        await query.answer(texts.raw("page_gone", lang), show_alert=True)
        return
    await services.record_feedback(page, query.from_user.id, 1 if vote == "+" else -1)
    log.info("feedback", extra={"kv": {"page": page.id, "user": query.from_user.id,
                                       "vote": vote}})
    await query.answer(texts.raw("thanks_up" if vote == "+" else "thanks_down", lang))


# -- inline mode ---------------------------------------------------------------------------


async def inline_query(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``@bot question`` anywhere: each passage is a result the user can send as it is."""
    started = time.perf_counter()
    query = update.inline_query
    if query is None:
        return
    services = services_of(context)
    lang = lang_of(update)
    question = query.query.strip()[:MAX_QUESTION]
    offset = int(query.offset) if query.offset.isdigit() else 0
    limit = min(services.settings.inline_results, MAX_INLINE - offset)
    if not question or limit <= 0:
        await query.answer([], cache_time=INLINE_CACHE_SECONDS)
        return
    if not services.inline_limiter.check(query.from_user.id).allowed:
        await query.answer([], cache_time=INLINE_CACHE_SECONDS, is_personal=True)
        return
    answer, earned_more = await services.inline(question, offset=offset, limit=limit)
    results = [inline_result(answer, i, offset, lang, services) for i in range(len(answer.hits))]
    more = earned_more and offset + limit < MAX_INLINE
    await query.answer(
        results, cache_time=INLINE_CACHE_SECONDS, next_offset=str(offset + limit) if more else ""
    )
    try:
        await services.log_question(
            answer, kind="inline", lang=lang, user_id=query.from_user.id, chat_id=None,
            chat_type=query.chat_type, started=started,
        )
    except Exception:  # noqa: BLE001
        log.exception("could not log an inline question")


def inline_result(
    answer: Answer, i: int, offset: int, lang: str, services: BotServices
) -> InlineQueryResultArticle:
    hit = answer.hits[i]
    single = Answer(answer.question, answer.query, answer.filters, [hit])
    html_text = render_telegram_html(single, lang=lang, tz=services.tz)[0]
    title = " ".join((hit.title or i18n.t("untitled", lang)).split())[:120] or "…"
    snippet = " ".join((hit.highlight or hit.quote).split())
    day = hit.published.astimezone(services.tz).date().isoformat() if hit.published else ""
    meta = " · ".join(x for x in (hit.source or "", day) if x)
    description = (f"{meta} — " if meta else "") + snippet
    return InlineQueryResultArticle(
        id=f"{offset + i}",
        title=title,
        description=description[:200],
        input_message_content=InputTextMessageContent(
            html_text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
        ),
    )


# -- errors --------------------------------------------------------------------------------


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the failure; tell the user something went wrong, without any detail."""
    error = context.error
    update_id = update.update_id if isinstance(update, Update) else None
    log.error(
        "update failed", exc_info=error,
        extra={"kv": {"update": update_id, "error": type(error).__name__}},
    )
    if not isinstance(update, Update) or isinstance(error, TimedOut | Forbidden):
        return  # a timed-out send may have arrived; a blocked chat cannot be told anything
    lang = lang_of(update)
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(texts.raw("error", lang), show_alert=True)
        elif update.inline_query is not None:
            return
        elif (
            update.effective_message is not None
            and update.effective_chat is not None
            and update.effective_chat.type != ChatType.CHANNEL
        ):
            await update.effective_message.reply_text(texts.t("error", lang))
    except TelegramError as exc:
        log.warning("could not report the failure to the user", extra={"kv": {"error": str(exc)}})


async def channel_post(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A post (or an edit) in a channel the bot administers: an article, if it is a source."""
    live = services_of(context).live
    if live is not None:
        await live.on_channel_post(update)
