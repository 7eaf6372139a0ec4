"""The archive: finding recorded contacts and everything that happened to one of them.

"Where is the recording of the call this customer is complaining about, and what happened
to their contact?" A customer is looked up by the keyed hash of their key (the raw number
or address is never stored, so it cannot be searched for as such): the operator's text is
normalised by the core (:func:`router.core.contact.searched_customer_key`) and hashed here
with the service's own secret, exactly as :func:`router.service.contacts.customer_hash`
hashed it when the contact arrived. A provider id holding a card number was stored as its
keyed hash (:func:`router.core.masking.identifier_without_cards`), so it is searched as one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from router.core.masking import identifier_without_cards
from router.service.contacts import customer_hash
from router.service.records import InteractionSearch
from router.service.views import interaction_detail_json, interaction_json
from router.store import Store


async def find_interactions(
    store: Store, search: InteractionSearch, *, customer_key: str | None, secret: bytes
) -> list[dict[str, Any]]:
    """The interactions *search* names, newest first, as ``interactions --format json``
    prints them; with *customer_key* (normalised) only that customer's."""
    if customer_key is not None:
        search = replace(search, customer_hash=customer_hash(secret, customer_key))
    if search.provider_id is not None:  # as stored: one holding a card number, its hash
        search = replace(search, provider_id=identifier_without_cards(search.provider_id, secret))
    return [interaction_json(row) for row in await store.search_interactions(search)]


async def interaction_detail(store: Store, interaction_id: int) -> dict[str, Any] | None:
    """Everything about one interaction (``interactions show``); None when there is none."""
    row = await store.interaction(interaction_id)
    if row is None:
        return None
    attempts = await store.attempts_of(interaction_id)
    forwards = await store.forwards_of(interaction_id)
    return interaction_detail_json(row, attempts, forwards)
