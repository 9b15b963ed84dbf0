"""Configuration: every variable is documented, and values parse as operators write them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.settings import BotSettings
from index.storage.store import Store

ROOT = Path(__file__).resolve().parents[1]


def _env_names() -> set[str]:
    names = set()
    for field in BotSettings.model_fields.values():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            names.add(str(choices[0]))
    return names


def test_env_example_documents_every_variable():
    documented = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#") and "=" in line
    }
    assert _env_names() - documented == set()
    assert documented - _env_names() == set()


def test_env_example_values_are_the_defaults(monkeypatch, tmp_path):
    """A copy of .env.example changes nothing: each value written there is the default."""
    for name in _env_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    written = BotSettings(_env_file=ROOT / ".env.example")
    default = BotSettings(_env_file=None)
    differ = {
        name: (getattr(written, name), getattr(default, name))
        for name in BotSettings.model_fields
        if getattr(written, name) != getattr(default, name)
    }
    assert differ == {}


def test_values_parse_as_written(monkeypatch, tmp_path):
    monkeypatch.setenv("ADMIN_IDS", "123, 456 789")
    monkeypatch.setenv("NEWSBOT_SOURCES", "ansa=feeds/ansa.xml,archive=/srv/news")
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CHROMA_HOST", "")
    s = BotSettings(_env_file=None)
    assert s.admin_ids == [123, 456, 789]
    assert s.sources == {"ansa": "feeds/ansa.xml", "archive": "/srv/news"}
    assert s.data_dir == tmp_path and s.chroma_host is None


def test_bad_admin_ids_name_the_variable(monkeypatch):
    monkeypatch.setenv("ADMIN_IDS", "alice")
    with pytest.raises(ValueError, match="ADMIN_IDS"):
        BotSettings(_env_file=None)


@pytest.mark.parametrize("before", [True, False])
def test_data_dir_is_read_before_or_after_the_subcommand(before, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    monkeypatch.delenv("NEWSBOT_DATA_DIR", raising=False)
    data = tmp_path / "elsewhere"
    data.mkdir()

    async def make() -> None:
        await (await Store.open(data / "newsbot.sqlite3")).close()

    asyncio.run(make())
    args = (["--data-dir", str(data), "status", "--json"] if before
            else ["status", "--data-dir", str(data), "--json"])
    assert main(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["data_dir"] == str(data)
    assert info["articles"] == 0
