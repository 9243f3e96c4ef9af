"""The application's settings: one typed object read from the environment.

Names carry no prefix (``REDIS_URL``, ``DATABASE_URL``, ``DATA_DIR``...). Nested routing
parameters use a double underscore: ``ROUTING__RING_S=30`` sets ``RoutingConfig.ring_s``.
A ``.env`` file in the working directory is read too. Nothing else in the code base
reads the environment: packages get what they need from this object.
"""

from __future__ import annotations

import logging
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from routing.config import RoutingConfig

log = logging.getLogger(__name__)

SECRET_KEY_FILE = "secret_key"
# A regional France Services line, order of magnitude: the network handled ~9 M requests
# in 2023 over ~2,840 sites (Cour des comptes), ~14 per site and open day, ~3,000 a day
# for a region of ~220 sites; a remote line taking a few percent of that gets ~120.
FORECAST_CONTACTS_PER_DAY = 120.0


class Settings(BaseSettings):
    """Everything the app, the scheduler and the CLI are configured with."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="ignore",
    )

    data_dir: Path = Field(
        Path("data"), description="where the embedded Redis, the SQLite file and keys live"
    )
    redis_url: str = Field(
        "", description="Redis/Valkey server; empty: an embedded redis-server in DATA_DIR"
    )
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty: SQLite file DATA_DIR/permanence.db"
    )
    database_schema: str = Field(
        "", description="PostgreSQL schema to use (search_path); empty: the server's default"
    )
    secret_key: str = Field(
        "",
        description="signs sessions and derives keys; empty: generated once into DATA_DIR "
        "(fine for a demo; production must set it and keep it)",
    )
    public_base_url: str = Field(
        "", description="the URL people and Twilio reach the app at; empty: http://HOST:PORT"
    )
    line: str = Field("main", description="routing line name (one set of queues in Redis)")
    host: str = Field("127.0.0.1", description="address `permanence serve` listens on")
    port: int = Field(8000, ge=1, le=65535, description="port `permanence serve` listens on")
    workers: int = Field(1, ge=1, description="app processes `permanence serve` starts")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    timer_interval_s: float = Field(
        0.1, gt=0, le=5, description="longest pause of the routing timer loop"
    )
    territories_refresh_s: float = Field(
        30, gt=0, description="how often each process reloads territory groups from SQL"
    )
    slot_target: int = Field(
        3, ge=0, le=100,
        description="volunteers wanted per slot when no coordinator set it and no forecast "
        "can be made (no history and no reference trace)",
    )
    staffing_refresh_s: float = Field(
        300, gt=0,
        description="each process recomputes the slot forecast from the contact history at "
        "most this often",
    )
    forecast_contacts_per_day: float = Field(
        FORECAST_CONTACTS_PER_DAY, gt=0,
        description="contacts expected on an ordinary weekday (Monday-Friday mean) before "
        "there are 14 days of history: the reference trace's weekly shape is scaled to it",
    )
    routing: RoutingConfig = Field(
        default_factory=RoutingConfig,
        description="defaults written to Redis for parameters the line does not have yet",
    )
    # Telephony (callers/): see README "Connecting a real Twilio number".
    twilio_account_sid: str = Field("", description="Twilio account SID (AC...)")
    twilio_auth_token: str = Field(
        "", description="Twilio auth token: signs webhooks, authenticates REST calls"
    )
    twilio_number: str = Field(
        "", description="the line's Twilio number (E.164), caller ID of outbound calls"
    )
    twilio_api_base: str = Field("", description="REST API base; empty: Twilio's own")
    twilio_fake: bool = Field(
        False, description="answer REST calls with the built-in fake Twilio (demo, tests)"
    )
    hold_music_url: str = Field(
        "", description="hold music played between announcements (a clip of about 40 s)"
    )
    # The public chat's limits per IP address (callers/chat/limits.py). Raise them only on
    # a test server that `permanence simulate --live` drives: its chats share one address.
    chat_starts_per_hour_ip: int = Field(
        20, ge=1, description="chats (and offline messages) one IP may start in an hour"
    )
    chat_messages_per_minute_ip: int = Field(
        40, ge=1, description="chat messages one IP may send in a minute, all chats together"
    )
    # Volunteers (volunteers/): the console's softphone and reminders by e-mail.
    twilio_api_key: str = Field("", description="Twilio API key SID (SK...) for softphone tokens")
    twilio_api_secret: str = Field("", description="secret of that API key")
    twilio_twiml_app_sid: str = Field(
        "", description="TwiML app (AP...) the softphone's outgoing calls use"
    )
    smtp_host: str = Field("", description="SMTP server for reminders; empty: outbox only")
    smtp_port: int = Field(587, description="SMTP port")
    smtp_user: str = Field("", description="SMTP login (empty: no login)")
    smtp_password: str = Field("", description="SMTP password")
    smtp_from: str = Field("permanence@localhost", description="From of reminder e-mails")
    login_max_failures_email: int = Field(
        5, ge=1, description="failed logins for one e-mail before its logins are refused"
    )
    login_max_failures_ip: int = Field(
        30, ge=1, description="failed logins from one IP before its logins are refused"
    )
    login_window_s: float = Field(
        900, gt=0, description="window counting failed logins, and how long a block lasts"
    )

    @field_validator("line")
    @classmethod
    def _line_name(cls, value: str) -> str:
        if not value or any(c in value for c in "{}: "):
            raise ValueError("LINE must be non-empty, without braces, colons or spaces")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _fill_derived(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.public_base_url:
            shown = "localhost" if self.host in {"127.0.0.1", "0.0.0.0", "::"} else self.host
            self.public_base_url = f"http://{shown}:{self.port}"
        if not self.secret_key:
            self.secret_key = _persistent_secret(self.data_dir)
        return self

    @property
    def redis_backend(self) -> Literal["embedded", "url"]:
        """Whether Redis is the app's own embedded server or an external one."""
        return "url" if self.redis_url else "embedded"

    @property
    def database_backend(self) -> str:
        """The SQL dialect in use: 'sqlite' or 'postgresql'."""
        if not self.database_url:
            return "sqlite"
        scheme = self.database_url.split(":", 1)[0].split("+", 1)[0]
        return "postgresql" if scheme in {"postgres", "postgresql"} else scheme


def _persistent_secret(data_dir: Path) -> str:
    """A random key kept in DATA_DIR so restarts (and other processes) agree on it."""
    path = data_dir / SECRET_KEY_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # Written aside then linked into place: when two processes start at once, the first
    # link wins and nobody ever reads a half-written file.
    tmp = data_dir / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    finally:
        tmp.unlink()
    log.warning(
        "SECRET_KEY is not set: generated one in %s. Production must set SECRET_KEY.", path
    )
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read from the environment once."""
    return Settings()
