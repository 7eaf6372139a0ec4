"""The channel-neutral vocabulary of a contact.

Everything a provider sends is turned into a :class:`Contact` before any routing logic sees
it, so nothing here may mention a vendor (no CallSid, no TwiML, no MIME). Pure values only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Channel(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    CHAT = "chat"


class Category(StrEnum):
    ADMIN = "admin"
    PRODUCT = "product"
    UNKNOWN = "unknown"


class Side(StrEnum):
    BASELINE = "baseline"
    TARGET = "target"


class Reason(StrEnum):
    """Why a contact went where it went; the first two simply name the side used."""

    TARGET = "target"
    BASELINE = "baseline"
    AFTER_HOURS = "after_hours"
    CLOSED = "closed"
    UNANSWERED = "unanswered"
    # the caller hung up in the IVR menu, before any destination was chosen: recorded from
    # the call's status callback, with no destination ("")
    ABANDONED = "abandoned"


class CategorySource(StrEnum):
    """How the category of a contact was decided (logged and stored for audits)."""

    DIGIT = "digit"  # IVR key press
    SPEECH = "speech"  # IVR speech result through the text classifier
    NO_INPUT = "no_input"  # IVR timed out or an unmapped key: ivr.no_input
    TEXT = "text"  # email or chat text through the text classifier
    THREAD = "thread"  # a reply keeps the category of its thread's first contact
    HANGUP = "hangup"  # the caller hung up in the IVR before choosing (category unknown)


@dataclass(frozen=True, slots=True)
class Contact:
    """One inbound contact, as the core sees it.

    ``customer_key`` is already normalised (E.164 number, lower-cased address, chat id) and
    may be empty when the provider gave nothing usable; the bucket is derived from it alone.
    A message names the thread it belongs to by ``references`` (the provider ids of earlier
    messages: an email's In-Reply-To and References) or by ``conversation_id`` (a chat).
    """

    channel: Channel
    provider_id: str
    customer_key: str
    received_at: datetime
    digits: str | None = None
    text: str = ""
    language: str | None = None
    thread_category: Category | None = None
    references: tuple[str, ...] = ()
    conversation_id: str | None = None


_E164 = re.compile(r"^\+[1-9]\d{7,14}$")


def phone_customer_key(number: str) -> str:
    """A caller's stable identity (SPEC §1): the E.164 number, a SIP URI, or "" for a
    withheld number. Calls and text messages from one number share it, so the customer
    lands on the same side of a cut-over on both."""
    number = number.strip().replace(" ", "")
    if _E164.match(number):
        return number
    if number.lower().startswith("sip:"):
        return number.lower()
    return ""


_PHONE_PUNCTUATION = re.compile(r"[\s\-().]")


def searched_customer_key(text: str) -> str:
    """The customer key an operator means by *text*, normalised as the channel parsers
    normalise it, so its keyed hash matches the stored one; ValueError saying why not.

    ``+…`` or ``00…`` is a phone number (spaces, dashes, dots and brackets dropped; E.164
    or refused); ``sip:…`` a SIP URI; anything with ``@`` an email address (lower-cased);
    anything else a chat customer id, as the chat webhook keeps it (trimmed)."""
    value = text.strip()
    if not value:
        raise ValueError("give a phone number, an email address or a chat customer id")
    if value.lower().startswith("sip:"):
        return value.lower()
    if "@" in value:
        local, _, domain = value.rpartition("@")
        if not local or "." not in domain or any(c.isspace() or c in "<>," for c in value):
            raise ValueError(f"{value!r} is not an email address (name@example.com)")
        return value.lower()
    compact = _PHONE_PUNCTUATION.sub("", value)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if compact.startswith("+"):
        key = phone_customer_key(compact)
        if not key:
            raise ValueError(f"{value!r} is not a phone number in E.164 form (+420601234567)")
        return key
    return value
