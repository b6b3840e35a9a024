# -*- test-case-name: tests.backends.test_codex_live -*-
"""
Codex's long-lived mode, C{codex app-server}
(docs/design/live-sessions.md#live-codex): JSON-RPC over standard input and
output, one message a line, without the C{"jsonrpc"} member.

L{live_launch} turns the flags clinvk would give C{codex exec} into the
flags C{app-server} takes and the settings of the thread;
L{CodexLiveSession} is the conversation with one process, without I/O:
the handshake (C{initialize}, C{initialized}, then C{thread/start} or
C{thread/resume}), turns (C{turn/start} until C{turn/completed}),
interrupts (C{turn/interrupt}) and the answers to the CLI's own requests.
A turn's events are those a cold C{codex exec --json} run gives for the
same turn (docs/design/cli-runs.md#codex-stream): whole messages, since a
delta that a reconnect voids could not be taken back from a client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attrs import Factory, define, evolve, frozen

from zope.interface import implementer

from clinvk._version import __version__
from clinvk.backends import events
from clinvk.backends.events import as_dict, as_int, as_str, compact, loads, readable
from clinvk.backends.flags import BOOLEAN_FLAGS
from clinvk.interfaces import ILiveSession
from clinvk.model import LiveStep, ParsedResponse, TokenUsage, UnifiedEvent

# -- the command line and the thread's settings

# Flags of the cold command line that app-server takes too (`codex
# app-server --help`): configuration overrides and features.
_KEPT_WITH_VALUE = frozenset({"-c", "--config", "--enable", "--disable"})
_KEPT = frozenset({"--strict-config"})

# Flags of the cold command line that are settings of a thread here.
_THREAD_SETTINGS = {
    "--model": "model",
    "-m": "model",
    "--sandbox": "sandbox",
    "-s": "sandbox",
    "--ask-for-approval": "approvalPolicy",
    "-a": "approvalPolicy",
}
_NO_SANDBOX = {"sandbox": "danger-full-access", "approvalPolicy": "never"}
_THREAD_SWITCHES: Mapping[str, Mapping[str, str]] = {
    "--full-auto": {"sandbox": "workspace-write"},
    "--dangerously-bypass-approvals-and-sandbox": _NO_SANDBOX,
    "--yolo": _NO_SANDBOX,
}

# Flags of `codex exec` alone that take no value: dropped by themselves
# (any other dropped flag written without "=" takes the next token that
# is not a flag with it).
_EXEC_SWITCHES = frozenset(
    {
        "--skip-git-repo-check",
        "--oss",
        "--ephemeral",
        "--ignore-user-config",
        "--ignore-rules",
        "--trust",
        "--approve-for-me",
        "--dangerously-bypass-hook-trust",
        "--worktree",
    }
)

# What `codex exec` asks for when nothing is said: it never waits for an
# approval (codex-rs/exec/src/lib.rs: "Default to never ask for approvals
# in headless mode").
DEFAULT_APPROVAL_POLICY = "never"


@frozen
class Launch:
    """
    How a live process starts.

    @ivar flags: The flags after C{app-server}.
    @ivar thread: The settings C{thread/start} and C{thread/resume} carry:
        C{approvalPolicy}, and C{model} and C{sandbox} when chosen.
    """

    flags: tuple[str, ...]
    thread: Mapping[str, str]


def live_launch(mapped: Sequence[str], model: str) -> Launch:
    """
    The launch of a live process for the flags a cold run would have.

    @param mapped: The mapped flags of the cold command line
        (docs/design/cli-runs.md#flag-mapping: approval, sandbox, the
        output format, dry run, then the extra flags), so that approval
        and sandbox modes map as the cold table maps them.
    @param model: The model, resolved from its alias, or C{""}.
    @return: A L{Launch}: C{-c}, C{--enable}, C{--disable} and
        C{--strict-config} stay on the command line; the model, approval
        and sandbox flags become the thread's settings (the last one
        given wins); every other flag, with its value, is dropped (those
        of C{exec} alone, such as C{--json} and
        C{--skip-git-repo-check}).
    """
    flags: list[str] = []
    thread = {"approvalPolicy": DEFAULT_APPROVAL_POLICY}
    if model:
        thread["model"] = model
    tokens = list(mapped)
    index = 0

    def value_follows() -> bool:
        return index < len(tokens) and not tokens[index].startswith("-")

    while index < len(tokens):
        token = tokens[index]
        index += 1
        name, equals, value = token.partition("=")
        if not name.startswith("-") or name == "-":
            continue
        if name in _KEPT_WITH_VALUE or name in _THREAD_SETTINGS:
            if not equals:
                if not value_follows():
                    continue
                value = tokens[index]
                index += 1
            if name in _KEPT_WITH_VALUE:
                flags += [name, value]
            else:
                thread[_THREAD_SETTINGS[name]] = value
        elif name in _KEPT:
            flags.append(token)
        elif name in _THREAD_SWITCHES:
            thread.update(_THREAD_SWITCHES[name])
        elif not equals and name not in BOOLEAN_FLAGS and name not in _EXEC_SWITCHES and value_follows():
            # A flag of exec alone, with its value (read as
            # docs/design/cli-runs.md#extra-flags reads them).
            index += 1
    return Launch(tuple(flags), thread)


# -- the conversation

# Notifications clinvk never reads, which the server then does not send
# (`initialize`'s capabilities.optOutNotificationMethods): a command's
# output arrives whole in its completed item anyway.
OPTED_OUT = (
    "account/rateLimits/updated",
    "remoteControl/status/changed",
    "item/commandExecution/outputDelta",
    "item/fileChange/outputDelta",
    "command/exec/outputDelta",
)

# The answers to the CLI's requests for approval: nobody is there to
# approve, so clinvk declines (docs/design/live-sessions.md#live-codex).
# The CLI only asks when the thread's approval policy says to ask; the
# turn goes on, and the model is told the request was declined.
DECLINED: Mapping[str, Mapping[str, str]] = {
    "item/commandExecution/requestApproval": {"decision": "decline"},
    "item/fileChange/requestApproval": {"decision": "decline"},
    "execCommandApproval": {"decision": "denied"},
    "applyPatchApproval": {"decision": "denied"},
    "mcpServer/elicitation/request": {"action": "cancel"},
}

# The CLI's other requests, which clinvk cannot serve: refused with an
# error, as `codex exec` refuses them.
REFUSED = frozenset(
    {
        "item/permissions/requestApproval",
        "item/tool/requestUserInput",
        "item/tool/call",
        "account/chatgptAuthTokens/refresh",
        "attestation/generate",
    }
)
SERVER_ERROR = -32000
METHOD_NOT_FOUND = -32601

INTERRUPTED = "turn interrupted"


def _usage(counts: Any) -> TokenUsage:
    """A C{tokenUsage} breakdown, counted as a cold run's C{turn.completed} is."""
    counts = as_dict(counts)
    return TokenUsage(
        input_tokens=as_int(counts.get("inputTokens")),
        output_tokens=as_int(counts.get("outputTokens")),
        cached_tokens=as_int(counts.get("cachedInputTokens")),
    )


def _error_text(error: Any) -> str:
    """A C{TurnError}'s text, as C{codex exec} prints it."""
    error = as_dict(error)
    message, details = as_str(error.get("message")), as_str(error.get("additionalDetails"))
    return f"{message} ({details})" if details else message


def _notice_text(params: Mapping[str, Any]) -> str:
    summary, details = as_str(params.get("summary")), as_str(params.get("details"))
    return f"{summary} ({details})" if details else summary


def _is_error_item(item: Mapping[str, Any]) -> bool:
    exit_code = item.get("exitCode")
    return item.get("status") in ("failed", "declined") or (isinstance(exit_code, int) and exit_code != 0)


@define
class _Turn:
    """
    The running turn.

    @ivar base: The thread's token total before the turn.
    @ivar counted: Whether the turn's own usage was reported yet.
    @ivar started: Whether C{turn/started} came: only then can the turn
        be interrupted.
    @ivar early: Usage reports that came before the turn's id was known:
        (their turn id, the thread's total).
    """

    base: TokenUsage
    sequence: int = 0
    turn_id: str = ""
    started: bool = False
    interrupt_wanted: bool = False
    counted: bool = False
    early: list[tuple[str, TokenUsage]] = Factory(list)
    messages: list[str] = Factory(list)
    last_error: str = ""


@implementer(ILiveSession)
class CodexLiveSession:
    """
    One C{codex app-server} process's conversation
    (docs/design/live-sessions.md#live-codex).

    @ivar native_session_id: The thread's id, once C{thread/start} or
        C{thread/resume} answered.
    """

    def __init__(self, thread: Mapping[str, str], resume_id: str, cwd: str) -> None:
        """
        @param thread: The thread's settings (L{Launch.thread}).
        @param resume_id: The thread to continue, or C{""} for a new one.
        @param cwd: The working directory of the thread.
        """
        self.native_session_id = ""
        self._thread = dict(thread)
        self._resume_id = resume_id
        self._cwd = cwd
        self._model = thread.get("model", "")
        self._last_id = 0
        self._requests: dict[int, str] = {}
        self._thread_total = TokenUsage()
        self._turn: _Turn | None = None

    def _request(self, method: str, params: Mapping[str, Any]) -> str:
        self._last_id += 1
        self._requests[self._last_id] = method
        return compact({"id": self._last_id, "method": method, "params": params})

    # -- ILiveSession

    def opening(self) -> list[str]:
        client = {"name": "clinvk", "title": "clinvk", "version": __version__}
        capabilities = {"optOutNotificationMethods": list(OPTED_OUT)}
        return [self._request("initialize", {"clientInfo": client, "capabilities": capabilities})]

    def ready_at_start(self) -> bool:
        return False

    def turn(self, text: str) -> list[str]:
        self._turn = _Turn(base=self._thread_total)
        params = {"threadId": self.native_session_id, "input": [{"type": "text", "text": text}]}
        return [self._request("turn/start", params)]

    def interrupt(self) -> list[str]:
        """
        C{turn/interrupt} stops a turn once it has started: before its
        C{turn/started} (which comes just after the answer to C{turn/start})
        the CLI answers C{no active turn to interrupt}.  Asked for earlier,
        the interrupt is a reply to C{turn/started}, and this returns
        nothing.
        """
        turn = self._turn
        if turn is None:
            return []
        if not turn.started:
            turn.interrupt_wanted = True
            return []
        return [self._interrupt(turn)]

    def _interrupt(self, turn: _Turn) -> str:
        return self._request("turn/interrupt", {"threadId": self.native_session_id, "turnId": turn.turn_id})

    def feed(self, line: str) -> LiveStep:
        turn = self._turn
        if turn is not None:
            turn.sequence += 1
        message = loads(line)
        # app-server prints nothing but JSON-RPC messages on stdout.
        step = self._message(message, turn) if isinstance(message, dict) else LiveStep()
        if turn is None:
            return evolve(step, events=())
        if turn.sequence == 1:
            first = events.init(1, model=self._model, native_id=self.native_session_id, working_dir=self._cwd)
            step = evolve(step, events=(first, *step.events))
        return step

    # -- messages

    def _message(self, message: dict[str, Any], turn: _Turn | None) -> LiveStep:
        method = message.get("method")
        if isinstance(method, str):
            if "id" in message:
                return LiveStep(replies=[self._answer(message["id"], method)])
            return self._notification(method, as_dict(message.get("params")), turn)
        if "id" in message:
            return self._response(message, turn)
        return LiveStep()

    def _answer(self, request_id: Any, method: str) -> str:
        """The answer to the CLI's request C{method} (see L{DECLINED} and L{REFUSED})."""
        if method in DECLINED:
            return compact({"id": request_id, "result": DECLINED[method]})
        if method in REFUSED:
            error = {"code": SERVER_ERROR, "message": f"{method} is not supported by clinvk"}
        else:
            error = {"code": METHOD_NOT_FOUND, "message": f"method not found: {method}"}
        return compact({"id": request_id, "error": error})

    def _response(self, message: dict[str, Any], turn: _Turn | None) -> LiveStep:
        request_id = message.get("id")
        method = self._requests.pop(request_id, "") if isinstance(request_id, int) else ""
        failed = "error" in message
        error = readable(as_str(as_dict(message.get("error")).get("message")))
        result = as_dict(message.get("result"))
        if method == "initialize":
            if failed:
                return LiveStep(failure=f"codex app-server refused initialize: {error}")
            return LiveStep(replies=[compact({"method": "initialized"}), self._open_thread()])
        if method in ("thread/start", "thread/resume"):
            if failed:
                return LiveStep(failure=f"codex app-server refused {method}: {error}")
            thread = as_dict(result.get("thread"))
            self.native_session_id = as_str(thread.get("id")) or self._resume_id
            self._model = as_str(result.get("model")) or self._model
            self._cwd = as_str(result.get("cwd")) or self._cwd
            return LiveStep(ready=True)
        if method == "turn/start" and turn is not None:
            if failed:
                return self._end(turn, "failed", error or "turn/start failed")
            self._know_turn(turn, as_str(as_dict(result.get("turn")).get("id")))
        # The answer to turn/interrupt says nothing the turn's end does not.
        return LiveStep()

    def _open_thread(self) -> str:
        params: dict[str, Any] = {**self._thread, "cwd": self._cwd}
        if not self._resume_id:
            return self._request("thread/start", params)
        # The history stays with the CLI: clinvk only needs the thread.
        params = {"threadId": self._resume_id, **params, "excludeTurns": True}
        return self._request("thread/resume", params)

    def _know_turn(self, turn: _Turn, turn_id: str) -> None:
        if turn.turn_id or not turn_id:
            return
        turn.turn_id = turn_id
        for reported, total in turn.early:
            self._count(turn, reported, total)
        turn.early.clear()

    def _count(self, turn: _Turn, reported: str, total: TokenUsage) -> None:
        """
        Note the thread's token total, which a report for the turn
        C{reported} gave: one for this turn counts towards it; one for
        another turn, before this turn's first (the stored totals that
        follow C{thread/resume}), is where this turn starts from.
        """
        if reported == turn.turn_id:
            turn.counted = True
            self._thread_total = total
        elif not turn.counted:
            turn.base = total
            self._thread_total = total

    def _notification(self, method: str, params: dict[str, Any], turn: _Turn | None) -> LiveStep:
        if method == "thread/tokenUsage/updated":
            total = _usage(as_dict(params.get("tokenUsage")).get("total"))
            reported = as_str(params.get("turnId"))
            if turn is None:
                self._thread_total = total
            elif not turn.turn_id:
                turn.early.append((reported, total))
            else:
                self._count(turn, reported, total)
            return LiveStep()
        if turn is None:
            return LiveStep()
        sequence = turn.sequence
        if method == "turn/started":
            self._know_turn(turn, as_str(as_dict(params.get("turn")).get("id")))
            turn.started = True
            found = [events.progress("turn_started", sequence, message_text="Processing...")]
            if turn.interrupt_wanted and turn.turn_id:
                turn.interrupt_wanted = False
                return LiveStep(events=found, replies=[self._interrupt(turn)])
            return LiveStep(events=found)
        if method == "turn/completed":
            finished = as_dict(params.get("turn"))
            self._know_turn(turn, as_str(finished.get("id")))
            status = as_str(finished.get("status"))
            if not turn.messages and status == "completed":
                # The items of the turn, when their own notifications did not come.
                for item in finished.get("items") or []:
                    item = as_dict(item)
                    if item.get("type") == "agentMessage" and as_str(item.get("text")):
                        turn.messages.append(as_str(item.get("text")))
            return self._end(turn, status, _error_text(finished.get("error")))
        return LiveStep(events=self._events(method, params, turn, sequence))

    def _events(self, method: str, params: dict[str, Any], turn: _Turn, sequence: int) -> list[UnifiedEvent]:
        """The events of one notification of the running turn (docs/design/live-sessions.md#live-codex)."""
        if method == "item/started":
            item = as_dict(params.get("item"))
            if item.get("type") == "commandExecution":
                return [
                    events.tool_use(
                        "command_execution",
                        {"command": item.get("command")},
                        sequence,
                        tool_id=as_str(item.get("id")),
                    )
                ]
            return []
        if method == "item/completed":
            return self._completed(as_dict(params.get("item")), turn, sequence)
        if method == "error":
            text = _error_text(params.get("error"))
            if params.get("willRetry") is True:
                return [events.progress("reconnecting", sequence, message_text=text)]
            turn.last_error = text
            return [events.error(text, sequence)]
        if method in ("configWarning", "deprecationNotice"):
            return [events.error(_notice_text(params), sequence, code="warning", warning=True)]
        if method == "model/rerouted":
            text = (
                f"model rerouted: {as_str(params.get('fromModel'))} -> {as_str(params.get('toModel'))}"
                f" ({as_str(params.get('reason'))})"
            )
            return [events.error(text, sequence, code="warning", warning=True)]
        return []

    def _completed(self, item: dict[str, Any], turn: _Turn, sequence: int) -> list[UnifiedEvent]:
        kind = item.get("type")
        item_id = as_str(item.get("id"))
        if kind == "agentMessage":
            text = as_str(item.get("text"))
            if text:
                turn.messages.append(text)
            return [events.message(text, sequence)]
        if kind == "reasoning":
            summary = item.get("summary")
            text = "\n".join(as_str(part) for part in summary) if isinstance(summary, list) else ""
            if not text.strip():
                return []
            return [events.thinking(text, sequence)]
        if kind == "commandExecution":
            return [
                events.tool_result(
                    sequence,
                    tool_id=item_id,
                    tool_name="command_execution",
                    output=as_str(item.get("aggregatedOutput")),
                    is_error=_is_error_item(item),
                )
            ]
        if kind in ("fileChange", "mcpToolCall", "webSearch"):
            name = {"fileChange": "file_change", "webSearch": "web_search"}.get(str(kind), "")
            if kind == "mcpToolCall":
                name = f"{as_str(item.get('server'))}.{as_str(item.get('tool'))}"
            details = {key: value for key, value in item.items() if key not in ("id", "type")}
            return [
                events.tool_result(
                    sequence,
                    tool_id=item_id,
                    tool_name=name,
                    output=compact(details),
                    is_error=item.get("status") in ("failed", "declined"),
                )
            ]
        return []

    def _end(self, turn: _Turn, status: str, error: str) -> LiveStep:
        """
        The end of the running turn: an C{error} event when it failed (and
        no C{error} notification said so already), then C{done} with its
        own tokens.
        """
        self._turn = None
        sequence = turn.sequence
        found: list[UnifiedEvent] = []
        if status == "interrupted":
            error = INTERRUPTED
            found.append(events.error(error, sequence, code="interrupted"))
        elif status == "completed":
            error = turn.last_error
        else:
            error = error or turn.last_error or "turn failed"
            if error != turn.last_error:
                found.append(events.error(error, sequence))
        usage = self._thread_total.since(turn.base)
        found.append(events.done(sequence, usage))
        answer = ParsedResponse(
            content="\n".join(turn.messages),
            session_id=self.native_session_id,
            usage=usage,
            error=readable(error),
        )
        return LiveStep(events=found, ended=answer)
