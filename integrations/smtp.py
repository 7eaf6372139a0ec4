"""Forwarding email over SMTP (aiosmtplib): the outbox's sender for ``email`` rows.

The forwarded message is the original, byte for byte, with ``X-Switchboard-*`` headers
added (and card numbers masked toward external destinations), built at send time by
integrations/email_message.py so a redirect to the fallback re-decides the masking.
Failures follow RFC 5321 reply classes: 5xx is permanent, 4xx and connection trouble are
worth a retry.

Every message goes to the same relay, so connections are kept open and reused
(:class:`ConnectionPool`): opening one (TCP, greeting, EHLO, a lookup of our own host name,
TLS and AUTH where configured) and closing it cost the worker 0.35 ms per message on
loopback without TLS, half again what the mail transaction did (bench/RESULTS.md). A
connection is used by one message at a time, dropped on any error, and closed after
:data:`IDLE_SECONDS` unused; one the relay closed while it sat idle fails at MAIL, before
any of the message was accepted, so that message is tried once more on a new connection
instead of counting as a failed attempt.

One timeout (``SmtpSettings.timeout_seconds``, ``SWITCHBOARD_SMTP_TIMEOUT``) bounds a
message's whole send — waiting for a free connection, connecting, the greeting, EHLO, TLS,
AUTH, MAIL, RCPT and DATA together — not each step: a relay that answers every step just in
time must not hold a message for several timeouts, past the outbox's lease (after which
another replica may send it again). A relay that never answers, or answers something that
is not SMTP, is a failure worth a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import aiosmtplib

from integrations.email_message import forwarded
from router.service.ports import Delivery, DeliveryError
from router.settings import SmtpSettings

#: Connections open to the relay at most. The worker sends a claimed batch (20) at once;
#: the messages queue for these few connections rather than hold twenty sessions of the
#: relay's (2, 4 and 8 measured alike within the benchmark's noise, bench/RESULTS.md).
POOL_SIZE = 4
#: An unused connection is closed after this long: relays drop idle clients on their own
#: (RFC 5321 §4.5.3.2 lets them after 5 minutes, many sooner), and a quiet service holds
#: nothing open.
IDLE_SECONDS = 15.0
#: How long a QUIT may take when a connection is closed politely.
QUIT_SECONDS = 5.0


def added_headers(delivery: Delivery) -> dict[str, str]:
    return {
        "X-Switchboard-Category": str(delivery.meta.get("category", "")),
        "X-Switchboard-Destination": delivery.destination,
        "X-Switchboard-Reason": str(delivery.meta.get("reason", "")),
        "X-Switchboard-Interaction": str(delivery.interaction_id),
    }


def wire_size(message: bytes) -> int:
    """The octets of *message* as DATA transmits it (every line ending CRLF, a final CRLF
    added), for the SIZE parameter of MAIL (RFC 1870); counted, not rewritten."""
    pairs = message.count(b"\r\n")
    lone = message.count(b"\n") - pairs + message.count(b"\r") - pairs
    ends_line = message.endswith((b"\n", b"\r"))
    return len(message) + lone + (0 if ends_line else 2)


class StaleConnection(Exception):
    """A reused connection turned out closed by the relay before MAIL was accepted."""


Opener = Callable[[], Awaitable[aiosmtplib.SMTP]]


class ConnectionPool:
    """At most *size* open SMTP connections to one relay, each used by one message at a
    time; idle ones are reused newest first and closed after *idle_seconds*."""

    def __init__(
        self, open_connection: Opener, *, size: int = POOL_SIZE, idle_seconds: float = IDLE_SECONDS
    ) -> None:
        self._open = open_connection
        self._slots = asyncio.Semaphore(size)
        self._idle_seconds = idle_seconds
        # (connection, monotonic time it was put back); the newest is at the end
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._expiry: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    @contextlib.asynccontextmanager
    async def connection(
        self, *, fresh: bool = False
    ) -> AsyncIterator[tuple[aiosmtplib.SMTP, bool]]:
        """A connection and whether it was used before; put back when the block ends
        normally, dropped when it raises. *fresh* opens a new one whatever is idle."""
        if self._closed:
            raise aiosmtplib.SMTPServerDisconnected("the SMTP connection pool is closed")
        # unbounded here: the sender's one timeout covers this wait with the rest of the send
        await self._slots.acquire()
        try:
            client = None if fresh else self._reusable()
            reused = client is not None
            if client is None:
                client = await self._open()
            try:
                yield client, reused
            except BaseException:
                client.close()  # its state is unknown: never reused
                raise
            self._put_back(client)
        finally:
            self._slots.release()

    @property
    def idle_connections(self) -> int:
        """Open connections waiting for a message."""
        return len(self._idle)

    def _reusable(self) -> aiosmtplib.SMTP | None:
        now = time.monotonic()
        while self._idle:
            client, since = self._idle.pop()
            if client.is_connected and now - since < self._idle_seconds:
                return client
            self._quit(client)
        return None

    def _put_back(self, client: aiosmtplib.SMTP) -> None:
        if self._closed or not client.is_connected:
            self._quit(client)
            return
        self._idle.append((client, time.monotonic()))
        if self._expiry is None:
            self._expiry = asyncio.get_running_loop().call_later(self._idle_seconds, self._expire)

    def _expire(self) -> None:
        """Close what has been idle too long; look again while anything stays idle."""
        self._expiry = None
        now = time.monotonic()
        keep = []
        for client, since in self._idle:
            if now - since >= self._idle_seconds:
                self._quit(client)
            else:
                keep.append((client, since))
        self._idle = keep
        if keep:
            wait = self._idle_seconds - (now - keep[0][1])
            self._expiry = asyncio.get_running_loop().call_later(max(wait, 0.0), self._expire)

    def _quit(self, client: aiosmtplib.SMTP) -> None:
        """Say QUIT in the background (the relay logs a clean end), then close."""
        if not client.is_connected:
            client.close()
            return
        task = asyncio.get_running_loop().create_task(_quit(client))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close every idle connection (QUIT) and refuse new work; connections in use are
        closed when their message is done."""
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        idle, self._idle = self._idle, []
        for client, _ in idle:
            self._quit(client)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit(timeout=QUIT_SECONDS)
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        pass  # it is being closed anyway
    finally:
        client.close()


class SmtpSender:
    def __init__(
        self,
        settings: SmtpSettings,
        *,
        envelope_from: str | None = None,
        pool_size: int = POOL_SIZE,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.settings = settings
        self.envelope_from = envelope_from
        self.pool = ConnectionPool(self._connect, size=pool_size, idle_seconds=idle_seconds)
        self.timeout = settings.timeout_seconds
        self._local_hostname: str | None = None

    def message(self, delivery: Delivery) -> bytes:
        if delivery.meta.get("generated"):  # a message we wrote ourselves (voicemail)
            return delivery.payload
        return forwarded(
            delivery.payload, added_headers=added_headers(delivery), mask_cards=delivery.external
        )

    async def send(self, delivery: Delivery) -> None:
        # the envelope sender: configured, else the customer's address (bounces are theirs
        # to see), else the null reverse-path
        sender = self.envelope_from or str(delivery.meta.get("sender") or "")
        message = self.message(delivery)
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    await self._send(sender, delivery.address, message, fresh=False)
                except StaleConnection:
                    # the relay closed the idle connection; nothing of this message was taken
                    await self._send(sender, delivery.address, message, fresh=True)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refusal.code for refusal in exc.recipients]
            raise DeliveryError(
                f"recipient refused: {exc}", permanent=all(500 <= c < 600 for c in codes)
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            # a reply that is not SMTP at all comes as code -1: not a refusal, so a retry
            raise DeliveryError(
                f"SMTP {exc.code}: {exc.message}", permanent=500 <= exc.code < 600
            ) from exc
        except TimeoutError as exc:  # aiosmtplib's SMTPTimeoutError among them
            raise DeliveryError(
                f"SMTP: no answer within {self.timeout:g} s", permanent=False
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP unreachable: {exc}", permanent=False) from exc

    async def _send(self, sender: str, recipient: str, message: bytes, *, fresh: bool) -> None:
        """One mail transaction (MAIL, RCPT, DATA) on a pooled connection."""
        async with self.pool.connection(fresh=fresh) as (client, reused):
            options = [f"SIZE={wire_size(message)}"] if client.supports_extension("size") else []
            try:
                await client.mail(sender, options=options)
            except ConnectionError as exc:  # aiosmtplib's SMTPServerDisconnected among them
                if reused:
                    raise StaleConnection from exc
                raise
            except aiosmtplib.SMTPSenderRefused as exc:
                # 421: the relay is closing this session (RFC 5321 §3.8), not refusing the mail
                if reused and exc.code == 421:
                    raise StaleConnection from exc
                raise
            try:
                await client.rcpt(recipient)
            except aiosmtplib.SMTPRecipientRefused as exc:
                # one recipient, all refused: reported as aiosmtplib's sendmail reports it
                raise aiosmtplib.SMTPRecipientsRefused([exc]) from exc
            await client.data(message)

    async def _connect(self) -> aiosmtplib.SMTP:
        if self._local_hostname is None:
            # what aiosmtplib would look up for every connection; our name does not change
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        security = self.settings.security
        client = aiosmtplib.SMTP(
            hostname=self.settings.host,
            port=self.settings.port,
            username=self.settings.username,
            password=self.settings.password,
            use_tls=security == "tls",
            start_tls=True if security == "starttls" else (None if security == "tls" else False),
            timeout=self.timeout,  # each step; the whole send is bounded by send()
            local_hostname=self._local_hostname,
        )
        await client.connect()
        try:
            if client.is_ehlo_or_helo_needed:
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    if not client.is_connected:
                        raise
                    await client.helo()  # an SMTP server without ESMTP
        except BaseException:
            client.close()
            raise
        return client

    async def close(self) -> None:
        """Close the pooled connections (app cleanup)."""
        await self.pool.close()


def voicemail_message(
    *,
    to: str,
    destination: str,
    caller_hint: str,
    recording_url: str,
    duration_seconds: int | None,
    call_sid: str,
) -> bytes:
    """The email that tells a destination about a voicemail (SPEC §3 step 5)."""
    message = EmailMessage()
    message["From"] = Address("Switchboard", "switchboard", "localhost")
    message["To"] = to
    message["Subject"] = f"Voicemail for {destination} ({caller_hint})"
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="switchboard.invalid")
    message["X-Switchboard-Destination"] = destination
    message["X-Switchboard-Reason"] = "unanswered"
    message["X-Switchboard-Call"] = call_sid
    length = f"{duration_seconds} s" if duration_seconds is not None else "unknown length"
    message.set_content(
        f"A caller left a voicemail ({length}) after nobody answered.\n\n"
        f"Recording: {recording_url}\n"
        f"Call: {call_sid}\n"
    )
    return message.as_bytes()


def bare_address(value: str) -> str:
    return parseaddr(value)[1].lower()
