"""The plan/act loop. A Session holds one conversation; `run(task)` is an async generator of events.

Order of a run: RunStarted -> context gathering (+ warm-up) -> steps (model call -> tools -> maybe tests) until
`finish`, max steps, the deadline or an interrupt -> RunFinished. The history is append-only and the system
prompt and tool list never change, so every call's prompt extends the previous one (the server's KV cache holds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastcode.agent import conversation
from fastcode.agent.conversation import Conversation
from fastcode.agent.edit_first import EDIT_ONLY, Attempt, candidate, is_question, old_choices, source_paths
from fastcode.agent.prefix import PrefixTracker
from fastcode.agent.router import Router, TurnState
from fastcode.agent.search import Drawn, FixSearch
from fastcode.agent.tool_exec import NEEDS_APPROVAL, Approver, CallOutcome, EarlyStarts, ToolExecutor
from fastcode.checkpoint.checkpointer import Checkpointer
from fastcode.checkpoint.scratch import ScratchCopy, ScratchError
from fastcode.context import testcmd
from fastcode.context.budget import DEFAULT_RATE, LAUNCHED_RATE, ContextBudget
from fastcode.context.gather import gather_context, is_about_tests
from fastcode.context.testcmd import detect_test_command
from fastcode.core import paths, secrets
from fastcode.core.config import STEP_KINDS, ModelProfile, Settings
from fastcode.core.emitter import Emitter
from fastcode.core.endpoint_memory import endpoint_key
from fastcode.core.events import (
    ApprovalRequested,
    AttemptRejected,
    ErrorEvent,
    Event,
    FirstToken,
    ModelCallFinished,
    ModelCallStarted,
    PlanProposed,
    Retrying,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    TextDelta,
)
from fastcode.core.paths import new_run_id, run_dir
from fastcode.core.prompts import render
from fastcode.models import faststart
from fastcode.models import messages as msg
from fastcode.models.cache_warming import warm_targets, warm_up
from fastcode.models.client import (
    CallResult,
    ChatClient,
    EndpointError,
    launched_here,
    provider_name,
    server_kind,
)
from fastcode.models.warmup_request import PROBE_TIMEOUT_S, WarmupResult
from fastcode.models.wire import is_loopback
from fastcode.sandbox.policy import Sandbox
from fastcode.toolcalls import ANY_REPLY, ReplyShape, ToolMode, resolve_mode
from fastcode.toolcalls.modes import Parsed
from fastcode.toolcalls.prompt import system_prompt
from fastcode.toolcalls.thought import ThoughtStream
from fastcode.tools import tool_schemas
from fastcode.tools.base import ToolContext


@dataclass(frozen=True)
class Reply:
    """One model call's answer: the raw result, the calls and text read from it, and the mode that asked."""

    result: CallResult
    parsed: Parsed
    mode: ToolMode
    call_id: str = ""
    others: tuple[Parsed, ...] = ()
    """The other choices of a request for several (`n`), parsed the same way."""


_BACKGROUND = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fastcode-bg")
EXIT_CODES = {"finished": 0, "max_steps": 1, "stuck": 1, "timeout": 1, "error": 1, "interrupted": 130}


class Session:
    """One conversation with the repo; follow-up `run` calls continue it (and its cached prefix)."""

    def __init__(self, settings: Settings, root: Path, *, approver: Approver | None = None) -> None:
        self.settings, self.root, self.approver = settings, root.resolve(), approver
        secrets.configure(settings.security.env_deny, (p.api_key_env for p in settings.models.values()))
        self.sandbox = Sandbox.from_settings(settings.sandbox, self.root)
        paths.worked_on(self.root)  # fastcode's own git and rg never come from a folder in it
        self.tools = tool_schemas()
        self.known_tools = {t["function"]["name"] for t in self.tools}
        in_prompt = any(self._mode(settings.profile(kind)[1]).tools_in_prompt for kind in STEP_KINDS)
        self.messages: list[dict] = [msg.system(system_prompt(self.tools, in_prompt))]
        plan = settings.profile("plan")[1]
        here = launched_here(plan)
        self.endpoint = endpoint_key(plan.base_url, plan.model, launched_here=here)
        self.budget = ContextBudget(settings.context, self.endpoint, assumed=LAUNCHED_RATE if here else DEFAULT_RATE)
        self.clients: dict[str, ChatClient] = {}
        self.prefixes = PrefixTracker()
        self.turn = 0
        self.model_calls = 0
        self._task: asyncio.Task[None] | None = None
        self._test_cmd: str | None = None
        self._ran: tuple[ToolMode, list[CallOutcome]] | None = None
        """The tools of the current turn that already ran (native mode), for a stop while its tests run."""
        self.edit_paths: list[str] = []
        """The source files an edit-first reply may write (shown in the gathered context, tests excluded)."""
        self.edit_context = ""
        """The gathered context they were shown in (a one-edit search candidate's `old` is chosen from it)."""
        self.failing_tests: list[str] = []
        """pytest node ids that failed in the gathered test run: run first after an edit."""
        self.tests_failing_before: bool | None = None
        """Whether the gathered test run failed (None: no tests were run while gathering)."""
        self.search: tuple[int, int | None] = (0, None)
        """This run's test-time search: candidates drawn and the winner's index."""
        self._closing = False
        self._tests_approved: bool | None = None
        """This run's answer to "may the tests run?" where commands need approval (None: not asked yet)."""
        self.session_id = ""
        """The first run's id: every turn of this conversation carries it."""
        self.steps_taken = 0
        """Steps started in the current run (what a run that stopped early reports)."""

    def resume(self, earlier: Conversation) -> None:
        """Continue a conversation a run saved: its messages as they were (the cached prefix holds), its turn count
        (so the next task is a follow-up: no new context gathering) and its session id."""
        self.messages, self.turn, self.session_id = list(earlier.messages), earlier.turn, earlier.session_id

    async def run(self, task: str) -> AsyncIterator[Event]:
        """Yield every event of one run, in order; the trace file gets each one first."""
        run_id = new_run_id()
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        emit = Emitter(run_id, run_dir(self.root, run_id) / "trace.jsonl", queue)
        self._task = asyncio.create_task(self._run(task, run_id, emit))
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            if not self._task.done():
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def interrupt(self) -> None:
        """Stop the current run: tools are cancelled, files stay consistent, RunFinished says `interrupted`.

        A cancel that lands while a request is being written can be swallowed inside the HTTP stack, so it is
        repeated every 0.25 s until the run starts closing; once closing, interrupts are ignored so the diff and
        the trace are always written."""
        if self._task is None or self._task.done() or self._closing:
            return
        self._task.cancel()
        asyncio.get_running_loop().call_later(0.25, self.interrupt)

    async def _run(self, task: str, run_id: str, emit: Emitter) -> None:
        started, self.turn, self._closing = time.perf_counter(), self.turn + 1, False
        self.session_id = self.session_id or run_id
        self.failing_tests, self.tests_failing_before, self.search = [], None, (0, None)
        self._tests_approved = None
        calls_before = self.model_calls
        faststart.preload_openai()
        if self.settings.agent.auto_test or self.settings.context.run_tests:  # a warm pytest, ready before it's needed
            agent = self.settings.agent
            testcmd.prestart(self.test_command(), self.root, runner=agent.test_runner,
                             keep_alive_s=agent.test_runner_keep_alive, sandbox=self.sandbox)  # fmt: skip
        # gitpython's import and the repo lookup run in the background; the first write waits for them if needed.
        checkpoint = _BACKGROUND.submit(Checkpointer, self.root, run_dir(self.root, run_id), run_id)
        emit(
            RunStarted,
            task=task,
            repo=str(self.root),
            started_at=datetime.now(UTC).isoformat(),
            routes=self._route_labels(),
            turn=self.turn,
            session_id=self.session_id or run_id,
            sandbox=self.sandbox.describe(),
        )
        status, summary, steps, exit_code, self.steps_taken = "error", "", 0, 1, 0
        try:
            async with asyncio.timeout(self.settings.agent.timeout_s):
                status, summary, steps = await self._loop(task, emit, checkpoint)
            exit_code = EXIT_CODES[status]
        except TimeoutError:
            status, exit_code = "timeout", EXIT_CODES["timeout"]
            self._close_turn("not run: the time limit was reached")
        except asyncio.CancelledError:
            self._closing = True
            status, exit_code = "interrupted", EXIT_CODES["interrupted"]
            self._close_turn("interrupted by the user before it ran")
        except EndpointError as exc:
            emit(ErrorEvent, kind=exc.kind, message=str(exc))
            exit_code = 3
        except Exception as exc:  # a bug of ours: report it, still close the run cleanly
            emit(ErrorEvent, kind="internal", message=f"{type(exc).__name__}: {exc}")
        self._closing = True
        self.sandbox.close()  # the commands' private temporary directory
        conversation.save(run_dir(self.root, run_id), Conversation(self.session_id, self.turn, self.messages))
        diff = ""
        try:
            diff = (await asyncio.to_thread(lambda: checkpoint.result().finish())).diff
        except Exception as exc:
            emit(ErrorEvent, kind="internal", message=f"could not record the run's changes: {exc}")
        finally:
            emit(
                RunFinished,
                status=status,
                summary=summary,
                steps=steps or self.steps_taken,  # a run stopped early: the steps it did start
                model_calls=self.model_calls - calls_before,
                wall_s=round(time.perf_counter() - started, 3),
                diff=diff,
                exit_code=exit_code,
                candidates=self.search[0],
                winner=self.search[1],
            )
            emit.close()

    def _close_turn(self, reason: str) -> None:
        """A run stopped mid-turn: the calls that ran get their results, the others `reason`, so the conversation
        stays valid for a follow-up and says what happened to the files."""
        if self._ran is not None:
            mode, outcomes = self._ran
            self.messages.extend(mode.results([(o.call, o.output) for o in outcomes]))
        self.messages.extend(msg.unanswered(self.messages, reason))
        self._ran = None

    async def may_run_tests(self, emit: Emitter) -> bool:
        """Running the tests (while gathering, or after an edit) runs the repository's own code — conftest.py, and
        whatever the model wrote: where the approval mode asks before commands, it asks for this too, once a run."""
        if self.approver is None or "run" not in NEEDS_APPROVAL[self.settings.agent.approval]:
            return True
        command = self.test_command()
        if not command:
            return False
        if self._tests_approved is None:
            request = emit(ApprovalRequested, tool_id="tests", name="run", arguments={"command": command},
                           preview=command)  # fmt: skip
            self._tests_approved = await self.approver(request)
        return self._tests_approved

    async def _task_message(self, task: str, emit: Emitter) -> int:
        """Gather context (first turn), append the task message; return how many edit-first attempts to make."""
        context, code = "", False
        if self.turn == 1:
            plan_tools = self._request_tools(self.settings.profile("plan")[1])
            faststart.save_prefix(self.messages[:1], plan_tools)
            warming = warm_up(self.settings, emit, self.messages[:1], self._request_tools, self.cache_key)
            command = self.test_command() if is_about_tests(task) and await self.may_run_tests(emit) else ""
            gathering = gather_context(self.root, task, self.settings.context, command, emit)
            gathered, warmups = await asyncio.gather(gathering, warming)
            sections = gathered.sections
            if gathered.tests_failing is not None:
                self.tests_failing_before, self.failing_tests = gathered.tests_failing, gathered.failing_tests
            plan = self.settings.routes.profile_for("plan")
            own = [w for (name, _), w in zip(warm_targets(self.settings), warmups, strict=False) if name == plan]
            for timed_out in (w for w in own if not w.ok and "timed out" in w.error):
                if timed_out.hung:
                    raise self._hung(timed_out)
                self.budget.timed_out(len(str(self.messages[:1])) + len(str(plan_tools)), timed_out.ms / 1000)
            context = self.budget.fit(sections, own, emit)
            code = any(s.priority == 1 and f"## {s.title}" in context for s in sections)
        # Edit first when a test fails, or the task asks for a change to code it names (not "explain parse_date").
        policy = self.settings.agent.edit_first
        wanted = bool(self.tests_failing_before) or (policy == "auto" and not is_question(task))
        self.edit_paths = source_paths(context) if code and wanted else []
        self.edit_context = context
        edit_first = bool(self.edit_paths) and policy != "never"
        edit_first = edit_first and self._mode_of("plan").name == "constrained"
        template = "task" if self.turn == 1 else "followup"
        self.messages.append(msg.user(render(template, task=task, context=context, edit_first=edit_first)))
        judged = bool(self.settings.agent.auto_test and self.test_command())  # without tests, nothing to reject on
        return (self.settings.agent.edit_attempts if judged else 1) if edit_first else 0

    def _hung(self, warmup: WarmupResult) -> EndpointError:
        """The plan endpoint answered neither its warm-up nor a plain GET: fail now rather than after the first call's
        whole first-token deadline (a slow endpoint still answers the GET and gets its time)."""
        profile = self.settings.profile("plan")[1]
        return EndpointError(
            "timeout",
            f"endpoint {profile.base_url} answered neither the warm-up within {warmup.ms / 1000:.0f} s nor "
            f"GET /models within {PROBE_TIMEOUT_S:g} s: it looks hung (is the server stopped or stuck? "
            f"agent.warmup='never' skips this check)",
        )

    async def _act(
        self, reply: Reply, tools: ToolExecutor, router: Router, state: TurnState, emit: Emitter, step: int
    ) -> tuple[list[CallOutcome], str]:
        """Run a reply's calls, the tests after an edit, then its finish (declined while the tests fail); return the
        outcomes in the model's order and what fastcode adds after them (the test result, or a nudge)."""
        outcomes = await tools.run_turn([c for c in reply.parsed.calls if c.name != "finish"], step, tools.early)
        self._ran = (reply.mode, outcomes) if reply.mode.name == "native" else None
        tests = await router.after_tools(state, outcomes, self, emit, step)
        finishes = [c for c in reply.parsed.calls if c.name == "finish"]
        if finishes:
            outcomes.append(await tools.finish(finishes[0], step, router.finish_declined(state, outcomes)))
        outcomes += [tools.ignored(c, step, "ignored: one finish per reply") for c in finishes[1:]]
        self._ran = None
        order = {c.id: i for i, c in enumerate(reply.parsed.calls)}
        outcomes.sort(key=lambda o: order.get(o.call.id, len(order)))
        return outcomes, tests or ("" if outcomes else render("nudge", cut=reply.result.finish_reason == "length"))

    async def _loop(self, task: str, emit: Emitter, checkpoint: Future[Checkpointer]) -> tuple[str, str, int]:
        attempts, attempt = await self._task_message(task, emit), Attempt()

        def before_write(path: Path | None) -> None:
            checkpoint.result().before_write(path)
            attempt.before_write(path)

        ctx = ToolContext(
            self.root,
            before_write=before_write,
            max_output_chars=self.budget.tool_output_chars(self.settings.agent.tool_output_chars),
            sandbox=self.sandbox,
        )
        agent = self.settings.agent
        tools = ToolExecutor(ctx, emit, parallel=agent.parallel_tools, approval=agent.approval, approver=self.approver)
        router, state = Router(self.settings), TurnState(tests_failing=bool(self.tests_failing_before))
        attempts, drawn, first = min(attempts, agent.max_steps), set[str](), 1
        judged = agent.auto_test and bool(self.test_command())
        if attempts and judged and self.tests_failing_before:  # the tests judge: search instead of editing the tree
            done = await self._search(tools, router, state, emit)
            if done is not None:
                return done
            attempts, first = (0, 2) if self.search[0] else (attempts, 1)
        for step in range(first, agent.max_steps + 1):
            trying = step <= attempts
            kind = "plan" if trying else router.next_kind(state, emit, step)
            emit(StepStarted, step=step, route=kind)
            self.steps_taken = step
            step_start = time.perf_counter()
            tools.early = EarlyStarts(tools, step)
            focus = ReplyShape(only=EDIT_ONLY, paths=tuple(self.edit_paths)) if trying else ANY_REPLY
            try:
                reply = await self._call(kind, step, emit, tools.early, focus, **({"seed": step} if trying else {}))
            except BaseException:
                tools.early.cancel()
                raise
            answer = reply.mode.assistant_message(reply.result.content, reply.parsed)
            change = candidate(reply.parsed.calls) if trying else ""
            if trying and step < attempts and change in drawn:  # tested already: draw again
                emit(AttemptRejected, step=step, reason="the same edit as an earlier attempt")
                emit(StepFinished, step=step, ms=round((time.perf_counter() - step_start) * 1000, 2))
                continue
            drawn.add(change)
            if not trying:  # in the history at once: an interrupted turn still shows what it asked for
                self.messages.append(answer)
            if step == 1 and (items := msg.plan_items(reply.parsed.text)):
                emit(PlanProposed, items=items)
            try:
                outcomes, after = await self._act(reply, tools, router, state, emit, step)
            except BaseException:
                if trying:  # its reply is not in the history: its edits must not stay behind either
                    attempt.revert(self.root)
                raise
            accepted = any(o.call.name == "finish" and o.ok for o in outcomes)  # "nothing to change" is an answer
            if trying and step < attempts and not (state.tests_passed or accepted):  # take it back, draw again
                files = attempt.revert(self.root)
                emit(AttemptRejected, step=step, reason="the tests still fail" if files else "no edit", files=files)
                emit(StepFinished, step=step, ms=round((time.perf_counter() - step_start) * 1000, 2))
                state = TurnState(tests_failing=bool(self.tests_failing_before))
                continue
            attempt.originals.clear()
            if trying:
                self.messages.append(answer)
            self.messages.extend(reply.mode.results([(o.call, o.output) for o in outcomes], after))
            finished = next((o for o in outcomes if o.call.name == "finish" and o.ok), None)
            stuck = "" if finished else state.observe_reply(outcomes, agent.stuck_after, router.can_escalate(kind))
            if stuck:
                emit(ErrorEvent, kind="stuck", message=stuck)
            emit(StepFinished, step=step, ms=round((time.perf_counter() - step_start) * 1000, 2))
            if stuck:
                return "stuck", stuck, step
            if finished:
                return "finished", finished.output, step
            if trying and state.tests_passed and self.tests_failing_before:  # the edit made the failing tests pass
                return "finished", reply.parsed.text or "The failing tests pass after the edit.", step
        summary = (
            await self._summarize(emit, agent.max_steps + 1) if state.edited_ever and agent.summarize_on_stop else ""
        )
        return "max_steps", summary, agent.max_steps

    async def _search(
        self, tools: ToolExecutor, router: Router, state: TurnState, emit: Emitter
    ) -> tuple[str, str, int] | None:
        """Step 1 as a test-time search (`search.py`): the winner is applied to the tree and the run finishes once
        the tests pass there too; with no winner, the first answer stays in the conversation, not applied, and the run
        goes on from it or stops (`agent.search.if_none_pass`)."""
        started, config = time.perf_counter(), self.settings.agent.search
        profile = self.settings.profile("plan")[1]
        samples = config.count(server_kind(profile) in ("llamacpp", "vllm") or is_loopback(profile.base_url))
        one = config.one_edit == "always" or (config.one_edit == "auto" and self._mode_of("plan").name == "constrained")
        focus = ReplyShape(
            only=frozenset({"edit_file"}) if one else EDIT_ONLY,
            paths=tuple(self.edit_paths),
            one_call=one,
            olds=old_choices(self.root, self.edit_context, self.edit_paths) if one else None,
        )

        async def draw(seed: int, temperature: float | None, n: int) -> list[Drawn]:
            sample = {"seed": seed} | ({"temperature": temperature} if temperature is not None else {})
            shape = replace(focus, brief=seed > 1)  # after the first answer: a short thought, the edit is judged
            reply = await self._call("plan", 1, emit, None, shape, **sample, **({"n": n} if n > 1 else {}))
            answers = [
                (reply.parsed, reply.result.content),
                *((p, m.content) for p, m in zip(reply.others, reply.result.more, strict=False)),
            ]
            share = reply.result.decode_ms / len(answers)
            return [Drawn(p.calls, p.text, reply.call_id, seed, temperature, share, reply.result.completion_tokens,
                          reply.mode.assistant_message(content, p)) for p, content in answers]  # fmt: skip

        try:
            copy = await asyncio.to_thread(ScratchCopy, self.root)
        except ScratchError as exc:  # edit first in the tree instead, each rejected edit put back
            emit(ErrorEvent, kind="search", message=f"no test-time search: {exc}")
            return None
        copy_ms = round((time.perf_counter() - started) * 1000, 2)
        timeout_s = min(300.0, self.settings.agent.timeout_s)
        emit(StepStarted, step=1, route="plan")
        search = FixSearch(self.root, self.test_command(), self.failing_tests, config, samples, emit, 1,
                           timeout_s=timeout_s, endpoint=self.endpoint)  # fmt: skip
        outcome = await search.run(draw, copy, copy_ms)
        self.search = (outcome.drawn, outcome.winner.index if outcome.winner else None)
        mode, tried = self._mode_of("plan"), outcome.winner or outcome.first
        result: tuple[str, str, int] | None = None
        if tried is None:  # nothing drawn (cannot happen with samples >= 1): go on as usual
            pass
        elif outcome.winner is not None:  # apply it for real; the tests confirm it in the tree
            self.messages.append(tried.drawn.assistant)
            outcomes = await tools.run_turn([c for c in tried.drawn.calls if c.name != "finish"], 1)
            after = await router.after_tools(state, outcomes, self, emit, 1, verified=True)
            self.messages.extend(mode.results([(o.call, o.output) for o in outcomes], after))
            if state.tests_passed:
                text = tried.drawn.text or f"Candidate {tried.index} of {outcome.drawn} made the failing tests pass."
                result = ("finished", text, 1)
        else:  # the first answer, as the model gave it, and what the tests said of it in the copy
            self.messages.append(tried.drawn.assistant)
            note = ("not applied: tried in a scratch copy of the repository (the file is unchanged); with it "
                    "the tests still fail, below")  # fmt: skip
            said = [(call, f"{note}\n{out}" if not out.startswith("error") else out) for call, out in tried.edits]
            after = "" if tried.tests is None else render(
                "tests_result", command=tried.tests.command, exit_code=tried.tests.exit_code, passed=False,
                focused=[], output=tried.tests.output[-4000:])  # fmt: skip
            self.messages.extend(mode.results(said, after))
            state.tests_failing = True
            if config.stops(one, samples):
                why = f"none of the {outcome.drawn} candidate fixes made the failing tests pass"
                if router.can_escalate("plan"):  # another model takes it from here
                    state.escalate_reason = why
                else:
                    why = f"stuck: {why} (each tried in a scratch copy: the repository is unchanged)"
                    emit(ErrorEvent, kind="stuck", message=why)
                    result = ("stuck", why, 1)
        emit(StepFinished, step=1, ms=round((time.perf_counter() - started) * 1000, 2))
        return result

    async def _summarize(self, emit: Emitter, step: int) -> str:
        """Out of steps after changing files: one call on the `summarize` route says what was done and what is left."""
        self.messages.append(msg.user(render("summarize")))
        emit(StepStarted, step=step, route="summarize")
        started = time.perf_counter()
        reply = await self._call("summarize", step, emit)
        self.messages.append(reply.mode.assistant_message(reply.result.content, reply.parsed))
        self.messages.extend(msg.unanswered(self.messages, "not run: the step limit was reached"))
        emit(StepFinished, step=step, ms=round((time.perf_counter() - started) * 1000, 2))
        return reply.parsed.text.strip()

    def _mode(self, profile: ModelProfile) -> ToolMode:
        return resolve_mode(profile.tool_mode, server_kind(profile))

    def _mode_of(self, kind: str) -> ToolMode:
        return self._mode(self.settings.profile(kind)[1])

    def _request_tools(self, profile: ModelProfile) -> list[dict[str, Any]]:
        """The `tools` field a request to this profile carries (none when the prompt describes them)."""
        return self._mode(profile).request(self.tools)[0]

    async def _call(
        self,
        kind: str,
        step: int,
        emit: Emitter,
        early: EarlyStarts | None = None,
        shape: ReplyShape = ANY_REPLY,
        **sample: Any,
    ) -> Reply:
        name, profile = self.settings.profile(kind)
        client = self.clients.get(name) or self.clients.setdefault(
            name,
            ChatClient(profile, max_retries=self.settings.agent.max_retries, cache_key=self.cache_key, name=name),
        )
        mode = self._mode(profile)
        tools, extra = mode.request(self.tools, shape)
        if kind == "summarize":  # text only: no schema forcing tool calls
            extra = {}
        extra.update(sample)
        self.model_calls += 1
        call_id = f"{self.turn}.{step}.{self.model_calls}"
        digest, broke = self.prefixes.check(f"{profile.base_url}|{profile.model}", tools, self.messages)
        common = dict(call_id=call_id, step=step, route=kind, profile=name, model=profile.model)
        emit(ModelCallStarted, **common, base_url=profile.base_url, provider=provider_name(profile), prefix_hash=digest,
             prefix_break=broke)  # fmt: skip

        thought = ThoughtStream()

        def on_text(text: str, k: str) -> None:
            if k == "content" and mode.tools_in_prompt:  # a JSON reply: the user sees its thought
                if early:
                    early.text(text, lambda content: mode.parse(content, [], self.known_tools, call_id).calls)
                text = thought.feed(text)
            if text:
                emit(TextDelta, call_id=call_id, text=text, kind=k)

        retries = iter(range(1, 1_000))
        prompt_chars = sum(len(str(m.get("content") or "")) for m in self.messages) + len(str(tools))
        result = await client.stream(
            self.messages,
            tools,
            on_first_token=lambda ms: emit(FirstToken, call_id=call_id, ttft_ms=ms),
            on_text=on_text,
            on_call_ready=early.ready if early else None,
            on_retry=lambda wait, why: emit(Retrying, call_id=call_id, attempt=next(retries), wait_s=wait, reason=why),
            prefill_s=self.budget.prefill_seconds(prompt_chars),
            **extra,
        )
        parsed = mode.parse(result.content, result.tool_calls, self.known_tools, call_id)
        if name == self.settings.routes.profile_for("plan"):
            self.budget.observe(result)
        emit(
            ModelCallFinished,
            **common,
            prompt_tokens=result.prompt_tokens,
            cached_tokens=result.cached_tokens,
            completion_tokens=result.completion_tokens,
            ttft_ms=result.ttft_ms,
            decode_ms=result.decode_ms,
            total_ms=result.total_ms,
            setup_ms=result.setup_ms,
            server_prefill_ms=result.server_prefill_ms or None,
            decode_tps=result.decode_tps,
            content=parsed.text,
            tool_calls=parsed.calls,
            finish_reason=result.finish_reason,
            prefix_break=broke,
            tool_mode=mode.name,
            recovered=parsed.recovered,
        )
        others = tuple(mode.parse(m.content, m.tool_calls, self.known_tools, f"{call_id}.{i}")
                       for i, m in enumerate(result.more, 2))  # fmt: skip
        return Reply(result, parsed, mode, call_id, others)

    def test_command(self) -> str:
        """The configured test command, else the detected one, else "" (no tests to run)."""
        if self._test_cmd is None:
            self._test_cmd = self.settings.agent.test_cmd or detect_test_command(self.root) or ""
        return self._test_cmd

    @property
    def cache_key(self) -> str:
        import hashlib

        return "fastcode-" + hashlib.sha256(str(self.root).encode()).hexdigest()[:16]

    def _route_labels(self) -> dict[str, str]:
        labels = {}
        for kind in ("plan", "act", "edit", "verify", "escalate"):
            name, profile = self.settings.profile(kind)
            labels[kind] = f"{name}: {profile.model} @ {profile.base_url}"
        return labels
