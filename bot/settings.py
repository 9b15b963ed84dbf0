"""The bot's settings: the indexer's plus what only the Telegram side needs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from index.settings import Settings, env_alias, parse_duration


class BotSettings(Settings):
    telegram_bot_token: SecretStr | None = Field(
        None, validation_alias=env_alias("TELEGRAM_BOT_TOKEN", "telegram_bot_token")
    )
    telegram_api_url: str | None = Field(
        None, validation_alias=env_alias("TELEGRAM_API_URL", "telegram_api_url")
    )
    admin_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, validation_alias=env_alias("ADMIN_IDS", "admin_ids")
    )
    webhook_url: str | None = Field(None, validation_alias=env_alias("WEBHOOK_URL", "webhook_url"))
    webhook_listen: str = Field("0.0.0.0", validation_alias=env_alias("WEBHOOK_LISTEN", "webhook_listen"))
    webhook_port: int = Field(8443, validation_alias=env_alias("WEBHOOK_PORT", "webhook_port"))
    webhook_secret: SecretStr | None = Field(
        None, validation_alias=env_alias("WEBHOOK_SECRET", "webhook_secret")
    )
    user_rate_limit: int = Field(
        10, validation_alias=env_alias("USER_RATE_LIMIT", "user_rate_limit")
    )  # questions per user per minute
    # timezone (NEWSBOT_TIMEZONE) is the indexer's: index/settings.py
    digest_max_stories: int = Field(
        8, validation_alias=env_alias("DIGEST_MAX_STORIES", "digest_max_stories")
    )
    digest_default_time: str = Field(
        "08:00", validation_alias=env_alias("DIGEST_DEFAULT_TIME", "digest_default_time")
    )
    delivery_failure_notice_after: int = Field(
        3, ge=1, validation_alias=env_alias(
            "DELIVERY_FAILURE_NOTICE_AFTER", "delivery_failure_notice_after")
    )  # consecutive failed passes of a digest before the admins are told (once per streak)
    alerts_per_hour: int = Field(
        10, ge=0, validation_alias=env_alias("ALERTS_PER_HOUR", "alerts_per_hour")
    )  # alert messages per chat per hour; beyond, matches fold into one summary (0: no cap)
    alert_quiet_hours: str | None = Field(
        None, validation_alias=env_alias("ALERT_QUIET_HOURS", "alert_quiet_hours")
    )  # "23-7": alerts wait until the end of these hours (NEWSBOT_TIMEZONE); unset: none
    alert_max_follows: int = Field(
        20, ge=1, validation_alias=env_alias("ALERT_MAX_FOLLOWS", "alert_max_follows")
    )  # /follow topics per chat


    # Serving (newsbot serve)
    bot_concurrency: int = Field(
        256, validation_alias=env_alias("BOT_CONCURRENT_UPDATES", "bot_concurrency")
    )  # updates processed at once: concurrent questions share one encoder batch
    telegram_max_rate: float = Field(
        30.0, validation_alias=env_alias("TELEGRAM_MAX_RATE", "telegram_max_rate")
    )  # outgoing requests per second overall; 0 switches flood control off (test servers)
    telegram_group_rate: float = Field(
        20.0, validation_alias=env_alias("TELEGRAM_GROUP_RATE", "telegram_group_rate")
    )  # outgoing messages per minute per group or channel
    telegram_retries: int = Field(
        3, validation_alias=env_alias("TELEGRAM_RETRIES", "telegram_retries")
    )  # retries after 429 retry_after, 5xx and dropped connections
    encoder_process: bool = Field(
        True, validation_alias=env_alias("ENCODER_PROCESS", "encoder_process")
    )  # encode in a child process, off the bot's interpreter lock (index/embed/process.py)
    poll_timeout: int = Field(10, validation_alias=env_alias("POLL_TIMEOUT", "poll_timeout"))
    inline_results: int = Field(10, validation_alias=env_alias("INLINE_RESULTS", "inline_results"))
    reindex_progress_seconds: float = Field(
        2.0, validation_alias=env_alias("REINDEX_PROGRESS_SECONDS", "reindex_progress_seconds")
    )
    bot_state_file: Path | None = Field(
        None, validation_alias=env_alias("BOT_STATE_PATH", "bot_state_file")
    )  # the bot's own SQLite (question log, feedback, "More" pages); default in data_dir
    # Channels (@username or -100… id) whose posts become articles (bot/live.py); the bot
    # must be an administrator there to receive them.
    channel_sources: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=env_alias("TELEGRAM_CHANNEL_SOURCES", "channel_sources"),
    )
    source_alert_admins: bool = Field(
        True, validation_alias=env_alias("SOURCE_ALERT_ADMINS", "source_alert_admins")
    )  # tell the admins once when a source is flagged (and when it recovers); else log only

    # Operations (bot/health.py, bot/metrics.py, bot/retention.py)
    metrics_port: int = Field(
        0, ge=0, le=65535, validation_alias=env_alias("METRICS_PORT", "metrics_port")
    )  # /healthz and /metrics on this port; 0 = no server
    metrics_listen: str = Field(
        "127.0.0.1", validation_alias=env_alias("METRICS_LISTEN", "metrics_listen")
    )
    health_max_update_age: float = Field(
        300.0, validation_alias=env_alias("HEALTH_MAX_UPDATE_AGE", "health_max_update_age")
    )  # /healthz fails once the last getUpdates (or webhook delivery) is older; 0 = no check
    question_log_days: int = Field(
        90, ge=0, validation_alias=env_alias("QUESTION_LOG_DAYS", "question_log_days")
    )  # questions and feedback older than this are deleted (daily); 0 = kept forever

    @field_validator("health_max_update_age", mode="before")
    @classmethod
    def _parse_update_age(cls, value: object) -> object:
        return parse_duration(value, name="HEALTH_MAX_UPDATE_AGE")

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _parse_ids(cls, value: object) -> object:
        """``ADMIN_IDS=123,456`` (commas or spaces) as operators naturally write it."""
        if value is None or value == "":
            return []
        if isinstance(value, int):
            return [value]
        if isinstance(value, str):
            parts = [p for p in value.replace(",", " ").split() if p]
            try:
                return [int(p) for p in parts]
            except ValueError as exc:
                raise ValueError(f"ADMIN_IDS must be numeric Telegram user ids: {value!r}") from exc
        return value

    @field_validator("channel_sources", mode="before")
    @classmethod
    def _parse_channels(cls, value: object) -> object:
        """``@ansa_news, -1001234567890`` (commas or spaces), as written in a channel's link."""
        if value is None or value == "":
            return []
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        if isinstance(value, list | tuple):
            out: list[str] = []
            for item in value:
                entry = str(item).strip()
                entry = entry.removeprefix("https://t.me/").removeprefix("t.me/")
                if not entry:
                    continue
                if entry.lstrip("-").isdigit():
                    if not entry.startswith("-100"):
                        raise ValueError(
                            "TELEGRAM_CHANNEL_SOURCES: a channel id starts with -100 "
                            f"(got {entry!r})"
                        )
                elif not entry.startswith("@"):
                    entry = "@" + entry
                out.append(entry)
            return out
        return value

    @field_validator("alert_quiet_hours", mode="before")
    @classmethod
    def _parse_quiet(cls, value: object) -> object:
        """``23-7`` or ``23:30-07:00``; checked here so a typo stops the bot at start-up."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        from bot.alerts.quiet import parse_quiet_hours

        parse_quiet_hours(str(value))
        return str(value).strip()

    @property
    def bot_state_path(self) -> Path:
        return self.bot_state_file or self.data_dir / "bot.sqlite3"
