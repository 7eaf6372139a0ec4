"""``make audit`` (requirements/audit.py) judges pip-audit's report: a finding fails, a
vulnerability database that could not be read is said loudly and does not fail, and an
accepted finding (requirements/AUDIT.md) is passed on to be ignored. Run on reports of
pip-audit's JSON shape, offline."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).parents[1] / "requirements" / "audit.py"
AIOHTTP_VULN = {
    "id": "GHSA-xxxx-yyyy-zzzz",
    "fix_versions": ["3.99.0"],
    "aliases": ["CVE-2099-0001"],
    "description": "…",
}


def judged(tmp_path: Path, report: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return subprocess.run(
        [sys.executable, str(SCRIPT), "requirements/runtime.lock", "--report", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_known_vulnerability_fails_and_is_named(tmp_path: Path) -> None:
    report = {
        "dependencies": [
            {"name": "aiohttp", "version": "3.14.5", "vulns": [AIOHTTP_VULN]},
            {"name": "click", "version": "8.1.0", "vulns": []},
        ]
    }
    done = judged(tmp_path, report)
    assert done.returncode == 1
    assert "aiohttp 3.14.5: GHSA-xxxx-yyyy-zzzz (CVE-2099-0001) fixed in 3.99.0" in done.stdout


@pytest.mark.parametrize(
    "report",
    [
        {"dependencies": [{"name": "aiohttp", "skip_reason": "Dependency not found on PyPI"}]},
        {"dependencies": []},
    ],
)
def test_an_unreadable_vulnerability_database_is_said_and_does_not_fail(
    tmp_path: Path, report: dict[str, Any]
) -> None:
    done = judged(tmp_path, report)
    assert done.returncode == 0
    assert "NOT AUDITED" in done.stdout


def test_a_clean_audit_counts_the_packages(tmp_path: Path) -> None:
    report = {
        "dependencies": [
            {"name": "aiohttp", "version": "3.14.5", "vulns": []},
            {"name": "click", "version": "8.1.0", "vulns": []},
            {"name": "local", "skip_reason": "not on PyPI"},
        ]
    }
    done = judged(tmp_path, report)
    assert done.returncode == 0
    assert "2 packages audited, no known vulnerabilities; 1 could not be looked up" in done.stdout


def test_accepted_findings_are_the_ids_of_audit_md() -> None:
    accepted_ids = runpy.run_path(str(SCRIPT))["accepted_ids"]
    table = "| id | package | why |\n|---|---|---|\n| GHSA-abcd-efgh-ijkl | x | y |\n"
    assert accepted_ids(table + "| `PYSEC-2024-1` | z | w |\n") == [
        "GHSA-abcd-efgh-ijkl",
        "PYSEC-2024-1",
    ]
