"""Twilio Messaging (SMS and WhatsApp) as the chat channel: inbound message webhook form
(Twilio's "Messaging webhook request" fields) and the TwiML <Message> acknowledgement."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from twilio.twiml.messaging_response import MessagingResponse

from router.core.contact import Channel, Contact, phone_customer_key

MESSAGING_PATH = "/webhooks/twilio/messaging"


@dataclass(frozen=True, slots=True)
class InboundMessage:
    message_sid: str
    customer_key: str  # the E.164 number: the same bucket as the customer's calls
    medium: str  # "sms" or "whatsapp": one conversation per number and medium
    text: str

    def contact(self, *, received_at: datetime, language: str, customer_hash: str) -> Contact:
        """The message as a chat contact. Its conversation is the customer's on this medium,
        named by *customer_hash* (the keyed hash of :attr:`customer_key`, which the caller
        also stores): the raw number is never stored."""
        return Contact(
            channel=Channel.CHAT,
            provider_id=self.message_sid,
            customer_key=self.customer_key,
            received_at=received_at,
            text=self.text,
            language=language,
            conversation_id=f"{self.medium}:{customer_hash[:32]}",
        )


def parse_message(form: Mapping[str, str]) -> InboundMessage:
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    if not sid:
        raise ValueError("MessageSid is missing")
    sender = form.get("From", "").strip()
    medium, _, number = sender.rpartition(":")
    key = phone_customer_key(number)
    return InboundMessage(
        message_sid=sid,
        customer_key=key or sender.lower(),
        medium=medium.lower() or "sms",
        text=form.get("Body", "").strip(),
    )


def render_acknowledgement(text: str | None) -> str:
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response.to_xml())
