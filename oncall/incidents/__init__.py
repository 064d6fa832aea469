"""Incidents: their lifecycle (triggered, acknowledged, resolved), alerts and timeline."""
