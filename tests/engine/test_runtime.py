"""Runtime operations on a real SQLite file: lifecycle, workers, reads, limits, orders of checks."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from engine.clock import CountingIds, SteppingClock
from engine.errors import (
    InvalidRequest,
    LimitTooLarge,
    RuntimeStopped,
    WorkerNotFound,
    WorkerNotRunning,
    WrongRuntime,
    WrongRuntimeCursor,
)
from engine.profiles import parse_profiles
from engine.results import CreateWorkerRequest, EventCursor
from engine.rooms import Room
from engine.runtime import Runtime
from store.event_store import EventStore
from store.models import (
    AssistantIntent,
    Capability,
    Limits,
    NamedRef,
    RoleIntent,
    RunStatus,
    RuntimeStatus,
    TaskIntent,
    WorkerRef,
    WorkerStatus,
)
from tests.engine.conftest import (
    HostFactory,
    all_events,
    demo_profile,
    profile_set,
    wait_run,
)

# -- runtime lifecycle -----------------------------------------------------------


async def test_a_new_runtime_starts_with_runtime_started(host: HostFactory) -> None:
    limits = Limits(max_transcript_projection_items=50, max_event_batch_items=100)
    rt = await host("alpha", limits=limits, display_name="Alpha")
    events = await all_events(rt)
    assert [e.kind for e in events] == ["runtime.started"]
    first = events[0]
    assert (first.runtime_id, first.seq) == ("alpha", 1)
    assert first.payload["limits"] == limits.model_dump()
    summary = await rt.summary()
    assert summary.runtime.status is RuntimeStatus.RUNNING
    assert summary.runtime.display_name == "Alpha"
    assert summary.runtime.limits == limits
    assert summary.diagnostic_count == 0
    assert summary.workers_by_status == {s: 0 for s in WorkerStatus}


async def test_reopening_a_runtime_emits_runtime_restored_and_keeps_everything(
    store: EventStore, host: HostFactory
) -> None:
    limits = Limits(max_transcript_projection_items=20)
    first = await host("alpha", limits=limits)
    w1 = await first.create_worker(CreateWorkerRequest())
    await first.create_worker(CreateWorkerRequest(intent=TaskIntent(objective="fix it")))
    ack = await first.send_input(w1.ref, "hello")
    await wait_run(first, ack.run_id)
    before = await all_events(first)
    await first.close()

    # Limits passed on reopen are ignored: the runtime keeps the ones it was created with.
    second = await host("alpha", limits=Limits(max_transcript_projection_items=5))
    after = await all_events(second)
    assert after[: len(before)] == before
    assert [e.kind for e in after[len(before) :]] == ["runtime.restored"]
    assert after[-1].seq == before[-1].seq + 1
    assert second.limits == limits
    assert [w.worker_id for w in await second.list_workers()] == ["w-1", "w-2"]
    page = await second.transcript_page(w1.ref, 0, 10)
    assert [(i.role.value, i.content) for i in page.items] == [
        ("user", "hello"),
        ("assistant", "echo: hello"),
    ]
    # Ids go on where they stopped: the next worker is w-3, the next run r2.
    w3 = await second.create_worker(CreateWorkerRequest())
    assert w3.worker_id == "w-3"
    again = await second.send_input(w1.ref, "again")
    assert again.run_id == "w-1.r2"
    assert again.transcript_sequence == 3
    assert (await wait_run(second, again.run_id)).status is RunStatus.COMPLETED


async def test_runtime_names_are_checked(store: EventStore) -> None:
    for bad in ("", "Upper", "-dash", "a b", "x" * 65):
        with pytest.raises(InvalidRequest):
            await Runtime.host(store, bad)


async def test_several_runtimes_share_a_database_with_their_own_sequences(
    host: HostFactory,
) -> None:
    a = await host("a")
    b = await host("b")
    wa = await a.create_worker(CreateWorkerRequest())
    wb = await b.create_worker(CreateWorkerRequest())
    assert (wa.worker_id, wb.worker_id) == ("w-1", "w-1")
    wa2 = await a.create_worker(CreateWorkerRequest())
    assert wa2.worker_id == "w-2"
    seqs_a = [e.seq for e in await all_events(a)]
    seqs_b = [e.seq for e in await all_events(b)]
    assert seqs_a == list(range(1, len(seqs_a) + 1))
    assert seqs_b == list(range(1, len(seqs_b) + 1))
    assert all(e.runtime_id == "a" for e in await all_events(a))
    # The same worker id in another runtime is another worker: refused by authority.
    with pytest.raises(WrongRuntime):
        await a.worker_detail(wb.ref)


async def test_summary_counts_workers_by_status_and_diagnostics(host: HostFactory) -> None:
    rt = await host()
    refs = [(await rt.create_worker(CreateWorkerRequest())).ref for _ in range(4)]
    await rt.create_worker(
        CreateWorkerRequest(config_bundle="bundle-1", capabilities=[Capability(name="read")])
    )
    await rt.stop_worker(refs[0])
    await rt.cancel_worker(refs[1])
    await rt.cancel_worker(refs[2])
    summary = await rt.summary()
    assert summary.workers_by_status == {
        WorkerStatus.RUNNING: 2,
        WorkerStatus.STOPPED: 1,
        WorkerStatus.CANCELLED: 2,
    }
    assert summary.diagnostic_count == 8  # two for each worker made without bundle and tools
    assert summary.runtime.limits == rt.limits
    assert summary.host is not None and summary.host.pid > 0


# -- stop_runtime ------------------------------------------------------------------


async def test_stop_runtime_is_idempotent_and_afterwards_only_reads_work(
    host: HostFactory,
) -> None:
    rt = await host(profiles=profile_set(demo_profile(pace=0.2)))
    echo = await rt.create_worker(CreateWorkerRequest())
    ack = await rt.send_input(echo.ref, "hi")
    await wait_run(rt, ack.run_id)
    busy = await rt.create_worker(CreateWorkerRequest(profile="slow"))
    busy_run = await rt.send_input(busy.ref, "long job")
    queued_run = await rt.send_input(busy.ref, "queued job")
    await wait_run(rt, busy_run.run_id, RunStatus.EXECUTING)
    await rt.stop_worker(echo.ref)

    stop_id = await rt.stop_runtime()
    last = await rt.store.last_seq("local")
    assert await rt.stop_runtime() == stop_id
    assert await rt.store.last_seq("local") == last, "a repeated stop emits nothing"

    events = await all_events(rt)
    stopped = [e for e in events if e.kind == "runtime.stopped"]
    assert [e.event_id for e in stopped] == [stop_id]
    # Running workers became stopped by that event; the one already stopped kept its own.
    busy_detail = await rt.worker_detail(busy.ref)
    assert busy_detail.status is WorkerStatus.STOPPED
    assert busy_detail.terminal_event_id == stop_id
    echo_detail = await rt.worker_detail(echo.ref)
    assert echo_detail.terminal_event_id != stop_id
    for run_id in (busy_run.run_id, queued_run.run_id):
        run = await rt.store.run("local", run_id)
        assert run is not None and run.status is RunStatus.CANCELLED
    assert (await rt.summary()).runtime.status is RuntimeStatus.STOPPED

    # Every mutation is refused ...
    mutations: list[Any] = [
        rt.create_worker(CreateWorkerRequest()),
        rt.send_input(echo.ref, "more"),
        rt.stop_worker(busy.ref),
        rt.cancel_worker(busy.ref),
        rt.cancel_run(busy.ref, busy_run.run_id),
    ]
    for call in mutations:
        with pytest.raises(RuntimeStopped, match="stopped"):
            await call
    # ... even when the request itself is also wrong (the runtime is checked first).
    with pytest.raises(RuntimeStopped):
        await rt.create_worker(CreateWorkerRequest(intent=TaskIntent(objective=" ")))
    with pytest.raises(RuntimeStopped):
        await rt.send_input(echo.ref, "   ")
    assert await rt.store.last_seq("local") == last

    # ... while every read keeps working.
    assert len(await rt.list_workers()) == 2
    assert (await rt.transcript_page(echo.ref, 0, 10)).total_items == 2
    assert (await rt.read_events(rt.cursor_from_start(), 5)).has_more
    assert (await rt.cursor_now()).next_seq == last + 1
    assert len(await rt.diagnostics()) == 4
    assert (await rt.summary()).workers_by_status[WorkerStatus.STOPPED] == 2


async def test_concurrent_stop_runtime_calls_agree_on_one_event(host: HostFactory) -> None:
    rt = await host()
    await rt.create_worker(CreateWorkerRequest())
    first, second = await asyncio.gather(rt.stop_runtime(), rt.stop_runtime())
    assert first == second
    kinds = [e.kind for e in await all_events(rt)]
    assert kinds.count("runtime.stopped") == 1


async def test_a_stopped_runtime_stays_stopped_when_reopened(host: HostFactory) -> None:
    rt = await host()
    w = await rt.create_worker(CreateWorkerRequest())
    stop_id = await rt.stop_runtime()
    await rt.close()
    last = await rt.store.last_seq("local")

    again = await host()
    assert await again.store.last_seq("local") == last, "no runtime.restored for a stopped runtime"
    assert await again.stop_runtime() == stop_id
    with pytest.raises(RuntimeStopped):
        await again.send_input(w.ref, "hello")
    assert (await again.worker_detail(w.ref)).status is WorkerStatus.STOPPED


# -- create_worker -----------------------------------------------------------------


async def test_intents_default_to_assistant_and_are_kept(host: HostFactory) -> None:
    rt = await host()
    plain = await rt.create_worker(CreateWorkerRequest())
    helper = await rt.create_worker(
        CreateWorkerRequest(intent=AssistantIntent(purpose="answer questions"))
    )
    task = await rt.create_worker(CreateWorkerRequest(intent=TaskIntent(objective="ship v1")))
    role = await rt.create_worker(
        CreateWorkerRequest(intent=RoleIntent(role="reviewer", purpose="review diffs"))
    )
    assert [w.worker_id for w in (plain, helper, task, role)] == ["w-1", "w-2", "w-3", "w-4"]
    assert plain.spec.intent == AssistantIntent()
    details = {w.worker_id: await rt.worker_detail(w.ref) for w in (plain, helper, task, role)}
    assert details["w-2"].spec.intent == AssistantIntent(purpose="answer questions")
    assert details["w-3"].spec.intent == TaskIntent(objective="ship v1")
    assert details["w-4"].spec.intent == RoleIntent(role="reviewer", purpose="review diffs")
    created = [e for e in await all_events(rt) if e.kind == "worker.created"]
    assert [e.worker_id for e in created] == ["w-1", "w-2", "w-3", "w-4"]
    assert "task: ship v1" in created[2].message
    assert "role: reviewer" in created[3].message
    assert created[2].payload["spec"]["intent"] == {"type": "task", "objective": "ship v1"}
    for w in (plain, helper, task, role):
        assert details[w.worker_id].status is WorkerStatus.RUNNING
        assert details[w.worker_id].transcript_len == 0


async def test_refs_capabilities_and_bundle_are_kept(host: HostFactory) -> None:
    rt = await host()
    request = CreateWorkerRequest(
        config_bundle="bundle-7",
        capabilities=[Capability(name="read", reason="look around"), Capability(name="write")],
        workspace_refs=[NamedRef(name="repo", reference="/src/repo")],
        mount_refs=[NamedRef(name="cache", reference="volume:cache")],
    )
    w = await rt.create_worker(request)
    detail = await rt.worker_detail(w.ref)
    assert detail.spec == request.model_copy(update={"profile": "builtin:echo"})


async def test_profiles_resolve_default_builtin_and_named(host: HostFactory) -> None:
    config = parse_profiles(
        """
        [profiles.coder]
        command = ["my-agent", "--json"]
        timeout = 5

        [profiles.busy]
        builtin = "demo"
        demo = { pace = 0.01 }
        """
    )
    rt = await host(profiles=config)
    made = {
        name: await rt.create_worker(CreateWorkerRequest(profile=name))
        for name in ("default", "builtin:echo", "builtin:demo", "coder", "busy")
    }
    assert {name: w.spec.profile for name, w in made.items()} == {
        "default": "builtin:echo",
        "builtin:echo": "builtin:echo",
        "builtin:demo": "builtin:demo",
        "coder": "coder",
        "busy": "busy",
    }
    detail = await rt.worker_detail(made["coder"].ref)
    assert detail.spec.profile == "coder"


async def test_a_config_default_profile_is_the_runtime_default(host: HostFactory) -> None:
    rt = await host(profiles=profile_set(demo_profile("busy"), default="busy"))
    w = await rt.create_worker(CreateWorkerRequest())
    assert w.spec.profile == "busy"


async def test_an_unknown_profile_is_an_invalid_request_naming_the_choices(
    host: HostFactory,
) -> None:
    rt = await host(profiles=profile_set(demo_profile("busy")))
    last = await rt.store.last_seq("local")
    with pytest.raises(InvalidRequest) as refused:
        await rt.create_worker(CreateWorkerRequest(profile="nope"))
    message = str(refused.value)
    assert "nope" in message and "builtin:echo" in message and "busy" in message
    with pytest.raises(InvalidRequest):
        await rt.create_worker(CreateWorkerRequest(profile="builtin:nope"))
    assert await rt.store.last_seq("local") == last


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        (CreateWorkerRequest(intent=TaskIntent(objective="")), "objective"),
        (CreateWorkerRequest(intent=TaskIntent(objective=" \t\n")), "objective"),
        (CreateWorkerRequest(intent=RoleIntent(role="  ")), "role"),
        (
            CreateWorkerRequest(capabilities=[Capability(name="read"), Capability(name="")]),
            "capability",
        ),
        (CreateWorkerRequest(capabilities=[Capability(name="  ", reason="why")]), "capability"),
        (CreateWorkerRequest(workspace_refs=[NamedRef(name="", reference="x")]), "ref"),
        (CreateWorkerRequest(mount_refs=[NamedRef(name="m", reference=" ")]), "ref"),
        (CreateWorkerRequest(config_bundle="  "), "bundle"),
    ],
)
async def test_bad_create_requests_are_refused_and_change_nothing(
    host: HostFactory, request_: CreateWorkerRequest, needle: str
) -> None:
    rt = await host()
    last = await rt.store.last_seq("local")
    with pytest.raises(InvalidRequest, match=needle):
        await rt.create_worker(request_)
    assert await rt.store.last_seq("local") == last
    assert await rt.list_workers() == []
    # A refused request uses up no worker id.
    assert (await rt.create_worker(CreateWorkerRequest())).worker_id == "w-1"


async def test_the_worker_count_limit(host: HostFactory) -> None:
    rt = await host(limits=Limits(max_workers=2))
    await rt.create_worker(CreateWorkerRequest())
    await rt.create_worker(CreateWorkerRequest())
    with pytest.raises(LimitTooLarge):
        await rt.create_worker(CreateWorkerRequest())
    assert len(await rt.list_workers()) == 2


# -- diagnostics ---------------------------------------------------------------------


async def test_diagnostics_for_workers_without_bundle_or_capabilities(host: HostFactory) -> None:
    rt = await host()
    bare = await rt.create_worker(CreateWorkerRequest())
    bundled = await rt.create_worker(CreateWorkerRequest(config_bundle="bundle-1"))
    tooled = await rt.create_worker(CreateWorkerRequest(capabilities=[Capability(name="read")]))
    full = await rt.create_worker(
        CreateWorkerRequest(config_bundle="bundle-1", capabilities=[Capability(name="read")])
    )
    found = {(d.worker_id, d.code) for d in await rt.diagnostics()}
    assert found == {
        (bare.worker_id, "runtime.local_default_resources"),
        (bare.worker_id, "worker.tools_less"),
        (bundled.worker_id, "worker.tools_less"),
        (tooled.worker_id, "runtime.local_default_resources"),
    }
    assert full.worker_id not in {d.worker_id for d in await rt.diagnostics()}
    diagnostics = await rt.diagnostics()
    assert all(d.severity.value == "info" and d.runtime_id == "local" for d in diagnostics)
    # Each diagnostic is an event too, and the summary counts them.
    raised = [e for e in await all_events(rt) if e.kind == "diagnostic.raised"]
    assert {e.event_id for e in raised} == {d.event_id for d in diagnostics}
    assert (await rt.summary()).diagnostic_count == 4


# -- reads: list, detail, transcript pages ----------------------------------------------


async def test_list_and_detail(host: HostFactory) -> None:
    rt = await host()
    made = [await rt.create_worker(CreateWorkerRequest()) for _ in range(3)]
    listed = await rt.list_workers()
    assert [w.worker_id for w in listed] == ["w-1", "w-2", "w-3"]
    assert [w.ref for w in listed] == [w.ref for w in made]
    detail = await rt.worker_detail(made[1].ref)
    assert detail.worker_id == "w-2" and detail.runtime_id == "local"
    assert detail.status is WorkerStatus.RUNNING


async def test_transcript_pages(host: HostFactory) -> None:
    rt = await host(limits=Limits(max_transcript_projection_items=3))
    w = await rt.create_worker(CreateWorkerRequest())
    for text in ("one", "two", "three"):
        ack = await rt.send_input(w.ref, text)
        await wait_run(rt, ack.run_id)
    pages = []
    start: int | None = 0
    while start is not None:
        page = await rt.transcript_page(w.ref, start, 2)
        assert page.total_items == 6
        assert page.start == start and page.limit == 2
        pages.append([(i.sequence, i.role.value, i.content) for i in page.items])
        start = page.next_start
    assert pages == [
        [(1, "user", "one"), (2, "assistant", "echo: one")],
        [(3, "user", "two"), (4, "assistant", "echo: two")],
        [(5, "user", "three"), (6, "assistant", "echo: three")],
    ]
    assert (await rt.transcript_page(w.ref, 4, 3)).next_start is None
    past = await rt.transcript_page(w.ref, 10, 3)
    assert (past.items, past.total_items, past.next_start) == ([], 6, None)
    # Exactly the maximum is allowed; one more is LimitTooLarge, not a silent clamp.
    assert len((await rt.transcript_page(w.ref, 0, 3)).items) == 3
    with pytest.raises(LimitTooLarge):
        await rt.transcript_page(w.ref, 0, 4)
    with pytest.raises(InvalidRequest):
        await rt.transcript_page(w.ref, 0, 0)
    with pytest.raises(InvalidRequest):
        await rt.transcript_page(w.ref, -1, 2)


# -- cursors and event batches ------------------------------------------------------


async def test_cursors_and_event_batches(host: HostFactory) -> None:
    rt = await host()
    start = rt.cursor_from_start()
    assert start == EventCursor(runtime_id="local", next_seq=1)
    for _ in range(3):
        await rt.create_worker(CreateWorkerRequest())  # 3 events each
    total = 10
    now = await rt.cursor_now()
    assert now.next_seq == total + 1

    seen: list[int] = []
    cursor = start
    flags = []
    while True:
        batch = await rt.read_events(cursor, 4)
        assert batch.runtime_id == "local"
        seen.extend(e.seq for e in batch.events)
        flags.append(batch.has_more)
        cursor = batch.cursor
        if not batch.has_more:
            break
    assert seen == list(range(1, total + 1))
    assert flags == [True, True, False]
    assert cursor == now

    # A cursor at "now" sees nothing old, and then exactly what comes next.
    empty = await rt.read_events(now, 10)
    assert (empty.events, empty.has_more, empty.cursor) == ([], False, now)
    await rt.create_worker(CreateWorkerRequest())
    fresh = await rt.read_events(now, 10)
    assert [e.kind for e in fresh.events] == [
        "worker.created",
        "diagnostic.raised",
        "diagnostic.raised",
    ]
    assert fresh.events[0].seq == total + 1


async def test_event_batch_limits(host: HostFactory) -> None:
    rt = await host(limits=Limits(max_event_batch_items=5))
    for _ in range(3):
        await rt.create_worker(CreateWorkerRequest())
    full = await rt.read_events(rt.cursor_from_start(), 5)
    assert len(full.events) == 5 and full.has_more
    with pytest.raises(LimitTooLarge):
        await rt.read_events(rt.cursor_from_start(), 6)
    with pytest.raises(InvalidRequest):
        await rt.read_events(rt.cursor_from_start(), 0)


async def test_an_event_batch_of_exactly_the_default_maximum(host: HostFactory) -> None:
    rt = await host()
    maximum = rt.limits.max_event_batch_items
    batch = await rt.read_events(rt.cursor_from_start(), maximum)
    assert [e.kind for e in batch.events] == ["runtime.started"]
    assert not batch.has_more
    await rt.create_worker(CreateWorkerRequest())
    batch = await rt.read_events(rt.cursor_from_start(), maximum)
    assert len(batch.events) == 4 and not batch.has_more


# -- authority and the orders of checks ----------------------------------------------------


async def test_refs_and_cursors_of_another_runtime_are_refused(host: HostFactory) -> None:
    rt = await host("alpha")
    other = await host("beta")
    mine = await rt.create_worker(CreateWorkerRequest())
    theirs = await other.create_worker(CreateWorkerRequest())
    # The same worker id exists here, and another that does not: both are WrongRuntime,
    # because the runtime is checked before the worker is looked up.
    foreign = [theirs.ref, WorkerRef(runtime_id="beta", worker_id="w-99")]
    last = await rt.store.last_seq("alpha")
    for ref in foreign:
        calls: list[Any] = [
            rt.worker_detail(ref),
            rt.transcript_page(ref, 0, 10),
            rt.send_input(ref, "hello"),
            rt.stop_worker(ref),
            rt.cancel_worker(ref),
            rt.cancel_run(ref, "w-1.r1"),
        ]
        for call in calls:
            with pytest.raises(WrongRuntime) as refused:
                await call
            assert "beta" in str(refused.value) and "alpha" in str(refused.value)
    cursor = EventCursor(runtime_id="beta", next_seq=1)
    with pytest.raises(WrongRuntimeCursor):
        await rt.read_events(cursor, 10)
    # The cursor's runtime is checked before its limit.
    with pytest.raises(WrongRuntimeCursor):
        await rt.read_events(cursor, rt.limits.max_event_batch_items + 1)
    with pytest.raises(WrongRuntimeCursor):
        await rt.subscribe_cursor(cursor)
    with pytest.raises(WrongRuntime):
        rt.subscribe(Room("beta"))
    assert await rt.store.last_seq("alpha") == last
    assert (await rt.worker_detail(mine.ref)).status is WorkerStatus.RUNNING
    assert (await other.worker_detail(theirs.ref)).status is WorkerStatus.RUNNING


async def test_unknown_workers_are_not_found(host: HostFactory) -> None:
    rt = await host()
    await rt.create_worker(CreateWorkerRequest())
    ghost = WorkerRef(runtime_id="local", worker_id="w-2")
    calls: list[Any] = [
        rt.worker_detail(ghost),
        rt.transcript_page(ghost, 0, 10),
        rt.send_input(ghost, "hello"),
        rt.stop_worker(ghost),
        rt.cancel_worker(ghost),
        rt.cancel_run(ghost, "w-2.r1"),
    ]
    for call in calls:
        with pytest.raises(WorkerNotFound, match="w-2"):
            await call


async def test_limits_are_checked_before_the_worker_is_looked_up(host: HostFactory) -> None:
    rt = await host(limits=Limits(max_transcript_projection_items=10))
    too_many = 11
    with pytest.raises(LimitTooLarge):
        await rt.transcript_page(WorkerRef(runtime_id="local", worker_id="w-5"), 0, too_many)
    with pytest.raises(LimitTooLarge):
        await rt.transcript_page(WorkerRef(runtime_id="other", worker_id="w-1"), 0, too_many)


async def test_input_is_validated_before_the_worker_is_looked_up(host: HostFactory) -> None:
    rt = await host()
    ghost = WorkerRef(runtime_id="local", worker_id="w-9")
    with pytest.raises(InvalidRequest) as refused:
        await rt.send_input(ghost, "  ")
    assert not isinstance(refused.value, WorkerNotFound)
    with pytest.raises(WorkerNotFound):
        await rt.send_input(ghost, "hello")


# -- send_input refusals ---------------------------------------------------------------


async def test_send_input_refusals(host: HostFactory) -> None:
    rt = await host(limits=Limits(max_input_bytes=10))
    w = await rt.create_worker(CreateWorkerRequest())
    last = await rt.store.last_seq("local")
    for blank in ("", "   ", "\n\t "):
        with pytest.raises(InvalidRequest, match="empty"):
            await rt.send_input(w.ref, blank)
    with pytest.raises(InvalidRequest, match="role"):
        await rt.send_input(w.ref, "hi", role="assistant")
    # The limit is in bytes: five two-byte characters fit, six do not.
    with pytest.raises(InvalidRequest, match="limit"):
        await rt.send_input(w.ref, "é" * 6)
    with pytest.raises(InvalidRequest, match="limit"):
        await rt.send_input(w.ref, "x" * 11)
    assert await rt.store.last_seq("local") == last
    ok = await rt.send_input(w.ref, "é" * 5)
    assert ok.transcript_sequence == 1
    system = await rt.send_input(w.ref, "be brief", role="system")
    await wait_run(rt, system.run_id)
    page = await rt.transcript_page(w.ref, 0, 10)
    assert ("system", "be brief") in [(i.role.value, i.content) for i in page.items]


@pytest.mark.parametrize("end", ["stop", "cancel"])
async def test_a_worker_that_is_not_running_refuses_input_naming_its_status(
    host: HostFactory, end: str
) -> None:
    rt = await host()
    w = await rt.create_worker(CreateWorkerRequest())
    if end == "stop":
        await rt.stop_worker(w.ref)
    else:
        await rt.cancel_worker(w.ref)
    last = await rt.store.last_seq("local")
    with pytest.raises(WorkerNotRunning) as refused:
        await rt.send_input(w.ref, "hello")
    status = "stopped" if end == "stop" else "cancelled"
    assert refused.value.status == status
    assert "w-1" in str(refused.value) and status in str(refused.value)
    assert isinstance(refused.value, InvalidRequest)
    assert await rt.store.last_seq("local") == last


async def test_injected_clock_and_ids_stamp_the_events(host: HostFactory) -> None:
    clock = SteppingClock()
    ids = CountingIds()
    rt = await host(clock=clock, ids=ids)
    await rt.create_worker(CreateWorkerRequest())
    events = await all_events(rt)
    assert [e.event_id.int & 0xFFFF for e in events] == [1, 2, 3, 4]
    assert all(e.event_id.version == 7 for e in events)
    steps = [b.at - a.at for a, b in itertools.pairwise(events)]
    assert steps and all(step == clock.step for step in steps)
    assert events[0].at >= clock.start
