"""Settings from the environment: defaults, every problem named, the generated secret."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from router.settings import SettingsError, customer_key_secret, load_settings


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
    assert (settings.port, settings.public_url, settings.db_timeout_seconds) == (8080, None, 8.0)
    assert settings.outbox_max_attempts == 8
    with pytest.raises(SettingsError) as caught:
        load_settings({**env, "SWITCHBOARD_DATABASE_URL": "mysql+aiomysql://db/x"})
    assert [p.split(":")[0] for p in caught.value.problems] == ["SWITCHBOARD_DATABASE_URL"]


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
