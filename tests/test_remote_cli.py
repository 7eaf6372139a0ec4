"""`switchboard --url … --token …`: the same commands through a running service's API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from router.core.shipped import shipped_path
from router.service.tokens import Role, create_token
from router.settings import Settings
from router.store import Store
from router.web.app import make_app

from .conftest import Clock
from .test_rollback import switchboard

Client = TestClient[Any, Any]


@pytest.fixture
async def served(settings: Settings, clock: Clock) -> AsyncIterator[Client]:
    async with TestClient(TestServer(make_app(settings, clock=clock))) as client:
        yield client


async def remote(
    client: Client, settings: Settings, token: str, *args: str
) -> tuple[int, str, str]:
    url = str(client.make_url("/")).rstrip("/")
    result = await switchboard(settings, "--url", url, "--token", token, *args)
    return result.returncode, result.stdout, result.stderr


async def test_the_on_call_commands_work_through_the_api(
    served: Client, settings: Settings, store: Store, clock: Clock, tmp_path: Path
) -> None:
    operator = await create_token(store, "petra", Role.OPERATOR, clock())
    admin = await create_token(store, "adam", Role.ADMIN, clock())

    code, out, err = await remote(
        served,
        settings,
        operator,
        "cutover",
        "phone",
        "admin",
        "25",
        "--reason",
        "step 1",
        "--format",
        "json",
    )
    assert code == 0, err
    assert json.loads(out)["actor"] == "petra"  # the token's name, not the local user

    code, out, err = await remote(
        served, settings, operator, "rollback", "--reason", "incident", "--for", "2h"
    )
    assert code == 0, err
    assert "rolled back all channels as version 3" in out

    code, out, _ = await remote(served, settings, operator, "status", "--format", "json")
    status = json.loads(out)
    assert status["rollback"]["actor"] == "petra" and status["rollback"]["until"]
    for listed in ("1", "all"):  # passed on to GET /api/status
        code, out, err = await remote(
            served, settings, operator, "status", "--conversations", listed, "--format", "json"
        )
        assert code == 0, err
        assert json.loads(out)["partner_conversations_count"] == 0

    code, out, err = await remote(served, settings, operator, "resume", "--reason", "ok")
    assert code == 0, err

    code, out, _ = await remote(served, settings, operator, "config", "history", "--format", "json")
    assert [(v["kind"], v["actor"]) for v in json.loads(out)][:3] == [
        ("resume", "petra"),
        ("rollback", "petra"),
        ("cutover", "petra"),
    ]

    code, out, _ = await remote(served, settings, operator, "config", "diff", "1", "2")
    assert "cutover.phone.admin: 0 -> 25" in out

    code, out, _ = await remote(served, settings, operator, "config", "show", "--version", "1")
    assert yaml.safe_load(out)["cutover"]["phone"]["admin"] == 0

    # applying a document needs an admin token; an operator's is refused with 403
    changed = yaml.safe_load(shipped_path("routing.yaml").read_text())
    changed["cutover"] = {"email": {"admin": 5}}
    path = tmp_path / "doc.yaml"
    path.write_text(yaml.safe_dump(changed))
    code, _, err = await remote(
        served, settings, operator, "config", "apply", str(path), "--reason", "x"
    )
    assert code != 0 and "403" in err
    code, out, err = await remote(
        served,
        settings,
        admin,
        "config",
        "apply",
        str(path),
        "--reason",
        "x",
        "--format",
        "json",
    )
    assert code == 0, err
    assert json.loads(out)["actor"] == "adam"

    code, out, _ = await remote(served, settings, operator, "interactions", "--format", "json")
    assert json.loads(out) == []


async def test_bad_tokens_and_local_only_commands_are_clear_errors(
    served: Client, settings: Settings
) -> None:
    code, _, err = await remote(served, settings, "sb_not-a-token", "status")
    assert code != 0 and "401" in err
    code, _, err = await remote(served, settings, "sb_x", "token", "list")
    assert code != 0 and "database only" in err
    missing = await switchboard(settings, "--url", "http://127.0.0.1:9", "status")
    assert missing.returncode != 0 and "--token" in missing.stderr
    down = await switchboard(settings, "--url", "http://127.0.0.1:9", "--token", "sb_x", "status")
    assert down.returncode != 0 and "cannot reach" in down.stderr
