"""Routing: which escalation policy an incident follows, by Alertmanager label matchers."""
