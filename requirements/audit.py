"""Known vulnerabilities in a lock file: pip-audit, read so that "could not look" is never
mistaken for "nothing found" (part of ``make lint``; README, "Installing").

pip-audit asks PyPI's per-release JSON (or OSV) about every pinned package. Where that
service cannot be reached, or answers "not found" for every release (a package mirror
without that API), pip-audit still says "No known vulnerabilities found" and exits 0. This
script reads its JSON report instead and ends in one of three ways:

* a finding not accepted in requirements/AUDIT.md: listed, exit 1 (fails lint and CI);
* nothing could be looked up: a loud NOT AUDITED notice, exit 0 (a machine without the
  vulnerability database must not fail CI over its network);
* otherwise: how many packages were audited, exit 0.

Accepted findings are the ids (GHSA-…, PYSEC-…, CVE-…) in the first column of the table in
requirements/AUDIT.md, each with its reason there; they are passed as ``--ignore-vuln``.

Usage: ``python requirements/audit.py requirements/runtime.lock [--report FILE]``; with
``--report`` an existing pip-audit JSON report is judged instead of running pip-audit.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ACCEPTED = Path(__file__).with_name("AUDIT.md")
_ID = re.compile(r"^\|\s*`?((?:GHSA|PYSEC|CVE|OSV)-[\w-]+)`?\s*\|", re.MULTILINE)


def accepted_ids(text: str) -> list[str]:
    """The ids in the first column of AUDIT.md's table."""
    return _ID.findall(text)


def verdict(report: dict[str, object]) -> tuple[int, list[str]]:
    """(exit status, lines to print) for a pip-audit JSON report."""
    dependencies = report.get("dependencies")
    if not isinstance(dependencies, list) or not dependencies:
        return 0, ["pip-audit: NOT AUDITED - its report lists no dependencies"]
    audited = [d for d in dependencies if isinstance(d, dict) and "skip_reason" not in d]
    findings = [
        (d["name"], d.get("version", "?"), vuln)
        for d in audited
        for vuln in d.get("vulns") or []
        if isinstance(vuln, dict)
    ]
    if findings:
        lines = [f"pip-audit: {len(findings)} known vulnerabilities (fix, or accept in AUDIT.md):"]
        for name, version, vuln in findings:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release"
            aliases = ", ".join(vuln.get("aliases") or [])
            lines.append(f"  {name} {version}: {vuln.get('id')} ({aliases}) fixed in {fixed}")
        return 1, lines
    if not audited:
        reason = next(
            (d.get("skip_reason") for d in dependencies if isinstance(d, dict)), "unknown"
        )
        return 0, [
            "pip-audit: NOT AUDITED - the vulnerability database could not be read for any "
            f"of the {len(dependencies)} pinned packages (e.g. {reason}).",
            "  This machine cannot reach it; run `make lint` where PyPI's JSON API or "
            "api.osv.dev answers.",
        ]
    skipped = len(dependencies) - len(audited)
    tail = f"; {skipped} could not be looked up" if skipped else ""
    return 0, [f"pip-audit: {len(audited)} packages audited, no known vulnerabilities{tail}"]


def run_pip_audit(lock: Path, ignored: list[str]) -> dict[str, object] | str:
    """pip-audit's JSON report for *lock*, or why there is none."""
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "audit.json"
        command = [
            sys.executable, "-m", "pip_audit", "--requirement", str(lock), "--require-hashes",
            "--disable-pip", "--progress-spinner", "off", "--format", "json",
            "--output", str(output),
            *(argument for vuln in ignored for argument in ("--ignore-vuln", vuln)),
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return "pip-audit did not finish within 300 s"
        if not output.exists():
            return (done.stderr.strip().splitlines() or ["pip-audit failed"])[-1]
        loaded: dict[str, object] = json.loads(output.read_text(encoding="utf-8"))
        return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lock", type=Path)
    parser.add_argument("--report", type=Path, help="judge this pip-audit JSON report")
    args = parser.parse_args(argv)
    ignored = accepted_ids(ACCEPTED.read_text(encoding="utf-8")) if ACCEPTED.exists() else []
    if args.report is not None:
        report: dict[str, object] | str = json.loads(args.report.read_text(encoding="utf-8"))
    else:
        report = run_pip_audit(args.lock, ignored)
    if isinstance(report, str):
        # no report at all: pip-audit could not reach its service (DNS, a proxy, a timeout)
        print(f"pip-audit: NOT AUDITED - {report}")
        return 0
    status, lines = verdict(report)
    print("\n".join(lines))
    if ignored:
        print(f"  accepted in {ACCEPTED.name}: {', '.join(ignored)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
