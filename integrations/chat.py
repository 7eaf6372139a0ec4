"""Chat: the inbound webhook's JSON and the hand-off we POST to a destination (SPEC §5).

Inbound ``POST /webhooks/chat``: ``{conversation_id, customer_id, text, language?, sent_at?,
message_id?}`` signed with X-Switchboard-Signature. Outbound hand-off: JSON ``{interaction_id,
conversation_id, customer_id, text, language, category, reason, destination}`` signed the
same way; any 2xx is delivery, 4xx other than 408 and 429 is permanent. One timeout
(``SWITCHBOARD_CHAT_TIMEOUT``) bounds a whole hand-off; an endpoint that does not answer in
time, or answers something that is not HTTP, is a failure worth a retry.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from integrations import signing
from router.core.contact import Channel, Contact
from router.core.jsondata import parse_json
from router.core.masking import mask_cards
from router.core.problems import problems_of
from router.service.ports import Delivery, DeliveryError

#: The whole of one hand-off (connecting, sending, the answer), unless the sender is told
HANDOFF_TIMEOUT_SECONDS = 15.0
_RETRYABLE_4XX = frozenset({408, 429})


class ChatFormatError(ValueError):
    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['path']}: {p['message']}" for p in problems))
        self.problems = problems


class _ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    conversation_id: str = Field(min_length=1, max_length=200)
    customer_id: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=20_000)
    language: str | None = Field(default=None, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z]{2})?$")
    sent_at: datetime | None = None
    message_id: str | None = Field(default=None, min_length=1, max_length=200)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    provider_id: str
    conversation_id: str
    customer_id: str
    text: str
    language: str | None

    def contact(self, received_at: datetime) -> Contact:
        """The message as the core sees it: the customer id is the customer key, and the
        conversation names the thread (its first message decides the category)."""
        return Contact(
            channel=Channel.CHAT,
            provider_id=self.provider_id,
            customer_key=self.customer_id,
            received_at=received_at,
            text=self.text,
            language=self.language,
            conversation_id=self.conversation_id,
        )


def parse_chat(body: bytes) -> ChatMessage:
    """The message in *body*; :class:`ChatFormatError` listing every problem by path."""
    try:
        data = parse_json(body)
    except ValueError as exc:
        raise ChatFormatError([{"path": "(body)", "message": f"not JSON: {exc}"}]) from exc
    try:
        message = _ChatMessage.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"path": problem.path, "message": problem.message}
            for problem in problems_of(exc, data, root="(body)")
        ]
        raise ChatFormatError(problems) from exc
    # without a message id, the raw body identifies the message: a redelivery is the same
    provider_id = message.message_id or "sha256:" + hashlib.sha256(body).hexdigest()
    return ChatMessage(
        provider_id=provider_id,
        conversation_id=message.conversation_id,
        customer_id=message.customer_id,
        text=message.text,
        language=message.language,
    )


def handoff_body(delivery: Delivery) -> bytes:
    """The hand-off JSON; the text is masked toward external destinations."""
    text = delivery.payload.decode("utf-8")
    meta = delivery.meta
    body: dict[str, Any] = {
        "interaction_id": delivery.interaction_id,
        "conversation_id": meta.get("conversation_id"),
        "customer_id": meta.get("customer_id"),
        "text": mask_cards(text) if delivery.external else text,
        "language": meta.get("language"),
        "category": meta.get("category"),
        "reason": meta.get("reason"),
        "destination": delivery.destination,
    }
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


class ChatSender:
    """POSTs hand-offs to destinations' chat URLs with one shared client session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        secret: str | None,
        *,
        timeout_seconds: float = HANDOFF_TIMEOUT_SECONDS,
    ) -> None:
        self.session = session
        self.secret = secret
        self.timeout_seconds = timeout_seconds
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def send(self, delivery: Delivery) -> None:
        body = handoff_body(delivery)
        headers = {"Content-Type": "application/json"}
        if self.secret is not None:
            headers[signing.HEADER] = signing.sign(self.secret, body, int(time.time()))
        try:
            async with self.session.post(
                delivery.address, data=body, headers=headers, timeout=self.timeout
            ) as response:
                if 200 <= response.status < 300:
                    return
                detail = (await response.text())[:200]
                permanent = 400 <= response.status < 500 and response.status not in _RETRYABLE_4XX
                raise DeliveryError(f"HTTP {response.status}: {detail}", permanent=permanent)
        except TimeoutError as exc:
            raise DeliveryError(
                f"chat endpoint: no answer within {self.timeout_seconds:g} s", permanent=False
            ) from exc
        except aiohttp.ClientError as exc:
            # refused, reset, or an answer that is not HTTP (aiohttp reports that as a
            # ClientResponseError of status 400: not the endpoint's 400, so not permanent)
            raise DeliveryError(f"chat endpoint unreachable: {exc}", permanent=False) from exc
