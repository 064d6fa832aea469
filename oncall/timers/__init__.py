"""Timers: APScheduler's Redis job stores wake the process; the database says what is due."""
