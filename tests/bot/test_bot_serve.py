"""Running the bot: webhook mode with its secret, ``newsbot serve`` end to end, and its
start-up failures."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_application
from bot.cli import main
from bot.runner import running
from tests.support.bot import bot_settings
from tests.support.fakebotapi import FakeBotApi

pytestmark = pytest.mark.slow

WRONG_TOKEN = "987654:WRONG-token-abcdefghijklmnopqrstuvwxyz"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_webhook_mode_answers_and_checks_the_secret(
    fake_bot_api: FakeBotApi, bot_store: Path, bot_embedder: Any, tmp_path: Path
) -> None:
    server = fake_bot_api
    port = free_port()
    settings = bot_settings(
        bot_store, server, tmp_path, webhook_url=f"http://127.0.0.1:{port}/newsbot-hook",
        webhook_listen="127.0.0.1", webhook_port=port, webhook_secret="s3cret_Token-1",
    )
    ada = server.user("Ada")
    chat = server.private_chat(ada)
    app = build_application(settings, embedder=bot_embedder)
    async with running(app, settings):
        hook = server.webhook
        assert hook is not None and hook["url"].endswith("/newsbot-hook")
        assert hook["secret_token"] == "s3cret_Token-1"
        server.user_sends(chat, ada, "General Motors chief executive")
        (reply,) = await server.wait_for_messages(chat["id"], count=1, timeout=20)
        forged = {"message": {"message_id": 99, "date": 0, "chat": chat, "from": ada,
                              "text": "forged question"}}
        assert await server.deliver_webhook(forged, secret_token="wrong") == 403
        assert await server.deliver_webhook(forged, secret_token=None) == 403
    assert "Barra" in reply["text"]
    assert len(server.sent_messages(chat["id"])) == 1
    assert server.calls_to("getUpdates") == []


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A clean environment for ``main()``; its stderr log handler is removed afterwards."""
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_API_URL", "WEBHOOK_URL", "NEWSBOT_SOURCES",
                 "ADMIN_IDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    yield tmp_path
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_newsbot", False):
            root.removeHandler(handler)


def test_serve_without_token_is_a_one_line_error(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--data-dir", str(cli_env / "data")]) == 2
    out, err = capsys.readouterr()
    assert err.strip().count("\n") == 0 and "TELEGRAM_BOT_TOKEN is not set" in err
    assert "Traceback" not in err + out


def test_serve_with_a_rejected_token_is_a_one_line_error(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeBotApi()
    with server.running_in_thread():
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", WRONG_TOKEN)
        monkeypatch.setenv("TELEGRAM_API_URL", server.base_url)
        code = main(["serve", "--data-dir", str(cli_env / "data")])
    out, err = capsys.readouterr()
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("newsbot serve:")]
    assert lines == ["newsbot serve: Telegram rejected TELEGRAM_BOT_TOKEN (401 Unauthorized): "
                     "check the token"]
    assert "Traceback" not in err + out
    assert WRONG_TOKEN not in err + out
    assert [c.method for c in server.calls] == ["getMe"]


def test_serve_with_an_unreachable_api_is_a_one_line_error(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", WRONG_TOKEN)
    monkeypatch.setenv("TELEGRAM_API_URL", f"http://127.0.0.1:{free_port()}/bot")
    assert main(["serve", "--data-dir", str(cli_env / "data")]) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("newsbot serve:")]
    assert len(lines) == 1 and "cannot reach the Bot API" in lines[0]
    assert "Traceback" not in err + out and WRONG_TOKEN not in err + out


def test_newsbot_serve_answers_through_its_encoder_process_and_stops_it(
    tmp_path: Path,
) -> None:
    """The installed command, as an operator runs it: it answers, and on SIGTERM it exits
    cleanly without leaving its encoder process behind."""
    newsbot = Path(sys.executable).with_name("newsbot")
    corpus = tmp_path / "gm.jsonl"
    corpus.write_text(json.dumps({
        "id": "gm-1", "title": "Mary Barra leads GM", "source": "example", "lang": "en",
        "published": "2014-01-15",
        "text": "Mary Barra became chief executive of General Motors in 2014.",
    }) + "\n", encoding="utf-8")
    data = tmp_path / "data"
    env = {**os.environ, "EMBEDDING_MODEL": "hashing", "HF_HUB_OFFLINE": "1"}
    for name in ("WEBHOOK_URL", "NEWSBOT_SOURCES", "ADMIN_IDS", "ENCODER_PROCESS"):
        env.pop(name, None)
    subprocess.run([str(newsbot), "index", str(corpus), "--data-dir", str(data)], env=env,
                   check=True, capture_output=True, cwd=tmp_path, timeout=120)
    server = FakeBotApi()
    with server.running_in_thread():
        env |= {"TELEGRAM_BOT_TOKEN": server.token, "TELEGRAM_API_URL": server.base_url,
                "POLL_TIMEOUT": "1"}
        proc = subprocess.Popen(
            [str(newsbot), "serve", "--data-dir", str(data)], env=env, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            ada = server.user("Ada")
            chat = server.private_chat(ada)
            server.user_sends(chat, ada, "Who leads General Motors?")
            server.wait_for_sync(lambda: server.sent_texts(chat["id"]), 60)
            children = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "spawn_main"],
                                      capture_output=True, text=True).stdout.split()
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "Mary Barra became chief executive" in server.sent_texts(chat["id"])[0]
    assert proc.returncode == 0, out
    assert len(children) == 1  # the encoder process
    still = subprocess.run(["ps", "-o", "stat=", "-p", children[0]],
                           capture_output=True, text=True).stdout.strip()
    assert still in ("", "Z"), f"encoder process left running: {still}"
    assert server.token not in out


def test_serve_with_a_model_that_cannot_load_is_a_one_line_error(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeBotApi()
    with server.running_in_thread():
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", server.token)
        monkeypatch.setenv("TELEGRAM_API_URL", server.base_url)
        monkeypatch.setenv("EMBEDDING_MODEL", str(cli_env / "no-such-model"))
        code = main(["serve", "--data-dir", str(cli_env / "data")])
    out, err = capsys.readouterr()
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("newsbot serve:")]
    assert len(lines) == 1 and "cannot load the embedding model" in lines[0]
    assert "no-such-model" in lines[0]
    assert "Traceback" not in err + out and server.token not in err + out
