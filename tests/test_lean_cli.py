"""The lean rollback and resume (router/cli/lean.py) store what the full command line stores.

Each case brings a database to a state with the full CLI, copies it, and runs the same
command on both copies: the lean way on one, the full way on the other. The new versions
must be equal column by column (times relative to their own creation), and so must what the
two print. Where the lean way is not sure, it must decline and leave the database alone.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from router.cli import lean
from router.core.shipped import shipped_path

from .conftest import invoke

ROOT = Path(__file__).resolve().parent.parent
Row = dict[str, Any]
STORED_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")


def database(env: dict[str, str]) -> Path:
    return Path(env["SWITCHBOARD_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///"))


def prepared(env: dict[str, str], *steps: tuple[str, ...]) -> None:
    applied = invoke(env, "config", "apply", str(shipped_path("routing.yaml")), "--reason", "go")
    assert applied.exit_code == 0, applied.output
    for shares in (("email", "admin", "40"), ("chat", "all", "100"), ("phone", "product", "7.5")):
        done = invoke(env, "cutover", *shares, "--reason", "migration")
        assert done.exit_code == 0, done.output
    for step in steps:
        done = invoke(env, *step)
        assert done.exit_code == 0, done.output


def copy_of(env: dict[str, str], tmp_path: Path, name: str) -> dict[str, str]:
    target = tmp_path / name
    with sqlite3.connect(database(env)) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    source.close()
    copy.close()
    return {**env, "SWITCHBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{target}"}


def newest(env: dict[str, str]) -> Row:
    with sqlite3.connect(database(env)) as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute(
            "SELECT * FROM routing_versions ORDER BY version DESC LIMIT 1"
        ).fetchone()
    connection.close()
    found = dict(row)
    # SQLite compares times as text: both ways must write the store's exact format
    for moment in (found["created_at"], found["expires_at"]):
        assert moment is None or STORED_TIME.fullmatch(moment), moment
    created = datetime.fromisoformat(found.pop("created_at"))
    expires = found.pop("expires_at")
    found["runs_for"] = None if expires is None else datetime.fromisoformat(expires) - created
    return found


def versions(env: dict[str, str]) -> int:
    with sqlite3.connect(database(env)) as connection:
        (count,) = connection.execute("SELECT count(*) FROM routing_versions").fetchone()
    connection.close()
    return int(count)


def without_times(printed: str, as_json: bool) -> Any:
    if as_json:
        answer = json.loads(printed)
        answer.pop("created_at")
        return {key: (key == "until") or value for key, value in answer.items()}
    return printed.split(" comes back at ")[0].strip()


CASES = {
    "rollback for good": ((), ("rollback", "--reason", "incident")),
    "one channel": ((), ("rollback", "--reason", "mail down", "--channel", "email")),
    "for a while": ((), ("rollback", "--reason", "incident", "--for", "2h")),
    "again during a timed one": (
        (("rollback", "--reason", "first", "--for", "2h"),),
        ("rollback", "--reason", "worse", "--channel", "chat"),
    ),
    "timed after one for good": (
        (("rollback", "--reason", "for good"),),
        ("rollback", "--reason", "guard", "--for", "15m", "--actor", "guard", "--format", "json"),
    ),
    "resume a timed one": (
        (("rollback", "--reason", "incident", "--channel", "chat", "--for", "30m"),),
        ("resume", "--reason", "fixed", "--format", "json"),
    ),
    "resume one for good": ((("rollback", "--reason", "incident"),), ("resume", "--reason", "ok")),
}


@pytest.mark.parametrize("case", CASES)
def test_the_lean_way_stores_and_prints_what_the_full_way_does(
    case: str, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps, command = CASES[case]
    prepared(env, *steps)
    lean_env, full_env = copy_of(env, tmp_path, "lean.db"), copy_of(env, tmp_path, "full.db")
    as_json = "json" in command

    assert lean.run(list(command), lean_env) == 0
    printed_lean = capsys.readouterr().out
    full = invoke(full_env, *command)
    assert full.exit_code == 0, full.output

    assert newest(lean_env) == newest(full_env)
    assert without_times(printed_lean, as_json) == without_times(full.stdout, as_json)


@pytest.mark.parametrize(
    "command",
    [
        ("resume", "--reason", "nothing to resume"),  # the full CLI explains why not
        ("rollback", "--reason=incident"),  # a spelling click knows, this module does not
        ("rollback", "--reason", "x", "--channel", "fax"),
        ("rollback", "--reason", "x", "--for", "1h30m"),
        ("rollback", "--reason", "   "),
        ("rollback", "--reason", "x", "--format", "yaml"),
        ("rollback", "--reason", "x", "--dry-run"),
        ("rollback", "--reason", "x", "--actor", ""),
        ("resume", "--reason", "x", "--for", "1h"),
        ("status",),
        ("--url", "http://127.0.0.1:9", "rollback", "--reason", "x"),
    ],
)
def test_what_the_lean_way_is_not_sure_of_goes_to_the_full_command_line(
    command: tuple[str, ...], env: dict[str, str]
) -> None:
    prepared(env)
    before = versions(env)
    assert lean.run(list(command), env) is None
    assert versions(env) == before


def test_it_declines_a_database_it_does_not_know_exactly(env: dict[str, str]) -> None:
    command = ["rollback", "--reason", "incident"]
    assert lean.run(command, env) is None  # no database file yet: the full CLI creates it
    prepared(env)
    for other in (
        {**env, "SWITCHBOARD_DATABASE_URL": "postgresql+asyncpg://sb@127.0.0.1:9/sb"},
        {**env, "SWITCHBOARD_URL": "http://127.0.0.1:9"},
    ):
        assert lean.run(command, other) is None
    with sqlite3.connect(database(env)) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0001'")
    connection.close()
    assert lean.run(command, env) is None  # not at the newest schema: the full CLI migrates
    with sqlite3.connect(database(env)) as connection:
        connection.execute(f"UPDATE alembic_version SET version_num = '{lean.newest_revision()}'")
        connection.execute(
            "UPDATE routing_versions SET document = replace(document, ':', ': ') "
            "WHERE version = (SELECT max(version) FROM routing_versions)"
        )
    connection.close()
    before = versions(env)
    assert lean.run(command, env) is None  # not canonical: only the full path redoes it
    assert versions(env) == before


def test_the_newest_revision_is_the_migrations_head() -> None:
    from router.store import migrate

    assert lean.newest_revision() == migrate.script_head()


def test_the_lean_way_imports_no_database_library_validation_or_cli_framework() -> None:
    probe = (
        "import sys\nfrom router.cli import entry, lean\n"
        "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = set(done.stdout.split())
    assert loaded & {"sqlalchemy", "sqlmodel", "pydantic", "click", "aiohttp", "yaml"} == set()
