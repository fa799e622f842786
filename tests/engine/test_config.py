"""A runtime hosted with a profile file follows its changes live (config_path)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.profiles import CommandProfile
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.models import RunStatus
from tests.engine.conftest import HostFactory, eventually, program, transcript_text, wait_run


def toml_list(argv: list[str]) -> str:
    return json.dumps(argv)  # a JSON list of strings is a TOML array


def said(entries: list[tuple[str, str]]) -> str:
    return "\n".join(text for role, text in entries if role == "assistant")


async def config_errors(rt: Runtime) -> list[str]:
    return [d.message for d in await rt.diagnostics() if d.code == "config.invalid"]


async def test_profiles_follow_the_file_and_running_workers_keep_theirs(
    host: HostFactory, tmp_path: Path
) -> None:
    config = tmp_path / "agentdeck.toml"
    config.write_text(f"[profiles.coder]\ncommand = {toml_list(program('agent.py'))}\n")
    rt = await host(config_path=config)
    old = await rt.create_worker(CreateWorkerRequest(profile="coder"))

    config.write_text(
        f'default_profile = "helper"\n\n'
        f"[profiles.coder]\ncommand = {toml_list(program('stdio.py', '--new'))}\n\n"
        f'[profiles.helper]\nbuiltin = "demo"\ndemo = {{ pace = 0.01, fail_rate = 0.0 }}\n'
    )

    def reloaded() -> bool:
        return "helper" in rt.profiles.profiles

    await eventually(reloaded, 10, "the new profiles")
    new = await rt.create_worker(CreateWorkerRequest(profile="coder"))
    default = await rt.create_worker(CreateWorkerRequest())
    assert default.spec.profile == "helper"

    for ref, text in ((old.ref, "old worker"), (new.ref, "new worker")):
        ack = await rt.send_input(ref, text)
        assert (await wait_run(rt, ack.run_id)).status is RunStatus.COMPLETED
    # The worker made before the change still runs the program it was made with.
    assert "answer: old worker" in said(await transcript_text(rt, old.ref))
    assert "arg: --new" in said(await transcript_text(rt, new.ref))


async def test_an_invalid_file_keeps_the_last_good_profiles_and_names_the_line(
    host: HostFactory, tmp_path: Path
) -> None:
    config = tmp_path / "agentdeck.toml"
    config.write_text(f"[profiles.coder]\ncommand = {toml_list(program('agent.py'))}\n")
    rt = await host(config_path=config)
    good = rt.profiles
    assert isinstance(good.resolve("coder"), CommandProfile)

    config.write_text('[profiles.coder]\ncommand = ["x"]\ntimeout = "soon"\n# a longer file\n')
    errors = await eventually(lambda: config_errors(rt), 10, "a config.invalid diagnostic")
    assert len(errors) == 1
    assert f"{config}:3" in errors[0] and "timeout" in errors[0]
    diagnostic = next(d for d in await rt.diagnostics() if d.code == "config.invalid")
    assert diagnostic.severity.value == "error"
    assert rt.profiles == good
    w = await rt.create_worker(CreateWorkerRequest(profile="coder"))
    ack = await rt.send_input(w.ref, "still works")
    assert (await wait_run(rt, ack.run_id)).status is RunStatus.COMPLETED


async def test_a_file_invalid_from_the_start_is_reported_once_the_runtime_is_open(
    host: HostFactory, tmp_path: Path
) -> None:
    config = tmp_path / "agentdeck.toml"
    config.write_text("[profiles.coder\n")
    rt = await host(config_path=config)
    errors = await config_errors(rt)
    assert len(errors) == 1 and f"{config}:1" in errors[0]
    # Only the builtins meanwhile.
    w = await rt.create_worker(CreateWorkerRequest())
    assert w.spec.profile == "builtin:echo"


async def test_a_missing_file_means_only_the_builtins(host: HostFactory, tmp_path: Path) -> None:
    rt = await host(config_path=tmp_path / "nothing-here.toml")
    assert await config_errors(rt) == []
    assert (await rt.create_worker(CreateWorkerRequest(profile="builtin:demo"))).spec.profile == (
        "builtin:demo"
    )
