"""Settings from the environment: defaults, every problem named, the generated secret."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from router.settings import SettingsError, SmtpSettings, customer_key_secret, load_settings
from router.store.engine import listen_parameters


def test_defaults_need_nothing_but_a_place_for_data(tmp_path: Path) -> None:
    settings = load_settings({"SWITCHBOARD_VAR_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}"
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.public_url is None and settings.twilio_auth_token is None
    assert settings.log_format is None


def test_every_problem_is_named_and_only_the_database_url_stops_the_service(
    tmp_path: Path,
) -> None:
    env = {
        "SWITCHBOARD_VAR_DIR": str(tmp_path),
        "SWITCHBOARD_PORT": "80a",
        "SWITCHBOARD_PUBLIC_URL": "ftp://example.com",
        "SWITCHBOARD_LOG_FORMAT": "xml",
        "SWITCHBOARD_CUSTOMER_KEY_SECRET": "short",
        "SWITCHBOARD_DB_TIMEOUT": "-1",
        "SWITCHBOARD_SMTP_HOST": "mail.example",
        "SWITCHBOARD_SMTP_SECURITY": "ssl",
        "SWITCHBOARD_OUTBOX_MAX_ATTEMPTS": "8.0",
    }
    settings = load_settings(env)  # the on-call person's rollback still works
    assert [warning.split(":")[0] for warning in settings.warnings] == [
        "SWITCHBOARD_PORT",
        "SWITCHBOARD_PUBLIC_URL",
        "SWITCHBOARD_LOG_FORMAT",
        "SWITCHBOARD_DB_TIMEOUT",
        "SWITCHBOARD_SMTP_SECURITY",
        "SWITCHBOARD_OUTBOX_MAX_ATTEMPTS",
        "SWITCHBOARD_CUSTOMER_KEY_SECRET",
    ]
    assert (settings.port, settings.public_url, settings.db_timeout_seconds) == (8080, None, 5.0)
    assert settings.outbox_max_attempts == 8
    with pytest.raises(SettingsError) as caught:
        load_settings({**env, "SWITCHBOARD_DATABASE_URL": "mysql+aiomysql://db/x"})
    assert [p.split(":")[0] for p in caught.value.problems] == ["SWITCHBOARD_DATABASE_URL"]


@pytest.mark.parametrize("value", ["13", "60", "0"])
def test_a_database_timeout_that_would_outlast_twilio_is_replaced_by_the_default(
    tmp_path: Path, value: str
) -> None:
    """Twilio waits 15 s for a call's answer, network included: the database's budget may
    take at most 12 s of it."""
    settings = load_settings(
        {"SWITCHBOARD_VAR_DIR": str(tmp_path), "SWITCHBOARD_DB_TIMEOUT": value}
    )
    assert settings.db_timeout_seconds == 5.0
    assert [warning.split(":")[0] for warning in settings.warnings] == ["SWITCHBOARD_DB_TIMEOUT"]
    longest = {"SWITCHBOARD_VAR_DIR": str(tmp_path), "SWITCHBOARD_DB_TIMEOUT": "12"}
    assert load_settings(longest).db_timeout_seconds == 12.0


def test_public_url_keeps_its_prefix_without_the_trailing_slash(tmp_path: Path) -> None:
    settings = load_settings(
        {"SWITCHBOARD_VAR_DIR": str(tmp_path), "SWITCHBOARD_PUBLIC_URL": "https://x.example/sb/"}
    )
    assert settings.public_url == "https://x.example/sb"


def test_the_generated_secret_is_private_stable_and_shared(tmp_path: Path) -> None:
    settings = load_settings({"SWITCHBOARD_VAR_DIR": str(tmp_path)})
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: customer_key_secret(settings), range(8)))
    assert len(secrets) == 1
    [secret] = secrets
    assert len(secret) == 64
    mode = stat.S_IMODE(os.stat(tmp_path / "customer_key_secret").st_mode)
    assert mode == 0o600
    assert customer_key_secret(settings) == secret
    assert sorted(p.name for p in tmp_path.iterdir()) == ["customer_key_secret"]


def test_a_configured_secret_wins(tmp_path: Path) -> None:
    settings = load_settings(
        {"SWITCHBOARD_VAR_DIR": str(tmp_path), "SWITCHBOARD_CUSTOMER_KEY_SECRET": "s" * 20}
    )
    assert customer_key_secret(settings) == b"s" * 20
    assert not (tmp_path / "customer_key_secret").exists()


def test_the_process_environment_is_read_when_no_mapping_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SWITCHBOARD_PORT", "9090")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "twilio-token")
    monkeypatch.setenv("SWITCHBOARD_HOST", "")  # empty is unset
    settings = load_settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 9090)
    assert settings.twilio_auth_token == "twilio-token"
    assert settings.warnings == ()


def test_names_are_exact_and_smtp_details_wait_for_an_smtp_host(tmp_path: Path) -> None:
    env = {
        "SWITCHBOARD_VAR_DIR": str(tmp_path),
        "switchboard_port": "9090",
        "SWITCHBOARD_SMTP_SECURITY": "ssl",
        "SWITCHBOARD_SMTP_PORT": "many",
    }
    settings = load_settings(env)
    assert (settings.port, settings.smtp, settings.warnings) == (8080, None, ())
    smtp = load_settings({**env, "SWITCHBOARD_SMTP_HOST": "mail.example"})
    assert [warning.split(":")[0] for warning in smtp.warnings] == [
        "SWITCHBOARD_SMTP_SECURITY",
        "SWITCHBOARD_SMTP_PORT",
    ]
    assert smtp.smtp == SmtpSettings(host="mail.example", port=587, security="starttls")


@pytest.mark.parametrize(("security", "port"), [("none", 25), ("starttls", 587), ("tls", 465)])
def test_each_smtp_security_has_its_usual_port(tmp_path: Path, security: str, port: int) -> None:
    env = {
        "SWITCHBOARD_VAR_DIR": str(tmp_path),
        "SWITCHBOARD_SMTP_HOST": "mail.example",
        "SWITCHBOARD_SMTP_SECURITY": security,
    }
    smtp = load_settings(env).smtp
    assert smtp is not None and (smtp.security, smtp.port) == (security, port)
    assert load_settings({**env, "SWITCHBOARD_SMTP_PORT": "2525"}).smtp == replace(smtp, port=2525)


def test_a_short_customer_key_secret_is_used_but_warned_about(tmp_path: Path) -> None:
    settings = load_settings(
        {"SWITCHBOARD_VAR_DIR": str(tmp_path), "SWITCHBOARD_CUSTOMER_KEY_SECRET": "short"}
    )
    assert settings.customer_key_secret == "short"
    assert settings.warnings == ("SWITCHBOARD_CUSTOMER_KEY_SECRET: use at least 16 characters",)


def test_send_timeouts_and_the_outbox_lease_are_settings(tmp_path: Path) -> None:
    base = {"SWITCHBOARD_VAR_DIR": str(tmp_path), "SWITCHBOARD_SMTP_HOST": "mail.example"}
    defaults = load_settings(base)
    assert defaults.smtp is not None
    assert (defaults.smtp.timeout_seconds, defaults.chat_timeout_seconds) == (60.0, 15.0)
    assert defaults.outbox_lease_seconds == 120.0
    assert defaults.warnings == ()
    settings = load_settings(
        {
            **base,
            "SWITCHBOARD_SMTP_TIMEOUT": "2.5",
            "SWITCHBOARD_CHAT_TIMEOUT": "0.5",
            "SWITCHBOARD_OUTBOX_LEASE": "10",
        }
    )
    assert settings.smtp is not None
    assert (settings.smtp.timeout_seconds, settings.chat_timeout_seconds) == (2.5, 0.5)
    assert settings.outbox_lease_seconds == 10.0


def test_a_send_timeout_the_lease_does_not_leave_room_for_is_reported(tmp_path: Path) -> None:
    """Sends are cut off at 3/4 of the lease whatever the timeouts say: a longer timeout is
    used as given but named, so nobody counts on it."""
    settings = load_settings(
        {
            "SWITCHBOARD_VAR_DIR": str(tmp_path),
            "SWITCHBOARD_SMTP_HOST": "mail.example",
            "SWITCHBOARD_SMTP_TIMEOUT": "100",
            "SWITCHBOARD_CHAT_TIMEOUT": "20",
            "SWITCHBOARD_OUTBOX_LEASE": "20",
        }
    )
    assert [warning.split(":")[0] for warning in settings.warnings] == [
        "SWITCHBOARD_SMTP_TIMEOUT",
        "SWITCHBOARD_CHAT_TIMEOUT",
    ]
    assert "15 s" in settings.warnings[0]
    assert settings.smtp is not None and settings.smtp.timeout_seconds == 100.0


MULTI_HOST = (
    "postgresql+asyncpg://u:p%40ss@10.0.0.1:5433,db-2.internal/shop"
    "?target_session_attrs=read-write&ssl=disable"
)


def test_a_multi_host_url_reaches_asyncpg_with_every_host_and_port() -> None:
    """libpq's `host1:port,host2` form, which SQLAlchemy cannot parse, becomes its documented
    `?host=h:p&host=h:p` form; the engine's connections and the LISTEN connection get the
    same asyncpg arguments from it (a host without a port gets 5432)."""
    settings = load_settings({"SWITCHBOARD_DATABASE_URL": MULTI_HOST})
    assert settings.database_url == (
        "postgresql+asyncpg://u:p%40ss@/shop?target_session_attrs=read-write&ssl=disable"
        "&host=10.0.0.1:5433&host=db-2.internal:5432"
    )
    assert listen_parameters(settings.database_url) == {
        "host": ["10.0.0.1", "db-2.internal"],
        "port": [5433, 5432],
        "user": "u",
        "password": "p@ss",
        "database": "shop",
        "target_session_attrs": "read-write",
        "ssl": "disable",
    }
    # SQLAlchemy's own form is taken as it is
    assert load_settings({"SWITCHBOARD_DATABASE_URL": settings.database_url}).database_url == (
        settings.database_url
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql+asyncpg://u@h1:5433,h2:5434/db", "target_session_attrs=read-write"),
        (
            "postgresql+asyncpg://u@h1,h2/db?target_session_attrs=prefer-standby",
            "target_session_attrs=read-write",
        ),
        ("postgresql+asyncpg://u@h1:99999,h2/db?target_session_attrs=read-write", "host[:port]"),
        ("postgresql+asyncpg://u@h1,[::1]:5/db?target_session_attrs=read-write", "IPv4"),
        ("postgresql+asyncpg://u@h1,,h2/db?target_session_attrs=read-write", "host[:port]"),
        (
            "postgresql+asyncpg://u@h1,h2/db?host=h3:1&target_session_attrs=read-write",
            "not both",
        ),
        ("postgresql+asyncpg://u@/db?host=h1&host=h2:1&target_session_attrs=read-write", "port"),
        ("postgresql+asyncpg://u@h1:5433x/db", "not a database URL"),
    ],
)
def test_a_multi_host_url_that_could_reach_a_standby_or_is_malformed_is_refused(
    url: str, problem: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"SWITCHBOARD_DATABASE_URL": url})
    [line] = caught.value.problems
    assert line.startswith("SWITCHBOARD_DATABASE_URL:") and problem in line, line
