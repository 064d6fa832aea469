"""Importers: `python app.py import pagerduty|opsgenie|grafana-oncall` reads a vendor's REST
API and writes a directory file.

Each vendor module (`pagerduty`, `opsgenie`, `grafana_oncall`) reads through `http.ApiClient`
and converts what it read into `directory_writer.ImportedDirectory` (plain data, pure); the
writer turns that into YAML the directory parser accepts, with a `#` comment wherever
something could not be carried over. `cli.main` ties them together.
"""
