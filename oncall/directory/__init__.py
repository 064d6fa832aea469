"""The directory: who may send alerts, who is paged, and how incidents escalate."""
