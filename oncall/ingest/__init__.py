"""Ingest: alerts from Alertmanager, PagerDuty Events v2 and heartbeats, deduplicated into
incidents."""
