"""The fake Bot API server against the real python-telegram-bot stack (no PTB mocks)."""

from __future__ import annotations

import asyncio
import html
import socket

import httpx
import pytest
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from tests.support.fakebotapi import (
    TEST_TOKEN,
    FakeBotApi,
    HtmlParseError,
    parse_html,
    visible_length,
)
from tests.support.fakebotapi.telegram_html import auto_entities, utf16_len


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None and update.effective_message.text is not None
    await update.effective_message.reply_text(
        f"<b>echo:</b> {html.escape(update.effective_message.text)}",
        parse_mode=ParseMode.HTML,
        do_quote=True,
    )


async def _start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(
        "pick one",
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("More", callback_data="more:1")]]),
    )


def _build(server: FakeBotApi, rate_limiter: AIORateLimiter | None = None) -> Application:
    builder = (
        Application.builder()
        .token(TEST_TOKEN)
        .base_url(f"{server.url}/bot")
        .base_file_url(f"{server.url}/file/bot")
    )
    if rate_limiter is not None:
        # PTB's builder generics are pinned to BaseRateLimiter[None] before this call
        builder = builder.rate_limiter(rate_limiter)  # type: ignore[arg-type]
    app = builder.build()
    app.add_handler(CommandHandler("start", _start))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, _echo))
    return app


# --------------------------------------------------------------------------- polling end to end


async def test_polling_echo_round_trip(fake_bot_api: FakeBotApi) -> None:
    server = fake_bot_api
    user = server.user("Ada", language_code="it")
    chat = server.private_chat(user)
    sent = server.user_sends(chat, user, "ciao <mondo> & co")
    app = _build(server)
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        (reply,) = await server.wait_for_messages(chat["id"], count=1)
        # a second update arrives while the bot long-polls
        server.user_sends(chat, user, "/start")
        await server.wait_for_messages(chat["id"], count=2)
        await app.updater.stop()
        await app.stop()

    assert reply["text"] == "echo: ciao <mondo> & co"  # visible text, as Telegram returns it
    assert reply["entities"] == [{"type": "bold", "offset": 0, "length": 5}]
    assert reply["from"]["id"] == server.bot_user["id"]
    assert reply["reply_to_message"]["message_id"] == sent["message"]["message_id"]
    assert reply["message_id"] > sent["message"]["message_id"]
    keyboard = server.sent_messages(chat["id"])[1]["reply_markup"]["inline_keyboard"]
    assert keyboard[0][0]["callback_data"] == "more:1"
    methods = [c.method for c in server.calls]
    assert methods[0] == "getMe" and "deleteWebhook" in methods
    # updates were confirmed through offset: nothing is left pending after shutdown
    assert server.pending_updates() == []
    assert server.violations == []


async def test_callback_query_and_inline_query(fake_bot_api: FakeBotApi) -> None:
    server = fake_bot_api

    async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("ok")
        await query.edit_message_text(f"you pressed <i>{query.data}</i>", parse_mode="HTML")

    async def on_inline(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.inline_query is not None
        await update.inline_query.answer([
            InlineQueryResultArticle(
                id=str(i), title=f"Result {i}",
                input_message_content=InputTextMessageContent(
                    f"<b>{i}</b> {html.escape(update.inline_query.query)}", parse_mode="HTML"
                ),
            )
            for i in range(3)
        ])

    user = server.user("Bob")
    group = server.group("Newsroom", members=[user])
    server.user_sends(group, user, "/start@newsbot_test_bot")
    app = _build(server)
    app.add_handler(CallbackQueryHandler(on_press))
    app.add_handler(InlineQueryHandler(on_inline))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        (menu,) = await server.wait_for_messages(group["id"])
        press = server.user_presses(menu, user, "more:1")
        inline = server.user_inline_query(user, "a < b")
        await server.wait_for_calls("editMessageText", ok=True)
        await server.wait_for(lambda: inline["inline_query"]["id"] in server.inline_answers)
        await app.updater.stop()
        await app.stop()

    assert server.callback_answers[press["callback_query"]["id"]]["text"] == "ok"
    edited = server.sent_messages(group["id"])[0]
    assert edited["text"] == "you pressed more:1" and "reply_markup" not in edited
    answer = server.inline_answers[inline["inline_query"]["id"]]
    assert [r["id"] for r in answer["results"]] == ["0", "1", "2"]
    assert server.violations == []


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<script>alert(1)</script>", 'Unsupported start tag "script"'),
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", "Unmatched end tag"),
        ("Q&A", "Character '&' is reserved"),
        ("&nbsp;", "Unsupported HTML entity"),
    ],
)
async def test_invalid_html_is_rejected(fake_bot_api: FakeBotApi, text: str, reason: str) -> None:
    user = fake_bot_api.user()
    chat = fake_bot_api.private_chat(user)
    async with _build(fake_bot_api) as app:
        with pytest.raises(BadRequest, match="(?i)can't parse entities") as err:
            await app.bot.send_message(chat["id"], text, parse_mode=ParseMode.HTML)
    assert reason.lower() in str(err.value).lower()
    (violation,) = fake_bot_api.pop_violations()
    assert violation.method == "sendMessage" and "can't parse entities" in violation.description
    assert fake_bot_api.sent_messages() == []


async def test_length_limit_counts_visible_text(fake_bot_api: FakeBotApi) -> None:
    user = fake_bot_api.user()
    chat = fake_bot_api.private_chat(user)
    async with _build(fake_bot_api) as app:
        # 4096 visible characters wrapped in markup: the raw string is longer, still fine
        await app.bot.send_message(chat["id"], f"<b>{'x' * 4093}</b>&lt;&gt;&amp;", parse_mode="HTML")
        with pytest.raises(BadRequest, match="(?i)message is too long"):
            await app.bot.send_message(chat["id"], f"<i>{'y' * 4097}</i>", parse_mode="HTML")
        with pytest.raises(BadRequest, match="(?i)message is too long"):
            await app.bot.send_message(chat["id"], "z" * 4097)
        with pytest.raises(BadRequest, match="(?i)message text is empty"):
            await app.bot.send_message(chat["id"], "<b> </b>", parse_mode="HTML")
    assert len(fake_bot_api.sent_messages()) == 1
    assert len(fake_bot_api.pop_violations()) == 3


async def test_raw_requests_missing_params_unknown_method_and_token(fake_bot_api: FakeBotApi) -> None:
    server = fake_bot_api
    chat = server.private_chat(server.user())
    base = f"{server.base_url}{TEST_TOKEN}"
    async with httpx.AsyncClient() as client:
        missing = await client.post(f"{base}/sendMessage", data={"chat_id": str(chat["id"])})
        unknown = await client.post(f"{base}/sendTelepathy", json={"chat_id": chat["id"]})
        bad_token = await client.post(f"{server.base_url}123:wrong/getMe")
        as_json = await client.post(
            f"{base}/sendMessage",
            json={"chat_id": chat["id"], "text": "hi", "reply_markup": {"inline_keyboard": [[
                {"text": "go", "url": "https://example.org"}]]}, "brand_new_arg": 1},
        )
        bad_button = await client.post(f"{base}/sendMessage", json={
            "chat_id": chat["id"], "text": "hi",
            "reply_markup": {"inline_keyboard": [[{"text": "x", "callback_data": "d" * 65}]]},
        })
    assert missing.status_code == 400
    assert missing.json()["description"] == 'Bad Request: parameter "text" is required'
    assert unknown.status_code == 404 and unknown.json()["description"] == "Not Found"
    assert bad_token.status_code == 401
    assert bad_token.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert as_json.status_code == 200 and as_json.json()["result"]["text"] == "hi"
    assert bad_button.json()["description"] == "Bad Request: BUTTON_DATA_INVALID"
    assert any("brand_new_arg" in w for w in server.warnings)  # unknown argument: warning only
    assert [v.method for v in server.pop_violations()] == [
        "sendMessage", "sendTelepathy", "sendMessage",
    ]
    sent = server.calls_to("sendMessage", ok=True)[0]
    assert sent.params["reply_markup"]["inline_keyboard"][0][0]["url"] == "https://example.org"


async def test_inline_results_are_validated(fake_bot_api: FakeBotApi) -> None:
    server = fake_bot_api
    user = server.user()
    async with _build(server) as app:
        too_many = server.user_inline_query(user, "q")["inline_query"]["id"]
        results = [
            InlineQueryResultArticle(str(i), "t", InputTextMessageContent("m")) for i in range(51)
        ]
        with pytest.raises(BadRequest, match="(?i)RESULTS_TOO_MUCH"):
            await app.bot.answer_inline_query(too_many, results)
        bad_html = server.user_inline_query(user, "q")["inline_query"]["id"]
        with pytest.raises(BadRequest, match="(?i)can't parse entities"):
            await app.bot.answer_inline_query(bad_html, [InlineQueryResultArticle(
                "1", "t", InputTextMessageContent("<p>x</p>", parse_mode="HTML"))])
        with pytest.raises(BadRequest, match="(?i)query is too old"):
            await app.bot.answer_inline_query("123", [])
    assert len(server.pop_violations()) == 2


async def test_allowed_updates_edits_deletes_and_multipart(fake_bot_api: FakeBotApi) -> None:
    server = fake_bot_api
    user = server.user()
    chat = server.private_chat(user)
    first = server.user_sends(chat, user, "one")
    server.user_presses(first["message"], user, "x")
    async with _build(server) as app:
        updates = await app.bot.get_updates(allowed_updates=["message"], timeout=0)
        assert [u.message.text for u in updates if u.message] == ["one"] and len(updates) == 1
        msg = await app.bot.send_message(chat["id"], "draft")
        with pytest.raises(BadRequest, match="(?i)message is not modified"):
            await msg.edit_text("draft")
        await msg.edit_text("final")
        await msg.delete()
        with pytest.raises(BadRequest, match="(?i)message to edit not found"):
            await msg.edit_text("again")
    async with httpx.AsyncClient() as client:
        upload = await client.post(
            f"{server.base_url}{TEST_TOKEN}/sendDocument",
            data={"chat_id": str(chat["id"]), "caption": "<b>doc</b>", "parse_mode": "HTML"},
            files={"document": ("a.txt", b"abc", "text/plain")},
        )
    assert upload.status_code == 200
    call = server.calls_to("sendDocument")[0]
    assert call.params["document"] == {"filename": "a.txt", "size": 3}
    assert call.params["chat_id"] == chat["id"]  # form strings decoded by the spec's types
    assert any("sendDocument is not simulated" in w for w in server.warnings)
    (sent,) = server.sent_messages(chat["id"])
    assert sent["text"] == "final" and server.is_deleted(sent)
    assert server.sent_messages(chat["id"], include_deleted=False) == []
    assert server.violations == []


# --------------------------------------------------------------------------- state


async def test_chat_admin_and_kicked_state(fake_bot_api: FakeBotApi) -> None:
    server = fake_bot_api
    owner = server.user("Owner")
    channel = server.channel("News", username="newsfeed", owner=owner, bot_can_post_messages=True)
    quiet = server.channel("Read only", bot_is_admin=True, bot_can_post_messages=False)
    group = server.group("Old group", members=[owner])
    async with _build(server) as app:
        bot_id = app.bot.id
        me = await app.bot.get_chat_member("@newsfeed", bot_id)
        assert me.status == "administrator" and getattr(me, "can_post_messages", None) is True
        ro = await app.bot.get_chat_member(quiet["id"], bot_id)
        assert getattr(ro, "can_post_messages", None) is False
        admins = await app.bot.get_chat_administrators(channel["id"])
        assert {a.user.id for a in admins} == {owner["id"], bot_id}
        info = await app.bot.get_chat(channel["id"])
        assert info.title == "News"
        await app.bot.send_message("@newsfeed", "headline")
        with pytest.raises(BadRequest, match="(?i)need administrator rights"):
            await app.bot.send_message(quiet["id"], "nope")
        update = server.kick_bot(group, by=owner)
        assert update is not None and update["my_chat_member"]["new_chat_member"]["status"] == "kicked"
        with pytest.raises(Forbidden, match="(?i)bot was kicked from the group chat"):
            await app.bot.send_message(group["id"], "hello?")
        with pytest.raises(BadRequest, match="(?i)chat not found"):
            await app.bot.send_message(-42, "who?")
        await app.bot.set_my_commands([("ask", "Ask the news")], language_code="it")
        assert [c.command for c in await app.bot.get_my_commands(language_code="it")] == ["ask"]
        assert await app.bot.get_my_commands() == ()
        await app.bot.set_my_description("Answers questions about the news")
        assert (await app.bot.get_my_description()).description.startswith("Answers")
    assert server.sent_texts(channel["id"]) == ["headline"]
    assert server.violations == []


def test_group_privacy_mode_filters_updates() -> None:
    server = FakeBotApi()
    user = server.user()
    group = server.supergroup("Chat", members=[user])
    chatter = server.user_sends(group, user, "just chatting")
    command = server.user_sends(group, user, "/ask@newsbot_test_bot chi?")
    other_bot = server.user_sends(group, user, "/ask@other_bot chi?")
    mention = server.user_sends(group, user, "hey @NewsBot_Test_Bot")
    queued = [u["update_id"] for u in server.pending_updates()]
    assert queued == [command["update_id"], mention["update_id"]]
    assert chatter["update_id"] not in queued and other_bot["update_id"] not in queued
    server.set_chat_admins(group, bot_is_admin=True)  # admins see everything
    assert server.user_sends(group, user, "chatting") in server.pending_updates()
    server.kick_bot(group)
    assert server.user_sends(group, user, "/ask") not in server.pending_updates()


# --------------------------------------------------------------------------- faults


async def test_429_is_honoured_by_aioratelimiter(fake_bot_api: FakeBotApi) -> None:
    server = fake_bot_api
    user = server.user()
    chat = server.private_chat(user)
    server.inject_fault("sendMessage", "429", retry_after=1)
    server.user_sends(chat, user, "hello")
    app = _build(server, rate_limiter=AIORateLimiter(max_retries=3))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        await server.wait_for_calls("sendMessage", count=2, timeout=5)
        await app.updater.stop()
        await app.stop()
    first, second = server.calls_to("sendMessage")
    assert (first.status, first.fault, first.delivered) == (429, "429", False)
    assert first.response["parameters"] == {"retry_after": 1}
    assert second.ok and second.time - first.time >= 1.0
    assert server.sent_texts(chat["id"]) == ["echo: hello"]  # exactly once


async def test_5xx_drop_and_slow_faults(fake_bot_api: FakeBotApi) -> None:
    server = fake_bot_api
    chat = server.private_chat(server.user())
    server.inject_fault("sendMessage", "5xx", status=502)
    server.inject_fault("sendMessage", "drop")
    server.inject_fault("sendMessage", "slow", delay=0.3)
    async with _build(server) as app:
        with pytest.raises(NetworkError, match="(?i)Bad Gateway"):
            await app.bot.send_message(chat["id"], "one")
        with pytest.raises(NetworkError):
            await app.bot.send_message(chat["id"], "two")
        await app.bot.send_message(chat["id"], "three")
    calls = server.calls_to("sendMessage")
    assert [(c.status, c.fault) for c in calls] == [(502, "5xx"), (0, "drop"), (200, "slow")]
    assert server.sent_texts() == ["three"]  # failed attempts had no effect


# --------------------------------------------------------------------------- webhook


async def test_webhook_delivery_and_secret(fake_bot_api: FakeBotApi) -> None:
    server = fake_bot_api
    user = server.user()
    chat = server.private_chat(user)
    port = free_port()
    hook = f"http://127.0.0.1:{port}/hook"
    app = _build(server)
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_webhook(
            listen="127.0.0.1", port=port, url_path="hook", webhook_url=hook,
            secret_token="s3cr3t-token",
        )
        assert server.webhook is not None and server.webhook["secret_token"] == "s3cr3t-token"
        server.user_sends(chat, user, "via webhook")
        (reply,) = await server.wait_for_messages(chat["id"])
        wrong = await server.deliver_webhook({"message": reply}, secret_token="wrong")
        missing = await server.deliver_webhook({"message": reply}, secret_token=None)
        info = await app.bot.get_webhook_info()
        with pytest.raises(Conflict, match="(?i)webhook is active"):
            await app.bot.get_updates()
        await app.updater.stop()
        await app.stop()
    assert reply["text"] == "echo: via webhook"
    assert wrong == 403 and missing == 403
    ok = [d for d in server.webhook_deliveries if d.status == 200]
    assert ok and ok[0].secret_token == "s3cr3t-token"
    assert info.url == hook and info.pending_update_count == 0
    assert server.sent_texts() == ["echo: via webhook"]  # rejected deliveries were not processed


# --------------------------------------------------------------------------- threaded mode


def test_background_thread_mode() -> None:
    server = FakeBotApi().start_in_thread()
    try:
        user = server.user()
        chat = server.private_chat(user)
        server.user_sends(chat, user, "hi")
        with httpx.Client() as client:
            url = f"{server.base_url}{TEST_TOKEN}"
            updates = client.post(f"{url}/getUpdates", data={"timeout": "1"}).json()["result"]
            assert updates[0]["message"]["text"] == "hi"
            client.post(f"{url}/sendMessage", data={"chat_id": str(chat["id"]), "text": "yo"})
        (msg,) = server.wait_for_sync(lambda: server.sent_messages(chat["id"]), timeout=2)
        assert msg["text"] == "yo"
    finally:
        server.stop_thread()


async def test_long_poll_waits_for_an_update(fake_bot_api: FakeBotApi) -> None:
    server = fake_bot_api
    user = server.user()
    chat = server.private_chat(user)
    url = f"{server.base_url}{TEST_TOKEN}/getUpdates"
    async with httpx.AsyncClient(timeout=5) as client:
        poll = asyncio.ensure_future(client.post(url, data={"timeout": "3"}))
        # A clock: a held long poll is one that gives no answer while time passes (0.2 s of
        # its 3 s); the fake records a call only once it has answered, so no event says
        # "the request is in".
        await asyncio.sleep(0.2)
        assert not poll.done()
        update = server.user_sends(chat, user, "wake up")
        result = (await asyncio.wait_for(poll, 2)).json()["result"]
        assert [u["update_id"] for u in result] == [update["update_id"]]
        # offset confirms; a short poll then returns nothing and times out quickly
        again = await client.post(url, data={"offset": str(update["update_id"] + 1), "timeout": "0"})
        assert again.json()["result"] == []


# --------------------------------------------------------------------------- telegram_html


@pytest.mark.parametrize(
    ("source", "text", "types"),
    [
        ("<b>bold <i>both</i></b>", "bold both", ["bold", "italic"]),
        ('<a href="https://e.org/?a=1&amp;b=2">link</a>', "link", ["text_link"]),
        ("<span class=\"tg-spoiler\">s</span><tg-spoiler>t</tg-spoiler>", "st", ["spoiler", "spoiler"]),
        ('<pre><code class="language-python">x = 1</code></pre>', "x = 1", ["pre"]),
        ("<blockquote expandable>q</blockquote>", "q", ["expandable_blockquote"]),
        ('<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>', "👍", ["custom_emoji"]),
        ("&lt;tag&gt; &amp; &quot;q&quot; &#39;&#x41;", "<tag> & \"q\" 'A", []),
        ("<B>upper</B><u>u</u><ins>i</ins><s>s</s><strike>k</strike><del>d</del>", "upperuiskd",
         ["bold", "underline", "underline", "strikethrough", "strikethrough", "strikethrough"]),
    ],
)
def test_parse_html_valid(source: str, text: str, types: list[str]) -> None:
    parsed = parse_html(source)
    assert parsed.text == text
    assert [e["type"] for e in parsed.entities] == types


def test_parse_html_entity_details() -> None:
    parsed = parse_html('<a href="https://e.org/?a=1&amp;b=2">link</a> 😀<b>x</b>')
    assert parsed.entities[0]["url"] == "https://e.org/?a=1&b=2"
    assert parsed.entities[1] == {"type": "bold", "offset": 7, "length": 1}  # 😀 is 2 UTF-16 units
    pre = parse_html('<pre><code class="language-python">x</code></pre>').entities[0]
    assert pre["language"] == "python"


@pytest.mark.parametrize(
    "source",
    [
        "<script>x</script>", "<b>x", "x</b>", "<b>x</i>", "a & b", "a > b", "&nbsp;", "&#0;",
        "<br>", "<span>x</span>", "<tg-emoji>x</tg-emoji>", "<a href='x>y</a>",
        "<blockquote><blockquote>x</blockquote></blockquote>", "<b", "< b>x</b>",
    ],
)
def test_parse_html_invalid(source: str) -> None:
    with pytest.raises(HtmlParseError):
        parse_html(source)


def test_lenient_mode_keeps_bare_ampersand() -> None:
    assert parse_html("Q&A > x", strict=False).text == "Q&A > x"


def test_visible_length() -> None:
    assert visible_length("<b>abc</b>&amp;") == 4
    assert visible_length("<b>abc</b>", parse_mode=None) == 10
    assert visible_length("😀") == 2 == utf16_len("😀")
    assert visible_length(f"<a href=\"https://example.org/{'p' * 500}\">x</a>") == 1


def test_auto_entities() -> None:
    text = "/ask@newsbot_test_bot chi è @someone? https://e.org #tag"
    types = [(e["type"], text[e["offset"] : e["offset"] + e["length"]]) for e in auto_entities(text)]
    assert types == [
        ("bot_command", "/ask@newsbot_test_bot"), ("mention", "@someone"),
        ("url", "https://e.org"), ("hashtag", "#tag"),
    ]
