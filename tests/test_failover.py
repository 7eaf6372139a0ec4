"""Failover of the database itself (issue #17 item 2): a primary and a synchronous streaming
standby, three `switchboard serve` replicas on the multi-host URL

    postgresql+asyncpg://postgres@PRIMARY,STANDBY/failover?target_session_attrs=read-write

and calls and chats flowing while the primary is stopped (immediate: a crash) and the standby
promoted. Every acknowledged contact must be on the new primary (synchronous_commit=on: a
commit returns once the standby has flushed it), every replica must take contacts again
without a restart, and a routing change made afterwards must reach them all through LISTEN
on the new primary. Also: a server that turns read-only under a pool sends the pool to the
host that takes writes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa

from integrations.signing import HEADER, sign
from router.service.ports import ConnectionLost
from router.settings import load_settings
from router.store.engine import create_engine
from router.store.migrate import HEAD
from router.store.uow import database_errors

from .conftest import shipped_data
from .conftest_pg import running_postgres
from .pg_server import PostgresServer
from .smtp_sink import SmtpSink
from .test_chat import CHAT_SECRET, chat
from .test_replicas import REPLICAS, Cluster, Rig, rig_for, rows, signed_call, versions_seen

#: the whole failover test, start-up included, must end within this
BOUND_SECONDS = 90
#: how long after the promotion every replica must take chats and be ready again
RECOVERY_SECONDS = 15
WORKERS = 6
PARTNER_PHONE = "+420800100200"


def multi_host_url(first: PostgresServer, second: PostgresServer, database: str) -> str:
    """libpq's form, as an operator writes it; the settings turn it into SQLAlchemy's."""
    hosts = f"{first.host}:{first.port},{second.host}:{second.port}"
    return f"postgresql+asyncpg://postgres@{hosts}/{database}?target_session_attrs=read-write"


@dataclass
class Traffic:
    """What the workers saw, with the time (monotonic) of each answer."""

    calls: dict[str, float] = field(default_factory=dict)  # CallSid -> answered with <Dial>
    chats: dict[str, int] = field(default_factory=dict)  # message id -> interaction id (2xx)
    refused: list[float] = field(default_factory=list)  # when a chat was answered 503
    failures: Counter[str] = field(default_factory=Counter)  # anything else: must stay empty
    chat_accepted_at: dict[int, float] = field(default_factory=dict)  # replica -> last 2xx


async def send_contacts(
    session: aiohttp.ClientSession,
    cluster: Cluster,
    traffic: Traffic,
    worker: int,
    stop: asyncio.Event,
) -> None:
    n = 0
    while not stop.is_set():
        replica = (worker + n) % REPLICAS
        base = cluster.base(replica)
        sid = f"CA-failover-{worker}-{n}"
        url, form, headers = signed_call(base, sid)
        try:
            async with session.post(url, data=form, headers=headers) as response:
                twiml = await response.text()
            if response.status == 200 and "<Dial" in twiml and PARTNER_PHONE in twiml:
                traffic.calls[sid] = time.monotonic()
            else:
                traffic.failures[f"call HTTP {response.status}"] += 1
            message_id = f"failover-{worker}-{n}"
            body = json.dumps(chat("Kde je moje objednávka?", message_id, message_id=message_id))
            signed = {HEADER: sign(CHAT_SECRET, body.encode(), int(time.time()))}
            async with session.post(f"{base}/webhooks/chat", data=body, headers=signed) as answer:
                if 200 <= answer.status < 300:
                    traffic.chats[message_id] = (await answer.json())["interaction_id"]
                    traffic.chat_accepted_at[replica] = time.monotonic()
                elif answer.status == 503:
                    traffic.refused.append(time.monotonic())
                else:
                    traffic.failures[f"chat HTTP {answer.status}"] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            traffic.failures[f"no answer: {type(exc).__name__}"] += 1
        n += 1
        await asyncio.sleep(0.01)


def unrecorded_calls(cluster: Cluster) -> set[str]:
    """The CallSids the replicas logged as `contact.unrecorded` (SPEC §7's one exception)."""
    found = set()
    for index in range(REPLICAS):
        for line in cluster.log(index).read_text().splitlines():
            if '"contact.unrecorded"' in line:
                found.add(json.loads(line)["provider_id"])
    return found


def listening_on(server: PostgresServer, database: str) -> int:
    """Connections on *server* whose last statement was a LISTEN: the replicas' listeners."""
    counted = server.psql(
        "SELECT count(*) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND query LIKE 'LISTEN %'"
    )
    return int(counted.strip())


async def test_promoting_the_standby_while_contacts_flow_loses_no_acknowledged_contact(
    tmp_path: Path, relay: SmtpSink
) -> None:
    started_at = time.monotonic()
    with running_postgres(settings={"synchronous_commit": "on"}) as primary:
        primary.create_database("failover")
        standby = primary.start_standby("standby")
        try:
            primary.make_synchronous(standby)
            url = multi_host_url(primary, standby, "failover")
            document = shipped_data()
            document["cutover"] = {"phone": {"admin": 100}, "chat": {"admin": 100}}
            # the replicas and the CLI on the multi-host URL (the document stored directly)
            settings = {"SWITCHBOARD_DATABASE_URL": url}
            async with rig_for(
                tmp_path, primary.url_for("failover"), relay, document, **settings
            ) as rig:
                await asyncio.wait_for(
                    failover(rig, primary, standby, url),
                    timeout=BOUND_SECONDS - (time.monotonic() - started_at),
                )
        finally:
            standby.stop()


async def failover(rig: Rig, primary: PostgresServer, standby: PostgresServer, url: str) -> None:
    cluster, traffic, stop = rig.cluster, Traffic(), asyncio.Event()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        workers = [
            asyncio.create_task(send_contacts(session, cluster, traffic, worker, stop))
            for worker in range(WORKERS)
        ]
        while len(traffic.chats) < 60:  # flowing everywhere before the primary goes
            assert not any(task.done() for task in workers)
            await asyncio.sleep(0.05)
        assert listening_on(primary, "failover") == REPLICAS
        acknowledged_before = len(traffic.chats)

        stopped_at = time.monotonic()
        await asyncio.to_thread(primary.halt, "immediate")  # fenced: it takes nothing more
        await asyncio.to_thread(standby.promote)
        promoted_at = time.monotonic()

        # every replica takes chats again and is ready, without a restart
        recovered: dict[int, float] = {}
        while len(recovered) < REPLICAS:
            assert time.monotonic() - promoted_at < RECOVERY_SECONDS, (recovered, traffic)
            for index in range(REPLICAS):
                accepted = traffic.chat_accepted_at.get(index, 0.0)
                if index in recovered or accepted <= promoted_at:
                    continue
                async with session.get(f"{cluster.base(index)}/readyz") as response:
                    if response.status == 200:
                        recovered[index] = accepted - promoted_at
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)  # contacts go on flowing a little on the new primary
        stop.set()
        await asyncio.gather(*workers)

        # a routing change on the multi-host URL reaches every replica, by NOTIFY on the
        # new primary: its listeners are there again
        listen_deadline = time.monotonic() + 5
        while listening_on(standby, "failover") < REPLICAS:
            assert time.monotonic() < listen_deadline, "LISTEN not re-established"
            await asyncio.sleep(0.1)
        rolled = await asyncio.to_thread(cluster.cli, "rollback", "--reason", "after failover")
        version = int(rolled["version"])
        seen_deadline = time.monotonic() + 1
        while min(await versions_seen(session, cluster)) < version:
            assert time.monotonic() < seen_deadline, "the rollback did not reach every replica"
            await asyncio.sleep(0.01)

    assert not traffic.failures, traffic.failures
    new_primary = standby.url_for("failover")
    stored = dict(await rows(new_primary, "SELECT provider_id, id FROM interactions"))
    unrecorded = unrecorded_calls(cluster)
    recorded_calls = set(traffic.calls) - unrecorded
    assert recorded_calls - stored.keys() == set()  # every call the service recorded
    assert {key: stored.get(key) for key in traffic.chats} == traffic.chats  # every 2xx chat
    assert len(traffic.chats) > acknowledged_before  # and the flow went on after

    # the outbox works on the new primary: every acknowledged chat is handed off
    deadline = time.monotonic() + 20
    while set(traffic.chats.values()) - handed_off(rig):
        assert time.monotonic() < deadline, set(traffic.chats.values()) - handed_off(rig)
        await asyncio.sleep(0.2)

    outage = [at for at in traffic.refused if at >= stopped_at]
    during = [at for at in traffic.calls.values() if stopped_at <= at <= promoted_at + 1]
    print(
        f"failover: {len(traffic.calls)} calls ({len(unrecorded)} logged unrecorded), "
        f"{len(traffic.chats)} chats acknowledged, {len(traffic.refused)} chats answered 503; "
        f"primary stopped → standby promoted in {promoted_at - stopped_at:.2f} s; "
        f"503s for {max(outage, default=stopped_at) - stopped_at:.2f} s after the stop; "
        f"calls answered in the stop → promotion + 1 s window: {len(during)}; "
        f"each replica's first chat accepted after the promotion: "
        + ", ".join(f"{index}: {delay:.2f} s" for index, delay in sorted(recovered.items()))
    )


def handed_off(rig: Rig) -> set[int]:
    return {
        handoff["interaction_id"]
        for handoffs in rig.receiver.received.values()
        for handoff in handoffs
    }


async def test_the_cli_and_db_upgrade_work_on_the_multi_host_url(tmp_path: Path) -> None:
    """The first host takes no writes: the schema must land on the second."""
    with running_postgres() as first, running_postgres() as second:
        for server in (first, second):
            server.create_database("cli")
        url = multi_host_url(first, second, "cli")
        env = {"SWITCHBOARD_DATABASE_URL": url, "SWITCHBOARD_VAR_DIR": str(tmp_path)}
        first.psql("ALTER SYSTEM SET default_transaction_read_only = on")
        first.psql("SELECT pg_reload_conf()")
        switchboard = str(Path(sys.executable).with_name("switchboard"))
        done = await asyncio.to_thread(
            subprocess.run,
            [switchboard, "db", "upgrade"],
            env={**env, "PATH": str(Path(sys.executable).parent)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert f"host=127.0.0.1:{second.port}" in done.stdout, done.stdout
        [(revision,)] = await rows(second.url_for("cli"), "SELECT version_num FROM alembic_version")
        assert revision == HEAD
        tables = first.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", "cli")
        assert tables.strip() == "0"


async def test_a_server_turned_read_only_sends_the_pool_to_the_host_that_takes_writes() -> None:
    """The pool's ping succeeds on a server that has become read-only: the first refused
    write must empty the pool, so the next connect chooses the writable host."""
    with running_postgres() as first, running_postgres() as second:
        for server in (first, second):
            server.psql("CREATE TABLE written (n integer)", "switchboard")
        settings = load_settings(
            {"SWITCHBOARD_DATABASE_URL": multi_host_url(first, second, "switchboard")}
        )
        # pinged on every reuse: a backend applies a reloaded setting from its next command
        # on, not to the one it is already reading, so without a command in between the
        # first write after the reload could still pass (PostgreSQL's timing, not ours)
        engine = create_engine(settings.database_url, pool_size=3, ping_after_idle_seconds=0.0)
        try:

            async def write(n: int) -> int:
                async with database_errors(5), engine.begin() as connection:
                    await connection.execute(sa.text(f"INSERT INTO written VALUES ({n})"))
                    port: int = await connection.scalar(sa.text("SELECT inet_server_port()"))
                    return port

            # three connections in the pool, all on the first host
            assert list(await asyncio.gather(write(1), write(2), write(3))) == [first.port] * 3
            first.psql("ALTER SYSTEM SET default_transaction_read_only = on")
            first.psql("SELECT pg_reload_conf()")
            # a lost connection (ConnectionLost), which a contact's unit of work runs again on
            with pytest.raises(ConnectionLost, match="read-only"):
                await write(4)
            assert [await write(n) for n in (5, 6, 7, 8)] == [second.port] * 4
        finally:
            await engine.dispose()
        assert first.psql("SELECT n FROM written ORDER BY n", "switchboard").split() == [
            "1",
            "2",
            "3",
        ]
        assert second.psql("SELECT n FROM written ORDER BY n", "switchboard").split() == [
            "5",
            "6",
            "7",
            "8",
        ]
