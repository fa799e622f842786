"""Waiting in Pilot tests: pause the app until what the test waits for is on screen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot


async def until(
    pilot: Pilot[Any], condition: Callable[[], bool], timeout: float = 15.0, step: float = 0.02
) -> None:
    """Let the app run until `condition()` holds; AssertionError after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {condition}")
        await pilot.pause(step)
