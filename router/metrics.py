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
        self.routing_version = Gauge(
            "switchboard_routing_version",
            "The routing version this process routes by.",
            registry=self.registry,
        )
