"""Switchboard's own request signature (SPEC §5), for /webhooks/chat, /webhooks/email/mime,
/webhooks/partner/feedback and the chat hand-offs we send.

``X-Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``;
a timestamp more than 5 minutes off is refused like a bad signature, so a captured request
cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Switchboard-Signature"
TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(
        secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def unix_seconds(text: str) -> int | None:
    """*text* as whole unix seconds, or None unless it is 1 to 12 ASCII digits. Longer is no
    clock reading, and would not even convert to a float to be compared with one
    (OverflowError); ``str.isdigit`` alone also passes "²", which ``int`` refuses."""
    text = text.strip()
    if not (0 < len(text) <= 12 and text.isascii() and text.isdigit()):
        return None
    return int(text)


def verify(secret: str, body: bytes, header: str, now: float) -> str | None:
    """None when *header* signs *body* within the tolerance, else why not (for the log)."""
    if not header:
        return "signature missing"
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    timestamp = unix_seconds(fields.get("t", [""])[0])
    if timestamp is None:
        return "signature has no valid t="
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        return "signature timestamp more than 5 minutes off"
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    given = [c.encode("utf-8", "surrogateescape") for c in fields.get("v1", [])]
    if not any(hmac.compare_digest(expected.encode("ascii"), candidate) for candidate in given):
        return "signature does not match"
    return None
