"""The credential of the operational endpoints' details in tests: the metrics token every
test client and test process is given (`make_settings`, `ServiceProcess`)."""

from __future__ import annotations

OPS_TOKEN = "ops-token-0123456789abcdefghijklmnopqrstuv"
# Headers that show /health's checks and /metrics on the main port.
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}
OPS_ENV = {"ONCALL_SERVER_METRICS_TOKEN": OPS_TOKEN}
