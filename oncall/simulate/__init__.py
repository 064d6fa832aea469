"""The simulator: who would be paged, on what and when, if an alert fired at a moment.

It computes with the engine's own pure decisions (routing, the opening, maintenance,
escalation steps, on-call resolution, notification rules, the storm guard, wakes) on the
directory and what the database holds, and writes nothing.
"""
