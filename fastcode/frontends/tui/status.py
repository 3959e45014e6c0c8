"""The status line: run state, step count, elapsed time, endpoint/model per route, approval mode."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.widgets import Static

from fastcode.core.config import Settings
from fastcode.core.events import ApprovalRequested, Event, RunFinished, RunStarted, StepStarted, ToolFinished

ROUTE_KINDS = ("plan", "act", "edit", "verify", "escalate")
STATE_STYLE = {
    "running": "bold yellow",
    "awaiting approval": "bold magenta",
    "finished": "bold green",
    "interrupted": "bold yellow",
    "error": "bold red",
}


def route_labels(settings: Settings) -> dict[str, str]:
    """Step kind -> "profile: model @ base_url", as RunStarted.routes reports it (shown before the first run)."""
    labels = {}
    for kind in ROUTE_KINDS:
        name, profile = settings.profile(kind)
        labels[kind] = f"{name}: {profile.model} @ {profile.base_url}"
    return labels


def summarize_routes(routes: dict[str, str]) -> str:
    """One entry per distinct endpoint: "model @ host/v1", prefixed by its step kinds when there are several."""
    groups: dict[str, list[str]] = {}
    for kind, label in routes.items():
        groups.setdefault(label.split(": ", 1)[-1].replace("https://", "").replace("http://", ""), []).append(kind)
    if len(groups) == 1:
        return next(iter(groups))
    return " · ".join(f"{','.join(kinds)}: {label}" for label, kinds in groups.items())


def short_sandbox(described: str) -> str:
    """A few words for `Sandbox.describe()`: "sandboxed" (workspace-write), "read-only", "unsandboxed" (off) or
    "sandbox not enforced" (this system cannot)."""
    if not described:
        return ""
    if "not enforced" in described:
        return "sandbox not enforced"
    mode = described.split(",")[0].split(" ")[0]
    return {"workspace-write": "sandboxed", "read-only": "read-only sandbox", "off": "unsandboxed"}.get(mode, mode)


class StatusLine(Static):
    """Pushed state from the app; `clock` gives the time (perf_counter) so snapshots can fix it."""

    def __init__(
        self,
        routes: dict[str, str],
        approval: str,
        clock: Callable[[], float],
        *,
        replay: bool = False,
        sandbox: str = "",
    ):
        super().__init__(id="status")
        self.routes, self.approval, self.clock, self.replay = routes, approval, clock, replay
        self.sandbox = sandbox
        self.state, self.step, self.started_t, self.wall = "ready", 0, None, None
        self.last_t: float | None = None

    def on_mount(self) -> None:
        self.redraw()

    def apply(self, event: Event) -> None:
        self.last_t = event.t
        match event:
            case RunStarted():
                self.routes = event.routes or self.routes
                self.sandbox = short_sandbox(event.sandbox) or self.sandbox
                self.state, self.step, self.started_t, self.wall = "running", 0, event.t, None
            case StepStarted():
                self.step = event.step
            case ApprovalRequested():
                self.state = "awaiting approval"
            case ToolFinished() if self.state == "awaiting approval":
                self.state = "running"
            case RunFinished():
                self.state, self.wall = event.status, event.wall_s
        self.redraw()

    def interrupting(self) -> None:
        if self.state in ("running", "awaiting approval"):
            self.state = "interrupting"
            self.redraw()

    def elapsed(self) -> float | None:
        if self.wall is not None:
            return self.wall
        if self.started_t is None:
            return None
        now = self.last_t if self.replay or self.last_t is None else max(self.clock(), self.last_t)
        return max(0.0, now - self.started_t)

    def redraw(self) -> None:
        text = Text(" ")
        if self.replay:
            text.append("replay · ", "bold cyan")
        text.append(f"● {self.state}", STATE_STYLE.get(self.state, "bold"))
        if self.step:
            text.append(f"  step {self.step}")
        if (elapsed := self.elapsed()) is not None:
            text.append(f"  {elapsed:.1f} s")
        text.append(f"  │ {summarize_routes(self.routes)}", "dim")
        if not self.replay:
            text.append(f"  │ {self.approval}", "dim")
        if self.sandbox:
            text.append(f" · {self.sandbox}", "dim")
        self.update(text)
