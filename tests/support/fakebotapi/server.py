"""A fake Telegram Bot API server for end-to-end tests of a real python-telegram-bot
``Application``.

It is a real aiohttp HTTP server on 127.0.0.1, so PTB's whole network stack (HTTPXRequest,
rate limiter, Updater long polling, webhook server) runs unmodified; only the far end is fake.
Every call is checked against the official Bot API description (``spec.py``) and against the
rules Telegram enforces beyond it (Telegram HTML, lengths after entity parsing, inline keyboards,
inline query results). A call Telegram would reject gets Telegram's error *and* is recorded as a
violation, so a test can fail on API misuse even when the bot swallowed the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from .spec import PARSED_TEXT_FIELDS, BotApiSpec, MethodSpec, load_spec
from .telegram_html import HtmlParseError, auto_entities, parse_html, utf16_len

__all__ = [
    "TEST_TOKEN",
    "ApiError",
    "FakeBotApi",
    "Fault",
    "RecordedCall",
    "Violation",
    "WebhookDelivery",
]

TEST_TOKEN = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz"

T = TypeVar("T")
JSON = dict[str, Any]

_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# update types Telegram leaves out unless asked for explicitly in allowed_updates
_OPT_IN_UPDATES = {"chat_member", "message_reaction", "message_reaction_count"}
# limits that apply to the *visible* text, after entity parsing
_VISIBLE_LIMITS = {
    "text": 4096, "caption": 1024, "message_text": 4096,
    "quote": 1024, "explanation": 200, "question": 300,
}
_TOO_LONG = {
    "text": "message is too long", "message_text": "message is too long",
    "caption": "message caption is too long",
}
_SEND_METHODS = {
    "sendMessage", "sendPhoto", "sendAudio", "sendDocument", "sendVideo", "sendAnimation",
    "sendVoice", "sendVideoNote", "sendLocation", "sendVenue", "sendContact", "sendPoll",
    "sendDice", "sendSticker", "sendChatAction", "sendMediaGroup", "forwardMessage",
    "copyMessage", "sendPaidMedia", "sendInvoice", "sendGame",
}
_FAULT_KINDS = ("429", "5xx", "slow", "drop")
_QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


class ApiError(Exception):
    """An error answer, shaped like Telegram's ``{"ok": false, "error_code", "description"}``."""

    def __init__(
        self, status: int, description: str, *, violation: bool = False,
        parameters: JSON | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.violation = violation
        self.parameters = parameters

    def body(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


@dataclass
class RecordedCall:
    """One request as the server saw it. ``params`` are decoded: numbers are numbers and
    JSON-valued arguments (reply_markup, results, ...) are parsed. ``time`` is
    ``time.monotonic()`` at arrival."""

    method: str
    params: JSON
    time: float
    status: int = 0
    response: JSON = field(default_factory=dict)
    fault: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def delivered(self) -> bool:
        """Whether Telegram would have acted on it (a 429/5xx/dropped call did nothing)."""
        return self.ok

    @property
    def result(self) -> Any:
        return self.response.get("result")

    def __str__(self) -> str:
        params = json.dumps(self.params, ensure_ascii=False, default=str)
        if len(params) > 300:
            params = params[:297] + "..."
        fault = f" [fault {self.fault}]" if self.fault else ""
        return f"{self.method} -> {self.status}{fault} {params}"


@dataclass
class Violation:
    """A call Telegram would reject because the bot built it wrongly."""

    method: str
    description: str
    params: JSON

    def __str__(self) -> str:
        params = json.dumps(self.params, ensure_ascii=False, default=str)
        if len(params) > 300:
            params = params[:297] + "..."
        return f"{self.method}: {self.description} | params={params}"


@dataclass
class Fault:
    method: str  # spec name, lower-cased; "*" matches every method
    kind: str
    times: int
    retry_after: int = 1
    status: int = 502
    delay: float = 1.0


@dataclass
class WebhookDelivery:
    update_id: int
    url: str
    status: int | None  # None: the connection failed
    error: str | None
    time: float
    secret_token: str | None


@dataclass
class _ChatState:
    chat: JSON
    next_message_id: int = 1
    kicked: bool = False
    left: bool = False
    owner_id: int | None = None
    admin_ids: list[int] = field(default_factory=list)
    member_ids: set[int] = field(default_factory=set)
    bot_is_admin: bool = False
    bot_rights: JSON = field(default_factory=dict)


class FakeBotApi:
    """The fake server plus the simulated Telegram state behind it.

    Start it with ``await server.start()`` in the test's loop (or ``async with server``), or
    with :meth:`start_in_thread` for synchronous code and benchmarks. Point PTB at it with
    :meth:`application_builder` or ``.base_url(server.base_url)``.
    """

    def __init__(
        self,
        token: str = TEST_TOKEN,
        *,
        extra_tokens: Iterable[str] = (),
        bot_username: str = "newsbot_test_bot",
        bot_first_name: str = "NewsBot Test",
        can_join_groups: bool = True,
        can_read_all_group_messages: bool = False,
        supports_inline_queries: bool = True,
        spec: BotApiSpec | None = None,
        strict_html: bool = True,
        webhook_max_attempts: int = 3,
        webhook_retry_delay: float = 0.2,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self.tokens = {token, *extra_tokens}
        self.spec = spec or load_spec()
        self.strict_html = strict_html
        self.host = host
        self.port = port
        self.bot_user: JSON = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": can_join_groups,
            "can_read_all_group_messages": can_read_all_group_messages,
            "supports_inline_queries": supports_inline_queries,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.webhook_max_attempts = webhook_max_attempts
        self.webhook_retry_delay = webhook_retry_delay
        #: set to False in a test that provokes violations on purpose without popping them
        self.fail_on_violations = True

        self.calls: list[RecordedCall] = []
        self.violations: list[Violation] = []
        self.warnings: list[str] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.callback_answers: dict[str, JSON] = {}
        self.inline_answers: dict[str, JSON] = {}
        self.faults: list[Fault] = []

        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._warned: set[str] = set()
        self._ids = itertools.count(1)
        self._user_ids = itertools.count(100_000_001)
        self._group_ids = itertools.count(4_000_000_001)
        self._channel_ids = itertools.count(1_000_000_000_001)
        self._users: dict[int, JSON] = {}
        self._chats: dict[int, _ChatState] = {}
        self._messages: dict[tuple[int, int], JSON] = {}
        self._sent: list[tuple[int, int]] = []
        self._deleted: set[tuple[int, int]] = set()
        self._updates: list[JSON] = []
        self._next_update_id = 700_000_001
        self._allowed_updates: list[str] | None = None
        self._open_callbacks: set[str] = set()
        self._open_inline: set[str] = set()
        self._commands: dict[tuple[str, str], list[JSON]] = {}
        self._bot_texts: dict[tuple[str, str], str] = {}
        self._poll_generation = 0
        self._webhook: JSON | None = None
        self._webhook_error: tuple[int, str] | None = None
        self._webhook_attempts: dict[int, int] = {}

        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._webhook_task: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None
        self._thread: threading.Thread | None = None

    # ================================================================ lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url``: PTB appends ``<token>/<method>``."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    async def start(self) -> FakeBotApi:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._closing = False
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/file/bot{token}/{path:.*}", self._handle_file)
        # handler_cancellation: a long poll whose client went away must not linger
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None)
        assert sockets
        self.port = int(sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        self._closing = True
        self._notify()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._webhook_task
            self._webhook_task = None
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotApi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self, timeout: float = 10.0) -> FakeBotApi:
        """Run the server on its own event loop in a daemon thread (benchmarks, sync tests).
        The update/chat helpers are thread-safe; use :meth:`wait_for_sync` to wait."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-bot-api", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("fake Bot API server did not start")
        if errors:
            raise errors[0]
        return self

    def stop_thread(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator[FakeBotApi]:
        self.start_in_thread()
        try:
            yield self
        finally:
            self.stop_thread()

    def application_builder(self) -> Any:
        """A PTB ``ApplicationBuilder`` already pointed at this server with its token."""
        from telegram.ext import ApplicationBuilder

        return (
            ApplicationBuilder()
            .token(self.token)
            .base_url(self.base_url)
            .base_file_url(self.base_file_url)
        )

    # ================================================================ change notification

    def _fire(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    def _notify(self) -> None:
        """Wake long polls, the webhook sender and every ``wait_for*``, from any thread."""
        with self._cond:
            self._cond.notify_all()
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._fire()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._fire)

    # The waiting helpers take ``timeout`` (ruff ASYNC109) on purpose: on expiry they raise
    # with a dump of the recent calls, which a bare asyncio.timeout() could not do.
    async def _wait_change(self, timeout: float | None) -> None:  # noqa: ASYNC109
        if self._changed is None or asyncio.get_running_loop() is not self._loop:
            await asyncio.sleep(0.01 if timeout is None else min(timeout, 0.01))
            return
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def wait_for(
        self, predicate: Callable[[], T], timeout: float = 5.0, *, what: str = ""  # noqa: ASYNC109
    ) -> T:
        """Wait until ``predicate()`` is truthy and return its value; woken by every request
        and injected update rather than by sleeping."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"timed out after {timeout}s waiting for {what or predicate!r}\n"
                    + self.describe_calls()
                )
            await self._wait_change(remaining)

    def wait_for_sync(
        self, predicate: Callable[[], T], timeout: float = 5.0, *, what: str = ""
    ) -> T:
        """:meth:`wait_for` for a thread that is not the server's (see :meth:`start_in_thread`)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"timed out after {timeout}s waiting for {what or predicate!r}\n"
                        + self.describe_calls()
                    )
                self._cond.wait(remaining)

    async def wait_for_calls(
        self, method: str, count: int = 1, timeout: float = 5.0, *, ok: bool | None = None  # noqa: ASYNC109
    ) -> list[RecordedCall]:
        """Wait for at least ``count`` calls of ``method`` (``ok=True``: only successful ones,
        ``ok=False``: only failed ones) and return all of them."""

        def found() -> list[RecordedCall] | None:
            calls = self.calls_to(method, ok=ok)
            return calls if len(calls) >= count else None

        result = await self.wait_for(found, timeout, what=f"{count} x {method} (ok={ok})")
        assert result is not None
        return result

    async def wait_for_messages(
        self, chat_id: int | None = None, count: int = 1, timeout: float = 5.0  # noqa: ASYNC109
    ) -> list[JSON]:
        """Wait until the bot has successfully sent ``count`` messages (to ``chat_id``)."""

        def found() -> list[JSON] | None:
            msgs = self.sent_messages(chat_id)
            return msgs if len(msgs) >= count else None

        result = await self.wait_for(found, timeout, what=f"{count} message(s) to {chat_id}")
        assert result is not None
        return result

    # ================================================================ inspection

    def calls_to(self, method: str, *, ok: bool | None = None) -> list[RecordedCall]:
        name = method.lower()
        return [
            c for c in list(self.calls)
            if c.method.lower() == name and (ok is None or c.ok == ok)
        ]

    def sent_messages(self, chat_id: int | None = None, *, include_deleted: bool = True) -> list[JSON]:
        """Messages the bot sent (current content, i.e. after edits), oldest first."""
        with self._lock:
            return [
                self._messages[key] for key in self._sent
                if (chat_id is None or key[0] == chat_id)
                and (include_deleted or key not in self._deleted)
            ]

    def sent_texts(self, chat_id: int | None = None) -> list[str]:
        return [str(m.get("text") or m.get("caption") or "") for m in self.sent_messages(chat_id)]

    def chat_history(self, chat_id: int) -> list[JSON]:
        """What a member of the chat sees: user and bot messages, deleted ones removed."""
        with self._lock:
            keys = sorted(k for k in self._messages if k[0] == chat_id and k not in self._deleted)
            return [self._messages[k] for k in keys]

    def message(self, chat_id: int, message_id: int) -> JSON | None:
        return self._messages.get((chat_id, message_id))

    def is_deleted(self, message: JSON) -> bool:
        return (message["chat"]["id"], message["message_id"]) in self._deleted

    def pending_updates(self) -> list[JSON]:
        with self._lock:
            return list(self._updates)

    @property
    def webhook(self) -> JSON | None:
        """The webhook set by the bot (url, secret_token, allowed_updates, ...) or None."""
        return self._webhook

    def get_commands(self, scope: JSON | None = None, language_code: str = "") -> list[JSON] | None:
        return self._commands.get((_scope_key(scope), language_code))

    def bot_text(self, kind: str, language_code: str = "") -> str | None:
        """What setMyDescription/setMyShortDescription/setMyName stored
        (``kind`` = "description" | "short_description" | "name")."""
        return self._bot_texts.get((kind, language_code))

    def pop_violations(self) -> list[Violation]:
        """Take the recorded violations, e.g. after provoking them on purpose."""
        with self._lock:
            taken, self.violations = self.violations, []
            return taken

    def assert_no_violations(self) -> None:
        if self.violations:
            raise AssertionError(
                "Bot API violations:\n" + "\n".join(f"  - {v}" for v in self.violations)
            )

    def describe_calls(self, last: int = 25) -> str:
        calls = list(self.calls)[-last:]
        lines = [f"last {len(calls)} of {len(self.calls)} Bot API calls:"]
        lines += [f"  {c}" for c in calls]
        if self.violations:
            lines.append("violations:")
            lines += [f"  {v}" for v in self.violations]
        return "\n".join(lines)

    # ================================================================ fault injection

    def inject_fault(
        self,
        method: str,
        kind: str,
        times: int = 1,
        *,
        retry_after: int = 1,
        status: int = 502,
        delay: float = 1.0,
    ) -> Fault:
        """Make the next ``times`` calls of ``method`` ("*" for any) fail.

        - ``"429"``: Too Many Requests with ``parameters.retry_after`` (seconds);
        - ``"5xx"``: ``status`` (502 Bad Gateway or 500 Internal Server Error);
        - ``"slow"``: the call takes effect at once (as on Telegram's side) but the answer is
          held back ``delay`` seconds, so a client timeout can leave a sent message behind;
        - ``"drop"``: the connection is closed without any answer.
        429/5xx/drop calls are recorded with ``fault`` set and have no effect.
        """
        if kind not in _FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {_FAULT_KINDS}, not {kind!r}")
        if kind == "5xx" and not 500 <= status <= 599:
            raise ValueError("a 5xx fault needs a 5xx status")
        if method != "*" and self.spec.method(method) is None:
            raise ValueError(f"{method} is not a Bot API method")
        fault = Fault(method.lower(), kind, times, retry_after, status, delay)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take_fault(self, method: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method in ("*", method.lower()) and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # ================================================================ users and chats

    def user(
        self,
        first_name: str = "Alice",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        is_premium: bool | None = None,
        user_id: int | None = None,
    ) -> JSON:
        user: JSON = {
            "id": user_id if user_id is not None else next(self._user_ids),
            "is_bot": False,
            "first_name": first_name,
        }
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        if is_premium:
            user["is_premium"] = True
        with self._lock:
            self._users[user["id"]] = user
        return user

    def private_chat(self, user: JSON) -> JSON:
        chat: JSON = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        for key in ("last_name", "username"):
            if key in user:
                chat[key] = user[key]
        with self._lock:
            self._users.setdefault(user["id"], user)
            state = self._register_chat(chat)
            state.member_ids.add(user["id"])
        return chat

    def group(
        self, title: str = "Test group", *, members: Iterable[JSON] = (),
        admins: Iterable[JSON] = (), owner: JSON | None = None, bot_is_admin: bool = False,
    ) -> JSON:
        chat: JSON = {"id": -next(self._group_ids), "type": "group", "title": title}
        return self._make_group_like(chat, members, admins, owner, bot_is_admin, None)

    def supergroup(
        self, title: str = "Test supergroup", *, username: str | None = None,
        is_forum: bool = False, members: Iterable[JSON] = (), admins: Iterable[JSON] = (),
        owner: JSON | None = None, bot_is_admin: bool = False,
    ) -> JSON:
        chat: JSON = {"id": -next(self._channel_ids), "type": "supergroup", "title": title}
        if username:
            chat["username"] = username
        if is_forum:
            chat["is_forum"] = True
        return self._make_group_like(chat, members, admins, owner, bot_is_admin, None)

    def channel(
        self, title: str = "Test channel", *, username: str | None = None,
        admins: Iterable[JSON] = (), owner: JSON | None = None, bot_is_admin: bool = True,
        bot_can_post_messages: bool = True,
    ) -> JSON:
        chat: JSON = {"id": -next(self._channel_ids), "type": "channel", "title": title}
        if username:
            chat["username"] = username
        return self._make_group_like(
            chat, (), admins, owner, bot_is_admin, bot_can_post_messages
        )

    def _make_group_like(
        self, chat: JSON, members: Iterable[JSON], admins: Iterable[JSON],
        owner: JSON | None, bot_is_admin: bool, bot_can_post: bool | None,
    ) -> JSON:
        with self._lock:
            state = self._register_chat(chat)
            for member in members:
                self._users.setdefault(member["id"], member)
                state.member_ids.add(member["id"])
        self.set_chat_admins(
            chat, admins, owner=owner, bot_is_admin=bot_is_admin,
            bot_can_post_messages=bot_can_post,
        )
        return chat

    def set_chat_admins(
        self,
        chat: JSON | int,
        admins: Iterable[JSON] = (),
        *,
        owner: JSON | None = None,
        bot_is_admin: bool | None = None,
        bot_can_post_messages: bool | None = None,
        **bot_rights: bool,
    ) -> None:
        """Configure who administers a chat, including the bot itself (channel setup checks
        look at ``can_post_messages``; other ``can_*`` rights can be passed as keywords)."""
        with self._lock:
            state = self._chat_state(chat)
            for admin in admins:
                self._users.setdefault(admin["id"], admin)
                if admin["id"] not in state.admin_ids:
                    state.admin_ids.append(admin["id"])
                state.member_ids.add(admin["id"])
            if owner is not None:
                self._users.setdefault(owner["id"], owner)
                state.owner_id = owner["id"]
                state.member_ids.add(owner["id"])
            if bot_is_admin is not None:
                state.bot_is_admin = bot_is_admin
            if bot_can_post_messages is not None:
                state.bot_rights["can_post_messages"] = bot_can_post_messages
            state.bot_rights.update(bot_rights)
        self._notify()

    def delete_chat(self, chat: JSON | int) -> None:
        """The chat no longer exists (a deleted group, a channel gone): every call naming it
        now fails with 400 "chat not found", as for an id Telegram never knew."""
        chat_id = chat if isinstance(chat, int) else chat["id"]
        with self._lock:
            del self._chats[chat_id]
        self._notify()

    def kick_bot(self, chat: JSON | int, *, by: JSON | None = None) -> JSON | None:
        """The bot was removed from (or, for a private chat, blocked in) ``chat``: sends there
        now fail with 403. With ``by``, the ``my_chat_member`` update is queued and returned."""
        with self._lock:
            state = self._chat_state(chat)
            old = self._member_object(state, self.bot_user)
            state.kicked = True
            new = self._member_object(state, self.bot_user)
        if by is None:
            self._notify()
            return None
        return self._my_chat_member(state.chat, by, old, new)

    def add_bot(self, chat: JSON | int, *, by: JSON | None = None, as_admin: bool = False) -> JSON | None:
        """The bot was (re-)added to ``chat`` (or unblocked); queues ``my_chat_member`` with ``by``."""
        with self._lock:
            state = self._chat_state(chat)
            old = self._member_object(state, self.bot_user)
            state.kicked = state.left = False
            state.bot_is_admin = as_admin or state.bot_is_admin
            new = self._member_object(state, self.bot_user)
        if by is None:
            self._notify()
            return None
        return self._my_chat_member(state.chat, by, old, new)

    def _my_chat_member(self, chat: JSON, by: JSON, old: JSON, new: JSON) -> JSON:
        return self.inject_update({
            "my_chat_member": {
                "chat": chat, "from": by, "date": int(time.time()),
                "old_chat_member": old, "new_chat_member": new,
            }
        })

    def _register_chat(self, chat: JSON) -> _ChatState:
        state = self._chats.get(chat["id"])
        if state is None:
            state = self._chats[chat["id"]] = _ChatState(chat=dict(chat))
        return state

    def _chat_state(self, chat: JSON | int) -> _ChatState:
        chat_id = chat if isinstance(chat, int) else chat["id"]
        state = self._chats.get(chat_id)
        if state is None:
            if isinstance(chat, int):
                raise KeyError(f"unknown chat {chat_id}; create it with a chat factory first")
            state = self._register_chat(chat)
        return state

    # ================================================================ update injection

    def inject_update(self, update: JSON) -> JSON:
        """Queue a raw update (``update_id`` is assigned when missing) for getUpdates/webhook."""
        with self._lock:
            if "update_id" not in update:
                update = {"update_id": self._next_update_id, **update}
            self._next_update_id = max(self._next_update_id, update["update_id"]) + 1
            self._updates.append(update)
        self._notify()
        return update

    def user_sends(
        self,
        chat: JSON,
        user: JSON | None,
        text: str,
        *,
        reply_to: JSON | None = None,
        entities: list[JSON] | None = None,
        message_thread_id: int | None = None,
    ) -> JSON:
        """``user`` writes ``text`` in ``chat`` (a channel post when ``chat`` is a channel;
        ``user`` may then be None). Entities for /commands, @mentions, URLs and hashtags are
        computed like Telegram does unless given. Returns the Update.

        Like Telegram, the update is only queued if the bot would get it: not after it was
        kicked, in a channel only as admin, and in groups with privacy mode on (the default,
        ``can_read_all_group_messages=False``, unless the bot is admin) only for commands for
        it, @mentions of it and replies to its messages -- a group bot that needs every message
        fails here as it would in production."""
        with self._lock:
            state = self._chat_state(chat)
            message = self._new_message(state, user, text)
            if user is not None:
                self._users.setdefault(user["id"], user)
                state.member_ids.add(user["id"])
            found = auto_entities(text) if entities is None else entities
            if found:
                message["entities"] = found
            if reply_to is not None:
                message["reply_to_message"] = _without_reply(reply_to)
            if message_thread_id is not None:
                message["message_thread_id"] = message_thread_id
                message["is_topic_message"] = True
            receives = self._bot_receives(state, message)
            update: JSON = {
                "channel_post" if chat["type"] == "channel" else "message": copy.deepcopy(message)
            }
        if not receives:
            with self._lock:
                update = {"update_id": self._next_update_id, **update}
                self._next_update_id += 1
            self._notify()
            return update
        return self.inject_update(update)

    def _bot_receives(self, state: _ChatState, message: JSON) -> bool:
        if state.kicked or state.left:
            return False
        kind = state.chat["type"]
        if kind == "channel":
            return state.bot_is_admin
        if kind == "private" or state.bot_is_admin or self.bot_user["can_read_all_group_messages"]:
            return True
        replied = message.get("reply_to_message")
        if replied and (replied["chat"]["id"], replied["message_id"]) in self._sent:
            return True
        text = message.get("text", "")
        me = self.bot_user["username"].lower()
        for entity in message.get("entities", []):
            piece = _entity_text(text, entity).lower()
            if entity["type"] == "bot_command" and ("@" not in piece or piece.endswith("@" + me)):
                return True
            if entity["type"] == "mention" and piece == "@" + me:
                return True
        return False

    def user_edits(self, message: JSON, text: str) -> JSON:
        """The author edits a message they sent; returns the queued edited_message Update."""
        with self._lock:
            key = (message["chat"]["id"], message["message_id"])
            stored = self._messages[key]
            stored["text"] = text
            stored["edit_date"] = int(time.time())
            found = auto_entities(text)
            if found:
                stored["entities"] = found
            else:
                stored.pop("entities", None)
            edited = copy.deepcopy(stored)
        kind = "edited_channel_post" if message["chat"]["type"] == "channel" else "edited_message"
        return self.inject_update({kind: edited})

    def user_presses(self, message: JSON, user: JSON, data: str) -> JSON:
        """``user`` presses the inline button with callback ``data`` under ``message``."""
        with self._lock:
            key = (message["chat"]["id"], message["message_id"])
            current = copy.deepcopy(self._messages.get(key, message))
            query_id = str(4_382_000_000_000_000_000 + next(self._ids))
            self._open_callbacks.add(query_id)
            self._users.setdefault(user["id"], user)
        return self.inject_update({
            "callback_query": {
                "id": query_id,
                "from": user,
                "message": current,
                "chat_instance": str(-(abs(message["chat"]["id"]) * 7919 % 10**18)),
                "data": data,
            }
        })

    def user_inline_query(
        self, user: JSON, query: str, *, offset: str = "", chat_type: str | None = "sender"
    ) -> JSON:
        """``user`` types ``@bot query`` in some chat; answer it with answerInlineQuery."""
        with self._lock:
            query_id = str(5_290_000_000_000_000_000 + next(self._ids))
            self._open_inline.add(query_id)
            self._users.setdefault(user["id"], user)
        inline: JSON = {"id": query_id, "from": user, "query": query, "offset": offset}
        if chat_type:
            inline["chat_type"] = chat_type
        return self.inject_update({"inline_query": inline})

    def _new_message(self, state: _ChatState, sender: JSON | None, text: str | None) -> JSON:
        chat = state.chat
        message: JSON = {
            "message_id": state.next_message_id,
            "date": int(time.time()),
            "chat": dict(chat),
        }
        state.next_message_id += 1
        if chat["type"] == "channel":
            message["sender_chat"] = dict(chat)
        elif sender is not None:
            message["from"] = sender
        if text is not None:
            message["text"] = text
        self._messages[(chat["id"], message["message_id"])] = message
        return message

    # ================================================================ HTTP layer

    async def _handle_file(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        method_name = request.match_info["method"]
        started = time.monotonic()
        method = self.spec.method(method_name)
        name = method.name if method else method_name
        call = RecordedCall(name, {}, started)
        try:
            if not _TOKEN_RE.match(token):
                raise ApiError(404, "Not Found")
            if token not in self.tokens:
                raise ApiError(401, "Unauthorized")
            call.params = await self._read_params(request, method)
            if method is None:
                raise ApiError(404, "Not Found", violation=True)
            fault = self._take_fault(method.name)
            if fault is not None and fault.kind != "slow":
                return await self._answer_fault(request, call, fault)
            result = await self._process(method, call.params)
            call.status, call.response = 200, {"ok": True, "result": result}
            if fault is not None:
                call.fault = fault.kind
                self._record(call)
                await asyncio.sleep(fault.delay)
                return web.json_response(call.response)
        except ApiError as err:
            call.status, call.response = err.status, err.body()
            if err.violation:
                with self._lock:
                    self.violations.append(Violation(name, err.description, call.params))
        except Exception as exc:  # a bug of the fake itself: answer, and make it visible
            call.status = 500
            call.response = ApiError(500, f"Internal Server Error (fake Bot API: {exc!r})").body()
            self._warn(f"fake Bot API crashed on {name}: {exc!r}")
        self._record(call)
        return web.json_response(call.response, status=call.status)

    def _record(self, call: RecordedCall) -> None:
        with self._lock:
            self.calls.append(call)
        self._notify()

    async def _answer_fault(
        self, request: web.Request, call: RecordedCall, fault: Fault
    ) -> web.StreamResponse:
        call.fault = fault.kind
        if fault.kind == "429":
            err = ApiError(
                429, f"Too Many Requests: retry after {fault.retry_after}",
                parameters={"retry_after": fault.retry_after},
            )
        elif fault.kind == "5xx":
            phrase = "Bad Gateway" if fault.status == 502 else "Internal Server Error"
            err = ApiError(fault.status, phrase)
        else:  # drop
            call.status = 0
            self._record(call)
            if request.transport is not None:
                request.transport.abort()
            # aiohttp cancels this handler once it notices the connection is gone (see
            # handler_cancellation); nothing may be written to the aborted socket meanwhile
            await asyncio.sleep(5)
            raise asyncio.CancelledError
        call.status, call.response = err.status, err.body()
        self._record(call)
        return web.json_response(call.response, status=call.status)

    async def _read_params(self, request: web.Request, method: MethodSpec | None) -> JSON:
        raw: dict[str, Any] = {}
        typed: JSON = {}
        for key, value in request.query.items():
            raw[key] = value
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError as exc:
                    raise ApiError(400, "Bad Request: can't parse JSON body", violation=True) from exc
                if not isinstance(body, dict):
                    raise ApiError(400, "Bad Request: JSON body must be an object", violation=True)
                typed.update(body)
            else:
                form = await request.post()
                for key, item in form.items():
                    if isinstance(item, web.FileField):
                        content = item.file.read()
                        typed[key] = {"filename": item.filename, "size": len(content)}
                    elif isinstance(item, str):
                        raw[key] = item
                    else:
                        raw[key] = bytes(item).decode("utf-8", "replace")
        params: JSON = {}
        for key, value in raw.items():
            arg = method.arguments.get(key) if method else None
            params[key] = self.spec.decode_form_value(value, arg.type) if arg else value
        for key, value in typed.items():
            arg = method.arguments.get(key) if method else None
            if arg is not None and isinstance(value, str) and arg.type["type"] != "string":
                value = self.spec.decode_form_value(value, arg.type)
            params[key] = value
        return params

    # ================================================================ validation

    def _warn(self, message: str) -> None:
        with self._lock:
            if message not in self._warned:
                self._warned.add(message)
                self.warnings.append(message)

    def _validate(self, method: MethodSpec, params: JSON) -> dict[int, Any]:
        """Spec checks, then Telegram's own rules; returns the parsed texts by id(container)."""
        # formatted texts first: their limits hold after entity parsing, in Telegram's words
        parsed: dict[int, Any] = {}
        self._check_texts(params, parsed, top=method.name)
        issues = self.spec.validate_call(method, params)
        for warning in issues.warnings:
            self._warn(warning)
        if issues.errors:
            raise ApiError(400, f"Bad Request: {issues.errors[0]}", violation=True)
        markup = params.get("reply_markup")
        if isinstance(markup, dict):
            _check_reply_markup(markup)
        if method.name == "answerInlineQuery":
            _check_inline_results(params.get("results", []))
        return parsed

    def _check_texts(self, obj: Any, parsed: dict[int, Any], *, top: str = "") -> None:
        # ``top``: the method name while looking at the call's own parameters
        """Walk the params and every nested object for formatted text (text + parse_mode)."""
        if isinstance(obj, list):
            for item in obj:
                self._check_texts(item, parsed)
            return
        if not isinstance(obj, dict):
            return
        for text_field, mode_field in PARSED_TEXT_FIELDS.items():
            value = obj.get(text_field)
            if not isinstance(value, str):
                continue
            mode = obj.get(mode_field)
            if text_field == "text" and not top and mode is None:
                continue  # e.g. a button's text: plain, checked by the spec
            if mode:
                if not isinstance(mode, str) or mode.lower() not in ("html", "markdown", "markdownv2"):
                    raise ApiError(400, f"Bad Request: unsupported parse_mode \"{mode}\"", violation=True)
                if mode.lower() == "html":
                    try:
                        result = parse_html(value, strict=self.strict_html)
                    except HtmlParseError as exc:
                        raise ApiError(
                            400, f"Bad Request: can't parse entities: {exc}", violation=True
                        ) from exc
                    visible, entities = result.text, result.entities
                else:
                    # Markdown isn't parsed here: no entities and no visible length to check
                    self._warn(f"parse_mode {mode} is passed through unvalidated by the fake server")
                    visible, entities = value, []
                parsed[id(obj)] = (visible, entities)
            else:
                visible = value
            is_message_text = text_field == "message_text" or (
                text_field == "text" and top in ("sendMessage", "editMessageText")
            )
            limit = _VISIBLE_LIMITS.get(text_field)
            measurable = not mode or str(mode).lower() == "html"
            checked = measurable and (mode or is_message_text or text_field != "text")
            if limit is not None and checked and utf16_len(visible) > limit:
                reason = _TOO_LONG.get(text_field, f"{text_field} is too long")
                raise ApiError(400, f"Bad Request: {reason}", violation=True)
            if is_message_text and not visible.strip():
                raise ApiError(400, "Bad Request: message text is empty", violation=True)
        for value in obj.values():
            if isinstance(value, dict | list):
                self._check_texts(value, parsed)

    # ================================================================ method dispatch

    async def _process(self, method: MethodSpec, params: JSON) -> Any:
        parsed = self._validate(method, params)
        if method.name == "getUpdates":
            return await self._get_updates(params)
        handler = getattr(self, f"_m_{method.name}", None)
        with self._lock:
            if handler is not None:
                result = handler(params, parsed.get(id(params)))
            else:
                result = self._generic(method, params)
        self._notify()
        return result

    def _generic(self, method: MethodSpec, params: JSON) -> Any:
        if "chat_id" in params and method.name in _SEND_METHODS:
            self._sendable_chat(params["chat_id"])
        ret = method.return_type
        if ret.get("type") != "bool" and not (
            ret.get("type") == "any_of"
            and any(alt.get("type") == "bool" for alt in ret.get("any_of", []))
        ):
            self._warn(
                f"{method.name} is not simulated; the fake answers true although Telegram "
                f"returns {ret.get('reference') or ret.get('type')}"
            )
        return True

    # ---------------------------------------------------------------- updates

    def _allowed(self, update: JSON, allowed: list[str] | None) -> bool:
        kind = next((k for k in update if k != "update_id"), "")
        if not allowed:
            return kind not in _OPT_IN_UPDATES
        return kind in allowed

    def _confirm(self, offset: int | None) -> None:
        if offset is None or offset == 0:
            return
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        else:
            self._updates = self._updates[offset:]

    async def _get_updates(self, params: JSON) -> list[JSON]:
        limit = min(max(int(params.get("limit", 100)), 1), 100)
        timeout = max(float(params.get("timeout", 0)), 0.0)
        with self._lock:
            if self._webhook is not None:
                raise ApiError(
                    409, "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
            if "allowed_updates" in params:
                self._allowed_updates = list(params["allowed_updates"]) or None
            self._confirm(params.get("offset"))
            self._poll_generation += 1
            generation = self._poll_generation
        self._notify()
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                self._updates = [u for u in self._updates if self._allowed(u, self._allowed_updates)]
                batch = copy.deepcopy(self._updates[:limit])
                superseded = self._poll_generation != generation
            if batch or self._closing:
                return batch
            if superseded:
                raise ApiError(
                    409, "Conflict: terminated by other getUpdates request; make sure that only "
                    "one bot instance is running",
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await self._wait_change(remaining)

    # ---------------------------------------------------------------- webhook

    def _m_setWebhook(self, p: JSON, _: Any) -> bool:
        url = p.get("url", "")
        if not url:
            return self._m_deleteWebhook(p, None)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook", violation=True)
        secret = p.get("secret_token")
        if secret is not None and not _SECRET_RE.match(secret):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters", violation=True)
        if p.get("drop_pending_updates"):
            self._updates.clear()
        self._webhook = {
            "url": url,
            "secret_token": secret,
            "allowed_updates": p.get("allowed_updates"),
            "max_connections": p.get("max_connections", 40),
            "ip_address": p.get("ip_address"),
        }
        self._webhook_error = None
        if self._webhook_task is None or self._webhook_task.done():
            assert self._loop is not None
            self._webhook_task = self._loop.create_task(self._webhook_sender())
        return True

    def _m_deleteWebhook(self, p: JSON, _: Any) -> bool:
        self._webhook = None
        if p.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _m_getWebhookInfo(self, p: JSON, _: Any) -> JSON:
        hook = self._webhook or {}
        info: JSON = {
            "url": hook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if hook:
            info["max_connections"] = hook["max_connections"]
            if hook.get("allowed_updates"):
                info["allowed_updates"] = hook["allowed_updates"]
            if hook.get("ip_address"):
                info["ip_address"] = hook["ip_address"]
        if self._webhook_error:
            info["last_error_date"], info["last_error_message"] = self._webhook_error
        return info

    async def deliver_webhook(
        self, update: JSON, *, url: str | None = None, secret_token: str | None = None,
        record: bool = True,
    ) -> int | None:
        """POST one update to the webhook (or ``url``) right now, with ``secret_token`` as the
        secret header (None: no header); returns the HTTP status, None if unreachable. Use it to
        check that a bot rejects a wrong secret; queued updates go through :meth:`inject_update`."""
        target = url or (self._webhook or {}).get("url")
        if not target:
            raise RuntimeError("no webhook set and no url given")
        if "update_id" not in update:
            with self._lock:
                update = {"update_id": self._next_update_id, **update}
                self._next_update_id += 1
        status, error = await self._post_update(target, update, secret_token)
        if record:
            with self._lock:
                self.webhook_deliveries.append(WebhookDelivery(
                    update["update_id"], target, status, error, time.monotonic(), secret_token
                ))
            self._notify()
        return status

    async def _post_update(
        self, url: str, update: JSON, secret: str | None
    ) -> tuple[int | None, str | None]:
        if self._client is None or self._client.closed:
            self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        try:
            async with self._client.post(url, data=json.dumps(update).encode(), headers=headers) as resp:
                await resp.read()
                return resp.status, None if resp.status < 300 else f"Wrong response from the webhook: {resp.status} {resp.reason}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return None, f"Connection failed: {exc!r}"

    async def _webhook_sender(self) -> None:
        """Deliver queued updates one at a time, retrying failures like Telegram (fewer times)."""
        while not self._closing:
            with self._lock:
                hook = self._webhook
                pending = None
                if hook is not None:
                    self._updates = [
                        u for u in self._updates if self._allowed(u, hook.get("allowed_updates"))
                    ]
                    pending = copy.deepcopy(self._updates[0]) if self._updates else None
            if hook is None:
                return
            if pending is None:
                await self._wait_change(1.0)
                continue
            status, error = await self._post_update(hook["url"], pending, hook.get("secret_token"))
            uid = pending["update_id"]
            with self._lock:
                self.webhook_deliveries.append(WebhookDelivery(
                    uid, hook["url"], status, error, time.monotonic(), hook.get("secret_token")
                ))
                attempts = self._webhook_attempts[uid] = self._webhook_attempts.get(uid, 0) + 1
                done = status is not None and 200 <= status < 300
                if not done:
                    self._webhook_error = (int(time.time()), error or "")
                if done or attempts >= self.webhook_max_attempts:
                    self._updates = [u for u in self._updates if u["update_id"] != uid]
            self._notify()
            if not done and attempts < self.webhook_max_attempts:
                await asyncio.sleep(self.webhook_retry_delay * attempts)

    # ---------------------------------------------------------------- bot

    def _m_getMe(self, p: JSON, _: Any) -> JSON:
        return dict(self.bot_user)

    def _m_logOut(self, p: JSON, _: Any) -> bool:
        return True

    def _m_close(self, p: JSON, _: Any) -> bool:
        return True

    def _m_setMyCommands(self, p: JSON, _: Any) -> bool:
        commands = p["commands"]
        if len(commands) > 100:
            raise ApiError(400, "Bad Request: too many commands", violation=True)
        for cmd in commands:
            if not _COMMAND_RE.match(cmd["command"]):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID", violation=True)
        key = (_scope_key(p.get("scope")), p.get("language_code", ""))
        if commands:
            self._commands[key] = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        else:
            self._commands.pop(key, None)
        return True

    def _m_getMyCommands(self, p: JSON, _: Any) -> list[JSON]:
        return list(self._commands.get((_scope_key(p.get("scope")), p.get("language_code", "")), []))

    def _m_deleteMyCommands(self, p: JSON, _: Any) -> bool:
        self._commands.pop((_scope_key(p.get("scope")), p.get("language_code", "")), None)
        return True

    def _set_bot_text(self, kind: str, p: JSON) -> bool:
        key = (kind, p.get("language_code", ""))
        if p.get(kind):
            self._bot_texts[key] = p[kind]
        else:
            self._bot_texts.pop(key, None)
        return True

    def _get_bot_text(self, kind: str, p: JSON) -> JSON:
        lang = p.get("language_code", "")
        default = self.bot_user["first_name"] if kind == "name" else ""
        value = self._bot_texts.get((kind, lang), self._bot_texts.get((kind, ""), default))
        return {kind: value}

    def _m_setMyDescription(self, p: JSON, _: Any) -> bool:
        return self._set_bot_text("description", p)

    def _m_getMyDescription(self, p: JSON, _: Any) -> JSON:
        return self._get_bot_text("description", p)

    def _m_setMyShortDescription(self, p: JSON, _: Any) -> bool:
        return self._set_bot_text("short_description", p)

    def _m_getMyShortDescription(self, p: JSON, _: Any) -> JSON:
        return self._get_bot_text("short_description", p)

    def _m_setMyName(self, p: JSON, _: Any) -> bool:
        return self._set_bot_text("name", p)

    def _m_getMyName(self, p: JSON, _: Any) -> JSON:
        return self._get_bot_text("name", p)

    # ---------------------------------------------------------------- chats

    def _find_chat(self, chat_id: Any) -> _ChatState:
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            for state in self._chats.values():
                if state.chat.get("username", "").lower() == chat_id[1:].lower() and state.chat["type"] != "private":
                    return state
        elif isinstance(chat_id, int) and chat_id in self._chats:
            return self._chats[chat_id]
        raise ApiError(400, "Bad Request: chat not found")

    def _sendable_chat(self, chat_id: Any) -> _ChatState:
        state = self._find_chat(chat_id)
        kind = state.chat["type"]
        if state.kicked or state.left:
            raise ApiError(403, {
                "private": "Forbidden: bot was blocked by the user",
                "group": "Forbidden: bot was kicked from the group chat",
                "supergroup": "Forbidden: bot was kicked from the supergroup chat",
                "channel": "Forbidden: bot is not a member of the channel chat",
            }[kind])
        if kind == "channel":
            if not state.bot_is_admin:
                raise ApiError(403, "Forbidden: bot is not a member of the channel chat")
            if not state.bot_rights.get("can_post_messages", True):
                raise ApiError(400, "Bad Request: need administrator rights in the channel chat")
        return state

    def _member_object(self, state: _ChatState, user: JSON) -> JSON:
        uid = user["id"]
        kind = state.chat["type"]
        if uid == self.bot_user["id"]:
            if state.kicked:
                return {"status": "kicked", "user": user, "until_date": 0}
            if state.left:
                return {"status": "left", "user": user}
            if state.bot_is_admin:
                rights = {"can_post_messages": True, "can_edit_messages": True} if kind == "channel" else {}
                rights.update(state.bot_rights)
                return _admin_object(user, kind, **rights)
            return {"status": "member", "user": user}
        if uid == state.owner_id:
            return {"status": "creator", "user": user, "is_anonymous": False}
        if uid in state.admin_ids:
            return _admin_object(user, kind)
        if uid in state.member_ids:
            return {"status": "member", "user": user}
        return {"status": "left", "user": user}

    def _m_getChat(self, p: JSON, _: Any) -> JSON:
        state = self._find_chat(p["chat_id"])
        info: JSON = dict(state.chat)
        info.update({
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False,
                "premium_subscription": False, "gifts_from_channels": False,
            },
        })
        return info

    def _check_member_access(self, state: _ChatState) -> None:
        if state.chat["type"] == "channel" and not state.bot_is_admin:
            raise ApiError(403, "Forbidden: bot is not a member of the channel chat")
        if state.kicked:
            self._sendable_chat(state.chat["id"])

    def _m_getChatMember(self, p: JSON, _: Any) -> JSON:
        state = self._find_chat(p["chat_id"])
        self._check_member_access(state)
        uid = p["user_id"]
        user = self.bot_user if uid == self.bot_user["id"] else self._users.get(uid)
        if user is None:
            raise ApiError(400, "Bad Request: user not found")
        return self._member_object(state, _plain_user(user))

    def _m_getChatAdministrators(self, p: JSON, _: Any) -> list[JSON]:
        state = self._find_chat(p["chat_id"])
        if state.chat["type"] == "private":
            raise ApiError(400, "Bad Request: there are no administrators in the private chat")
        self._check_member_access(state)
        ids = ([state.owner_id] if state.owner_id is not None else []) + state.admin_ids
        result = [self._member_object(state, _plain_user(self._users[i])) for i in ids]
        if state.bot_is_admin:
            result.append(self._member_object(state, _plain_user(self.bot_user)))
        return result

    def _m_getChatMemberCount(self, p: JSON, _: Any) -> int:
        state = self._find_chat(p["chat_id"])
        self._check_member_access(state)
        return len(state.member_ids) + (0 if state.kicked or state.left else 1)

    def _m_leaveChat(self, p: JSON, _: Any) -> bool:
        state = self._find_chat(p["chat_id"])
        state.left = True
        return True

    def _m_sendChatAction(self, p: JSON, _: Any) -> bool:
        self._sendable_chat(p["chat_id"])
        return True

    # ---------------------------------------------------------------- messages

    def _m_sendMessage(self, p: JSON, parsed: tuple[str, list[JSON]] | None) -> JSON:
        state = self._sendable_chat(p["chat_id"])
        text, entities = parsed if parsed else (p["text"], p.get("entities") or [])
        reply = self._reply_target(state, p)
        message = self._new_message(state, _plain_user(self.bot_user), text)
        if entities:
            message["entities"] = entities
        if reply is not None:
            message["reply_to_message"] = _without_reply(reply)
        if p.get("message_thread_id"):
            message["message_thread_id"] = p["message_thread_id"]
        markup = p.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        if isinstance(p.get("link_preview_options"), dict):
            message["link_preview_options"] = p["link_preview_options"]
        self._sent.append((state.chat["id"], message["message_id"]))
        return copy.deepcopy(message)

    def _reply_target(self, state: _ChatState, p: JSON) -> JSON | None:
        params = p.get("reply_parameters")
        if not isinstance(params, dict):
            return None
        chat_id = params.get("chat_id", state.chat["id"])
        target_state = self._find_chat(chat_id) if chat_id != state.chat["id"] else state
        key = (target_state.chat["id"], params["message_id"])
        target = self._messages.get(key)
        if target is None or key in self._deleted:
            if params.get("allow_sending_without_reply"):
                return None
            raise ApiError(400, "Bad Request: message to be replied not found")
        return target

    def _editable(self, p: JSON) -> JSON | None:
        """The stored message an edit targets; None for inline messages (not simulated)."""
        if p.get("inline_message_id"):
            if p.get("chat_id") is not None or p.get("message_id") is not None:
                raise ApiError(400, "Bad Request: chat_id and message_id must be empty for inline messages", violation=True)
            return None
        if p.get("chat_id") is None or p.get("message_id") is None:
            raise ApiError(400, "Bad Request: chat_id and message_id are required unless inline_message_id is given", violation=True)
        state = self._find_chat(p["chat_id"])
        key = (state.chat["id"], p["message_id"])
        message = self._messages.get(key)
        if message is None or key in self._deleted:
            raise ApiError(400, "Bad Request: message to edit not found")
        if key not in self._sent:
            raise ApiError(400, "Bad Request: message can't be edited")
        return message

    def _m_editMessageText(self, p: JSON, parsed: tuple[str, list[JSON]] | None) -> JSON | bool:
        message = self._editable(p)
        if message is None:
            return True
        text, entities = parsed if parsed else (p["text"], p.get("entities") or [])
        markup = p.get("reply_markup")
        if (
            message.get("text") == text
            and message.get("entities", []) == entities
            and message.get("reply_markup") == markup
        ):
            raise ApiError(400, _NOT_MODIFIED)
        message["text"] = text
        if entities:
            message["entities"] = entities
        else:
            message.pop("entities", None)
        _set_markup(message, markup)
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    def _m_editMessageReplyMarkup(self, p: JSON, _: Any) -> JSON | bool:
        message = self._editable(p)
        if message is None:
            return True
        markup = p.get("reply_markup")
        if message.get("reply_markup") == markup or (
            markup in (None, {"inline_keyboard": []}) and "reply_markup" not in message
        ):
            raise ApiError(400, _NOT_MODIFIED)
        _set_markup(message, markup)
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    def _m_deleteMessage(self, p: JSON, _: Any) -> bool:
        state = self._find_chat(p["chat_id"])
        key = (state.chat["id"], p["message_id"])
        self._delete(state, key)
        return True

    def _m_deleteMessages(self, p: JSON, _: Any) -> bool:
        state = self._find_chat(p["chat_id"])
        for message_id in p["message_ids"]:
            key = (state.chat["id"], message_id)
            if key in self._messages and key not in self._deleted:
                self._delete(state, key)
        return True

    def _delete(self, state: _ChatState, key: tuple[int, int]) -> None:
        if key not in self._messages or key in self._deleted:
            raise ApiError(400, "Bad Request: message to delete not found")
        own = key in self._sent
        if not own and state.chat["type"] != "private" and not state.bot_is_admin:
            raise ApiError(400, "Bad Request: message can't be deleted")
        self._deleted.add(key)

    # ---------------------------------------------------------------- queries

    def _m_answerCallbackQuery(self, p: JSON, _: Any) -> bool:
        query_id = p["callback_query_id"]
        if query_id not in self._open_callbacks:
            raise ApiError(400, _QUERY_TOO_OLD)
        self._open_callbacks.discard(query_id)
        self.callback_answers[query_id] = dict(p)
        return True

    def _m_answerInlineQuery(self, p: JSON, _: Any) -> bool:
        query_id = p["inline_query_id"]
        if query_id not in self._open_inline:
            raise ApiError(400, _QUERY_TOO_OLD)
        self._open_inline.discard(query_id)
        self.inline_answers[query_id] = dict(p)
        return True


# ==================================================================== helpers


def _entity_text(text: str, entity: JSON) -> str:
    """The text an entity covers; offsets are in UTF-16 code units."""
    units = text.encode("utf-16-le")
    start, length = 2 * entity["offset"], 2 * entity["length"]
    return units[start : start + length].decode("utf-16-le", "replace")


def _plain_user(user: JSON) -> JSON:
    """A User as embedded in other objects (getMe-only capability flags removed)."""
    keep = ("id", "is_bot", "first_name", "last_name", "username", "language_code", "is_premium")
    return {k: user[k] for k in keep if k in user}


def _without_reply(message: JSON) -> JSON:
    """Telegram nests reply_to_message only one level deep."""
    inner = copy.deepcopy(message)
    inner.pop("reply_to_message", None)
    return inner


def _set_markup(message: JSON, markup: Any) -> None:
    if isinstance(markup, dict) and markup.get("inline_keyboard"):
        message["reply_markup"] = markup
    else:
        message.pop("reply_markup", None)


def _scope_key(scope: JSON | None) -> str:
    return json.dumps(scope or {"type": "default"}, sort_keys=True)


def _admin_object(user: JSON, chat_type: str, **rights: bool) -> JSON:
    member: JSON = {
        "status": "administrator",
        "user": user,
        "can_be_edited": False,
        "is_anonymous": False,
        "can_manage_chat": True,
        "can_delete_messages": True,
        "can_manage_video_chats": True,
        "can_restrict_members": True,
        "can_promote_members": False,
        "can_change_info": True,
        "can_invite_users": True,
        "can_post_stories": False,
        "can_edit_stories": False,
        "can_delete_stories": False,
    }
    if chat_type == "channel":
        member.update(can_post_messages=True, can_edit_messages=True)
    else:
        member["can_pin_messages"] = True
        if chat_type == "supergroup":
            member["can_manage_topics"] = False
    member.update(rights)
    return member


def _check_reply_markup(markup: JSON) -> None:
    """Inline keyboard rules Telegram enforces beyond the field types."""
    rows = markup.get("inline_keyboard")
    if rows is None:
        return
    count = 0
    for row in rows:
        for button in row:
            count += 1
            if not button.get("text", "").strip():
                raise ApiError(400, "Bad Request: BUTTON_TEXT_INVALID: button text must be non-empty", violation=True)
            actions = [k for k in button if k != "text"]
            if not actions:
                raise ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard", violation=True)
            if len(actions) > 1:
                raise ApiError(
                    400, "Bad Request: can't parse inline keyboard button: exactly one of the "
                    f"optional fields must be used, got {', '.join(actions)}", violation=True,
                )
            if "callback_data" in button:
                size = len(str(button["callback_data"]).encode("utf-8"))
                if not 1 <= size <= 64:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID", violation=True)
            if "url" in button:
                url = str(button["url"])
                parts = urlsplit(url)
                if parts.scheme not in ("http", "https", "tg") or (parts.scheme != "tg" and not parts.hostname):
                    raise ApiError(
                        400, f"Bad Request: inline keyboard button URL '{url}' is invalid: "
                        "Unsupported URL protocol", violation=True,
                    )
    if count > 100:
        raise ApiError(400, "Bad Request: reply markup is too long", violation=True)


def _check_inline_results(results: list[JSON]) -> None:
    if len(results) > 50:
        raise ApiError(400, "Bad Request: RESULTS_TOO_MUCH", violation=True)
    seen: set[str] = set()
    for result in results:
        rid = str(result.get("id", ""))
        if not 1 <= len(rid.encode("utf-8")) <= 64:
            raise ApiError(400, "Bad Request: RESULT_ID_INVALID", violation=True)
        if rid in seen:
            raise ApiError(400, "Bad Request: RESULT_ID_DUPLICATE", violation=True)
        seen.add(rid)
        markup = result.get("reply_markup")
        if isinstance(markup, dict):
            _check_reply_markup(markup)
