"""The layout's rules (ARCHITECTURE.md), checked on the code itself: the pure core imports no
database or web framework, handlers never decide, every contact is logged from one place,
and the adapters meet the service only through its ports. Then the one path, observed: a
call, an email and a chat message each give one ``contact.routed`` line with the same
fields."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient

from router.core.shipped import shipped_path
from router.store import tables
from tests.conftest import Clock, post_twilio, shipped_data, store_document
from tests.smtp_sink import SmtpSink
from tests.test_chat import chat, chat_settings, post_chat
from tests.test_email import email_settings, message, post_mime

ROOT = Path(__file__).resolve().parent.parent
Client = TestClient[Any, Any]


def modules(folder: str) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted((ROOT / folder).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        yield name, ast.parse(path.read_text(encoding="utf-8"))


def imported(tree: ast.Module) -> set[str]:
    """Every module a file imports, at any depth of the file (function-local too)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def loaded_after_import(module: str) -> set[str]:
    """The top-level packages in sys.modules after importing *module* in a fresh process."""
    probe = (
        f"import sys, {module}; print('\\n'.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(done.stdout.split())


FRAMEWORKS = {"sqlalchemy", "sqlmodel", "aiohttp", "asyncpg", "aiosqlite", "alembic"}


@pytest.mark.parametrize("name", [name for name, _ in modules("router/core")])
def test_the_core_imports_no_database_or_web_framework(name: str) -> None:
    assert loaded_after_import(name) & FRAMEWORKS == set()


def test_the_ports_import_neither_the_store_nor_a_framework() -> None:
    loaded = loaded_after_import("router.service.ports")
    assert loaded & FRAMEWORKS == set()
    tree = dict(modules("router/service"))["router.service.ports"]
    assert not any(name.startswith("router.store") for name in imported(tree))


def test_no_web_handler_decides_or_reaches_another_handler() -> None:
    handlers = {"router.web.voice", "router.web.email", "router.web.chat", "router.web.partner"}
    for name, tree in modules("router/web"):
        names = imported(tree)
        assert not any(n.startswith("router.core.decide") for n in names), name
        if name in handlers:
            assert not (names & (handlers - {name})), name


def test_integrations_meet_the_service_only_through_its_ports() -> None:
    for name, tree in modules("integrations"):
        for module in imported(tree):
            assert not module.startswith("router.store"), (name, module)
            if module.startswith("router.service"):
                assert module.startswith("router.service.ports"), (name, module)
            assert not module.startswith("router.web"), (name, module)


def test_cli_commands_are_written_once_over_the_backend() -> None:
    """The commands reach the database or the API only through router/cli/backend.py's
    Backend: neither the store nor an HTTP client is imported by the commands module."""
    tree = dict(modules("router/cli"))["router.cli.commands"]
    top_level = {
        alias.name if isinstance(node, ast.Import) else (node.module or "")
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {m for m in top_level if m.startswith(("router.store", "router.service.versions"))}
    assert not {m for m in top_level if m.split(".")[0] in {"aiohttp", "sqlalchemy"}}
    assert "router.cli.backend" in top_level


def test_integrations_never_reach_the_web_server() -> None:
    """Providers are values in, values out: the web shell reads the request and answers it.
    (integrations/chat.py sends hand-offs with aiohttp's client, never its server.)"""
    for name, tree in modules("integrations"):
        for module in imported(tree):
            assert not module.startswith("aiohttp.web"), (name, module)


@pytest.mark.parametrize(
    "name",
    [
        "integrations.email_inbound",
        "integrations.signing",
        "integrations.twilio_messaging",
        "integrations.twilio_voice",
    ],
)
def test_inbound_verify_and_parse_load_no_framework(name: str) -> None:
    assert loaded_after_import(name) & FRAMEWORKS == set()


def test_provider_modules_share_only_the_helpers_made_for_sharing() -> None:
    """One module per provider: Twilio messaging does not borrow from Twilio voice, email
    from chat; what two providers need (a signature scheme, MIME surgery) is its own module."""
    shared = {"integrations.signing", "integrations.email_message"}
    for name, tree in modules("integrations"):
        # "integrations.x.name" (from-imports) counts as the module integrations.x
        borrowed = {
            ".".join(m.split(".")[:2]) for m in imported(tree) if m.startswith("integrations.")
        } - shared
        assert not borrowed - {name}, (name, borrowed)


def test_one_place_writes_contact_routed() -> None:
    places = [
        str(path.relative_to(ROOT))
        for folder in ("router", "integrations")
        for path in (ROOT / folder).rglob("*.py")
        if '"contact.routed"' in path.read_text(encoding="utf-8")
    ]
    assert places == ["router/service/contacts.py"]


def test_only_the_store_speaks_sqlalchemy() -> None:
    allowed = {"router.cli.local", "router.settings"}  # URL parsing only
    for folder in ("router", "integrations"):
        for name, tree in modules(folder):
            if name.startswith("router.store") or name in allowed:
                continue
            found = {m for m in imported(tree) if m.split(".")[0] in {"sqlalchemy", "sqlmodel"}}
            assert not found, (name, found)


def test_no_table_class_leaves_the_store() -> None:
    """Rows reach the service, the handlers and the CLI as the records of
    router/service/records.py; the ORM classes stay inside router/store."""
    table_classes = {
        name
        for name, value in vars(tables).items()
        if isinstance(value, type) and hasattr(value, "__table__")
    }
    assert {"Interaction", "OutboxRow", "RoutingVersion"} <= table_classes
    for folder in ("router", "integrations"):
        for name, tree in modules(folder):
            if name.startswith("router.store"):
                continue
            found = {
                m
                for m in imported(tree)
                if m.startswith("router.store.tables") or m.split(".")[-1] in table_classes
            }
            assert not found, (name, found)


@pytest.mark.parametrize(
    "name",
    [
        "router.service.contacts",
        "router.service.calls",
        "router.service.versions",
        "router.service.routing",
        "router.service.outbox",
    ],
)
def test_contacts_versions_and_deliveries_reach_the_store_only_through_ports(name: str) -> None:
    tree = dict(modules("router/service"))[name]
    assert not any(module.startswith("router.store") for module in imported(tree))


# -- the one path, observed -----------------------------------------------------------------

ROUTED_FIELDS = {
    "channel",
    "provider_id",
    "interaction_id",
    "category",
    "category_source",
    "rule",
    "side",
    "destination",
    "reason",
    "version",
    "language",
    "source",
    "recorded",
    "latency_ms",
}


def routed_lines(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == "contact.routed"]


async def test_every_channel_logs_one_contact_routed_line_with_the_same_fields(
    tmp_path: Path, smtp: SmtpSink, started_apps: Callable[..., Any], clock: Clock
) -> None:
    settings = chat_settings(
        tmp_path, smtp=email_settings(tmp_path, smtp).smtp, email_webhook_secret=EMAIL_SECRET
    )
    data = shipped_data()
    for destination in data["destinations"].values():  # loopback, refused: nothing leaves
        destination["chat"] = "http://127.0.0.1:9/chat"
    await store_document(settings, data, clock())
    client: Client = await started_apps(settings)
    call_form = {"CallSid": "CA-one", "From": "+420777000111", "Digits": "2"}
    email = message()
    chat_message = chat("Jak nastavím tuto pračku?", language="cs")
    with structlog.testing.capture_logs() as logs:
        answers = [
            await post_twilio(client, ROUTE, call_form),
            await post_mime(client, email),
            await post_chat(client, chat_message),
        ]
        # a retry of each is answered the same and logged no second time
        retries = [
            await post_twilio(client, ROUTE, call_form),
            await post_mime(client, email),
            await post_chat(client, chat_message),
        ]
    assert [r.status for r in (*answers, *retries)] == [200] * 6
    assert [await r.read() for r in answers] == [await r.read() for r in retries]
    lines = routed_lines(logs)
    assert [line["channel"] for line in lines] == ["phone", "email", "chat"]
    for line in lines:
        assert set(line) - {"event", "log_level"} == ROUTED_FIELDS, line["channel"]
        assert line["recorded"] is True
        assert isinstance(line["interaction_id"], int)
    assert [line["source"] for line in lines] == ["twilio", "mime", "widget"]
    assert json.dumps(lines)  # plain values only: each is one JSON log line as it is


ROUTE = "/webhooks/twilio/voice/route"
EMAIL_SECRET = "email-webhook-secret"


def test_a_local_rollback_imports_only_what_it_needs(tmp_path: Path) -> None:
    """The on-call person's rollback pays for every import before it touches the database:
    the classifier, the read models, PostgreSQL's dialect on SQLite and the HTTP client are
    imported by the commands that use them. A real rollback, on a real database file, in a
    fresh process, then lists what it loaded."""
    env = {
        **os.environ,
        "SWITCHBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'sb.db'}",
        "SWITCHBOARD_VAR_DIR": str(tmp_path),
    }
    routing = str(shipped_path("routing.yaml"))
    probe = (
        "import sys\n"
        "from router.cli.commands import cli\n"
        "cli(sys.argv[1:], standalone_mode=False)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )

    def run(*args: str) -> set[str]:
        done = subprocess.run(
            [sys.executable, "-c", probe, *args],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
            env=env,
        )
        return set(done.stdout.split())

    run("config", "apply", routing, "--reason", "first")
    loaded = run("rollback", "--reason", "incident")
    assert "router.service.versions" in loaded  # the probe did roll back
    unwanted = {
        "router.core.classify",
        "router.core.decide",
        "router.service.queries",
        "router.service.scheduler",
        "sqlalchemy.dialects.postgresql",
        "aiohttp",
        "router.web.app",
    }
    assert loaded & unwanted == set()


# -- secrets are compared in constant time ----------------------------------------------------

#: names whose values are secrets, signatures or MACs (or made from them)
SECRET_NAMES = ("signature", "secret", "password", "digest", "hmac", "token_hash", "signing_key")
#: comparisons of such a value with == that are safe, each with why
SAFE_EQUALITY = {
    # the database finds a token by the SHA-256 of 256 random bits: an index lookup's timing
    # tells nothing that brings a guess closer (router/service/tokens.py)
    ("router.store.repository", "ApiToken.token_hash == token_hash"),
}


def _names(node: ast.AST) -> Iterator[str]:
    """The names and attributes *node* reads, not looking into nested comparisons (whose
    result is a bool, not the secret)."""
    if isinstance(node, ast.Compare):
        return
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Attribute):
        yield node.attr
    for child in ast.iter_child_nodes(node):
        yield from _names(child)


def _calls(tree: ast.AST, name: str) -> bool:
    return any(
        isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == name)
            or (isinstance(node.func, ast.Name) and node.func.id == name)
        )
        for node in ast.walk(tree)
    )


def test_no_secret_signature_or_mac_is_compared_with_equality() -> None:
    """``==`` stops at the first differing byte, so its time tells an attacker how much of
    a forged signature is right; hmac.compare_digest does not."""
    equality = ast.Eq | ast.NotEq | ast.In | ast.NotIn
    found = []
    for folder in ("router", "integrations"):
        for name, tree in modules(folder):
            for node in ast.walk(tree):
                if not isinstance(node, ast.Compare):
                    continue
                if not any(isinstance(op, equality) for op in node.ops):
                    continue
                operands = [node.left, *node.comparators]
                read = [n.lower() for operand in operands for n in _names(operand)]
                secret = any(word in n for n in read for word in SECRET_NAMES)
                if secret and (name, ast.unparse(node)) not in SAFE_EQUALITY:
                    found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert found == []


def test_every_module_that_computes_a_mac_checks_one_with_compare_digest() -> None:
    """Where integrations/ compute an HMAC or a provider's signature (hmac.new,
    RequestValidator.compute_signature), the check against what a request carries is
    hmac.compare_digest: a verifier that forgot it would show here."""
    computing = {
        name: tree
        for name, tree in modules("integrations")
        if (_calls(tree, "new") and "hmac" in imported(tree)) or _calls(tree, "compute_signature")
    }
    assert {"integrations.signing", "integrations.twilio_voice"} <= set(computing)
    for name, tree in computing.items():
        assert _calls(tree, "compare_digest"), name
