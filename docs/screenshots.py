"""The README's pictures of the console: ``make screenshots`` writes ``docs/img/console-*.png``.

A throwaway SQLite database gets the routing history and 60 days of synthetic contacts of
the scaling benchmark (``bench/scaling.py``: admin cut over 25 % after 15 days, 100 % after
30), plus what that fill leaves out and the panels read: the hotline calls' handle times,
the partner's answer times and feedback, and the shipped document's commented ``sla:``
targets. The real service (``switchboard serve``) serves it on loopback and Debian's
chromium, driven by Playwright, photographs each panel once it has drawn its data.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from playwright.async_api import async_playwright

from bench.scaling import DAYS, fill, routing_history
from router.core.document import validate_document
from router.service.versions import apply_document
from router.store import Store, create_engine

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"
CHROMIUM = Path(os.environ.get("SWITCHBOARD_TEST_CHROMIUM", "/usr/bin/chromium"))
CONTACTS = 20_000
#: panel (section id) -> what shows that it has drawn its data
PANELS = {
    "split": "#split-svg g.day",
    "staffing": "#staffing table tbody tr",
    "sla": "#sla-table tbody tr",
    "costs": "#costs table tbody tr",
}


def with_sla(shipped: Path) -> dict[str, object]:
    """The shipped document with its commented ``sla:`` example switched on, at the share
    the generated history ends with."""
    text = shipped.read_text(encoding="utf-8")
    start = text.index("# sla:")
    lines = []
    for line in text[start:].splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[2:] if line.startswith("# ") else line[1:])
    data: dict[str, object] = yaml.safe_load(text)
    data.update(yaml.safe_load("\n".join(lines)))
    # the share the generated history ends with: every admin contact on the target side
    data["cutover"] = {channel: {"admin": 100} for channel in ("phone", "email", "chat")}
    return data


async def seed(database: Path, now: datetime) -> None:
    url = f"sqlite+aiosqlite:///{database}"
    shares = await routing_history(url, now - timedelta(days=DAYS))
    fill(database, CONTACTS, shares, now)
    engine = create_engine(url)
    try:
        await apply_document(
            Store(engine),
            validate_document(with_sla(ROOT / "config" / "routing.yaml")),
            actor="demo",
            reason="the partner's service levels",
            now=now - timedelta(minutes=1),
        )
    finally:
        await engine.dispose()
    with sqlite3.connect(database) as connection:
        # what the fill leaves out: talk time, ringing time and the partner's feedback
        connection.executescript(
            """
            UPDATE interactions SET handle_seconds = max(40, duration_seconds - 25),
                answer_seconds = 3 + abs(random()) % 330 / 10.0
            WHERE channel = 'phone' AND outcome = 'answered';
            UPDATE interactions SET
                partner_outcome = CASE WHEN abs(random()) % 100 < 83 THEN 'resolved'
                                       ELSE 'unresolved' END,
                partner_rating = 3 + abs(random()) % 3,
                feedback_at = updated_at
            WHERE destination = 'partner' AND outcome IN ('answered', 'delivered')
                AND abs(random()) % 3 = 0;
            """
        )
    connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def switchboard(env: dict[str, str], *arguments: str) -> str:
    command = [str(Path(sys.executable).with_name("switchboard")), *arguments]
    return subprocess.run(
        command, env=env, check=True, capture_output=True, text=True, timeout=60
    ).stdout


async def photograph(base: str, token: str) -> list[Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    taken = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(30_000)
            await page.goto(f"{base}/console")
            await page.fill("#token", token)
            await page.press("#token", "Enter")
            for panel, drawn in PANELS.items():
                await page.locator(drawn).first.wait_for()
                path = OUT / f"console-{panel}.png"
                await page.locator(f"section#{panel}").screenshot(path=str(path))
                taken.append(path)
        finally:
            await browser.close()
    return taken


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="switchboard-screens-") as work:
        database = Path(work) / "demo.db"
        asyncio.run(seed(database, datetime.now(UTC)))
        port = free_port()
        env = {
            **os.environ,
            "SWITCHBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
            "SWITCHBOARD_VAR_DIR": str(Path(work) / "var"),
            "SWITCHBOARD_PORT": str(port),
            "SWITCHBOARD_LOG_FORMAT": "json",
        }
        token = json.loads(
            switchboard(
                env, "token", "create", "--name", "demo", "--role", "viewer", "--format", "json"
            )
        )["token"]
        with open(Path(work) / "serve.log", "w") as log:
            server = subprocess.Popen(
                [str(Path(sys.executable).with_name("switchboard")), "serve"],
                env=env,
                stdout=log,
                stderr=log,
            )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit((Path(work) / "serve.log").read_text()) from None
                    time.sleep(0.1)
            for path in asyncio.run(photograph(f"http://127.0.0.1:{port}", token)):
                print(path.relative_to(ROOT))
        finally:
            server.terminate()
            server.wait(15)


if __name__ == "__main__":
    main()
