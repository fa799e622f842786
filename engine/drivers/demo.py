"""`builtin:demo`: a simulated agent with steps, tool calls, pace and failures.

What `agentdeck demo` and the benchmarks use to make load. Its choices come
from a generator seeded by the run id, so a given run always does the same.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from dataclasses import dataclass
from typing import Any

from engine.drivers.base import RunContext, RunFailed
from store.catalog import StepStarted, ToolCompleted, ToolStarted

TOOLS = ("read_file", "grep", "run_tests", "edit_file", "web_search", "shell")
VERBS = (
    "inspect the repository",
    "plan the change",
    "edit the code",
    "run the tests",
    "read the logs",
    "summarise findings",
)


@dataclass(frozen=True)
class DemoSettings:
    pace: float = 0.2  # seconds between steps
    steps: int = 3
    fail_rate: float = 0.1
    tool_rate: float = 0.7

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> DemoSettings:
        known = {k: values[k] for k in ("pace", "steps", "fail_rate", "tool_rate") if k in values}
        return cls(**known)


class DemoDriver:
    def __init__(self, settings: DemoSettings = DemoSettings()) -> None:
        self.settings = settings

    async def run(self, ctx: RunContext) -> str:
        s = self.settings
        rng = random.Random(zlib.crc32(ctx.input.run_id.encode()))
        await ctx.phase("executing")
        for step in range(1, s.steps + 1):
            verb = VERBS[rng.randrange(len(VERBS))]
            await ctx.event(
                "run.step.started", f"step {step}: {verb}", StepStarted(step=step, title=verb)
            )
            if rng.random() < s.tool_rate:
                tool = TOOLS[rng.randrange(len(TOOLS))]
                await ctx.event("run.tool.started", f"tool {tool}", ToolStarted(step=step, tool=tool))
                await asyncio.sleep(s.pace)
                took = rng.randint(5, 900)
                await ctx.event(
                    "run.tool.completed",
                    f"tool {tool} done in {took} ms",
                    ToolCompleted(step=step, tool=tool, duration_ms=took),
                )
            else:
                await asyncio.sleep(s.pace)
        await ctx.phase("verifying")
        if rng.random() < s.fail_rate:
            raise RunFailed("demo failure: the simulated tests did not pass")
        answer = f"done: {ctx.input.content[:60]}"
        await ctx.output("assistant", answer)
        return answer

    async def close(self) -> None:
        return None
