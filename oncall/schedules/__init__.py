"""Schedules: who is on call, by rotations in real time zones and overrides."""
