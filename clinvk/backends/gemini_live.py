# -*- test-case-name: tests.backends.test_gemini_live -*-
"""
Gemini CLI's long-lived mode, C{gemini --acp}: the Agent Client Protocol
(JSON-RPC 2.0, one message a line) as clinvk speaks it, without I/O
(docs/design/live-sessions.md#live-gemini).

clinvk is the ACP I{client}: it sends C{initialize}, then C{session/new}
(or C{session/load} to continue a stored conversation), then one
C{session/prompt} per turn; the agent streams C{session/update}
notifications and ends the turn with its answer to the prompt.  The
message shapes are written here rather than taken from the
C{agent-client-protocol} package (docs/design-notes.md#acp-messages).
"""

from __future__ import annotations

from typing import Any, cast

from zope.interface import implementer

from clinvk.backends import events
from clinvk.backends.events import as_dict, as_int, as_str, compact, loads
from clinvk.interfaces import ILiveSession
from clinvk.model import LiveStep, ParsedResponse, TokenUsage, UnifiedEvent

PROTOCOL_VERSION = 1

# JSON-RPC's code for a method the receiver does not have.
METHOD_NOT_FOUND = -32601
# What gemini answers a request naming a session it does not hold.
INVALID_PARAMS = -32602

# The text gemini sends as an agent_message_chunk when a session's approval
# mode changes: a notice, not model output.
MODE_UPDATE = "[MODE_UPDATE]"

# Stop reasons of a turn that did not answer.
FAILED_STOPS = {
    "cancelled": "the turn was cancelled",
    "refusal": "the model refused to answer",
}


def _step(found: list[UnifiedEvent], **more: Any) -> LiveStep:
    """
    A step carrying events C{found}.  (mypy reads the C{tuple} converter
    of L{LiveStep.events} as taking no list it can name, hence the cast.)
    """
    return LiveStep(events=cast("Any", found), **more)


def _line(message: dict[str, Any]) -> str:
    """One JSON-RPC 2.0 message, as a line's text."""
    return compact({"jsonrpc": "2.0", **message})


def _error_text(error: dict[str, Any]) -> str:
    """
    A JSON-RPC error as a person reads it: its message (the API's own,
    when gemini passes the API's error body on), with C{data.details}
    when gemini put the reason there (C{Internal error} alone says nothing).
    """
    message = events.readable(as_str(error.get("message")))
    details = as_str(as_dict(error.get("data")).get("details"))
    if details and details not in message:
        return f"{message}: {details}" if message else details
    return message or f"JSON-RPC error {error.get('code')}"


def _content_text(content: Any) -> str:
    """The text of an ACP content block, or C{""} when it holds no text."""
    block = as_dict(content)
    return as_str(block.get("text")) if block.get("type") == "text" else ""


def _tool_output(update: dict[str, Any]) -> str:
    """The text of a tool call's C{content} list (its C{content} items' text)."""
    texts = []
    for item in update.get("content") or ():
        item = as_dict(item)
        if item.get("type") == "content":
            text = _content_text(item.get("content"))
            if text:
                texts.append(text)
    return "\n".join(texts)


def _tool_name(update: dict[str, Any]) -> str:
    """
    The tool's own name: gemini names a call C{<tool>__<tool>_<millis>_<n>}
    (C{<tool>-<millis>-<n>} for calls it makes itself); else its kind.
    """
    call = as_str(update.get("toolCallId"))
    if "__" in call:
        return call.split("__", 1)[0]
    return as_str(update.get("kind")) or as_str(update.get("title"))


@implementer(ILiveSession)
class GeminiLiveSession:
    """
    One C{gemini --acp} process serving one conversation.

    @ivar native_session_id: The ACP C{sessionId}: from C{session/new}'s
        answer, or the stored id a C{session/load} continues.
    """

    def __init__(self, cwd: str, resume_id: str = "", model: str = "", allow_tools: bool = False) -> None:
        """
        @param cwd: The absolute working directory of the conversation.
        @param resume_id: The stored conversation to load, or C{""}.
        @param model: The model asked for, reported until gemini names its own.
        @param allow_tools: How to answer gemini's C{session/request_permission}:
            allow the call once (the approval mode C{none}, where C{--yolo}
            should have made gemini never ask), else reject it, as gemini's
            own headless mode (C{-p}) refuses a call that needs approval.
        """
        self.native_session_id = resume_id
        self._cwd = cwd
        self._resume_id = resume_id
        self._model = model
        self._allow_tools = allow_tools
        self._last_id = 0
        # Our requests awaiting their answers: id -> what they were.
        self._asked: dict[int, str] = {}
        self._ready = False
        self._failed = False
        # After a session/load: the history is still being replayed.
        self._replaying = False
        # The turn running: the id of its session/prompt, the lines read
        # since it was sent, and its answer so far.
        self._prompt_id: int | None = None
        self._sequence = 0
        self._answer: list[str] = []
        self._tools: dict[str, str] = {}
        self._init_sent = False
        # The first turn after a session/load (see _response).
        self._loaded_turn = False

    # -- what to write

    def _request(self, method: str, params: dict[str, Any], purpose: str) -> str:
        self._last_id += 1
        self._asked[self._last_id] = purpose
        return _line({"id": self._last_id, "method": method, "params": params})

    def opening(self) -> list[str]:
        capabilities = {"fs": {"readTextFile": False, "writeTextFile": False}, "terminal": False}
        return [
            self._request(
                "initialize",
                {"protocolVersion": PROTOCOL_VERSION, "clientCapabilities": capabilities},
                "initialize",
            )
        ]

    def ready_at_start(self) -> bool:
        return False

    def turn(self, text: str) -> list[str]:
        if not self._ready or self._prompt_id is not None:
            raise RuntimeError("gemini --acp takes a turn only when ready and idle")
        line = self._request(
            "session/prompt",
            {"sessionId": self.native_session_id, "prompt": [{"type": "text", "text": text}]},
            "prompt",
        )
        self._prompt_id = self._last_id
        self._sequence = 0
        self._answer = []
        self._tools = {}
        self._init_sent = False
        return [line]

    def interrupt(self) -> list[str]:
        if self._prompt_id is None or not self.native_session_id:
            return []
        return [_line({"method": "session/cancel", "params": {"sessionId": self.native_session_id}})]

    # -- what was read

    def feed(self, line: str) -> LiveStep:
        if self._prompt_id is not None:
            self._sequence += 1
        if self._failed:
            return LiveStep()
        data = loads(line)
        if not isinstance(data, dict):
            # gemini writes its noise to stderr; stdout holds JSON-RPC only.
            return LiveStep()
        method = data.get("method")
        if isinstance(method, str) and "id" in data:
            return LiveStep(replies=[self._answer_request(data["id"], method, as_dict(data.get("params")))])
        if isinstance(method, str):
            if method == "session/update":
                return self._update(as_dict(data.get("params")))
            return LiveStep()
        answered = data.get("id")
        if isinstance(answered, int) and answered in self._asked:
            return self._response(self._asked.pop(answered), data)
        return LiveStep()

    def _answer_request(self, request_id: Any, method: str, params: dict[str, Any]) -> str:
        """
        Answer a request of the agent at once, so that it never waits on
        clinvk: a permission by the approval mode, anything else (we
        declared no file system and no terminal) as a method we lack.
        """
        if method == "session/request_permission":
            wanted = ("allow_once", "allow_always") if self._allow_tools else ("reject_once", "reject_always")
            for kind in wanted:
                for option in params.get("options") or ():
                    option = as_dict(option)
                    if option.get("kind") == kind and as_str(option.get("optionId")):
                        outcome = {"outcome": "selected", "optionId": option["optionId"]}
                        return _line({"id": request_id, "result": {"outcome": outcome}})
            return _line({"id": request_id, "result": {"outcome": {"outcome": "cancelled"}}})
        error = {"code": METHOD_NOT_FOUND, "message": f"Method not found: {method}"}
        return _line({"id": request_id, "error": error})

    def _fail(self, why: str) -> LiveStep:
        self._failed = True
        return LiveStep(failure=why)

    def _response(self, purpose: str, data: dict[str, Any]) -> LiveStep:
        error = data.get("error")
        result = as_dict(data.get("result"))
        if purpose == "prompt":
            return self._end(result, as_dict(error) if error is not None else None)
        if error is not None:
            return self._fail(f"gemini refused {purpose}: {_error_text(as_dict(error))}")
        if purpose == "initialize":
            return self._open_session(result)
        # "auto" without --model, as the cold stream's init says.
        self._model = as_str(as_dict(result.get("models")).get("currentModelId")) or self._model
        if purpose == "session/new":
            session = as_str(result.get("sessionId"))
            if not session:
                return self._fail("gemini answered session/new without a sessionId")
            self.native_session_id = session
            self._ready = True
            return LiveStep(ready=True)
        # session/load.  gemini replays the stored history as
        # session/update notifications, and does so *after* starting to
        # answer: its loadSession starts streamHistory() without awaiting
        # it and returns, so the answer comes after the first replayed
        # update and the rest follows it (each replayed update waits for
        # the write before it).  Nothing in the protocol marks the end of
        # the replay; what comes closest is the available_commands_update
        # that loadSession schedules with setTimeout(0) right after
        # starting the replay.  While clinvk reads stdout as fast as
        # gemini writes, Node drains the whole replay before that timer
        # runs; when the pipe is full it does not (a reader stalled for
        # 3 s saw it in mid-replay).  So the session is ready only once
        # that notification came, and a turn that still sees replayed
        # history (a user_message_chunk, which a live turn never sends)
        # fails the process rather than pass replayed text off as its
        # answer (docs/design/live-sessions.md#live-gemini).
        self._replaying = True
        return LiveStep()

    def _open_session(self, result: dict[str, Any]) -> LiveStep:
        if self._resume_id:
            capabilities = as_dict(result.get("agentCapabilities"))
            if capabilities.get("loadSession") is not True:
                return self._fail("gemini cannot load a stored session (no loadSession capability)")
            params = {"sessionId": self._resume_id, "cwd": self._cwd, "mcpServers": []}
            return LiveStep(replies=[self._request("session/load", params, "session/load")])
        params = {"cwd": self._cwd, "mcpServers": []}
        return LiveStep(replies=[self._request("session/new", params, "session/new")])

    def _update(self, params: dict[str, Any]) -> LiveStep:
        if as_str(params.get("sessionId")) != self.native_session_id:
            return LiveStep()
        update = as_dict(params.get("update"))
        kind = update.get("sessionUpdate")
        if self._replaying:
            if kind == "available_commands_update":
                self._replaying = False
                self._ready = True
                self._loaded_turn = True
                return LiveStep(ready=True)
            return LiveStep()
        if self._prompt_id is None:
            # Between turns: late notices (available commands, modes).
            return LiveStep()
        if kind == "user_message_chunk":
            if self._loaded_turn:
                return self._fail("the history gemini replays on session/load ran into the turn")
            return LiveStep()
        sequence = self._sequence
        found: list[UnifiedEvent] = []
        if kind == "agent_message_chunk":
            text = _content_text(update.get("content"))
            if text and not text.startswith(MODE_UPDATE):
                self._answer.append(text)
                found.append(events.message(text, sequence, partial=True))
        elif kind == "agent_thought_chunk":
            text = _content_text(update.get("content"))
            if text:
                found.append(events.thinking(text, sequence, partial=True))
        elif kind in ("tool_call", "tool_call_update"):
            found += self._tool(update, sequence)
        return _step(self._started(found))

    def _tool(self, update: dict[str, Any], sequence: int) -> list[UnifiedEvent]:
        call = as_str(update.get("toolCallId"))
        status = update.get("status")
        found = []
        if call not in self._tools:
            self._tools[call] = _tool_name(update)
            tool_input = update.get("rawInput")
            if tool_input is None:
                tool_input = {"title": as_str(update.get("title")), "kind": as_str(update.get("kind"))}
            found.append(events.tool_use(self._tools[call], tool_input, sequence, tool_id=call))
        if status in ("completed", "failed"):
            output = _tool_output(update)
            found.append(
                events.tool_result(
                    sequence,
                    tool_id=call,
                    tool_name=self._tools[call],
                    output=output,
                    is_error=status == "failed",
                    error_message=output if status == "failed" else "",
                )
            )
        return found

    def _started(self, found: list[UnifiedEvent]) -> list[UnifiedEvent]:
        """
        C{found}, after the turn's C{init} event when they are its first
        events; C{init} stands for the turn's start, line 1.
        """
        if found and not self._init_sent:
            self._init_sent = True
            init = events.init(1, model=self._model, native_id=self.native_session_id, working_dir=self._cwd)
            return [init, *found]
        return found

    def _end(self, result: dict[str, Any], error: dict[str, Any] | None) -> LiveStep:
        """The answer to our session/prompt: the end of the turn."""
        sequence = self._sequence
        self._prompt_id = None
        self._loaded_turn = False
        found: list[UnifiedEvent] = []
        failure = ""
        if error is not None:
            text = _error_text(error)
            code = error.get("code")
            found.append(events.error(text, sequence, code=str(code) if code is not None else ""))
            usage: TokenUsage | None = None
            if code == INVALID_PARAMS and "not found" in text.lower():
                # The process no longer holds the conversation.
                self._failed = True
                failure = f"gemini lost the session: {text}"
        else:
            stop = as_str(result.get("stopReason"))
            text = FAILED_STOPS.get(stop, "")
            if text:
                found.append(events.error(text, sequence, code=stop))
            tokens = as_dict(as_dict(as_dict(result.get("_meta")).get("quota")).get("token_count"))
            usage = TokenUsage(as_int(tokens.get("input_tokens")), as_int(tokens.get("output_tokens")))
        found.append(events.done(sequence, usage))
        found = self._started(found)
        ended = ParsedResponse(
            content="".join(self._answer), session_id=self.native_session_id, usage=usage, error=text
        )
        return _step(found, ended=ended, failure=failure)
