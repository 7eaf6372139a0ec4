"""SPEC §7 with several replicas, as it is run: three `switchboard serve` processes on one real
PostgreSQL, the on-call person's CLI beside them, replicas killed and the database stopped
under them (issue #17).

* propagation: a rollback or resume from the CLI reaches every replica within 1 s;
* exactly once: forwards spread over the replicas, one SIGKILLed mid-load and restarted:
  every acknowledged contact is delivered, and only a forward in flight at the kill may
  arrive twice, with the same interaction id and Message-ID;
* scheduled work once: a plan step, a timed rollback's return and the guard, each once,
  also when a replica is killed just before the work is due;
* database outage: calls still get their <Dial>, email and chat 503, /readyz 503, and every
  replica recovers by itself;
* connection limits: each replica keeps its pool size (plus its LISTEN connection), and an
  exhausted pool says so in the log.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestServer

from integrations.signing import HEADER, sign
from router.store.engine import create_engine

from .conftest import make_settings, shipped_data, store_document, twilio_signature
from .conftest_pg import running_postgres
from .pg_server import PostgresServer
from .smtp_sink import SmtpSink
from .test_chat import CHAT_SECRET, Receiver, chat
from .test_email import SECRET as EMAIL_SECRET
from .test_email import message
from .test_serve import TOKEN, Popen, free_port, serve_process

REPLICAS = 3
PARTNER_PHONE = "+420800100200"


@dataclass
class Cluster:
    """Three `switchboard serve` processes sharing one PostgreSQL database."""

    tmp_path: Path
    env: dict[str, str]  # what every replica shares: the database, secrets, SMTP
    ports: list[int] = field(default_factory=list)
    running: dict[int, tuple[ExitStack, Popen]] = field(default_factory=dict)

    def base(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"

    def replica_env(self, index: int) -> dict[str, str]:
        return {
            **self.env,
            "SWITCHBOARD_PORT": str(self.ports[index]),
            "SWITCHBOARD_PUBLIC_URL": self.base(index),
            "SWITCHBOARD_VAR_DIR": str(self.tmp_path / f"var-{index}"),
        }

    def log(self, index: int) -> Path:
        return self.tmp_path / f"serve-{index}.log"

    def start(self, index: int) -> None:
        stack = ExitStack()
        process = stack.enter_context(
            serve_process(
                self.replica_env(index), self.ports[index], self.log(index), self.tmp_path
            )
        )
        self.running[index] = (stack, process)

    def kill(self, index: int) -> None:
        """SIGKILL: no shutdown of any kind, as a crashed node."""
        stack, process = self.running.pop(index)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        stack.close()

    def stop_all(self) -> None:
        for index in list(self.running):
            stack, _ = self.running.pop(index)
            stack.close()

    def cli(self, *arguments: str) -> Any:
        """The `switchboard` command on the shared database; its JSON output."""
        command = [str(Path(sys.executable).with_name("switchboard")), *arguments]
        done = subprocess.run(
            [*command, "--format", "json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.tmp_path,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def cluster_env(database_url: str, smtp_port: int, **settings: str) -> dict[str, str]:
    return {
        **os.environ,
        "SWITCHBOARD_DATABASE_URL": database_url,
        "SWITCHBOARD_LOG_FORMAT": "json",
        "SWITCHBOARD_CUSTOMER_KEY_SECRET": "a-replicas-test-secret-of-enough-length",
        "TWILIO_AUTH_TOKEN": TOKEN,
        "SWITCHBOARD_SMTP_HOST": "127.0.0.1",
        "SWITCHBOARD_SMTP_PORT": str(smtp_port),
        "SWITCHBOARD_SMTP_SECURITY": "none",
        "SWITCHBOARD_EMAIL_WEBHOOK_SECRET": EMAIL_SECRET,
        "SWITCHBOARD_CHAT_SECRET": CHAT_SECRET,
        # short, so a forward in flight at a kill is sent again soon (sends cut at 3/4)
        "SWITCHBOARD_OUTBOX_LEASE": "3",
        "SWITCHBOARD_SMTP_TIMEOUT": "2",
        "SWITCHBOARD_CHAT_TIMEOUT": "2",
        "SWITCHBOARD_OUTBOX_BASE_DELAY": "0.1",
        "SWITCHBOARD_OUTBOX_MAX_DELAY": "0.5",
        **settings,
    }


@contextmanager
def started(cluster: Cluster) -> Iterator[Cluster]:
    try:
        for index in range(REPLICAS):
            cluster.ports.append(free_port())
            cluster.start(index)
        yield cluster
    finally:
        cluster.stop_all()


@dataclass
class Rig:
    """A cluster with what it forwards to: a chat endpoint per destination and an SMTP relay."""

    cluster: Cluster
    receiver: Receiver
    relay: SmtpSink
    database_url: str


@asynccontextmanager
async def rig_for(
    tmp_path: Path,
    database_url: str,
    relay: SmtpSink,
    document: dict[str, Any] | None = None,
    **settings: str,
) -> AsyncIterator[Rig]:
    receiver = Receiver()
    chat_app = web.Application()
    chat_app.router.add_post("/chat/{name}", receiver.handle)
    async with TestServer(chat_app, host="127.0.0.1") as chat_server:
        data = document or shipped_data()
        for name in ("partner", "hotline"):
            data["destinations"][name]["chat"] = str(chat_server.make_url(f"/chat/{name}"))
        await store_document(
            make_settings(tmp_path, database_url=database_url), data, datetime.now(UTC)
        )
        cluster = Cluster(tmp_path, cluster_env(database_url, relay.port, **settings))
        with started(cluster):
            yield Rig(cluster, receiver, relay, database_url)


@pytest.fixture
async def rig(tmp_path: Path, postgres_database_url: str, relay: SmtpSink) -> AsyncIterator[Rig]:
    document = shipped_data()
    document["cutover"] = {"chat": {"admin": 50}, "email": {"admin": 50}}
    async with rig_for(tmp_path, postgres_database_url, relay, document) as made:
        yield made


async def rows(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in await connection.execute(sa.text(sql))]
    finally:
        await engine.dispose()


async def versions_seen(session: aiohttp.ClientSession, cluster: Cluster) -> list[int]:
    seen = []
    for index in range(REPLICAS):
        async with session.get(f"{cluster.base(index)}/readyz") as response:
            seen.append(int((await response.json())["version"]))
    return seen


# -- propagation --------------------------------------------------------------------------


async def test_a_rollback_and_resume_from_the_cli_reach_every_replica_within_a_second(
    rig: Rig,
) -> None:
    cluster = rig.cluster
    delays: list[float] = []
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for flip in range(10):
            command = (
                ("rollback", "--reason", f"flip {flip}")
                if flip % 2 == 0
                else ("resume", "--reason", f"flip {flip}")
            )
            result = await asyncio.to_thread(cluster.cli, *command)
            version = int(result["version"])
            deadline = time.monotonic() + 5
            while min(await versions_seen(session, cluster)) < version:
                assert time.monotonic() < deadline, f"version {version} not everywhere in 5 s"
                await asyncio.sleep(0.01)
            seen_at = datetime.now(UTC)
            [(created_at,)] = await rows(
                rig.database_url,
                f"SELECT created_at FROM routing_versions WHERE version = {version}",
            )
            delays.append((seen_at - created_at).total_seconds())
    # measured from the commit of the version to the moment the last replica answered
    # with it (the CLI's own exit included: an upper bound)
    print(f"propagation over 10 flips: max {max(delays):.3f} s, all {delays}")
    assert max(delays) < 1.0, delays


# -- exactly once --------------------------------------------------------------------------


async def test_forwards_over_replicas_with_one_killed_are_each_delivered_once(rig: Rig) -> None:
    """600 emails and chats, round robin over the three replicas; after 150 are acknowledged
    one replica is SIGKILLed, and started again two seconds later."""
    cluster, receiver, relay = rig.cluster, rig.receiver, rig.relay
    relay.mailbox.data_delay = receiver.delays["partner"] = receiver.delays["hotline"] = 0.01
    answered: dict[str, int] = {}  # provider id -> interaction id, for every 2xx
    refused: Counter[str] = Counter()
    killed = asyncio.Event()
    enough = asyncio.Event()
    in_flight: set[int] = set()

    async def post(session: aiohttp.ClientSession, n: int) -> None:
        """Contact *n* to replica n % 3; on no answer, to the next one, as a load balancer
        or the provider's retry would: the same provider id, so at most one interaction."""
        if n % 2:
            provider_id = f"replica-{n}@example.cz"
            body = message(subject=f"Objednávka {n} nedorazila", message_id=f"<{provider_id}>")
            path, headers = "/webhooks/email/mime", {"Content-Type": "message/rfc822"}
            secret = EMAIL_SECRET
        else:
            provider_id = f"replica-{n}"
            text = "Kde je moje objednávka?" if n % 4 else "Jak nastavit ten výrobek?"
            body = json.dumps(chat(text, f"conv-{n}", message_id=provider_id)).encode()
            path, headers = "/webhooks/chat", {"Content-Type": "application/json"}
            secret = CHAT_SECRET
        for attempt in range(2 * REPLICAS):  # bounded
            base = cluster.base((n + attempt) % REPLICAS)
            headers[HEADER] = sign(secret, body, int(time.time()))
            try:
                async with session.post(base + path, data=body, headers=headers) as response:
                    if 200 <= response.status < 300:
                        answered[provider_id] = (await response.json())["interaction_id"]
                        if len(answered) >= 150:
                            enough.set()
                        return
                    refused[f"HTTP {response.status}"] += 1
            except (aiohttp.ClientError, TimeoutError):
                refused["no answer"] += 1  # the killed replica: not acknowledged
            await asyncio.sleep(0.05)

    async def sender(worker: int, session: aiohttp.ClientSession) -> None:
        for n in range(worker, 600, 12):
            await post(session, n)

    async def kill_and_restart() -> None:
        await enough.wait()
        await asyncio.to_thread(cluster.kill, 1)
        killed.set()
        claimed = await rows(
            rig.database_url,
            "SELECT interaction_id FROM outbox WHERE status = 'pending' "
            "AND claimed_until IS NOT NULL AND claimed_until > now()",
        )
        in_flight.update(interaction_id for (interaction_id,) in claimed)
        await asyncio.sleep(2)
        await asyncio.to_thread(cluster.start, 1)

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.wait_for(
            asyncio.gather(kill_and_restart(), *(sender(w, session) for w in range(12))),
            timeout=120,
        )
    assert killed.is_set()
    assert len(answered) == 600, (len(answered), refused)  # each acknowledged in the end
    assert refused["no answer"] > 0  # the kill did cut requests off

    deadline = time.monotonic() + 60
    while True:
        statuses = dict(
            await rows(rig.database_url, "SELECT status, count(*) FROM outbox GROUP BY status")
        )
        if set(statuses) == {"delivered"}:
            break
        assert time.monotonic() < deadline, statuses
        await asyncio.sleep(0.2)

    on_disk = dict(await rows(rig.database_url, "SELECT provider_id, id FROM interactions"))
    assert {key: on_disk.get(key) for key in answered} == answered  # nothing acknowledged lost
    forwarded = {
        row[0] for row in await rows(rig.database_url, "SELECT interaction_id FROM outbox")
    }
    assert set(answered.values()) <= forwarded
    emails: dict[int, list[str]] = {}
    for item in relay.mailbox.received:
        interaction = int(item.message["X-Switchboard-Interaction"])
        emails.setdefault(interaction, []).append(str(item.message["Message-ID"]))
    chats = Counter(
        handoff["interaction_id"] for handoffs in receiver.received.values() for handoff in handoffs
    )
    arrivals = Counter({interaction: len(ids) for interaction, ids in emails.items()}) + chats
    assert set(arrivals) == forwarded  # every forward arrived
    twice = {interaction for interaction, count in arrivals.items() if count > 1}
    print(f"duplicates: {len(twice)} of {len(forwarded)} forwards, all in flight at the kill")
    assert twice <= in_flight, (twice, in_flight)  # only a forward in flight at the kill
    assert max(arrivals.values()) <= 2
    # a repeated email is the same message: its Message-ID is the one the customer sent
    assert all(len(set(emails.get(interaction, []))) <= 1 for interaction in twice)
    assert receiver.bad_signatures == 0


# -- scheduled work -------------------------------------------------------------------------


async def history(cluster: Cluster) -> list[dict[str, Any]]:
    versions: list[dict[str, Any]] = await asyncio.to_thread(cluster.cli, "config", "history")
    return versions


async def wait_for_version(cluster: Cluster, predicate: Any, within: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while True:
        found = [version for version in await history(cluster) if predicate(version)]
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def test_a_plan_step_and_a_timed_rollback_return_once_when_a_replica_dies_before(
    rig: Rig,
) -> None:
    cluster = rig.cluster
    due = datetime.now(UTC) + timedelta(seconds=6)
    plan = cluster.tmp_path / "plan.yaml"
    plan.write_text(
        f'- at: "{due.isoformat()}"\n  reason: "step 1"\n  cutover: {{phone: {{admin: 25}}}}\n'
    )
    await asyncio.to_thread(cluster.cli, "plan", "apply", str(plan))
    await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds() - 0.5))
    await asyncio.to_thread(cluster.kill, 0)  # just before the step is due
    steps = await wait_for_version(cluster, lambda v: v["kind"] == "plan", within=8)
    await asyncio.sleep(2)  # a second execution would have happened by now
    steps = [version for version in await history(cluster) if version["kind"] == "plan"]
    assert [(v["actor"], v["reason"]) for v in steps] == [("scheduler", "step 1")]

    rolled = await asyncio.to_thread(cluster.cli, "rollback", "--reason", "incident", "--for", "6s")
    ends = datetime.now(UTC) + timedelta(seconds=6)
    await asyncio.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds() - 0.5))
    await asyncio.to_thread(cluster.kill, 2)  # just before the rollback ends
    await wait_for_version(cluster, lambda v: v["kind"] == "resume", within=8)
    await asyncio.sleep(2)
    resumes = [version for version in await history(cluster) if version["kind"] == "resume"]
    assert len(resumes) == 1 and resumes[0]["actor"] == "scheduler"
    assert resumes[0]["version"] > rolled["version"]


async def test_the_guard_rolls_back_once_with_three_replicas(
    tmp_path: Path, postgres_database_url: str, relay: SmtpSink
) -> None:
    document = shipped_data()
    document["cutover"] = {"chat": {"admin": 100}}
    document["guard"] = {
        "window": "15m",
        "min_contacts": 6,
        "max_failure_rate": 0.25,
        "rollback_for": "24h",
    }
    async with rig_for(tmp_path, postgres_database_url, relay, document) as rig:
        rig.receiver.failures["partner"] = [400] * 100  # every hand-off refused for good
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for n in range(8):
                body = json.dumps(
                    chat("Kde je moje objednávka?", f"guard-{n}", message_id=f"guard-{n}")
                ).encode()
                headers = {HEADER: sign(CHAT_SECRET, body, int(time.time()))}
                url = f"{rig.cluster.base(n % REPLICAS)}/webhooks/chat"
                async with session.post(url, data=body, headers=headers) as response:
                    assert response.status == 200, await response.text()
        found = await wait_for_version(rig.cluster, lambda v: v["actor"] == "guard", within=15)
        await asyncio.sleep(3)  # every replica has run its guard check since
        guarded = [version for version in await history(rig.cluster) if version["actor"] == "guard"]
        assert found and len(guarded) == 1, guarded
        assert guarded[0]["kind"] == "rollback"


# -- database outage -------------------------------------------------------------------------


def signed_call(base: str, call_sid: str) -> tuple[str, dict[str, str], dict[str, str]]:
    url = f"{base}/webhooks/twilio/voice/route"
    form = {"CallSid": call_sid, "From": "+420601234567", "To": "+420555000111", "Digits": "1"}
    return url, form, {"X-Twilio-Signature": twilio_signature(url, form, TOKEN)}


async def test_a_database_outage_keeps_calls_answered_and_every_replica_recovers(
    tmp_path: Path, relay: SmtpSink
) -> None:
    with running_postgres() as server:
        database_url = server.create_database("outage")
        document = shipped_data()
        document["cutover"] = {"phone": {"admin": 100}}  # calls for admin go to the partner
        async with rig_for(tmp_path, database_url, relay, document) as rig:
            await outage(rig, server)


async def outage(rig: Rig, server: PostgresServer) -> None:
    cluster = rig.cluster
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        await asyncio.to_thread(server.halt)
        stopped_at = time.monotonic()
        try:
            for index in range(REPLICAS):
                url, form, headers = signed_call(cluster.base(index), f"CA-outage-{index}")
                started_at = time.monotonic()
                async with session.post(url, data=form, headers=headers) as response:
                    twiml = await response.text()
                assert response.status == 200, twiml
                assert time.monotonic() - started_at < 15  # Twilio's limit
                assert "<Dial" in twiml and PARTNER_PHONE in twiml, twiml
                body = json.dumps(chat("Kde je objednávka?", "outage", message_id=f"o-{index}"))
                headers = {HEADER: sign(CHAT_SECRET, body.encode(), int(time.time()))}
                async with session.post(
                    f"{cluster.base(index)}/webhooks/chat", data=body, headers=headers
                ) as response:
                    assert response.status == 503
                raw = message(message_id=f"<outage-{index}@example.cz>")
                headers = {
                    "Content-Type": "message/rfc822",
                    HEADER: sign(EMAIL_SECRET, raw, int(time.time())),
                }
                async with session.post(
                    f"{cluster.base(index)}/webhooks/email/mime", data=raw, headers=headers
                ) as response:
                    assert response.status == 503
                async with session.get(f"{cluster.base(index)}/readyz") as response:
                    assert response.status == 503
            await asyncio.sleep(max(0.0, 20 - (time.monotonic() - stopped_at)))
        finally:
            await asyncio.to_thread(server.restart)

        deadline = time.monotonic() + 15
        pending = set(range(REPLICAS))
        while pending:
            assert time.monotonic() < deadline, f"replicas {pending} not back within 15 s"
            for index in sorted(pending):
                body = json.dumps(chat("Kde je objednávka?", "back", message_id=f"b-{index}"))
                headers = {HEADER: sign(CHAT_SECRET, body.encode(), int(time.time()))}
                async with session.post(
                    f"{cluster.base(index)}/webhooks/chat", data=body, headers=headers
                ) as response:
                    accepted = response.status == 200
                async with session.get(f"{cluster.base(index)}/readyz") as response:
                    ready = response.status == 200
                if accepted and ready:
                    pending.discard(index)
            await asyncio.sleep(0.2)


# -- connection limits -----------------------------------------------------------------------


async def test_the_replicas_keep_their_pools_and_an_exhausted_pool_says_so(
    tmp_path: Path, postgres_server: PostgresServer, postgres_database_url: str, relay: SmtpSink
) -> None:
    pool_size = 3
    async with rig_for(
        tmp_path, postgres_database_url, relay, SWITCHBOARD_DB_POOL_SIZE=str(pool_size)
    ) as rig:
        await pool_limits(rig, postgres_server, pool_size)


async def pool_limits(rig: Rig, server: PostgresServer, pool_size: int) -> None:
    cluster = rig.cluster
    name = rig.database_url.rsplit("/", 1)[1]
    peak = 0
    loaded = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not loaded.is_set():
            counted = await asyncio.to_thread(
                server.psql, f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'"
            )
            peak = max(peak, int(counted.strip()))
            await asyncio.sleep(0.05)

    async def post_chat(session: aiohttp.ClientSession, index: int, message_id: str) -> int:
        body = json.dumps(chat("Jak to nastavit?", message_id, message_id=message_id))
        headers = {HEADER: sign(CHAT_SECRET, body.encode(), int(time.time()))}
        url = f"{cluster.base(index)}/webhooks/chat"
        async with session.post(url, data=body, headers=headers) as response:
            return response.status

    async def load(session: aiohttp.ClientSession, worker: int) -> None:
        for n in range(worker, 300, 30):
            assert await post_chat(session, n % REPLICAS, f"pool-{n}") == 200

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        sampler = asyncio.create_task(sample())
        await asyncio.gather(*(load(session, worker) for worker in range(30)))
        loaded.set()
        await sampler
    limit = int(server.psql("SHOW max_connections").strip())
    # each replica: its pool and one LISTEN connection; the sampler's psql counts too
    assert 0 < peak <= REPLICAS * (pool_size + 1) + 1 < limit, (peak, limit)

    # every connection of replica 0 held up by a lock: the next requests wait for the
    # pool, give up within the budget and the log says why
    await asyncio.to_thread(cluster.kill, 0)
    cluster.env["SWITCHBOARD_DB_POOL_SIZE"] = "1"
    await asyncio.to_thread(cluster.start, 0)
    locker = asyncio.create_task(
        asyncio.to_thread(
            server.psql,
            "BEGIN; LOCK TABLE interactions IN EXCLUSIVE MODE; SELECT pg_sleep(8); COMMIT;",
            name,
        )
    )
    await asyncio.sleep(0.5)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        statuses = await asyncio.gather(*(post_chat(session, 0, f"held-{n}") for n in range(4)))
    await locker
    assert 503 in statuses, statuses
    lines = [json.loads(line) for line in cluster.log(0).read_text().splitlines() if line]
    exhausted = [line for line in lines if line.get("event") == "database.pool_exhausted"]
    assert exhausted and "SWITCHBOARD_DB_POOL_SIZE" in exhausted[0]["hint"]
