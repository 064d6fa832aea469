"""Typed application keys: what the app factory puts on the app for handlers to use."""

from __future__ import annotations

from aiohttp import web

from oncall.clock import Clock
from oncall.directory.holder import DirectoryHolder
from oncall.runtime import Runtime
from oncall.settings import Settings
from oncall.tls import Certificates

SETTINGS = web.AppKey("settings", Settings)
DIRECTORY = web.AppKey("directory", DirectoryHolder)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
RUNTIME = web.AppKey("runtime", Runtime)
# Only when [server] tls_cert_file is set: what the HTTPS listener presents.
CERTIFICATES = web.AppKey("certificates", Certificates)
