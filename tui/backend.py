"""What the console runs on: the store, and the runtime this process hosts (if any).

Opening degrades instead of failing where an operator would want to look
anyway: a database that cannot be written opens as an observer, and a runtime
hosted by another process is shown read-only. Each such limit is kept as a
reason the console shows wherever an action is unavailable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.clock import Clock, IdSource
from engine.errors import RuntimeBusy
from engine.runtime import Runtime
from store.errors import ReadOnlyDatabase
from store.event_store import EventStore


@dataclass
class Backend:
    store: EventStore
    runtime_id: str
    runtime: Runtime | None = None
    observer_reason: str | None = None  # why nothing can be changed here at all
    notices: list[str] = field(default_factory=list)

    @property
    def db_path(self) -> Path:
        return self.store.path

    def readonly_reason(self, runtime_id: str) -> str | None:
        """Why workers of `runtime_id` cannot be changed from this console (None if they can)."""
        if self.observer_reason:
            return self.observer_reason
        if self.runtime is None or runtime_id != self.runtime.runtime_id:
            return (
                f"runtime {runtime_id} is hosted by another process; this console only watches it"
            )
        return None

    async def close(self) -> None:
        if self.runtime is not None:
            await self.runtime.close()
            self.runtime = None
        await self.store.close()


async def open_backend(
    db: Path,
    *,
    runtime_id: str = "local",
    config: Path | None = None,
    read_only: bool = False,
    clock: Clock | None = None,
    ids: IdSource | None = None,
    watch: bool = True,
) -> Backend:
    """Open the database and host `runtime_id` here when that is possible."""
    notices: list[str] = []
    observer_reason: str | None = None
    if read_only:
        store = await EventStore.open(db, read_only=True, watch=watch)
        observer_reason = "opened with --read-only: this console only watches"
    else:
        try:
            store = await EventStore.open(db, watch=watch)
        except ReadOnlyDatabase as exc:
            store = await EventStore.open(db, read_only=True, watch=watch)
            observer_reason = (
                f"the database cannot be written ({exc.path}); this console only watches"
            )
            notices.append(observer_reason)
    backend = Backend(
        store=store, runtime_id=runtime_id, observer_reason=observer_reason, notices=notices
    )
    if observer_reason is None:
        config_path = config if config is not None else store.path.parent / "agentdeck.toml"
        try:
            backend.runtime = await Runtime.host(
                store, runtime_id, clock=clock, ids=ids, config_path=config_path
            )
        except RuntimeBusy as exc:
            notices.append(str(exc))
        except BaseException:
            await store.close()
            raise
    return backend
