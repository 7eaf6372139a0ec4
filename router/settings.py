"""Settings from the environment (SPEC §5), validated once at start-up.

Only ``SWITCHBOARD_DATABASE_URL`` has to be valid for the service to start; a provider
secret left unset disables just the endpoints that need it.

Where data lives when nothing says otherwise (``var/``): ``SWITCHBOARD_VAR_DIR``, else the
``var/`` directory of the source checkout the code runs from, else
``~/.local/state/switchboard``. It never depends on the working directory, so an on-call
person running ``switchboard rollback`` from anywhere acts on the same database as the
service.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

_SOURCE_ROOT = Path(__file__).resolve().parent.parent
_SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")

LogFormat = Literal["json", "console"]


class SettingsError(ValueError):
    """Settings the service cannot run with (the database URL), one ``NAME: message`` per
    line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


SmtpSecurity = Literal["none", "starttls", "tls"]


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    security: SmtpSecurity = "starttls"
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    var_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    log_format: LogFormat | None = None  # None: console on a terminal, else json
    customer_key_secret: str | None = None  # None: generated under var/ on first use
    twilio_auth_token: str | None = None
    #: How long a write may wait for a busy or unreachable database before a call gets its
    #: safe answer anyway (Twilio gives up on a webhook after 15 s).
    db_timeout_seconds: float = 8.0
    smtp: SmtpSettings | None = None  # None: email forwards wait in the outbox
    mailgun_signing_key: str | None = None
    email_webhook_secret: str | None = None
    chat_secret: str | None = None
    max_email_bytes: int = 26_214_400  # 25 MiB
    outbox_base_delay: float = 1.0
    outbox_max_delay: float = 60.0
    outbox_max_attempts: int = 8
    warnings: tuple[str, ...] = ()  # bad values that were replaced by their defaults

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def default_var_dir(environ: Mapping[str, str]) -> Path:
    if environ.get("SWITCHBOARD_VAR_DIR"):
        return Path(environ["SWITCHBOARD_VAR_DIR"]).expanduser().resolve()
    if (_SOURCE_ROOT / "pyproject.toml").is_file() and os.access(_SOURCE_ROOT, os.W_OK):
        return _SOURCE_ROOT / "var"
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "switchboard"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check the settings; raises :class:`SettingsError` listing every problem."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    var_dir = default_var_dir(env)

    database_url = env.get("SWITCHBOARD_DATABASE_URL") or (
        f"sqlite+aiosqlite:///{var_dir / 'switchboard.db'}"
    )
    try:
        url = make_url(database_url)
        if url.drivername not in _SUPPORTED_DRIVERS:
            problems.append(
                f"SWITCHBOARD_DATABASE_URL: driver {url.drivername!r} is not supported; "
                f"use one of {', '.join(_SUPPORTED_DRIVERS)}"
            )
    except ArgumentError as exc:
        problems.append(f"SWITCHBOARD_DATABASE_URL: not a database URL ({exc})")

    host = env.get("SWITCHBOARD_HOST") or "127.0.0.1"
    port = 8080
    if env.get("SWITCHBOARD_PORT"):
        try:
            port = int(env["SWITCHBOARD_PORT"])
            if not 0 <= port <= 65535:
                raise ValueError
        except ValueError:
            port = 8080
            problems.append(
                f"SWITCHBOARD_PORT: {env['SWITCHBOARD_PORT']!r} is not a port number (0-65535)"
            )

    public_url = (env.get("SWITCHBOARD_PUBLIC_URL") or "").rstrip("/") or None
    if public_url is not None:
        parts = urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            problems.append(
                f"SWITCHBOARD_PUBLIC_URL: {public_url!r} must be http(s)://host[:port][/prefix]"
            )
            public_url = None

    log_format: LogFormat | None = None
    raw_format = env.get("SWITCHBOARD_LOG_FORMAT")
    if raw_format:
        if raw_format == "json":
            log_format = "json"
        elif raw_format == "console":
            log_format = "console"
        else:
            problems.append(f"SWITCHBOARD_LOG_FORMAT: {raw_format!r} is not 'json' or 'console'")

    db_timeout = 8.0
    if env.get("SWITCHBOARD_DB_TIMEOUT"):
        try:
            db_timeout = float(env["SWITCHBOARD_DB_TIMEOUT"])
            if not 0 < db_timeout <= 60:
                raise ValueError
        except ValueError:
            db_timeout = 8.0
            problems.append(
                f"SWITCHBOARD_DB_TIMEOUT: {env['SWITCHBOARD_DB_TIMEOUT']!r} is not a number of "
                "seconds between 0 and 60"
            )

    smtp = _smtp_settings(env, problems)
    max_email_bytes = _number(env, "SWITCHBOARD_MAX_EMAIL_BYTES", 26_214_400, 1, 2**31, problems)
    base_delay = _number(env, "SWITCHBOARD_OUTBOX_BASE_DELAY", 1.0, 0.001, 3600, problems)
    max_delay = _number(env, "SWITCHBOARD_OUTBOX_MAX_DELAY", 60.0, 0.001, 86400, problems)
    max_attempts = _number(env, "SWITCHBOARD_OUTBOX_MAX_ATTEMPTS", 8, 1, 1000, problems)

    secret = env.get("SWITCHBOARD_CUSTOMER_KEY_SECRET") or None
    if secret is not None and len(secret) < 16:
        problems.append("SWITCHBOARD_CUSTOMER_KEY_SECRET: use at least 16 characters")

    # Only the database URL has to be valid (SPEC §5): the on-call person's rollback must not
    # be refused over an SMTP typo. Any other bad value falls back to its default (or turns
    # its feature off) and is reported as a warning.
    fatal = [p for p in problems if p.startswith("SWITCHBOARD_DATABASE_URL")]
    if fatal:
        raise SettingsError(fatal)
    return Settings(
        database_url=database_url,
        var_dir=var_dir,
        host=host,
        port=port,
        public_url=public_url,
        log_format=log_format,
        customer_key_secret=secret,
        twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
        db_timeout_seconds=db_timeout,
        smtp=smtp,
        mailgun_signing_key=env.get("SWITCHBOARD_MAILGUN_SIGNING_KEY") or None,
        email_webhook_secret=env.get("SWITCHBOARD_EMAIL_WEBHOOK_SECRET") or None,
        chat_secret=env.get("SWITCHBOARD_CHAT_SECRET") or None,
        max_email_bytes=int(max_email_bytes),
        outbox_base_delay=float(base_delay),
        outbox_max_delay=float(max_delay),
        outbox_max_attempts=int(max_attempts),
        warnings=tuple(problems),
    )


def _number(
    env: Mapping[str, str],
    name: str,
    default: float,
    low: float,
    high: float,
    problems: list[str],
) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw) if isinstance(default, float) else int(raw)
    except ValueError:
        problems.append(f"{name}: {raw!r} is not a number")
        return default
    if not low <= value <= high:
        problems.append(f"{name}: {raw} is outside {low:g}-{high:g}")
        return default
    return value


def _smtp_settings(env: Mapping[str, str], problems: list[str]) -> SmtpSettings | None:
    host = env.get("SWITCHBOARD_SMTP_HOST")
    if not host:
        return None
    security = env.get("SWITCHBOARD_SMTP_SECURITY") or "starttls"
    if security not in ("none", "starttls", "tls"):
        problems.append(
            f"SWITCHBOARD_SMTP_SECURITY: {security!r} is not 'none', 'starttls' or 'tls'"
        )
        security = "starttls"
    default_port = {"none": 25, "starttls": 587, "tls": 465}[security]
    port = int(_number(env, "SWITCHBOARD_SMTP_PORT", default_port, 1, 65535, problems))
    username = env.get("SWITCHBOARD_SMTP_USERNAME") or None
    password = env.get("SWITCHBOARD_SMTP_PASSWORD") or None
    if (username is None) != (password is None):
        problems.append("SWITCHBOARD_SMTP_USERNAME/_PASSWORD: give both or neither")
    return SmtpSettings(
        host=host,
        port=port,
        security=security,  # type: ignore[arg-type]
        username=username,
        password=password,
    )


def customer_key_secret(settings: Settings) -> bytes:
    """The key of the keyed customer hash: the setting, or one generated once under var/.

    Created with O_EXCL and written before it is renamed into place, so two processes
    starting together agree on one key and neither ever reads a half-written file.
    """
    if settings.customer_key_secret is not None:
        return settings.customer_key_secret.encode("utf-8")
    path = settings.var_dir / "customer_key_secret"
    if not path.exists():
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(draft, path)  # fails if another process got there first: keep theirs
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text(encoding="utf-8").strip().encode("utf-8")
