"""Forwarding email over SMTP (aiosmtplib): the outbox's sender for ``email`` rows.

The forwarded message is the original, byte for byte, with ``X-Switchboard-*`` headers
added (and card numbers masked toward external destinations), built at send time by
integrations/email_message.py so a redirect to the fallback re-decides the masking.
Failures follow RFC 5321 reply classes: 5xx is permanent, 4xx and connection trouble are
worth a retry.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import aiosmtplib

from integrations.email_message import forwarded
from router.service.ports import Delivery, DeliveryError
from router.settings import SmtpSettings

SEND_TIMEOUT_SECONDS = 60.0


def added_headers(delivery: Delivery) -> dict[str, str]:
    return {
        "X-Switchboard-Category": str(delivery.meta.get("category", "")),
        "X-Switchboard-Destination": delivery.destination,
        "X-Switchboard-Reason": str(delivery.meta.get("reason", "")),
        "X-Switchboard-Interaction": str(delivery.interaction_id),
    }


class SmtpSender:
    def __init__(self, settings: SmtpSettings, *, envelope_from: str | None = None) -> None:
        self.settings = settings
        self.envelope_from = envelope_from

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
        security = self.settings.security
        client = aiosmtplib.SMTP(
            hostname=self.settings.host,
            port=self.settings.port,
            username=self.settings.username,
            password=self.settings.password,
            use_tls=security == "tls",
            start_tls=True if security == "starttls" else (None if security == "tls" else False),
            timeout=SEND_TIMEOUT_SECONDS,
        )
        try:
            async with client:
                # sendmail, not send(): an empty sender is the null reverse-path "<>"
                await client.sendmail(sender, [delivery.address], self.message(delivery))
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refusal.code for refusal in exc.recipients]
            raise DeliveryError(
                f"recipient refused: {exc}", permanent=all(500 <= c < 600 for c in codes)
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP {exc.code}: {exc.message}", permanent=500 <= exc.code < 600
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(f"SMTP unreachable: {exc}", permanent=False) from exc


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
