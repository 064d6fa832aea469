"""Escalation: policies' levels paged in turn until somebody acknowledges."""
