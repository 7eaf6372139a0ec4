"""``make soak``: resident memory of one service process under sustained mixed load (issue #14
goal 5: "≤ 150 MB under 10 minutes of sustained mixed load, and flat").

``python -m bench.soak [--minutes 10] [--rate 100] [--sample-seconds 5] [--concurrency 16]``

The real service runs as the installed ``switchboard serve`` (the console script's own
Python process, no wrapper: its PID is the one sampled) on a fresh SQLite file in a
temporary directory, after ``switchboard config apply`` of ``config/routing.yaml`` with the
hotline always open, admin contacts of every channel half on the partner (so both sides and
both kinds of destination work), no guard, and both chat URLs pointing at the sink process
of ``bench.servers smtp-sink``, which also takes the SMTP forwards: every email, voicemail and
chat hand-off is really delivered. An operator token comes from ``switchboard token create``
on the same database.

The load is paced, not a closed loop: contacts start at a fixed rate of requests (``--rate``,
100/s by default, meant to stay below saturation; the rate achieved and the latency of
each kind of request are printed), at most ``--concurrency`` at once. Of the requests
about 40 % are complete calls (``/voice``, ``/route`` with a digit or speech,
``/dial-status`` following the TwiML's action URL — some unanswered, so the fallback and
voicemail paths run too — and ``/status``, one CallSid, signed with Twilio's
``RequestValidator``), 20 % signed ``mime`` emails (a third of them replies in a thread of
this run, a quarter with a PDF attachment), 15 % signed chat messages (conversations of
several messages), 10 % Twilio messaging and 15 % operators' reads (``GET /api/status``,
``/api/interactions``, ``/api/report``); after 5 s and then every 20 s an operator change
through the API (``cutover``, ``rollback``, ``resume`` in turn). Any answer other than 2xx is
an error; a run with errors, a contact missing from the database or a forward not delivered
fails (exit 1). Goal 5's verdict is printed, not turned into the exit code.

Every ``--sample-seconds`` the service's VmRSS is read from ``/proc/PID/status``. The curve
is printed as a table and a text plot, with the verdict of goal 5:

* **max**: the largest sample must be ≤ 150 MB;
* **flat**: growth = mean of the samples in the last 20 % of the run − mean of those at
  40–60 %, must be ≤ 10 MB. The first 40 % are left out on purpose: caches, compiled
  statements and SQLite's page cache fill up while the service warms up, which is not a
  leak. A steady leak of L MB per minute shows as about 0.4 × minutes × L MB (4 L over 10
  minutes), so the 10 MB tolerance catches leaks above ~2.5 MB/min in a 10-minute run while
  staying above allocator noise.

Afterwards the outbox is given (bounded) time to drain, and the database's row counts
(interactions per channel, forwards per kind and status, routing versions) and the sink's
counts show that the work really happened.

``--tracemalloc`` runs the service under tracemalloc (bench/memtrace.py) and adds what grew
between the start of the 40-60 % window and the end, by allocation site.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import math
import random
import re
import sqlite3
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

from bench import memtrace
from bench.harness import (
    REPO_ROOT,
    Goal,
    LoadOptions,
    Section,
    ServerFailed,
    command_process,
    free_port,
    log_tail,
    machine,
    percentile,
    positive,
    smtp_sink_process,
    switchboard_environment,
)
from bench.rollback import setup_command, switchboard_script
from bench.servers import CHAT_HANDOFF_PATH, EMAIL_PATH
from bench.webhook import TWILIO_TOKEN, gather_forms, logged_events, signed
from integrations import twilio_voice as tv
from integrations.signing import HEADER, sign
from integrations.twilio_messaging import MESSAGING_PATH

EMAIL_SECRET = "bench-email-webhook-secret"
CHAT_SECRET = "bench-chat-secret"
#: Issue #14 goal 5, and the flatness criterion (module docstring).
GOAL_MB = 150.0
FLAT_TOLERANCE_MB = 10.0
MIDDLE_WINDOW = (0.4, 0.6)
END_WINDOW = (0.8, 1.0)
DEFAULT_MINUTES = 10.0
DEFAULT_RATE = 100.0
DEFAULT_SAMPLE_SECONDS = 5.0
DEFAULT_CONCURRENCY = 16
#: One operator change (cutover, rollback, resume in turn) this often, the first one soon
#: (a short run has one too).
ADMIN_EVERY_SECONDS = 20.0
ADMIN_FIRST_SECONDS = 5.0
#: After a back-pressure stall the pacer catches up at most this much, not in one burst.
CATCH_UP_SECONDS = 1.0
#: Bound of the wait for the outbox to deliver what the load left pending.
DRAIN_SECONDS = 60.0
#: A request taking longer than this is an error (and bounds every wait on the service).
REQUEST_SECONDS = 30.0
#: Rows of the printed table at most this often (the plot shows every sample).
TABLE_EVERY_SECONDS = 30.0
PLOT_HEIGHT, PLOT_WIDTH = 8, 60
#: How many recent Message-IDs and conversations replies pick from: bounded client memory.
RECENT = 200
REASON = "soak"
TOKEN_NAME = "soak"


# -- the verdict -------------------------------------------------------------------------------


def window(values: Sequence[float], start: float, end: float) -> list[float]:
    """The values from fraction *start* to *end* of the sequence; never empty for a
    non-empty sequence (a short run still gets a figure)."""
    count = len(values)
    first = min(math.floor(start * count), count - 1)
    last = max(math.ceil(end * count), first + 1)
    return list(values[first:last])


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def growth_mb(samples_mb: Sequence[float]) -> float:
    """Mean of the last 20 % of the samples minus the mean of the samples at 40-60 %."""
    if not samples_mb:
        return math.nan
    return mean(window(samples_mb, *END_WINDOW)) - mean(window(samples_mb, *MIDDLE_WINDOW))


@dataclass(frozen=True, slots=True)
class MemoryVerdict:
    """Goal 5 as data: the largest sample and the growth over the second half, in MB."""

    max_mb: float
    growth_mb: float
    goal_mb: float = GOAL_MB
    tolerance_mb: float = FLAT_TOLERANCE_MB

    @property
    def below_goal(self) -> bool:
        return self.max_mb <= self.goal_mb

    @property
    def flat(self) -> bool:
        return self.growth_mb <= self.tolerance_mb

    @property
    def met(self) -> bool:
        return self.below_goal and self.flat

    def line(self) -> str:
        return (
            f"goal 5 memory: max {self.max_mb:.1f} MB (goal <= {self.goal_mb:g} MB) "
            f"{met(self.below_goal)}; growth over the second half {self.growth_mb:+.1f} MB "
            f"(flat if <= {self.tolerance_mb:g} MB) {met(self.flat)}"
        )


def memory_verdict(samples_mb: Sequence[float]) -> MemoryVerdict:
    if not samples_mb:
        return MemoryVerdict(max_mb=math.nan, growth_mb=math.nan)
    return MemoryVerdict(max_mb=max(samples_mb), growth_mb=growth_mb(samples_mb))


def met(ok: bool) -> str:
    return "met" if ok else "not met"


# -- sampling ----------------------------------------------------------------------------------


def memory_kb(pid: int) -> dict[str, int]:
    """The ``Vm*``/``Rss*`` figures of process *pid* in kB (``VmRSS``, and its parts
    ``RssAnon``: the heap, ``RssFile``, ``RssShmem``), from ``/proc/PID/status``; empty once
    the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    figures = {}
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name.startswith(("Vm", "Rss")) and value.strip().endswith("kB"):
            figures[name] = int(value.split()[0])
    return figures


def command_line(pid: int) -> list[str]:
    """The argv of process *pid* (``/proc/PID/cmdline``), to show which process was sampled."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


@dataclass(frozen=True, slots=True)
class Sample:
    seconds: float  # since the load began
    rss_kb: int
    requests: int  # answered so far (successes and errors)
    #: the anonymous part of the RSS (heap: Python's and C libraries' like SQLite's); the
    #: rest is mapped files (code, the WAL index)
    anon_kb: int = 0

    @property
    def mb(self) -> float:
        return self.rss_kb / 1024.0


async def sample_memory(
    pid: int,
    every: float,
    requests: Callable[[], int],
    samples: list[Sample],
    stop: asyncio.Event,
) -> None:
    """Append a sample now and every *every* seconds until *stop* is set (then one last)."""
    started = time.monotonic()
    while True:
        figures = memory_kb(pid)
        if "VmRSS" in figures:
            seconds = time.monotonic() - started
            rss, anon = figures["VmRSS"], figures.get("RssAnon", 0)
            samples.append(Sample(seconds, rss, requests(), anon_kb=anon))
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):  # the next sample is due
            await asyncio.wait_for(stop.wait(), every)


# -- the traffic -------------------------------------------------------------------------------

ACTION = re.compile(r'action="([^"]+)"')
ADMIN_TEXTS = [
    "Dobrý den, objednávka č. {n} mi stále nedorazila, kdy ji mohu čekat?",
    "Prosím o vrácení peněz za objednávku {n}, zboží jsem vrátila minulý týden.",
    "Hello, I need an invoice for order {n} with our company VAT number.",
    "Chci změnit doručovací adresu u objednávky {n}.",
]
PRODUCT_TEXTS = [
    "Je tato pračka kompatibilní s mým stávajícím sušičem? Model {n}.",
    "Jak nastavit Wi-Fi na robotickém vysavači {n}? Návod nepomohl.",
    "Which of these two laptops is better for video editing? I'm looking at model {n}.",
    "Notebook {n} se po aktualizaci nezapne, co mám dělat?",
]
SPEECH = ["kde je moje objednávka", "mám dotaz k výrobku", "chci vrátit zboží", "reklamace"]
#: First dial outcomes of a call: answered, answered by the fallback, voicemail.
DIAL_OUTCOMES: list[tuple[float, tuple[str, ...]]] = [
    (0.85, ("completed",)),
    (0.10, ("no-answer", "completed")),
    (0.05, ("busy", "no-answer")),
]
DIAL_WEIGHTS = [weight for weight, _ in DIAL_OUTCOMES]
DIAL_SEQUENCES = [sequence for _, sequence in DIAL_OUTCOMES]
#: The most steps a call follows after /route (dial, fallback dial, voicemail).
CALL_STEPS = 4


@dataclass(slots=True)
class Tally:
    """What the load did: answered requests by kind, errors by kind and what went wrong."""

    ok: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    #: contacts whose every request succeeded, by channel: each must be one interaction
    contacts: Counter[str] = field(default_factory=Counter)
    error_examples: list[str] = field(default_factory=list)
    #: seconds per successful request, by kind (a rate below the one asked for: who is slow)
    latencies: dict[str, list[float]] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(self.ok.values()) + sum(self.errors.values())

    def error(self, kind: str, what: str, detail: str) -> None:
        self.errors[f"{kind}: {what}"] += 1
        if len(self.error_examples) < 5:
            self.error_examples.append(f"{kind}: {what}: {detail[:200]}")


def text_of(rng: random.Random) -> str:
    texts = ADMIN_TEXTS if rng.random() < 0.8 else PRODUCT_TEXTS
    return rng.choice(texts).format(n=rng.randrange(100_000, 1_000_000))


def mime_email(rng: random.Random, message_id: str, parent: str | None) -> bytes:
    """A raw RFC 822 message from one of 500 customers; a reply to *parent* when given; a
    quarter carry a ~14 KB PDF attachment."""
    message = EmailMessage()
    message["From"] = Address("Zákazník", addr_spec=f"customer{rng.randrange(500)}@example.cz")
    message["To"] = "podpora@eshop.example"
    message["Subject"] = ("Re: " if parent else "") + f"Dotaz {rng.randrange(10**6)}"
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<{message_id}>"
    if parent is not None:
        message["In-Reply-To"] = f"<{parent}>"
        message["References"] = f"<{parent}>"
    message.set_content(text_of(rng) + "\n\nDěkuji\n", cte="quoted-printable")
    if rng.random() < 0.25:
        message.add_attachment(
            b"%PDF-1.7\n" + rng.randbytes(14_000),
            maintype="application",
            subtype="pdf",
            filename="faktura.pdf",
        )
    return message.as_bytes(policy=SMTP)


class Traffic:
    """The scenarios of the mixed load against one service at *base*."""

    def __init__(
        self, session: aiohttp.ClientSession, base: str, token: str, rng: random.Random
    ) -> None:
        self.session = session
        self.base = base
        self.auth = {"Authorization": f"Bearer {token}"}
        self.rng = rng
        self.tally = Tally()
        self.serial = 0
        self.message_ids: deque[str] = deque(maxlen=RECENT)
        self.conversations: deque[tuple[str, str]] = deque(maxlen=RECENT)
        self.admin_turn = 0

    def next_id(self) -> int:
        self.serial += 1
        return self.serial

    async def request(
        self,
        kind: str,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> bytes | None:
        """One request; its body on a 2xx, else None with the error counted."""
        started = time.perf_counter()
        try:
            async with self.session.request(
                method, url, data=data, headers=headers, json=json_body
            ) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.tally.error(kind, type(exc).__name__, str(exc))
            return None
        if not 200 <= status < 300:
            self.tally.error(kind, f"HTTP {status}", body.decode(errors="replace"))
            return None
        self.tally.ok[kind] += 1
        self.tally.latencies.setdefault(kind, []).append(time.perf_counter() - started)
        return body

    async def twilio(self, kind: str, url: str, form: dict[str, str]) -> str | None:
        """POST *form* to *url* signed as Twilio signs it (bench.webhook.signed)."""
        prepared = signed(url, [form], TWILIO_TOKEN)[0]
        body = await self.request(kind, "POST", url, data=prepared.body, headers=prepared.headers)
        return None if body is None else body.decode()

    def action(self, kind: str, twiml: str) -> str | None:
        """The first action URL of *twiml*, which must be on this service."""
        found = ACTION.search(twiml)
        if found is None:
            return None
        url = html.unescape(found.group(1))
        if not url.startswith(self.base + tv.VOICE_PATH):
            self.tally.error(kind, "unexpected action URL", url)
            return None
        return url

    async def call(self) -> None:
        """One call from ringing to its status callback, following the TwiML's actions."""
        form = gather_forms(1, self.rng)[0]
        del form["Digits"]
        form["CallStatus"] = "ringing"
        menu = await self.twilio("voice", self.base + tv.VOICE_PATH, form)
        route = None if menu is None else self.action("voice", menu)
        if route is None:
            return
        answer = {**form, "CallStatus": "in-progress"}
        if self.rng.random() < 0.7:
            answer["Digits"] = self.rng.choice("12")
        else:
            answer["SpeechResult"] = self.rng.choice(SPEECH)
            answer["Confidence"] = "0.9"
        reply = await self.twilio("route", route, answer)
        outcomes = list(self.rng.choices(DIAL_SEQUENCES, DIAL_WEIGHTS)[0])
        for _ in range(CALL_STEPS):
            step = None if reply is None else self.action("dial", reply)
            if step is None:
                break
            path = urlsplit(step).path
            if path == tv.DIAL_STATUS_PATH:
                status = outcomes.pop(0) if outcomes else "completed"
                reply = await self.twilio("dial-status", step, {**form, "DialCallStatus": status})
            else:  # the voicemail's <Record>
                recording = {
                    **form,
                    "RecordingUrl": f"https://api.twilio.com/recordings/RE{self.next_id():030d}",
                    "RecordingDuration": "12",
                }
                reply = await self.twilio("recorded", step, recording)
        if reply is None:
            return
        ended = {**form, "CallStatus": "completed", "CallDuration": str(self.rng.randrange(300))}
        if await self.twilio("status", self.base + tv.STATUS_PATH, ended) is not None:
            self.tally.contacts["phone"] += 1

    async def email(self) -> None:
        message_id = f"soak-{self.next_id()}-{self.rng.getrandbits(48):012x}@example.cz"
        parent = None
        if self.message_ids and self.rng.random() < 1 / 3:
            parent = self.rng.choice(self.message_ids)
        raw = mime_email(self.rng, message_id, parent)
        headers = {"Content-Type": "message/rfc822", HEADER: sign(EMAIL_SECRET, raw, now())}
        if await self.request("email", "POST", self.base + EMAIL_PATH, data=raw, headers=headers):
            self.message_ids.append(message_id)
            self.tally.contacts["email"] += 1

    async def chat(self) -> None:
        if self.conversations and self.rng.random() < 0.6:
            conversation, customer = self.rng.choice(self.conversations)
        else:
            serial = self.next_id()
            conversation, customer = f"conv-{serial}", f"cust-{self.rng.randrange(2000)}"
            self.conversations.append((conversation, customer))
        message = {
            "conversation_id": conversation,
            "customer_id": customer,
            "text": text_of(self.rng),
            "message_id": f"chat-{self.next_id()}",
        }
        body = json.dumps(message, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", HEADER: sign(CHAT_SECRET, body, now())}
        if await self.request(
            "chat", "POST", self.base + "/webhooks/chat", data=body, headers=headers
        ):
            self.tally.contacts["chat"] += 1

    async def sms(self) -> None:
        form = {
            "AccountSid": "AC" + "0" * 32,
            "MessageSid": f"SM{self.next_id():08x}{self.rng.getrandbits(96):024x}",
            "From": f"+420{self.rng.randrange(600_000_000, 600_000_300)}",
            "To": "+420222000111",
            "Body": text_of(self.rng),
            "NumMedia": "0",
        }
        if await self.twilio("messaging", self.base + MESSAGING_PATH, form) is not None:
            self.tally.contacts["chat"] += 1

    async def read(self) -> None:
        draw = self.rng.random()
        path = (
            "/api/status" if draw < 0.5 else "/api/interactions" if draw < 0.85 else "/api/report"
        )
        await self.request("read " + path, "GET", self.base + path, headers=self.auth)

    async def admin_change(self) -> None:
        """cutover, rollback, resume in turn: every one answers 200 with a new version."""
        turn, self.admin_turn = self.admin_turn % 3, self.admin_turn + 1
        body: dict[str, Any] = {"reason": f"{REASON} {self.admin_turn}"}
        if turn == 0:
            percent = 40 if self.admin_turn % 2 else 60
            body |= {"channel": "email", "category": "admin", "percent": percent}
        action = ("cutover", "rollback", "resume")[turn]
        await self.request(
            f"change {action}",
            "POST",
            f"{self.base}/api/{action}",
            headers=self.auth,
            json_body=body,
        )


def now() -> int:
    return int(time.time())


@dataclass(frozen=True, slots=True)
class Scenario:
    """A kind of contact: what it costs in requests (for the pacing) and how often."""

    name: str
    requests: int
    weight: float
    run: Callable[[Traffic], Awaitable[None]]


#: weight x requests gives the share of requests: 40 % calls, 20 % email, 15 % chat,
#: 10 % Twilio messaging, 15 % operators' reads
SCENARIOS = [
    Scenario("call", 4, 1.0, Traffic.call),
    Scenario("email", 1, 2.0, Traffic.email),
    Scenario("chat", 1, 1.5, Traffic.chat),
    Scenario("sms", 1, 1.0, Traffic.sms),
    Scenario("read", 1, 1.5, Traffic.read),
]
ADMIN = Scenario("change", 1, 0.0, Traffic.admin_change)


async def paced_load(traffic: Traffic, *, rate: float, seconds: float, concurrency: int) -> float:
    """Start scenarios so that about *rate* requests per second go out, at most
    *concurrency* at once, for *seconds*; then wait for those in flight. Returns the wall
    time from the first start to the last answer."""
    slots = asyncio.Semaphore(concurrency)
    in_flight: set[asyncio.Task[None]] = set()
    weights = [scenario.weight for scenario in SCENARIOS]

    async def run(scenario: Scenario) -> None:
        try:
            await scenario.run(traffic)
        finally:
            slots.release()

    started = time.monotonic()
    deadline = started + seconds
    next_start, next_admin = started, started + ADMIN_FIRST_SECONDS
    while (moment := time.monotonic()) < deadline:
        if next_start > moment:
            await asyncio.sleep(min(next_start, deadline) - moment)
            continue
        if moment >= next_admin:
            scenario, next_admin = ADMIN, next_admin + ADMIN_EVERY_SECONDS
        else:
            scenario = traffic.rng.choices(SCENARIOS, weights)[0]
        await slots.acquire()
        task = asyncio.create_task(run(scenario))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        # after a stall (every slot busy) catch up a little, never all at once
        next_start = max(next_start, time.monotonic() - CATCH_UP_SECONDS)
        next_start += scenario.requests / rate
    if in_flight:
        await asyncio.gather(*in_flight)
    return time.monotonic() - started


# -- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SoakOptions:
    minutes: float = DEFAULT_MINUTES
    rate: float = DEFAULT_RATE
    sample_seconds: float = DEFAULT_SAMPLE_SECONDS
    concurrency: int = DEFAULT_CONCURRENCY
    #: run the service under tracemalloc (bench/memtrace.py) and report what grew between
    #: the start of the flatness window's middle and the end; its VmRSS then is not goal 5's
    tracemalloc: bool = False


@dataclass(slots=True)
class Stored:
    """Row counts of the database after the run."""

    interactions: Counter[str]
    outbox: Counter[tuple[str, str]]
    versions: int

    def outbox_status(self, status: str) -> int:
        return sum(n for (_, state), n in self.outbox.items() if state == status)


def stored(database: Path) -> Stored:
    with sqlite3.connect(database) as connection:
        channels = connection.execute(
            "SELECT channel, count(*) FROM interactions GROUP BY channel"
        ).fetchall()
        forwards = connection.execute(
            "SELECT kind, status, count(*) FROM outbox GROUP BY kind, status"
        ).fetchall()
        (versions,) = connection.execute("SELECT count(*) FROM routing_versions").fetchone()
    return Stored(
        interactions=Counter({str(channel): int(n) for channel, n in channels}),
        outbox=Counter({(str(kind), str(status)): int(n) for kind, status, n in forwards}),
        versions=int(versions),
    )


def pending_forwards(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        (count,) = connection.execute(
            "SELECT count(*) FROM outbox WHERE status = 'pending'"
        ).fetchone()
    return int(count)


async def drain_outbox(database: Path) -> float:
    """Wait (at most DRAIN_SECONDS) until no forward is pending; the seconds it took."""
    started = time.monotonic()
    # the outbox is in the service's database: polling it is the only signal
    while pending_forwards(database) and time.monotonic() - started < DRAIN_SECONDS:  # noqa: ASYNC110
        await asyncio.sleep(0.25)
    return time.monotonic() - started


@dataclass(slots=True)
class SoakResult:
    """Everything one soak saw; :meth:`section` is its report."""

    options: SoakOptions
    pid: int
    argv: list[str]
    samples: list[Sample]
    tally: Tally
    load_seconds: float
    drain_seconds: float
    rows: Stored
    sink: dict[str, Any]
    events: Counter[str]
    log_tail: str = ""
    #: with SoakOptions.tracemalloc: what grew, by allocation site
    growth: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> MemoryVerdict:
        return memory_verdict([sample.mb for sample in self.samples])

    @property
    def rate(self) -> float:
        """Requests answered per second of load."""
        return self.tally.requests / self.load_seconds if self.load_seconds > 0 else 0.0

    def failures(self) -> list[str]:
        problems: list[str] = []
        if self.tally.errors:
            problems.append(
                f"{sum(self.tally.errors.values())} failed requests {dict(self.tally.errors)}; "
                f"e.g. {self.tally.error_examples}"
            )
        if len(self.samples) < 2:
            problems.append(f"only {len(self.samples)} memory samples of pid {self.pid}")
        if not {"serve", "bench.memtrace"} & set(self.argv):
            problems.append(f"pid {self.pid} is not `switchboard serve`: {self.argv}")
        for channel, contacts in sorted(self.tally.contacts.items()):
            if self.rows.interactions[channel] < contacts:
                problems.append(
                    f"{contacts} {channel} contacts fully answered, but the database holds "
                    f"{self.rows.interactions[channel]} {channel} interactions"
                )
        pending, failed = self.rows.outbox_status("pending"), self.rows.outbox_status("failed")
        if pending or failed:
            problems.append(
                f"outbox after {self.drain_seconds:.0f} s of draining: {pending} pending, "
                f"{failed} failed forwards"
            )
        if self.events["contact.unrecorded"]:
            problems.append(f"{self.events['contact.unrecorded']} contacts were not recorded")
        return problems

    def section(self) -> Section:
        verdict = self.verdict
        notes = [
            "```",
            *text_plot(self.samples),
            "```",
            "",
            verdict.line(),
            f"flat: mean VmRSS of the last {END_WINDOW[1] - END_WINDOW[0]:.0%} of the samples "
            f"minus the mean of those at {MIDDLE_WINDOW[0]:.0%}-{MIDDLE_WINDOW[1]:.0%} of the "
            f"run (the warm-up before is not a leak), at most {verdict.tolerance_mb:g} MB.",
            f"sampled: pid {self.pid} `{' '.join(self.argv)}`, VmRSS from /proc every "
            f"{self.options.sample_seconds:g} s, {len(self.samples)} samples; first "
            f"{self.samples[0].mb if self.samples else math.nan:.1f} MB, min "
            f"{min((s.mb for s in self.samples), default=math.nan):.1f} MB.",
            f"load: {self.tally.requests:,} requests in {self.load_seconds:.0f} s = "
            f"{self.rate:.1f}/s (asked {self.options.rate:g}/s, at most "
            f"{self.options.concurrency} contacts at once); "
            + ", ".join(f"{kind} {n:,}" for kind, n in sorted(self.tally.ok.items()))
            + f"; errors {sum(self.tally.errors.values())}.",
            "latency p50/p99 ms by kind: "
            + ", ".join(
                f"{kind} {percentile(sorted(seconds), 50) * 1000:.0f}/"
                f"{percentile(sorted(seconds), 99) * 1000:.0f}"
                for kind, seconds in sorted(self.tally.latencies.items())
            )
            + ".",
            "database: interactions "
            + ", ".join(f"{c} {n:,}" for c, n in sorted(self.rows.interactions.items()))
            + " (contacts answered: "
            + ", ".join(f"{c} {n:,}" for c, n in sorted(self.tally.contacts.items()))
            + "); outbox "
            + ", ".join(f"{k} {s} {n:,}" for (k, s), n in sorted(self.rows.outbox.items()))
            + f" (drained {self.drain_seconds:.1f} s after the load); "
            f"{self.rows.versions} routing versions.",
            f"sink: {self.sink.get('count', 0):,} emails received, chat hand-offs "
            + ", ".join(f"{d} {n:,}" for d, n in sorted(self.sink.get("chat", {}).items()))
            + f"; log: {self.events['contact.routed']:,} contact.routed, "
            f"{self.events['error lines']} error lines.",
        ]
        if self.growth:
            notes += [
                "",
                "tracemalloc (the service ran traced: its VmRSS above is inflated by the "
                "tracing; the growth below is what counts):",
                "```",
                *self.growth,
                "```",
            ]
        failures = self.failures()
        if failures and self.log_tail:
            notes.append(f"last lines of the Switchboard log:\n{self.log_tail}")
        return Section(
            title=f"soak: VmRSS of `switchboard serve` under {self.options.minutes:g} minutes "
            f"of mixed load at {self.options.rate:g} requests/s (issue #14 goal 5)",
            headers=["minute", "RSS MB", "of it anon MB", "requests so far"],
            rows=table_rows(self.samples),
            notes=notes,
            failures=failures,
            goals=[
                Goal(
                    key="5 memory",
                    figure=f"max {verdict.max_mb:.0f} MB, second half {verdict.growth_mb:+.1f} MB",
                    baseline=f"{self.samples[0].mb if self.samples else math.nan:.0f} MB at start",
                    target=f"<= {verdict.goal_mb:g} MB, <= {verdict.tolerance_mb:g} MB growth",
                    met=verdict.met,
                )
            ],
        )


def table_rows(samples: Sequence[Sample]) -> list[list[str]]:
    """A row about every TABLE_EVERY_SECONDS, and the last sample."""
    rows: list[list[str]] = []
    next_row = 0.0
    for index, sample in enumerate(samples):
        if sample.seconds >= next_row or index == len(samples) - 1:
            minute, anon = f"{sample.seconds / 60:.1f}", f"{sample.anon_kb / 1024:.1f}"
            rows.append([minute, f"{sample.mb:.1f}", anon, f"{sample.requests:,}"])
            next_row = sample.seconds + TABLE_EVERY_SECONDS - 1e-6
    return rows


def text_plot(samples: Sequence[Sample], height: int = PLOT_HEIGHT) -> list[str]:
    """RSS over time as rows of text, at most PLOT_WIDTH columns (each the mean of its
    samples). The axis spans at least 20 MB so noise does not look like a slope."""
    if not samples:
        return ["(no samples)"]
    columns = min(PLOT_WIDTH, len(samples))
    values = [
        mean(
            [s.mb for s in samples[i * len(samples) // columns : (i + 1) * len(samples) // columns]]
        )
        for i in range(columns)
    ]
    low = math.floor(min(values) / 10) * 10
    high = max(math.ceil(max(values) / 10) * 10, low + 20)
    levels = [min(height - 1, round((v - low) / (high - low) * (height - 1))) for v in values]
    lines = []
    for row in range(height - 1, -1, -1):
        label = f"{low + (high - low) * row / (height - 1):6.1f} MB |"
        lines.append(label + "".join("*" if level == row else " " for level in levels))
    minutes = samples[-1].seconds / 60
    lines.append(" " * 10 + "+" + "-" * columns)
    lines.append(" " * 11 + "0 min" + f"{minutes:.1f} min".rjust(max(columns - 5, 0)))
    return lines


def soak_document(path: Path, chat_base: str) -> None:
    """config/routing.yaml with the hotline always open, admin contacts half on the partner
    on every channel, no guard, and chat hand-offs to the sink at *chat_base*."""
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "config" / "routing.yaml").read_text())
    for name, destination in data["destinations"].items():
        destination["chat"] = f"{chat_base}{CHAT_HANDOFF_PATH}/{name}"
    data["destinations"]["hotline"]["hours"] = "always"
    data["cutover"] = {channel: {"admin": 50} for channel in ("phone", "email", "chat")}
    data.pop("guard", None)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def server_argv(script: str, options: SoakOptions, snapshots: Path) -> list[str]:
    """The service's command: the console script, or the same serve under tracemalloc."""
    if not options.tracemalloc:
        return [script, "serve"]
    return [sys.executable, "-m", "bench.memtrace", str(snapshots)]


async def trace_growth(pid: int, snapshots: Path, seconds: float, stop: asyncio.Event) -> list[str]:
    """Trace from now on; a snapshot where the flatness window's middle begins and one when
    *stop* is set."""
    memtrace.start_tracing(pid)
    with contextlib.suppress(TimeoutError):  # the middle of the run has come
        await asyncio.wait_for(stop.wait(), seconds * MIDDLE_WINDOW[0])
    before = await memtrace.snapshot(pid, snapshots, 1)
    await stop.wait()
    after = await memtrace.snapshot(pid, snapshots, 2)
    # comparing loads both snapshots: off the event loop
    return await asyncio.to_thread(memtrace.growth_report, before, after)


async def soak(options: SoakOptions) -> SoakResult:
    """Start the sink and the service, load it for ``options.minutes`` while sampling its
    memory, let the outbox drain, and gather what happened."""
    script = str(switchboard_script())
    with tempfile.TemporaryDirectory(prefix="switchboard-soak-") as tmp:
        work = Path(tmp)
        database = work / "switchboard.db"
        port, sink_port, smtp_port = free_port(), free_port(), free_port()
        base, sink_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sink_port}"
        env = switchboard_environment(
            work,
            base,
            SWITCHBOARD_PORT=str(port),
            TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
            SWITCHBOARD_EMAIL_WEBHOOK_SECRET=EMAIL_SECRET,
            SWITCHBOARD_CHAT_SECRET=CHAT_SECRET,
            SWITCHBOARD_SMTP_HOST="127.0.0.1",
            SWITCHBOARD_SMTP_PORT=str(smtp_port),
            SWITCHBOARD_SMTP_SECURITY="none",
        )
        document = work / "routing.yaml"
        soak_document(document, sink_base)
        await setup_command(
            [script, "config", "apply", str(document), "--reason", REASON], env, work
        )
        token_argv = [script, "token", "create", "--name", TOKEN_NAME, "--role", "operator"]
        token = json.loads(await setup_command([*token_argv, "--format", "json"], env, work))
        log_path = work / "switchboard.log"
        snapshots = work / "snapshots"
        snapshots.mkdir()
        samples: list[Sample] = []
        growth: list[str] = []
        async with (
            smtp_sink_process(work, port=sink_port, smtp_port=smtp_port),
            command_process(
                server_argv(script, options, snapshots),
                env=env,
                log_path=log_path,
                ready_url=base + "/readyz",
            ) as server,
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=options.concurrency),
                timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS),
            ) as session,
        ):
            traffic = Traffic(session, base, token["token"], random.Random(20261206))
            stop = asyncio.Event()
            sampler = asyncio.create_task(
                sample_memory(
                    server.pid,
                    options.sample_seconds,
                    lambda: traffic.tally.requests,
                    samples,
                    stop,
                )
            )
            tracer = None
            if options.tracemalloc:
                tracer = asyncio.create_task(
                    trace_growth(server.pid, snapshots, options.minutes * 60, stop)
                )
            try:
                load_seconds = await paced_load(
                    traffic,
                    rate=options.rate,
                    seconds=options.minutes * 60,
                    concurrency=options.concurrency,
                )
            finally:
                stop.set()
                await sampler
            if tracer is not None:
                growth = await tracer
            argv = command_line(server.pid)
            drained = await drain_outbox(database)
            async with session.get(sink_base + "/received") as response:
                sink: dict[str, Any] = await response.json()
            if server.returncode is not None:
                raise ServerFailed(f"the service exited with {server.returncode}")
        return SoakResult(
            options=options,
            pid=server.pid,
            argv=argv,
            samples=samples,
            tally=traffic.tally,
            load_seconds=load_seconds,
            drain_seconds=drained,
            rows=stored(database),
            sink=sink,
            events=logged_events(log_path),
            log_tail=log_tail(log_path, 5),
            growth=growth,
        )


async def soak_benchmark(options: LoadOptions) -> Section:
    """The soak as a ``bench.run`` benchmark (not registered: it takes 10 minutes)."""
    result = await soak(SoakOptions(concurrency=options.concurrency))
    return result.section()


# -- the command -------------------------------------------------------------------------------


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def parse_args(argv: list[str] | None) -> SoakOptions:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="Resident memory of `switchboard serve` under sustained mixed load "
        "(issue #14 goal 5).",
    )
    parser.add_argument(
        "--minutes",
        type=positive_float,
        default=DEFAULT_MINUTES,
        help="how long the load lasts (default: %(default)s)",
    )
    parser.add_argument(
        "--rate",
        type=positive_float,
        default=DEFAULT_RATE,
        help="requests per second, all kinds together (default: %(default)s)",
    )
    parser.add_argument(
        "--sample-seconds",
        type=positive_float,
        default=DEFAULT_SAMPLE_SECONDS,
        help="seconds between memory samples (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive,
        default=DEFAULT_CONCURRENCY,
        help="contacts in flight at most (default: %(default)s)",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="run the service under tracemalloc and report what grew (its RSS is then "
        "inflated by the tracing)",
    )
    args = parser.parse_args(argv)
    return SoakOptions(
        minutes=args.minutes,
        rate=args.rate,
        sample_seconds=args.sample_seconds,
        concurrency=args.concurrency,
        tracemalloc=args.tracemalloc,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    print(f"# Switchboard soak, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print()
    try:
        result = asyncio.run(soak(options))
    except ServerFailed as exc:
        print(f"a process of the soak failed: {exc}", file=sys.stderr)
        return 1
    section = result.section()
    print(section.render())
    if section.failures:
        print("the soak failed its checks", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
