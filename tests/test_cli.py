"""The switchboard command line against a real database file."""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.core.document import document_data, shipped_document
from router.core.shipped import shipped_path

from .conftest import invoke


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def shipped_data() -> dict[str, Any]:
    return copy.deepcopy(document_data(shipped_document()))


def history(env: dict[str, str]) -> list[dict[str, Any]]:
    result = invoke(env, "config", "history", "--format", "json")
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


def test_a_document_broken_five_ways_is_refused_with_every_path(
    env: dict[str, str], tmp_path: Path
) -> None:
    applied = invoke(env, "config", "apply", str(shipped_path("routing.yaml")), "--reason", "go")
    assert applied.exit_code == 0, applied.output
    broken = shipped_data()
    broken["baseline"]["admin"] = "callcenter"  # unknown destination
    broken["cutover"]["email"]["admin"] = 150  # share out of range
    broken["destinations"]["partner"]["phone"] = "0800 100"  # malformed number
    broken["destinations"]["hotline"]["hours"] = {"mon-fri": "08:00-25:00"}  # bad hours
    broken["ivr"]["colour"] = "blue"  # unknown key
    path = write(tmp_path / "broken.yaml", broken)

    result = invoke(env, "config", "apply", str(path), "--reason", "oops")

    assert result.exit_code != 0
    for where in (
        "baseline.admin:",
        "cutover.email.admin:",
        "destinations.partner.phone:",
        "destinations.hotline.hours.mon-fri:",
        "ivr.colour:",
    ):
        assert where in result.stderr, result.stderr
    assert [v["version"] for v in history(env)] == [1]  # nothing changed

    validated = invoke(env, "config", "validate", str(path), "--format", "json")
    assert validated.exit_code == 1
    report = json.loads(validated.stdout)
    assert report["valid"] is False
    assert {p["path"] for p in report["problems"]} == {
        "baseline.admin",
        "cutover.email.admin",
        "destinations.partner.phone",
        "destinations.hotline.hours.mon-fri",
        "ivr.colour",
    }


def test_apply_history_show_diff_and_revert(env: dict[str, str], tmp_path: Path) -> None:
    first = invoke(env, "config", "apply", str(shipped_path("routing.yaml")), "--reason", "start")
    assert first.exit_code == 0, first.output
    changed = shipped_data()
    changed["cutover"]["phone"]["admin"] = 25
    path = write(tmp_path / "step.yaml", changed)
    second = invoke(env, "config", "apply", str(path), "--reason", "a quarter", "--format", "json")
    assert json.loads(second.stdout)["version"] == 2

    again = invoke(env, "config", "apply", str(path), "--reason", "same again")
    assert "unchanged" in again.stdout
    versions = history(env)
    assert [(v["version"], v["kind"], v["actor"], v["reason"]) for v in versions] == [
        (2, "apply", "jana", "a quarter"),
        (1, "apply", "jana", "start"),
    ]
    assert all(v["created_at"].endswith("+00:00") for v in versions)

    diff = invoke(env, "config", "diff", "1", "2", "--format", "json")
    assert json.loads(diff.stdout) == [{"path": "cutover.phone.admin", "from": 0, "to": 25}]
    assert "cutover.phone.admin: 0 -> 25" in invoke(env, "config", "diff", "1", "2").stdout

    shown = invoke(env, "config", "show", "--format", "json")
    assert json.loads(shown.stdout)["cutover"]["phone"]["admin"] == 25
    old = yaml.safe_load(invoke(env, "config", "show", "--version", "1").stdout)
    assert old["cutover"]["phone"]["admin"] == 0

    reverted = invoke(env, "config", "revert", "1", "--reason", "back", "--format", "json")
    assert reverted.exit_code == 0, reverted.output
    assert json.loads(reverted.stdout)["kind"] == "revert"
    status = json.loads(invoke(env, "status", "--format", "json").stdout)
    assert status["version"] == 3
    assert status["cutover"]["phone"]["admin"] == 0
    assert status["rollback"] is None


def test_a_database_in_an_unwritable_place_is_a_clear_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    env = {**env, "SWITCHBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{blocker / 'sb.db'}"}

    result = invoke(env, "status")

    assert result.exit_code == 1
    assert "is unavailable: cannot create the folder" in result.stderr
    assert "Traceback" not in result.output


def test_a_version_written_by_another_release_still_prints(env: dict[str, str]) -> None:
    """A kind this release does not know (written by a newer one) is shown as it is, not
    refused: the on-call person must be able to read history and status whatever wrote it."""
    applied = invoke(env, "config", "apply", str(shipped_path("routing.yaml")), "--reason", "go")
    assert applied.exit_code == 0, applied.output
    database = env["SWITCHBOARD_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE routing_versions SET kind = 'import' WHERE version = 1")
    connection.close()

    assert history(env)[0]["kind"] == "import"
    status = invoke(env, "status", "--format", "json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["kind"] == "import"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("config", "show", "--version", "9"), "no version 9"),
        (("config", "revert", "9", "--reason", "x"), "no version 9"),
        (("config", "apply", "/nonexistent.yaml", "--reason", "x"), "no such file"),
        (("config", "apply", "{routing}", "--reason", "  "), "reason"),
        (("interactions", "--since", "yesterday"), "--since"),
        (("interactions", "--channel", "fax"), "fax"),
        (("status", "--conversations", "0"), "--conversations"),
        (("status", "--conversations", "some"), "--conversations"),
    ],
)
def test_bad_input_is_a_clear_error(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    invoke(env, "config", "apply", str(shipped_path("routing.yaml")), "--reason", "start")
    args = tuple(a.format(routing=shipped_path("routing.yaml")) for a in args)
    result = invoke(env, *args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert [v["version"] for v in history(env)] == [1]


def test_status_on_an_empty_database_says_what_to_do(env: dict[str, str]) -> None:
    result = invoke(env, "status")
    assert result.exit_code == 1
    assert "no routing version" in result.stderr


def test_invalid_settings_are_reported_by_name(env: dict[str, str]) -> None:
    result = invoke({**env, "SWITCHBOARD_DATABASE_URL": "mysql://x/y"}, "status")
    assert result.exit_code == 1
    assert "SWITCHBOARD_DATABASE_URL" in result.stderr


def test_status_counts_the_partners_conversations_and_lists_as_many_as_asked(
    env: dict[str, str],
) -> None:
    invoke(env, "config", "apply", str(shipped_path("routing.yaml")), "--reason", "start")
    for listed in ("3", "all"):
        result = invoke(env, "status", "--conversations", listed, "--format", "json")
        assert result.exit_code == 0, result.output
        payload = json.loads(result.stdout)
        assert (payload["partner_conversations"], payload["partner_conversations_count"]) == (
            [],
            0,
        )
    text = invoke(env, "status")
    assert "conversations the partner still holds: 0" in text.stdout


def test_interactions_json_is_empty_list_then_filled(env: dict[str, str]) -> None:
    invoke(env, "config", "apply", str(shipped_path("routing.yaml")), "--reason", "start")
    result = invoke(env, "interactions", "--format", "json")
    assert json.loads(result.stdout) == []


def test_the_installed_command_works_from_any_directory(
    env: dict[str, str], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = [str(Path(sys.executable).with_name("switchboard"))]
    full_env = {**os.environ, **env}
    upgrade = subprocess.run(
        [*command, "db", "upgrade"],
        cwd=elsewhere,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    validate = subprocess.run(
        [*command, "config", "validate", str(shipped_path("routing.yaml"))],
        cwd=elsewhere,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert validate.returncode == 0, validate.stderr
    missing = subprocess.run(
        [*command, "status"],
        cwd=elsewhere,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode != 0
    assert "no routing version" in missing.stderr and missing.stdout == ""


# -- classify -------------------------------------------------------------------------------


def test_classify_explains_itself_without_a_database(env: dict[str, str], tmp_path: Path) -> None:
    result = invoke(env, "classify", "--format", "json", "--lang", "cs", "Kde je moje objednávka?")
    assert result.exit_code == 0, result.output
    explained = json.loads(result.stdout)
    assert set(explained) >= {"category", "confidence", "language", "matches"}
    assert explained["category"] == "admin"
    assert explained["language"] == "cs"
    assert all(set(m) >= {"rule", "category", "weight"} for m in explained["matches"])
    assert not (tmp_path / "cli.db").exists()  # classify creates no database


def test_classify_uses_the_stored_documents_rules(env: dict[str, str], tmp_path: Path) -> None:
    data = shipped_data()
    data["classifier"] = {"rules": [{"phrase": "zlatá karta", "category": "product", "weight": 50}]}
    invoke(env, "config", "apply", str(write(tmp_path / "doc.yaml", data)), "--reason", "rules")
    result = invoke(env, "classify", "--format", "json", "objednávka zlatá karta")
    assert json.loads(result.stdout)["category"] == "product"


def test_classify_eval_scores_a_labelled_file_in_input_order(
    env: dict[str, str], tmp_path: Path
) -> None:
    lines = [
        {"text": "Kde je moje objednávka? Ještě nedorazila.", "label": "admin", "lang": "cs"},
        {"text": "Does this blender crush ice?", "label": "product", "lang": "en"},
        {"text": "Chci vrátit zboží a dostat peníze zpět", "label": "admin"},
        {"text": "Where is my parcel?", "label": "product", "lang": "en"},  # deliberately wrong
    ]
    path = tmp_path / "eval.jsonl"
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n")
    result = invoke(env, "classify", "--eval", str(path), "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["line"] for r in report["results"]] == [1, 2, 3, 4]
    assert [r["label"] for r in report["results"]] == ["admin", "product", "admin", "product"]
    assert [r["category"] for r in report["results"]][:3] == ["admin", "product", "admin"]
    assert report["accuracy"] == pytest.approx(0.75)
    text = invoke(env, "classify", "--eval", str(path))
    assert "accuracy" in text.stdout.lower() and "confusion" in text.stdout.lower()


def test_classify_refuses_bad_eval_files(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "x", "label": "admin"}\n{"text": "y", "label": "maybe"}\n')
    result = invoke(env, "classify", "--eval", str(path))
    assert result.exit_code != 0 and "line 2" in result.stderr
    assert invoke(env, "classify").exit_code != 0
