"""Typed application keys: what the app factory puts on the app for handlers to use."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from oncall.clock import Clock
from oncall.config import Settings
from oncall.db import Database
from oncall.directory import DirectoryHolder
from oncall.notifier import Notifier
from oncall.reconcile import Reconciler
from oncall.service import Service
from oncall.timer import Timers

SETTINGS = web.AppKey("settings", Settings)
DIRECTORY = web.AppKey("directory", DirectoryHolder)
CLOCK = web.AppKey("clock", Clock)
DATABASE = web.AppKey("database", Database)
SERVICE = web.AppKey("service", Service)
REDIS = web.AppKey("redis", Redis)
TIMERS = web.AppKey("timers", Timers)
RECONCILER = web.AppKey("reconciler", Reconciler)
NOTIFIER = web.AppKey("notifier", Notifier)
LINK_KEY = web.AppKey("link_key", bytes)
