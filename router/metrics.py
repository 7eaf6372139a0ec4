"""Prometheus metrics, one registry per application (so tests can run many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.contacts_routed = Counter(
            "switchboard_contacts_routed",
            "Contacts routed, by where they went and why.",
            ["channel", "category", "side", "destination", "reason"],
            registry=self.registry,
        )
        self.contacts_unrecorded = Counter(
            "switchboard_contacts_unrecorded",
            "Contacts answered while the database could not be written (logged in full).",
            ["channel"],
            registry=self.registry,
        )
        self.signatures_rejected = Counter(
            "switchboard_signatures_rejected",
            "Webhook requests refused for a missing or bad signature.",
            ["provider"],
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "switchboard_decision_seconds",
            "Time from a webhook's arrival to its answer being durable.",
            ["channel"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.outbox_attempts = Counter(
            "switchboard_outbox_attempts",
            "Forward attempts (email over SMTP, chat hand-offs) by how they ended: delivered, "
            "retry (will try again), fallback (moved to the fallback destination), failed.",
            ["kind", "destination", "result"],
            registry=self.registry,
        )
        self.outbox_forwards = Gauge(
            "switchboard_outbox_forwards",
            "Forwards in the outbox now (shared by every replica), pending or failed.",
            ["status"],
            registry=self.registry,
        )
        self.outbox_oldest_pending_seconds = Gauge(
            "switchboard_outbox_oldest_pending_seconds",
            "Age of the longest-waiting pending forward (0 when none waits).",
            registry=self.registry,
        )
        # per destination (and kind): where a stuck or failing one shows
        self.outbox_in_flight = Gauge(
            "switchboard_outbox_in_flight",
            "Forwards this process has claimed and not yet recorded, by destination.",
            ["kind", "destination"],
            registry=self.registry,
        )
        self.outbox_consecutive_failures = Gauge(
            "switchboard_outbox_consecutive_failures",
            "Failed attempts in a row to a destination, as this process saw them (0: its "
            "last attempt succeeded).",
            ["kind", "destination"],
            registry=self.registry,
        )
        self.outbox_send_seconds = Histogram(
            "switchboard_outbox_send_seconds",
            "How long one attempt to send a forward took, whatever came of it.",
            ["kind", "destination"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.outbox_destination_pending = Gauge(
            "switchboard_outbox_destination_pending",
            "Pending forwards in the outbox (shared by every replica), by destination.",
            ["kind", "destination"],
            registry=self.registry,
        )
        self.outbox_destination_oldest_pending_seconds = Gauge(
            "switchboard_outbox_destination_oldest_pending_seconds",
            "Age of a destination's longest-waiting pending forward (0 when none waits).",
            ["kind", "destination"],
            registry=self.registry,
        )
        self.database_writable = Gauge(
            "switchboard_database_writable",
            "1 when the last readiness probe could open a write transaction, else 0.",
            registry=self.registry,
        )
        self.routing_version = Gauge(
            "switchboard_routing_version",
            "The routing version this process routes by.",
            registry=self.registry,
        )
