"""Who may log in to the web UI: passwords (argon2 hashes), checked off the event loop."""
