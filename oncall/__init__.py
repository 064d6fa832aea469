"""oncall: self-hosted on-call alerting and escalation."""

__version__ = "0.1.0"
