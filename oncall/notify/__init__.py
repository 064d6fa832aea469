"""Notifications: the outbox of pages, their delivery per channel, retries and signed links."""
