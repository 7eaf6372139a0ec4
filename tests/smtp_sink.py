"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives, and can be told
to refuse (4xx/5xx) or be stopped and started again on the same port."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Mailbox:
    """The handler: records messages; *refuse_rcpt* maps an address to an SMTP reply.

    It also counts what a client's connection handling shows: EHLOs, the connections that
    sent MAIL (by peer address) and every MAIL. *messages_per_connection* makes it a relay
    that ends a session after that many messages: the next MAIL gets *end_reply* and the
    connection is closed, or with *end_reply* None the connection is closed right after the
    last message is accepted. *refuse_mail* answers every MAIL with that reply;
    *hang_up_at_mail* closes the connection instead of answering; *data_delay* seconds pass
    before a message is accepted (a slow relay)."""

    received: list[Received] = field(default_factory=list)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    refuse_data: str | None = None
    #: (envelope sender, recipient): that RCPT gets a 550
    refuse_pairs: set[tuple[str, str]] = field(default_factory=set)
    refuse_mail: str | None = None
    hang_up_at_mail: bool = False
    data_delay: float = 0.0
    messages_per_connection: int | None = None
    end_reply: str | None = "421 4.4.2 session ended"
    ehlos: int = 0
    mails: int = 0
    peers: set[Any] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.lock:
            self.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        with self.lock:
            self.mails += 1
            self.peers.add(session.peer)
        if self.hang_up_at_mail:
            server.transport.close()
            return "421 4.4.2 not sent: the connection is closed"
        limit = self.messages_per_connection
        if limit is not None and getattr(session, "messages", 0) >= limit and self.end_reply:
            # the reply is written before the loop runs the close
            asyncio.get_running_loop().call_soon(server.transport.close)
            return self.end_reply
        if self.refuse_mail is not None:
            return self.refuse_mail
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self.refuse_rcpt.get(address.lower())
        if refusal is not None:
            return refusal
        if (envelope.mail_from, address.lower()) in self.refuse_pairs:
            return "550 5.7.1 not accepted from this sender"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.refuse_data is not None:
            return self.refuse_data
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
        session.messages = getattr(session, "messages", 0) + 1
        limit = self.messages_per_connection
        if limit is not None and session.messages >= limit and self.end_reply is None:
            asyncio.get_running_loop().call_soon(server.transport.close)
        return "250 Message accepted"

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [item for item in self.received if address in item.rcpt_tos]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SmtpSink:
    def __init__(self, port: int | None = None) -> None:
        self.mailbox = Mailbox()
        self.port = port or free_port()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(
            self.mailbox, hostname="127.0.0.1", port=self.port, decode_data=False
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def wait_for(self, count: int, *, within: float = 10.0) -> list[Received]:
        """The messages received once there are *count* (bounded wait)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self.mailbox.lock:
                if len(self.mailbox.received) >= count:
                    return list(self.mailbox.received)
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"expected {count} message(s) within {within} s, got {len(self.mailbox.received)}"
        )
