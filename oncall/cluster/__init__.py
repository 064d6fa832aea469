"""Which instance runs the timers: the leader on PostgreSQL, the only one on SQLite."""
