"""Maintenance windows: paging nobody for what they cover while they are open."""
