"""`builtin:echo`: answers each input through the whole run lifecycle, deterministically."""

from __future__ import annotations

from engine.drivers.base import RunContext


class EchoDriver:
    async def run(self, ctx: RunContext) -> str:
        await ctx.phase("executing")
        answer = f"echo: {ctx.input.content}"
        await ctx.output("assistant", answer)
        await ctx.phase("verifying")
        return answer

    async def close(self) -> None:
        return None
