"""`CreateWorkerScreen`: the new-worker form, validated inline before anything is created.

The form only parses its fields into a `WorkerSpec`; what is allowed is the
engine's to say (`engine.validation`, reached through the backend). `submit`
validates and creates in one call and returns the refusal, which the form
shows inline, pointing at the field at fault, with the form kept as typed; it
closes only once the worker exists.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Select, Static

from engine.validation import Refusal
from store.models import (
    AssistantIntent,
    Capability,
    NamedRef,
    RoleIntent,
    TaskIntent,
    WorkerSpec,
)
from tui.safe_text import multi_line, one_line

INTENTS = ("assistant", "task", "role")
ERROR_STYLE = Style(bold=True)

# Which optional rows each intent shows (the rest are always shown).
_INTENT_FIELDS = {
    "assistant": {"purpose"},
    "task": {"objective"},
    "role": {"role", "purpose"},
}
_FIELD_ORDER = (
    "intent",
    "objective",
    "role",
    "purpose",
    "profile",
    "capabilities",
    "config_bundle",
    "workspace_refs",
    "mount_refs",
)
_LABELS = {
    "intent": "Intent",
    "objective": "Objective",
    "role": "Role",
    "purpose": "Purpose",
    "profile": "Profile",
    "capabilities": "Capabilities",
    "config_bundle": "Config bundle",
    "workspace_refs": "Workspace refs",
    "mount_refs": "Mount refs",
}
_PLACEHOLDERS = {
    "objective": "what the task must achieve (required)",
    "role": "role name, e.g. reviewer (required)",
    "purpose": "optional",
    "capabilities": "shell, web: read the docs   (name or name: reason)",
    "config_bundle": "optional bundle id",
    "workspace_refs": "src=/home/me/src, data=s3://bucket",
    "mount_refs": "cache=/var/cache/agent",
}


SubmitWorker = Callable[[WorkerSpec], Awaitable[str | Refusal | None]]
"""`submit(spec)`: validates and creates; returns why not (a `Refusal` names the field),
or None once created."""


def form_field(request_field: str) -> str | None:
    """The form's field for a request field named by the engine (`intent.objective` -> objective)."""
    field = request_field.removeprefix("intent.")
    return field if field in _LABELS else None


class FormError(ValueError):
    """A field that does not parse, with the field's name and a message naming the bad item."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _items(text: str) -> list[str]:
    """Comma-separated items; empty ones (a trailing comma) are skipped."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_capabilities(text: str, field: str = "capabilities") -> list[Capability]:
    """`name` or `name: reason`, comma-separated."""
    out: list[Capability] = []
    for item in _items(text):
        name, colon, reason = item.partition(":")
        name, reason = name.strip(), reason.strip()
        if not name:
            raise FormError(field, f"capability {item!r} has no name (use name or name: reason)")
        out.append(Capability(name=name, reason=reason if colon and reason else None))
    return out


def parse_refs(text: str, field: str, what: str) -> list[NamedRef]:
    """`name=reference`, comma-separated; `what` names the kind in error messages."""
    out: list[NamedRef] = []
    for item in _items(text):
        name, equals, reference = item.partition("=")
        name, reference = name.strip(), reference.strip()
        if not equals:
            raise FormError(field, f"{what} {item!r} has no '=' (use name=reference)")
        if not name:
            raise FormError(field, f"{what} {item!r} has no name (use name=reference)")
        if not reference:
            raise FormError(field, f"{what} {item!r} has no reference (use name=reference)")
        out.append(NamedRef(name=name, reference=reference))
    return out


class CreateWorkerScreen(ModalScreen[WorkerSpec | None]):
    """The new-worker form: returns the `WorkerSpec` once created, `None` on escape."""

    CSS_PATH = "screens.tcss"
    AUTO_FOCUS = "#cw-intent"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Create"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(
        self,
        profile_names: list[str],
        submit: SubmitWorker,
        *,
        runtime_id: str | None = None,
        through: str | None = None,
    ) -> None:
        super().__init__()
        self.runtime_id = runtime_id
        self.through = through  # "pid N on HOST" when the runtime is hosted by another process
        names = list(dict.fromkeys(profile_names))
        if "default" not in names:
            names.insert(0, "default")
        self.profile_names = names
        self._submit_spec = submit
        self.creating = False

    # -- layout ------------------------------------------------------------------

    def _title(self) -> str:
        if self.runtime_id is None:
            return "New worker"
        where = f" (through {self.through})" if self.through else ""
        return f"New worker in runtime {self.runtime_id}{where}"

    def _row(self, field: str, widget: Input | Select[str]) -> Horizontal:
        row = Horizontal(
            Static(Content(_LABELS[field]), classes="field-label"),
            widget,
            id=f"cw-row-{field}",
            classes="field",
        )
        return row

    def _input(self, field: str) -> Input:
        return Input(
            placeholder=_PLACEHOLDERS.get(field, ""),
            id=f"cw-{field}",
            compact=True,
            select_on_focus=False,
        )

    def compose(self) -> ComposeResult:
        with Vertical(id="cw-dialog", classes="dialog"):
            yield Static(one_line(self._title()), classes="dialog-title")
            with VerticalScroll(id="cw-form"):
                yield self._row(
                    "intent",
                    Select(
                        [(Content(name), name) for name in INTENTS],
                        value="assistant",
                        allow_blank=False,
                        compact=True,
                        id="cw-intent",
                    ),
                )
                yield self._row("objective", self._input("objective"))
                yield self._row("role", self._input("role"))
                yield self._row("purpose", self._input("purpose"))
                yield self._row(
                    "profile",
                    Select(
                        [(one_line(name), name) for name in self.profile_names],
                        value="default",
                        allow_blank=False,
                        compact=True,
                        id="cw-profile",
                    ),
                )
                yield self._row("capabilities", self._input("capabilities"))
                yield self._row("config_bundle", self._input("config_bundle"))
                yield self._row("workspace_refs", self._input("workspace_refs"))
                yield self._row("mount_refs", self._input("mount_refs"))
            yield Static(id="cw-error", classes="form-error")
            with Horizontal(classes="dialog-buttons"):
                yield Static(
                    Content("ctrl+s create · enter next · esc cancel"), classes="dialog-hint"
                )
                yield Button(Content("Create"), variant="primary", id="cw-create")
                yield Button(Content("Cancel"), id="cw-cancel")

    def on_mount(self) -> None:
        self._show_intent_fields("assistant")
        self._set_error(None, None)

    # -- behaviour ---------------------------------------------------------------

    @property
    def intent(self) -> str:
        value = self.query_one("#cw-intent", Select).value
        return value if isinstance(value, str) else "assistant"

    def _show_intent_fields(self, intent: str) -> None:
        wanted = _INTENT_FIELDS.get(intent, set())
        for field in ("objective", "role", "purpose"):
            self.query_one(f"#cw-row-{field}").display = field in wanted

    def _visible_fields(self) -> list[str]:
        wanted = _INTENT_FIELDS.get(self.intent, set())
        return [f for f in _FIELD_ORDER if f not in ("objective", "role", "purpose") or f in wanted]

    @on(Select.Changed, "#cw-intent")
    def _intent_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self._show_intent_fields(event.value)
            self._set_error(None, None)

    @on(Input.Changed)
    def _field_edited(self, event: Input.Changed) -> None:
        event.input.remove_class("-invalid")

    @on(Input.Submitted)
    def _field_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        inputs = [f for f in self._visible_fields() if f not in ("intent", "profile")]
        if event.input.id == f"cw-{inputs[-1]}":
            self.action_submit()
        else:
            self.focus_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "cw-create":
            self.action_submit()
        else:
            self.action_cancel()

    def _text(self, field: str) -> str:
        return self.query_one(f"#cw-{field}", Input).value

    def build_spec(self) -> WorkerSpec:
        """The spec the fields describe; raises FormError naming the bad field and item."""
        intent_type = self.intent
        purpose = self._text("purpose").strip() or None
        intent: AssistantIntent | TaskIntent | RoleIntent
        if intent_type == "task":
            intent = TaskIntent(objective=self._text("objective").strip())
        elif intent_type == "role":
            intent = RoleIntent(role=self._text("role").strip(), purpose=purpose)
        else:
            intent = AssistantIntent(purpose=purpose)
        profile = self.query_one("#cw-profile", Select).value
        return WorkerSpec(
            intent=intent,
            profile=profile if isinstance(profile, str) else "default",
            config_bundle=self._text("config_bundle").strip() or None,
            capabilities=parse_capabilities(self._text("capabilities")),
            workspace_refs=parse_refs(
                self._text("workspace_refs"), "workspace_refs", "workspace ref"
            ),
            mount_refs=parse_refs(self._text("mount_refs"), "mount_refs", "mount ref"),
        )

    def _set_error(
        self, field: str | None, message: str | None, *, name_field: bool = True
    ) -> None:
        """Show `message` (None: clear), marking and focusing `field`.

        `name_field=False` when the message already names it (engine messages do).
        """
        error = self.query_one("#cw-error", Static)
        for widget in self.query(".field Input"):
            widget.remove_class("-invalid")
        if message is None:
            error.update("")
            error.display = False
            return
        prefix = f"✗ {_LABELS[field]}: " if field and name_field else "✗ "
        text = Text(prefix, style=ERROR_STYLE, end="")
        text.append_text(multi_line(message))
        error.update(text)
        error.display = True
        if field is not None:
            widget = self.query_one(f"#cw-{field}")
            if isinstance(widget, Input):
                widget.add_class("-invalid")
            widget.focus()

    @property
    def error(self) -> str | None:
        """The refusal shown inline, if one is."""
        error = self.query_one("#cw-error", Static)
        return str(error.visual) if error.display else None

    def _set_creating(self, creating: bool) -> None:
        self.creating = creating
        button = self.query_one("#cw-create", Button)
        button.disabled = creating
        button.label = Content("Creating…" if creating else "Create")

    def action_submit(self) -> None:
        if self.creating:
            return
        try:
            spec = self.build_spec()
        except FormError as exc:
            self._set_error(exc.field, exc.message)
            return
        self._set_creating(True)
        self._submit(spec)

    @work(exclusive=True, group="create-worker")
    async def _submit(self, spec: WorkerSpec) -> None:
        try:
            problem = await self._submit_spec(spec)
        except Exception as exc:  # a failed create must not take the form (and its text) down
            problem = str(exc) or type(exc).__name__
        self._set_creating(False)
        if isinstance(problem, Refusal):
            self._set_error(form_field(problem.field), problem.message, name_field=False)
            return
        if problem:
            self._set_error(None, problem)
            return
        self.dismiss(spec)

    def action_cancel(self) -> None:
        # Not while the create is in flight: leaving would cancel the call
        # halfway, and the worker could still be created unseen.
        if self.creating:
            return
        self.dismiss(None)
