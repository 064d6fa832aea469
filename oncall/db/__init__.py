"""The database: the one truth of the service. SQLite (embedded) or PostgreSQL."""
