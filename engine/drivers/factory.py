"""Which driver a worker's profile asks for."""

from __future__ import annotations

from engine.drivers.base import Driver, WorkerContext
from engine.drivers.command import CommandDriver
from engine.drivers.demo import DemoDriver, DemoSettings
from engine.drivers.echo import EchoDriver
from engine.profiles import BuiltinProfile, CommandProfile


def make_driver(profile: BuiltinProfile | CommandProfile, worker: WorkerContext) -> Driver:
    """A new driver for one worker (a command profile's, `builtin:demo` or `builtin:echo`)."""
    if isinstance(profile, CommandProfile):
        return CommandDriver(profile, worker)
    if profile.builtin == "demo":
        return DemoDriver(DemoSettings.from_mapping(profile.demo))
    return EchoDriver()
