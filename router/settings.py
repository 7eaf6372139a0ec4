"""Settings from the environment (SPEC §5), validated once at start-up.

The variables are declared once, with their fixed names and defaults, as a
pydantic-settings model; :func:`load_settings` reads them into the :class:`Settings` value
the rest of Switchboard uses. Only ``SWITCHBOARD_DATABASE_URL`` has to be valid for the
service to start: any other invalid variable is replaced by its default and reported in
``Settings.warnings``; a provider secret left unset disables just the endpoints that need it.

Where data lives when nothing says otherwise (``var/``): ``SWITCHBOARD_VAR_DIR``, else the
``var/`` directory of the source checkout the code runs from, else
``~/.local/state/switchboard``. It never depends on the working directory, so an on-call
person running ``switchboard rollback`` from anywhere acts on the same database as the
service.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from router.core.delivery import send_deadline
from router.core.problems import Problem, problems_of
from router.paths import VAR_DIR_VARIABLE, default_database_url, default_var_dir

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
    #: The whole of one message's send (a free connection, connect, greeting, EHLO, TLS,
    #: AUTH, MAIL, RCPT, DATA), not each step: the outbox's lease must outlast it.
    timeout_seconds: float = 60.0


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
    #: The budget of everything the database does for one webhook — waiting for it, writing,
    #: committing — after which a call gets its safe answer anyway and email and chat 503.
    #: Twilio gives up on a webhook after 15 s, network and queueing included: 5 s leaves
    #: room for them, and more than 12 s is refused (the default is used instead).
    db_timeout_seconds: float = 5.0
    #: Connections each process keeps to PostgreSQL for its work (plus one for LISTEN): the
    #: sum over the replicas, and the CLI's, must stay under the server's max_connections.
    db_pool_size: int = 10
    smtp: SmtpSettings | None = None  # None: email forwards wait in the outbox
    mailgun_signing_key: str | None = None
    email_webhook_secret: str | None = None
    chat_secret: str | None = None
    max_email_bytes: int = 26_214_400  # 25 MiB
    #: The other bodies' limits (413 above them; README "Limits and timeouts"): Twilio's
    #: forms, signed JSON (chat, partner feedback) and operators' API bodies, and the
    #: routing document and plans, which may carry many prompts and classifier rules.
    max_form_bytes: int = 65_536  # 64 KiB
    max_json_bytes: int = 262_144  # 256 KiB
    max_document_bytes: int = 1_048_576  # 1 MiB
    #: How long an idle keep-alive connection stays open, and how long a client has to send
    #: a request's headers; then how long it has to send the body once the headers are in.
    idle_timeout_seconds: float = 75.0
    body_timeout_seconds: float = 60.0
    outbox_base_delay: float = 1.0
    outbox_max_delay: float = 60.0
    outbox_max_attempts: int = 8
    #: How long a claimed forward is this replica's; another replica may take it after.
    #: Every send is cut off well within it (router/service/outbox.py ``send_deadline``).
    outbox_lease_seconds: float = 120.0
    #: The whole of one chat hand-off (connect, POST, the answer).
    chat_timeout_seconds: float = 15.0
    #: Days after which a contact's personal data (bodies, recording links, comments,
    #: delivery errors) is emptied by the daily retention run; None: kept forever.
    retention_days: int | None = None
    warnings: tuple[str, ...] = ()  # bad values that were replaced by their defaults

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


# -- reading the environment -------------------------------------------------------------


def _whole_number(value: object) -> object:
    # Python's int(), as always: "8.0" is refused rather than read as 8 (pydantic's lax
    # parsing would take it).
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a whole number") from None
    return value


def _number(value: object) -> object:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    return value


def _public_url(value: str) -> str | None:
    url = value.rstrip("/")
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValueError(f"{url!r} must be http(s)://host[:port][/prefix]")
    return url


# scheme://[user[:password]@]hosts[/database][?query]: the hosts part, however many
_AUTHORITY = re.compile(r"^(?P<head>[\w+.-]+://(?:[^@/?#]*@)?)(?P<hosts>[^/?#]*)(?P<tail>.*)$")
_DEFAULT_PG_PORT = 5432
#: what a multi-host URL must ask for, or a replica may connect to a standby and fail writes
_WRITABLE_TARGETS = ("read-write", "primary")


def _database_url(value: str) -> str:
    value = _hosts_as_parameters(value)
    try:
        url = make_url(value)
    except (ArgumentError, ValueError) as exc:
        raise ValueError(f"not a database URL ({exc})") from None
    if url.drivername not in _SUPPORTED_DRIVERS:
        supported = ", ".join(_SUPPORTED_DRIVERS)
        raise ValueError(f"driver {url.drivername!r} is not supported; use one of {supported}")
    hosts = url.query.get("host", ())
    several = not isinstance(hosts, str) and len(hosts) > 1
    for host in hosts if several else ():
        if _host_and_port(host) != host:  # asyncpg's dialect wants every port written
            raise ValueError(f"?host={host} needs its port (host:port) in a list of hosts")
    if several and url.query.get("target_session_attrs") not in _WRITABLE_TARGETS:
        # after a failover a replica could connect to the standby and fail every write
        raise ValueError(
            "several hosts need target_session_attrs=read-write (or primary), so that every "
            "connection goes to the one that takes writes"
        )
    return value


def _hosts_as_parameters(value: str) -> str:
    """libpq's multi-host form, ``postgresql+asyncpg://u:p@h1:5433,h2:5434/db?…``, as the
    form SQLAlchemy documents for asyncpg, ``postgresql+asyncpg://u:p@/db?…&host=h1:5433&
    host=h2:5434`` (every port given: a host without one gets 5432). SQLAlchemy's parser
    reads one host and port only, so the libpq form would fail on its port; any other URL is
    returned as it came."""
    parts = _AUTHORITY.match(value)
    if not value.startswith("postgresql") or parts is None or "," not in parts["hosts"]:
        return value
    path, _, query = parts["tail"].partition("?")
    parameters = parse_qsl(query, keep_blank_values=True)
    if any(name == "host" for name, _ in parameters):
        raise ValueError("give the hosts either before the database name or as ?host=, not both")
    hosts = [("host", _host_and_port(host)) for host in parts["hosts"].split(",")]
    return f"{parts['head']}{path or '/'}?{urlencode([*parameters, *hosts], safe=':')}"


def _host_and_port(text: str) -> str:
    if text.startswith("["):
        # SQLAlchemy's asyncpg dialect cuts host:port at the first colon
        raise ValueError(f"{text!r}: in a list of hosts give a name or an IPv4 address")
    host, _, port = text.partition(":")
    port = port or str(_DEFAULT_PG_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not host[:port] in the list of hosts")
    return f"{host}:{port}"


_Whole = Annotated[int, BeforeValidator(_whole_number)]
_Seconds = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False)]


class _Environment(BaseSettings):
    """The variables of SPEC §5 and the README, each under its fixed name, with its default.

    Declared in the order problems are reported. Only read through :func:`load_settings`,
    which keeps the service starting when anything but the database URL is wrong.
    """

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="ignore")

    database_url: Annotated[str, AfterValidator(_database_url)] | None = Field(
        default=None, validation_alias="SWITCHBOARD_DATABASE_URL"
    )
    host: str = Field(default="127.0.0.1", validation_alias="SWITCHBOARD_HOST")
    port: _Whole = Field(default=8080, ge=0, le=65535, validation_alias="SWITCHBOARD_PORT")
    public_url: Annotated[str, AfterValidator(_public_url)] | None = Field(
        default=None, validation_alias="SWITCHBOARD_PUBLIC_URL"
    )
    log_format: LogFormat | None = Field(default=None, validation_alias="SWITCHBOARD_LOG_FORMAT")
    db_timeout: _Seconds = Field(
        default=5.0, gt=0, le=12, validation_alias="SWITCHBOARD_DB_TIMEOUT"
    )
    db_pool_size: _Whole = Field(
        default=10, ge=1, le=1000, validation_alias="SWITCHBOARD_DB_POOL_SIZE"
    )
    smtp_host: str | None = Field(default=None, validation_alias="SWITCHBOARD_SMTP_HOST")
    smtp_security: SmtpSecurity = Field(
        default="starttls", validation_alias="SWITCHBOARD_SMTP_SECURITY"
    )
    smtp_port: Annotated[_Whole, Field(ge=1, le=65535)] | None = Field(
        default=None,
        validation_alias="SWITCHBOARD_SMTP_PORT",  # None: the usual port
    )
    smtp_username: str | None = Field(default=None, validation_alias="SWITCHBOARD_SMTP_USERNAME")
    smtp_password: str | None = Field(default=None, validation_alias="SWITCHBOARD_SMTP_PASSWORD")
    # within the outbox's default lease (120 s) with room for recording the outcome
    smtp_timeout: _Seconds = Field(
        default=60.0, gt=0, le=600, validation_alias="SWITCHBOARD_SMTP_TIMEOUT"
    )
    max_email_bytes: _Whole = Field(
        default=26_214_400, ge=1, le=2**31, validation_alias="SWITCHBOARD_MAX_EMAIL_BYTES"
    )
    max_form_bytes: _Whole = Field(
        default=65_536, ge=1024, le=2**31, validation_alias="SWITCHBOARD_MAX_FORM_BYTES"
    )
    max_json_bytes: _Whole = Field(
        default=262_144, ge=1024, le=2**31, validation_alias="SWITCHBOARD_MAX_JSON_BYTES"
    )
    max_document_bytes: _Whole = Field(
        default=1_048_576, ge=1024, le=2**31, validation_alias="SWITCHBOARD_MAX_DOCUMENT_BYTES"
    )
    idle_timeout: _Seconds = Field(
        default=75.0, gt=0, le=3600, validation_alias="SWITCHBOARD_IDLE_TIMEOUT"
    )
    body_timeout: _Seconds = Field(
        default=60.0, gt=0, le=3600, validation_alias="SWITCHBOARD_BODY_TIMEOUT"
    )
    outbox_base_delay: _Seconds = Field(
        default=1.0, ge=0.001, le=3600, validation_alias="SWITCHBOARD_OUTBOX_BASE_DELAY"
    )
    outbox_max_delay: _Seconds = Field(
        default=60.0, ge=0.001, le=86400, validation_alias="SWITCHBOARD_OUTBOX_MAX_DELAY"
    )
    outbox_max_attempts: _Whole = Field(
        default=8, ge=1, le=1000, validation_alias="SWITCHBOARD_OUTBOX_MAX_ATTEMPTS"
    )
    outbox_lease: _Seconds = Field(
        default=120.0, ge=1, le=3600, validation_alias="SWITCHBOARD_OUTBOX_LEASE"
    )
    chat_timeout: _Seconds = Field(
        default=15.0, gt=0, le=600, validation_alias="SWITCHBOARD_CHAT_TIMEOUT"
    )
    # 0 (or unset): keep forever; at most 100 years
    retention_days: _Whole = Field(
        default=0, ge=0, le=36_500, validation_alias="SWITCHBOARD_RETENTION_DAYS"
    )
    customer_key_secret: str | None = Field(
        default=None, validation_alias="SWITCHBOARD_CUSTOMER_KEY_SECRET"
    )
    twilio_auth_token: str | None = Field(default=None, validation_alias="TWILIO_AUTH_TOKEN")
    mailgun_signing_key: str | None = Field(
        default=None, validation_alias="SWITCHBOARD_MAILGUN_SIGNING_KEY"
    )
    email_webhook_secret: str | None = Field(
        default=None, validation_alias="SWITCHBOARD_EMAIL_WEBHOOK_SECRET"
    )
    chat_secret: str | None = Field(default=None, validation_alias="SWITCHBOARD_CHAT_SECRET")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The model validates only what it is given: _Variables reads the environment (the
        # one load_settings is handed), so the second, fallback validation sees no variable
        # the first one refused.
        return (init_settings,)


class _Variables(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping, so a caller (a test, a
    command) can hand in its own environment instead of ``os.environ``."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(_Environment)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # An empty variable counts as unset, as it always has (env_ignore_empty).
        return {name: value for name, value in self._environ.items() if value}


_VARIABLES = [str(field.validation_alias) for field in _Environment.model_fields.values()]

#: Every environment variable the service reads: the settings and where var/ is
#: (tests/test_deploy.py holds the deployment files to these names).
SERVICE_VARIABLES = frozenset([*_VARIABLES, VAR_DIR_VARIABLE])


def _read(environ: Mapping[str, str]) -> tuple[_Environment, list[Problem]]:
    """The environment, every invalid variable replaced by its default, and the problems.

    SMTP variables are only looked at when SWITCHBOARD_SMTP_HOST is set: without it, email
    forwards wait in the outbox whatever the rest says.
    """
    raw: dict[str, Any] = _Variables(environ)()
    if "SWITCHBOARD_SMTP_HOST" not in raw:
        raw = {name: value for name, value in raw.items() if "_SMTP_" not in name}
    try:
        return _Environment.model_validate(raw), []
    except ValidationError as error:
        problems = problems_of(error, raw, root="(environment)")
    invalid = {problem.path for problem in problems}
    valid = {name: value for name, value in raw.items() if name not in invalid}
    return _Environment.model_validate(valid), problems


def _advice(values: _Environment) -> list[Problem]:
    """Problems that leave the value in use (it works, but should be fixed)."""
    problems: list[Problem] = []
    if values.smtp_host is not None and (values.smtp_username is None) != (
        values.smtp_password is None
    ):
        problems.append(Problem("SWITCHBOARD_SMTP_USERNAME/_PASSWORD", "give both or neither"))
    deadline = send_deadline(timedelta(seconds=values.outbox_lease)).total_seconds()
    for name, timeout in (
        ("SWITCHBOARD_SMTP_TIMEOUT", values.smtp_timeout if values.smtp_host else None),
        ("SWITCHBOARD_CHAT_TIMEOUT", values.chat_timeout),
    ):
        if timeout is not None and timeout > deadline:
            problems.append(
                Problem(
                    name,
                    f"longer than the outbox lease allows a send ({deadline:g} s of "
                    "SWITCHBOARD_OUTBOX_LEASE); sends are cut off there",
                )
            )
    secret = values.customer_key_secret
    if secret is not None and len(secret) < 16:
        problems.append(Problem("SWITCHBOARD_CUSTOMER_KEY_SECRET", "use at least 16 characters"))
    return problems


def _in_declared_order(problem: Problem) -> int:
    return _VARIABLES.index(problem.path.split("/")[0])


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check the settings; raises :class:`SettingsError` listing every problem."""
    env = os.environ if environ is None else environ
    var_dir = default_var_dir(env)
    values, problems = _read(env)
    problems = sorted([*problems, *_advice(values)], key=_in_declared_order)
    lines = [f"{problem.path}: {problem.message}" for problem in problems]
    # Only the database URL has to be valid (SPEC §5): the on-call person's rollback must not
    # be refused over an SMTP typo. Any other bad value falls back to its default (or turns
    # its feature off) and is reported as a warning.
    fatal = [line for line in lines if line.startswith("SWITCHBOARD_DATABASE_URL")]
    if fatal:
        raise SettingsError(fatal)
    return Settings(
        database_url=values.database_url or default_database_url(var_dir),
        var_dir=var_dir,
        host=values.host,
        port=values.port,
        public_url=values.public_url,
        log_format=values.log_format,
        customer_key_secret=values.customer_key_secret,
        twilio_auth_token=values.twilio_auth_token,
        db_timeout_seconds=values.db_timeout,
        db_pool_size=values.db_pool_size,
        smtp=_smtp_settings(values),
        mailgun_signing_key=values.mailgun_signing_key,
        email_webhook_secret=values.email_webhook_secret,
        chat_secret=values.chat_secret,
        max_email_bytes=values.max_email_bytes,
        max_form_bytes=values.max_form_bytes,
        max_json_bytes=values.max_json_bytes,
        max_document_bytes=values.max_document_bytes,
        idle_timeout_seconds=values.idle_timeout,
        body_timeout_seconds=values.body_timeout,
        outbox_base_delay=values.outbox_base_delay,
        outbox_max_delay=values.outbox_max_delay,
        outbox_max_attempts=values.outbox_max_attempts,
        outbox_lease_seconds=values.outbox_lease,
        chat_timeout_seconds=values.chat_timeout,
        retention_days=values.retention_days or None,
        warnings=tuple(lines),
    )


_USUAL_PORTS: dict[SmtpSecurity, int] = {"none": 25, "starttls": 587, "tls": 465}


def _smtp_settings(values: _Environment) -> SmtpSettings | None:
    if values.smtp_host is None:
        return None
    return SmtpSettings(
        host=values.smtp_host,
        port=values.smtp_port or _USUAL_PORTS[values.smtp_security],
        security=values.smtp_security,
        username=values.smtp_username,
        password=values.smtp_password,
        timeout_seconds=values.smtp_timeout,
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
