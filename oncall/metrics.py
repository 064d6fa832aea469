"""Prometheus metrics: one registry per app (so several apps in one process never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.alerts = Counter(
            "oncall_alerts_received",
            "Alerts received, by integration and outcome (accepted, invalid, unauthorized).",
            ["integration", "outcome"],
            registry=r,
        )
        self.incidents = Counter(
            "oncall_incidents",
            "Incident transitions (opened, acknowledged, resolved).",
            ["event"],
            registry=r,
        )
        self.steps = Counter(
            "oncall_escalation_steps",
            "Escalation step runs, by outcome (fired, stale, failed).",
            ["outcome"],
            registry=r,
        )
        self.lateness = Histogram(
            "oncall_escalation_step_lateness_seconds",
            "How late each fired step was (fired minus due).",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.notifications = Counter(
            "oncall_notification_attempts",
            "Delivery attempts, by channel and outcome (delivered, retry, permanent).",
            ["channel", "outcome"],
            registry=r,
        )
        self.reconciles = Counter(
            "oncall_reconcile_runs", "Reconciler passes, by outcome.", ["outcome"], registry=r
        )
        self.swept = Counter(
            "oncall_sweep_started",
            "Timers the database sweep started while Redis was unhealthy.",
            registry=r,
        )
        self.foreign_jobs = Counter(
            "oncall_foreign_jobs",
            "Jobs written by another deployment that fired from this one's job stores.",
            registry=r,
        )
        self.pings = Counter(
            "oncall_pings",
            "Ticks of [monitoring] ping_url, by outcome (sent, failed, withheld: unhealthy).",
            ["outcome"],
            registry=r,
        )
        self.repairs = Counter(
            "oncall_reconcile_repairs", "Timers the reconciler recreated.", registry=r
        )
        self.requests = Histogram(
            "oncall_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route", "method", "status"],
            registry=r,
        )
        self.pending = Gauge(
            "oncall_jobs_pending", "Jobs in each job store.", ["store"], registry=r
        )
        self.overdue = Gauge(
            "oncall_escalation_steps_overdue",
            "Steps due more than 30 s ago and not fired.",
            registry=r,
        )
        self.failed_steps = Gauge(
            "oncall_escalation_steps_failed",
            "Steps marked failed, waiting for the reconciler.",
            registry=r,
        )
        self.failed_notifications = Gauge(
            "oncall_notifications_failed", "Dead letters: notifications that failed.", registry=r
        )

        self.cluster_leader = Gauge(
            "oncall_cluster_leader",
            "1 while this instance leads (runs the timers), 0 while it follows.",
            registry=r,
        )
        self.cluster_term = Gauge(
            "oncall_cluster_term", "The leader's lease term this instance last saw.", registry=r
        )
        self.leader_since = Gauge(
            "oncall_cluster_leader_since_seconds",
            "When the current leader took the lease (Unix time), as this instance last saw.",
            registry=r,
        )
        self.elections = Counter(
            "oncall_cluster_elections", "Times this instance became the leader.", registry=r
        )
        self.step_downs = Counter(
            "oncall_cluster_step_downs",
            "Times this instance stopped leading, by reason (lost, released).",
            ["reason"],
            registry=r,
        )

    def value(self, counter: str, **labels: str) -> float:
        """Return a counter's total so far (0 before its first increment)."""
        return self.registry.get_sample_value(f"{counter}_total", labels) or 0.0
