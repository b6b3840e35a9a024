# -*- test-case-name: tests.integration.test_runtime -*-
"""
Fake C{claude}, C{codex} and C{gemini} command-line tools.

They take the arguments the real tools take (as clinvk passes them),
read the prompt from stdin, and print each output format in the shapes
the real CLIs print (recorded in C{tests/data/recordings/}, which
C{tests/testing/test_recordings.py} holds the fakes to), so clinvk can
be tested and demonstrated without the real CLIs.  L{install} writes
three executables into a directory to put on C{PATH}.

A test steers a fake through directives: lines of the prompt, or of the
C{CLINVK_FAKE} environment variable, of the form C{#fake key=value ...}.
A line C{#fake-answer <text>} sets the answer verbatim.  C{--version}
prints the real CLI's version line, marked as a fake.

  - C{delay=S}: wait S seconds before answering;
  - C{hold}: answer only once sent C{SIGUSR1}, which a test sends (to the
    pid in the record) when it is ready for the answer; C{hold=rest}:
    stream the first piece of the answer at once, the rest once released;
  - C{silent=S}: print nothing for S seconds first;
  - C{chunks=N}, C{chunk_delay=S}: stream the answer in N pieces;
  - C{fail=auth|api|crash|usage}: fail the way the real CLI does (C{api}:
    the model API answered 400);
  - C{tool}: the model first runs C{echo hi} with the CLI's shell tool;
  - C{retry}: (C{claude}) the API is overloaded once, and the CLI retries;
  - C{exit=N}: exit with status N after answering;
  - C{garbage}: mix non-JSON noise into stdout and stderr;
  - C{huge=N}: answer N bytes;
  - C{line=N}: print one line of N bytes before answering;
  - C{grandchild}: fork a grandchild that sleeps, holding the pipes;
  - C{ignore_term}: ignore SIGTERM;
  - C{hang}: never finish;
  - C{session=ID}: report this native session id.

Given the client's tools through clinvk's MCP endpoint (claude
C{--mcp-config}, codex C{-c mcp_servers.clinvk.url=…}, gemini's
C{mcpServers} settings), a fake is an MCP client as the real CLIs are: it
calls each tool the prompt names, all at once, with the smallest
arguments its schema allows (their strings the prompt's first line), and
answers with what the tools returned (docs/design/client-tools.md#fake-tools).

Like a model, a fake keeps to what it is asked: given a JSON schema
(claude C{--json-schema}, codex C{--output-schema}) it answers with the
smallest value matching it, and told to answer with one JSON object
(clinvk's C{json_object} instruction), it answers with one.

With C{CLINVK_FAKE_RECORD} naming a directory, every run writes
C{<pid>.json} there: argv, stdin, pid, process group, working directory,
the pids of any grandchild and the signals it ignores.

Only the standard library is used, so the fakes run with any Python 3.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import signal
import sys
import time
import uuid
from collections.abc import Set
from pathlib import Path
from typing import Any

NAMES = ("claude", "codex", "gemini")


class Usage(Exception):
    """A command-line error, reported the way the real CLI does."""


def parse_directives(*texts: str) -> tuple[dict[str, str], str | None]:
    """The C{#fake} directives of C{texts}, and a C{#fake-answer} if any."""
    directives: dict[str, str] = {}
    answer = None
    for text in texts:
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith("#fake-answer "):
                answer = stripped[len("#fake-answer ") :]
            elif stripped.startswith("#fake "):
                for word in stripped[len("#fake ") :].split():
                    key, _, value = word.partition("=")
                    directives[key] = value or "1"
    return directives, answer


IMAGE_LINE = re.compile(r"^(\[Image #\d+\]|@\S+)$")

# What clinvk's json_object instruction says (clinvk.compat.structured).
JSON_OBJECT_ASKED = "Answer with one JSON object"


def schema_instance(schema: Any, text: str) -> Any:
    """
    The smallest value of C{schema}'s shape, its strings C{text}: what a
    model held to the schema might answer.  Enough of JSON Schema for
    tests: types, C{const}, C{enum}, required properties and items.
    """
    if not isinstance(schema, dict):
        return text
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combined in ("anyOf", "oneOf", "allOf"):
        if schema.get(combined):
            return schema_instance(schema[combined][0], text)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((each for each in kind if each != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: schema_instance(properties.get(name, {}), text) for name in schema.get("required", [])}
    if kind == "array":
        count = schema.get("minItems", 0)
        return [schema_instance(schema.get("items", {}), text) for _ in range(count)]
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind, text)


def _user_prompt(prompt: str) -> str:
    return "\n".join(line for line in prompt.splitlines() if not line.strip().startswith("#fake"))


class FakeRun:
    """One invocation of a fake CLI."""

    def __init__(self, name: str, argv: list[str], stdin: str, schema: Any = None) -> None:
        self.name = name
        self.argv = argv
        self.prompt = stdin
        self.schema = schema
        # The images the CLI was shown: what a test checks reached it.
        self.images: list[dict[str, Any]] = []
        self.directives, answer = parse_directives(os.environ.get("CLINVK_FAKE", ""), stdin)
        if answer is None:
            # A line that only shows an image (codex's label, gemini's @ reference) is not the question.
            first = [line for line in _user_prompt(stdin).strip().splitlines() if not IMAGE_LINE.match(line)]
            plain = f"{name} answers: {first[0] if first else ''}"
            if "huge" in self.directives:
                size = int(self.directives["huge"])
                answer = ("0123456789abcdef" * (size // 16 + 1))[:size]
            elif schema is not None:
                answer = json.dumps(schema_instance(schema, plain))
            elif JSON_OBJECT_ASKED in " ".join([*argv, stdin]):
                answer = json.dumps({"answer": plain})
            else:
                answer = plain
        self.answer = answer
        self.session = self.directives.get("session") or str(uuid.uuid4())
        self.grandchildren: list[int] = []
        # What later records keep: the members earlier ones added.
        self.recorded: dict[str, Any] = {}

    def read_image(self, path: str) -> None:
        """Read an image file as the CLI would (it must exist while the CLI runs)."""
        self.images.append({"name": os.path.basename(path), "size": len(Path(path).read_bytes())})

    def seconds(self, key: str) -> float:
        return float(self.directives.get(key, "0") or 0)

    def out(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def err(self, text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    def line(self, data: Any) -> None:
        self.out(json.dumps(data) + "\n")

    def prelude(self) -> None:
        """The behaviours every fake shares, before it answers."""
        if "ignore_term" in self.directives:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if "grandchild" in self.directives:
            pid = os.fork()
            if pid == 0:
                time.sleep(300)
                os._exit(0)
            self.grandchildren.append(pid)
        if "hold" in self.directives:
            # Blocked before the record exists: a SIGUSR1 sent once it does
            # waits for sigwait instead of ending the fake.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        self.record()
        if self.seconds("silent"):
            time.sleep(self.seconds("silent"))
        if "garbage" in self.directives:
            self.out("warming up the flux capacitor\n")
            self.err("warning: something noisy happened\n")
        if "line" in self.directives:
            self.out("x" * int(self.directives["line"]) + "\n")
        if self.seconds("delay"):
            time.sleep(self.seconds("delay"))
        if self.directives.get("hold") == "1":
            signal.sigwait({signal.SIGUSR1})

    def pieces(self) -> list[str]:
        count = max(1, int(self.directives.get("chunks", "1") or 1))
        size = max(1, -(-len(self.answer) // count))
        return [self.answer[i : i + size] for i in range(0, len(self.answer), size)] or [""]

    def pause_between_pieces(self) -> None:
        if self.directives.get("hold") == "rest":
            # Once, after the first piece.
            self.directives["hold"] = "released"
            signal.sigwait({signal.SIGUSR1})
        if self.seconds("chunk_delay"):
            time.sleep(self.seconds("chunk_delay"))

    def finish(self) -> int:
        if "hang" in self.directives:
            while True:
                time.sleep(3600)
        return int(self.directives.get("exit", "0") or 0)

    def record(self, **more: Any) -> None:
        """
        Write this run's record, with C{more} members (a live fake adds the
        turns it served so far and the conversation it resumed).
        """
        self.recorded.update(more)
        directory = os.environ.get("CLINVK_FAKE_RECORD")
        if not directory:
            return
        data = {
            "name": self.name,
            "argv": self.argv,
            "stdin": self.prompt,
            "schema": self.schema,
            "images": self.images,
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "ppid": os.getppid(),
            "cwd": os.getcwd(),
            "grandchildren": self.grandchildren,
            "ignored_signals": _ignored_signals(),
            **self.recorded,
        }
        path = Path(directory) / f"{os.getpid()}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        temporary.rename(path)


class MCPClient:
    """
    A client of one MCP server over Streamable HTTP with JSON answers, as
    the real CLIs are: C{initialize}, C{notifications/initialized},
    C{tools/list} and C{tools/call}.
    """

    def __init__(self, url: str, token: str = "") -> None:
        self.url = url
        self.token = token
        self._ids = 0

    def _post(self, message: dict[str, Any]) -> Any:
        import urllib.request

        request = urllib.request.Request(
            self.url,
            data=json.dumps(message).encode("utf-8"),
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
                **({"Authorization": f"Bearer {self.token}"} if self.token else {}),
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=3600) as response:
            body = response.read()
        return json.loads(body) if body else None

    def request(self, method: str, params: dict[str, Any]) -> Any:
        self._ids += 1
        answer = self._post({"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params})
        if "error" in answer:
            raise RuntimeError(answer["error"]["message"])
        return answer["result"]

    def connect(self) -> list[dict[str, Any]]:
        """Initialise the session; the server's tools."""
        self.request(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "fake-cli", "version": "1"},
            },
        )
        self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        tools: list[dict[str, Any]] = self.request("tools/list", {})["tools"]
        return tools

    def call(self, name: str, arguments: dict[str, Any], meta: dict[str, Any]) -> tuple[str, bool]:
        """Call a tool; the text it returned and whether it failed."""
        result = self.request("tools/call", {"name": name, "arguments": arguments, "_meta": meta})
        text = "\n".join(part.get("text", "") for part in result.get("content", []))
        return text, bool(result.get("isError"))


class ClientToolCalls:
    """
    What a fake does with the client's tools: calls each one the prompt
    names, at once (a thread a call, as parallel tool use is), unless the
    prompt already holds tool results.
    """

    def __init__(self, run: FakeRun, url: str | None, token: str = "") -> None:
        self.run = run
        self.client = MCPClient(url, token) if url else None
        self.wanted: list[dict[str, Any]] = []
        if self.client is None:
            return
        tools = self.client.connect()
        # Where the CLI was told to find the tools: a test checks who else answers there.
        run.record(mcp_url=url)
        prompt = _user_prompt(run.prompt)
        if "[Tool result " in prompt:
            return
        first = next((line for line in prompt.strip().splitlines() if line.strip()), "")
        for tool in tools:
            if re.search(rf"\b{re.escape(tool['name'])}\b", prompt):
                arguments = schema_instance(tool.get("inputSchema") or {"type": "object"}, first)
                self.wanted.append(
                    {"id": "toolu_" + uuid.uuid4().hex[:24], "name": tool["name"], "input": arguments}
                )

    def call_all(self) -> list[dict[str, Any]]:
        """Make the calls, at once; each with its result."""
        import threading

        assert self.client is not None
        client = self.client
        done: list[dict[str, Any]] = [dict(call) for call in self.wanted]

        def call(made: dict[str, Any]) -> None:
            try:
                made["result"], made["is_error"] = client.call(
                    made["name"], made["input"], {"claudecode/toolUseId": made["id"]}
                )
            except Exception as e:
                made["result"], made["is_error"] = f"MCP error: {e}", True

        threads = [threading.Thread(target=call, args=(made,)) for made in done]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.run.record(tool_calls=done)
        said = "; ".join(f"{made['name']} said {made['result']}" for made in done)
        self.run.answer = f"{self.run.name} answers: {said}"
        return done


def _ignored_signals() -> list[int]:
    """The signals this process ignores (from /proc, where there is one)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("SigIgn:"):
                    mask = int(line.split()[1], 16)
                    return [number for number in range(1, 65) if mask & (1 << (number - 1))]
    except OSError:
        pass
    return []


def _take_value(args: list[str], index: int, flag: str) -> str:
    if index + 1 >= len(args):
        raise Usage(f"option {flag} needs a value")
    return args[index + 1]


def parse_options(args: list[str], booleans: Set[str], valued: Set[str]) -> tuple[dict[str, Any], list[str]]:
    """Parse C{--flag}, C{--flag value} and C{--flag=value} as the CLIs do."""
    found: dict[str, Any] = {}
    positional: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            positional += args[index + 1 :]
            break
        name, equals, value = arg.partition("=")
        if name in booleans and not equals:
            found[name] = True
        elif name in valued:
            if not equals:
                value = _take_value(args, index, name)
                index += 1
            found.setdefault(name, [])
            found[name].append(value)
        elif arg.startswith("-") and arg != "-":
            raise Usage(f"unexpected argument '{arg}' found")
        else:
            positional.append(arg)
        index += 1
    return found, positional


# -- claude

# The tool call the C{tool} directive makes, as each CLI's model would.
SHELL_COMMAND = "echo hi"
SHELL_OUTPUT = "hi"

CLAUDE_TOOLS = ["Task", "Bash", "Edit", "Glob", "Grep", "Read", "WebFetch", "WebSearch", "Write"]


def _claude_usage(input_tokens: int, output_tokens: int, cached: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": output_tokens,
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": "standard",
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
        "inference_geo": "",
        "iterations": [],
        "speed": "standard",
    }


class _ClaudeStream:
    """The lines of one C{claude --output-format stream-json --verbose} run."""

    def __init__(self, run: FakeRun, model: str, partial: bool) -> None:
        self.run = run
        self.model = model
        self.partial = partial

    def line(self, data: dict[str, Any]) -> None:
        self.run.line({**data, "session_id": self.run.session, "uuid": str(uuid.uuid4())})

    def status(self) -> None:
        self.line({"type": "system", "subtype": "status", "status": "requesting"})

    def event(self, event: dict[str, Any], **extra: Any) -> None:
        if self.partial:
            self.line({"type": "stream_event", "event": event, "parent_tool_use_id": None, **extra})

    def message(self, blocks: list[dict[str, Any]], stop_reason: str, output_tokens: int) -> None:
        """
        One API message: its stream events (with partial messages), and
        an C{assistant} line per content block before that block's
        C{content_block_stop}, as the real CLI prints them.
        """
        message: dict[str, Any] = {
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 4, "output_tokens": 1},
        }
        self.event({"type": "message_start", "message": message}, ttft_ms=90)
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                self.event(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    }
                )
                pieces = self.run.pieces() if block["text"] == self.run.answer else [block["text"]]
                for piece in pieces:
                    delta = {"type": "text_delta", "text": piece}
                    self.event({"type": "content_block_delta", "index": index, "delta": delta})
                    self.run.pause_between_pieces()
            else:
                self.event(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {**block, "input": {}},
                    }
                )
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
                self.event({"type": "content_block_delta", "index": index, "delta": delta})
            self.line(
                {
                    "type": "assistant",
                    "message": {**message, "content": [block], "context_management": None},
                    "parent_tool_use_id": None,
                }
            )
            self.event({"type": "content_block_stop", "index": index})
        self.event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            }
        )
        self.event({"type": "message_stop"})

    def tool_result(self, tool_id: str, text: str = SHELL_OUTPUT, is_error: bool = False) -> None:
        self.line(
            {
                "type": "user",
                "message": {
                    "role": "user",
                    "content": [
                        {
                            "tool_use_id": tool_id,
                            "type": "tool_result",
                            "content": text,
                            "is_error": is_error,
                        }
                    ],
                },
                "parent_tool_use_id": None,
                "timestamp": _now(),
                "tool_use_result": {
                    "stdout": text,
                    "stderr": "",
                    "interrupted": False,
                    "isImage": False,
                    "noOutputExpected": False,
                },
            }
        )

    def client_tools(self, calls: ClientToolCalls) -> None:
        """The model calls the client's tools through MCP, at once, and reads what they said."""
        blocks = [
            {
                "type": "tool_use",
                "id": call["id"],
                "name": f"mcp__clinvk__{call['name']}",
                "input": call["input"],
            }
            for call in calls.wanted
        ]
        self.message(blocks, "tool_use", 1)
        for made in calls.call_all():
            self.tool_result(made["id"], made["result"], made["is_error"])
        self.status()

    def api_error(self, text: str) -> None:
        """The message the CLI makes up when the API answered an error."""
        self.line(
            {
                "type": "assistant",
                "message": {
                    "id": str(uuid.uuid4()),
                    "container": None,
                    "model": "<synthetic>",
                    "role": "assistant",
                    "stop_details": None,
                    "stop_reason": "stop_sequence",
                    "stop_sequence": "",
                    "type": "message",
                    "usage": _claude_usage(0, 0, 0),
                    "content": [{"type": "text", "text": text}],
                    "context_management": None,
                },
                "parent_tool_use_id": None,
                "error": "authentication_failed" if "API key" in text else "unknown",
            }
        )


class ClaudeTurn:
    """What one fake C{claude} turn answers: its init and result objects."""

    def __init__(self, run: FakeRun, found: dict[str, Any]) -> None:
        failed = run.directives.get("fail")
        self.model = found.get("--model", ["claude-sonnet-4-5"])[-1]
        self.output_tokens = max(1, len(run.answer) // 4)
        # The API's errors: the CLI reports them as the result's text, with
        # is_error set, and exits 1.
        self.api_status = {"auth": 401, "api": 400}.get(failed or "")
        if failed == "auth":
            self.text = "Invalid API key · Please run /login"
        elif failed == "api":
            self.text = "API Error: 400 scripted bad request"
        else:
            self.text = run.answer
        self.tool = "tool" in run.directives and self.api_status is None
        self.turns = 2 if self.tool else 1
        self.result = {
            "type": "result",
            "subtype": "success",
            "is_error": self.api_status is not None,
            "api_error_status": self.api_status,
            "duration_ms": 1200,
            "duration_api_ms": 1100,
            "ttft_ms": 90,
            "ttft_stream_ms": 85,
            "time_to_request_ms": 60,
            "num_turns": self.turns,
            "result": self.text,
            "stop_reason": "stop_sequence" if self.api_status else "end_turn",
            "session_id": run.session,
            "total_cost_usd": 0.0 if self.api_status else 0.0012,
            "usage": _claude_usage(0, 0, 0) if self.api_status else _claude_usage(4, self.output_tokens, 2),
            "modelUsage": {}
            if self.api_status
            else {
                self.model: {
                    "inputTokens": 4,
                    "outputTokens": self.output_tokens,
                    "cacheReadInputTokens": 2,
                    "cacheCreationInputTokens": 0,
                    "webSearchRequests": 0,
                    "costUSD": 0.0012,
                    "contextWindow": 200000,
                    "maxOutputTokens": 64000,
                }
            },
            "permission_denials": [],
            "terminal_reason": "completed",
            "fast_mode_state": "off",
            "uuid": str(uuid.uuid4()),
        }
        self.init: dict[str, Any] = {
            "type": "system",
            "subtype": "init",
            "cwd": os.getcwd(),
            "session_id": run.session,
            "tools": CLAUDE_TOOLS,
            "mcp_servers": [],
            "model": self.model,
            "permissionMode": found.get("--permission-mode", ["default"])[-1],
            "slash_commands": ["compact", "context", "init", "review"],
            "apiKeySource": "ANTHROPIC_API_KEY",
            "claude_code_version": "2.1.197",
            "output_style": "default",
            "agents": ["general-purpose", "Explore", "Plan"],
            "skills": [],
            "plugins": [],
            "analytics_disabled": True,
            "product_feedback_disabled": True,
            "uuid": str(uuid.uuid4()),
            "memory_paths": {"auto": os.path.expanduser("~/.claude/projects/fake/memory/")},
            "fast_mode_state": "off",
        }

    def answered(self, text: str) -> None:
        """The answer is C{text} after all: the model read what the client's tools said."""
        self.text = text
        self.output_tokens = max(1, len(text) // 4)
        self.result.update(result=text, num_turns=self.turns + 1)


def claude_stream(
    run: FakeRun, turn: ClaudeTurn, *, partial: bool, client_calls: ClientToolCalls | None = None
) -> None:
    """Print the C{stream-json} lines of one turn, from its init to its result."""
    stream = _ClaudeStream(run, turn.model, partial)
    run.line(turn.init)
    stream.status()
    if client_calls is not None and client_calls.wanted and not turn.api_status:
        stream.client_tools(client_calls)
        turn.answered(run.answer)
    if turn.api_status:
        stream.api_error(turn.text)
    else:
        if "retry" in run.directives:
            stream.line(
                {
                    "type": "system",
                    "subtype": "api_retry",
                    "attempt": 1,
                    "max_retries": 10,
                    "retry_delay_ms": 500,
                    "error_status": 529,
                    "error": "overloaded",
                }
            )
        if turn.tool:
            tool_id = "toolu_" + uuid.uuid4().hex[:24]
            call = {
                "type": "tool_use",
                "id": tool_id,
                "name": "Bash",
                "input": {"command": SHELL_COMMAND, "description": "Print hi"},
            }
            stream.message([call], "tool_use", 1)
            stream.tool_result(tool_id)
            stream.status()
        stream.message([{"type": "text", "text": turn.text}], "end_turn", turn.output_tokens)
    run.line(turn.result)


# The flags the fake claude takes, alone or with a value.
CLAUDE_BOOLEANS = frozenset(
    {
        "--print",
        "--verbose",
        "--include-partial-messages",
        "--no-session-persistence",
        "--continue",
        "--fork-session",
        "--strict-mcp-config",
    }
)
CLAUDE_VALUED = frozenset(
    {
        "--output-format",
        "--model",
        "--max-turns",
        "--system-prompt",
        "--permission-mode",
        "--resume",
        "--allowedTools",
        "--add-dir",
        "--resume-session-at",
        "--json-schema",
        "--mcp-config",
        "--tools",
    }
)


def claude(args: list[str], stdin: str) -> int:
    found, positional = parse_options(args, booleans=CLAUDE_BOOLEANS, valued=CLAUDE_VALUED)
    if "--print" not in found:
        raise Usage("fake claude only runs in --print mode")
    prompt = " ".join(positional) if positional else stdin
    schema = json.loads(found["--json-schema"][-1]) if "--json-schema" in found else None
    run = FakeRun("claude", args, prompt, schema)
    output = found.get("--output-format", ["text"])[-1]
    if output == "stream-json" and "--verbose" not in found:
        raise Usage("When using --print, --output-format=stream-json requires --verbose")
    if "--resume" in found:
        run.session = found["--resume"][-1]
    if "--resume-session-at" in found and "--resume" not in found:
        raise Usage("Error: --resume-session-at requires --resume")
    if "--fork-session" in found:
        # A new conversation, holding the resumed one (up to the message).
        run.session = str(uuid.uuid4())
    run.prelude()
    failed = run.directives.get("fail")
    if failed == "crash":
        run.err("Error: fake claude crashed\n")
        return 1
    client_calls = ClientToolCalls(run, _claude_mcp_url(found))
    if client_calls.wanted and output != "stream-json":
        client_calls.call_all()
    turn = ClaudeTurn(run, found)
    if client_calls.client is not None:
        turn.init["mcp_servers"] = [{"name": "clinvk", "status": "connected"}]
    if schema is not None and not turn.api_status:
        # The model answers through the StructuredOutput tool; the result
        # holds its input as an object and as JSON text.
        turn.result.update(structured_output=json.loads(run.answer), stop_reason="tool_use", num_turns=2)
    model, text, result, init = turn.model, turn.text, turn.result, turn.init
    if output == "stream-json":
        claude_stream(run, turn, partial="--include-partial-messages" in found, client_calls=client_calls)
    elif output == "json":
        whole: Any = result
        if "--verbose" in found:
            assistant = {
                "type": "assistant",
                "message": {
                    "id": "msg_" + uuid.uuid4().hex[:24],
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 4, "output_tokens": turn.output_tokens},
                    "context_management": None,
                },
                "parent_tool_use_id": None,
                "session_id": run.session,
                "uuid": str(uuid.uuid4()),
            }
            whole = [init, assistant, result]
        run.out(json.dumps(whole) + "\n")
    else:
        run.out(text + "\n")
    return 1 if turn.api_status else run.finish()


def _claude_mcp_url(found: dict[str, Any]) -> str | None:
    """The URL of the clinvk server in claude's C{--mcp-config} (a file or JSON text), if any."""
    if "--mcp-config" not in found:
        return None
    given = found["--mcp-config"][-1]
    text = given if given.lstrip().startswith("{") else Path(given).read_text(encoding="utf-8")
    server = json.loads(text).get("mcpServers", {}).get("clinvk")
    return server.get("url") if server else None


# -- codex


def codex(args: list[str], stdin: str) -> int:
    if not args or args[0] != "exec":
        raise Usage("fake codex only implements `codex exec`")
    args = args[1:]
    resume = None
    booleans = {"--json", "--full-auto", "--skip-git-repo-check"}
    valued = {"--model", "--sandbox", "--config-dir", "-c", "--output-schema", "--image", "--disable"}
    leading, rest = [], list(args)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        leading.append(rest.pop(0))
    if rest and rest[0] == "resume":
        resume = _take_value(rest, 0, "resume")
        rest = leading + rest[2:]
    else:
        rest = args
    found, positional = parse_options(rest, booleans, valued)
    if positional == ["-"] or not positional:
        prompt = stdin
    else:
        prompt = " ".join(positional)
    schema = None
    if "--output-schema" in found:
        # Read as the real CLI does: the file must exist while it runs.
        schema = json.loads(Path(found["--output-schema"][-1]).read_text(encoding="utf-8"))
    run = FakeRun("codex", args, prompt, schema)
    for path in found.get("--image", []):
        run.read_image(path)
    if resume:
        run.session = resume
    run.prelude()
    run.err("codex: reading prompt from stdin\n")
    failed = run.directives.get("fail")
    if failed == "crash":
        run.err("thread 'main' panicked at src/main.rs:1: fake codex crashed\n")
        return 101
    if "--json" not in found:
        run.out(run.answer + "\n")
        return run.finish()
    run.line({"type": "thread.started", "thread_id": run.session})
    run.line({"type": "turn.started"})
    if failed in ("auth", "api"):
        if failed == "auth":
            message = "unexpected status 401 Unauthorized: Missing bearer authentication in header"
        else:
            # The API's error body, verbatim.
            error = {
                "message": "scripted bad request",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
            message = json.dumps({"error": error})
        run.line({"type": "error", "message": message})
        run.line({"type": "turn.failed", "error": {"message": message}})
        return 1
    items = 0
    url, token = _codex_mcp_server(found.get("-c", []))
    client_calls = ClientToolCalls(run, url, token)
    if client_calls.wanted:
        started = [
            {
                "id": f"item_{items + index}",
                "type": "mcp_tool_call",
                "server": "clinvk",
                "tool": call["name"],
                "arguments": call["input"],
                "result": None,
                "error": None,
                "status": "in_progress",
            }
            for index, call in enumerate(client_calls.wanted)
        ]
        for item in started:
            run.line({"type": "item.started", "item": item})
        for item, made in zip(started, client_calls.call_all(), strict=True):
            result = {"content": [{"type": "text", "text": made["result"]}], "structured_content": None}
            status = "failed" if made["is_error"] else "completed"
            run.line({"type": "item.completed", "item": {**item, "result": result, "status": status}})
        items += len(started)
    if "tool" in run.directives:
        command = {
            "id": "item_0",
            "type": "command_execution",
            "command": f"/bin/bash -lc '{SHELL_COMMAND}'",
            "aggregated_output": "",
            "exit_code": None,
            "status": "in_progress",
        }
        run.line({"type": "item.started", "item": command})
        done = {**command, "aggregated_output": SHELL_OUTPUT + "\n", "exit_code": 0, "status": "completed"}
        run.line({"type": "item.completed", "item": done})
        items = 1
    for index, piece in enumerate(run.pieces()):
        run.line(
            {
                "type": "item.completed",
                "item": {"id": f"item_{items + index}", "type": "agent_message", "text": piece},
            }
        )
        run.pause_between_pieces()
    usage = {
        "input_tokens": 24,
        "cached_input_tokens": 8,
        "cache_write_input_tokens": 0,
        "output_tokens": max(1, len(run.answer) // 4),
        "reasoning_output_tokens": 0,
    }
    run.line({"type": "turn.completed", "usage": usage})
    return run.finish()


def _codex_mcp_server(settings: list[str]) -> tuple[str | None, str]:
    """
    The URL of the clinvk server in codex's C{-c} settings, if any, and the
    bearer token from the variable they name.
    """
    found: dict[str, Any] = {}
    for setting in settings:
        key, _, value = setting.partition("=")
        if key.strip().startswith("mcp_servers.clinvk."):
            found[key.strip().removeprefix("mcp_servers.clinvk.")] = json.loads(value)
    token = (
        os.environ.get(found.get("bearer_token_env_var", ""), "") if "bearer_token_env_var" in found else ""
    )
    return found.get("url"), token


# -- gemini


def _gemini_mcp_url(allowed: list[str]) -> str | None:
    """
    The URL of the clinvk server in the settings of gemini's home
    (C{GEMINI_CLI_HOME}, else the user's), if its use is allowed.
    """
    if "clinvk" not in ",".join(allowed).split(","):
        return None
    home = os.environ.get("GEMINI_CLI_HOME") or os.path.expanduser("~")
    try:
        settings = json.loads((Path(home) / ".gemini" / "settings.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    server = settings.get("mcpServers", {}).get("clinvk")
    return server.get("httpUrl") if server else None


# The API's error body, which Gemini quotes in its reports of the error.
GEMINI_API_ERROR = '{"error":{"code":400,"message":"scripted bad request","status":"INVALID_ARGUMENT"}}'


def _gemini_trace() -> str:
    """The stack trace Gemini writes to stderr when the API answered an error."""
    return (
        "Error when talking to Gemini API Full report available at: "
        f"/tmp/gemini-client-error-Turn.run-sendMessageStream-{_now()}.json _ApiError: {GEMINI_API_ERROR}\n"
        "    at throwErrorIfNotOK (file:///fake/gemini-cli/bundle/chunk.js:1:1) {\n"
        "  status: 400\n"
        "}\n"
    )


def gemini(args: list[str], stdin: str) -> int:
    found, positional = parse_options(
        args,
        booleans={"--yolo", "--debug", "--sandbox", "--color", "--disable-color", "--skip-trust"},
        valued={
            "--output-format",
            "--model",
            "--approval-mode",
            "--resume",
            "--delete-session",
            "--include-directories",
            "--allowed-mcp-server-names",
        },
    )
    if "--delete-session" in found:
        run = FakeRun("gemini", args, "")
        run.record()
        return 0
    prompt = " ".join(positional) if positional else stdin
    run = FakeRun("gemini", args, prompt)
    workspace = [os.getcwd(), *found.get("--include-directories", [])]
    for reference in re.findall(r"@((?:\\ |\S)+)", prompt):
        # An @ reference inside the workspace is read into the prompt.
        path = reference.replace("\\ ", " ")
        if any(os.path.dirname(path) == os.path.abspath(root) for root in workspace):
            run.read_image(path)
    if "--resume" in found:
        run.session = found["--resume"][-1]
    if "--resume-session-at" in found and "--resume" not in found:
        raise Usage("Error: --resume-session-at requires --resume")
    if "--fork-session" in found:
        # A new conversation, holding the resumed one (up to the message).
        run.session = str(uuid.uuid4())
    run.prelude()
    output = found.get("--output-format", ["text"])[-1]
    model = found.get("--model", ["gemini-2.5-pro"])[-1]
    failed = run.directives.get("fail")
    if "credentials" in run.directives:
        run.err("Loaded cached credentials.\n")
    if failed == "crash":
        run.err("Error: fake gemini crashed\n")
        return 1
    client_calls = ClientToolCalls(run, _gemini_mcp_url(found.get("--allowed-mcp-server-names", [])))
    if client_calls.wanted:
        made = client_calls.call_all()
    tool = "tool" in run.directives
    tokens = {
        "input": 20,
        "prompt": 28,
        "candidates": max(1, len(run.answer) // 4),
        "total": 0,
        "cached": 8,
        "thoughts": 3,
        "tool": 0,
    }
    tokens["total"] = tokens["prompt"] + tokens["candidates"] + tokens["thoughts"]
    stream_stats = {
        "total_tokens": tokens["total"],
        "input_tokens": tokens["prompt"],
        "output_tokens": tokens["candidates"],
        "cached": tokens["cached"],
        "input": tokens["input"],
    }
    if failed in ("auth", "api"):
        stream_stats = dict.fromkeys(stream_stats, 0)
    stats = {
        **stream_stats,
        "duration_ms": 1500,
        "tool_calls": 1 if tool else 0,
        "models": {model: stream_stats},
    }
    if failed in ("auth", "api"):
        if failed == "auth":
            code: Any = "AUTH_REQUIRED"
            error = {"type": "AuthError", "message": "Please set an Auth method", "code": code}
            status = 41
        else:
            # The CLI exits with the API's HTTP status, which exit() cuts to a byte.
            run.err(_gemini_trace())
            error = {"type": "Error", "message": GEMINI_API_ERROR, "code": 400}
            status = 400 % 256
        if output == "stream-json":
            run.line({"type": "init", "timestamp": _now(), "session_id": run.session, "model": model})
            if failed == "api":
                run.line(
                    {"type": "message", "timestamp": _now(), "role": "user", "content": _user_prompt(prompt)}
                )
                error = {"type": "unknown", "message": f"[API Error: {GEMINI_API_ERROR}]"}
            run.line(
                {"type": "result", "timestamp": _now(), "status": "error", "error": error, "stats": stats}
            )
        elif output == "json" or failed == "auth":
            run.err(json.dumps({"session_id": run.session, "error": error}, indent=2) + "\n")
        else:
            run.err("An unexpected critical error occurred:[object Object]\n")
            status = 1
        return status
    if output == "stream-json":
        run.line({"type": "init", "timestamp": _now(), "session_id": run.session, "model": model})
        run.line({"type": "message", "timestamp": _now(), "role": "user", "content": _user_prompt(prompt)})
        for index, call in enumerate(made if client_calls.wanted else []):
            tool_id = f"mcp_clinvk_{call['name']}_{int(time.time() * 1000)}_{index}"
            run.line(
                {
                    "type": "tool_use",
                    "timestamp": _now(),
                    "tool_name": f"mcp_clinvk_{call['name']}",
                    "tool_id": tool_id,
                    "parameters": call["input"],
                }
            )
            run.line(
                {
                    "type": "tool_result",
                    "timestamp": _now(),
                    "tool_id": tool_id,
                    "status": "error" if call["is_error"] else "success",
                    "output": call["result"],
                }
            )
        if tool:
            tool_id = f"run_shell_command__run_shell_command_{int(time.time() * 1000)}_0"
            run.line(
                {
                    "type": "tool_use",
                    "timestamp": _now(),
                    "tool_name": "run_shell_command",
                    "tool_id": tool_id,
                    "parameters": {"command": SHELL_COMMAND, "description": "Print hi"},
                }
            )
            run.line(
                {
                    "type": "tool_result",
                    "timestamp": _now(),
                    "tool_id": tool_id,
                    "status": "success",
                    "output": SHELL_OUTPUT,
                }
            )
        for piece in run.pieces():
            run.line(
                {"type": "message", "timestamp": _now(), "role": "assistant", "content": piece, "delta": True}
            )
            run.pause_between_pieces()
        run.line({"type": "result", "timestamp": _now(), "status": "success", "stats": stats})
    elif output == "json":
        api = {"totalRequests": 2 if tool else 1, "totalErrors": 0, "totalLatencyMs": 1500}
        decisions = {"accept": int(tool), "reject": 0, "modify": 0, "auto_accept": 0}
        tool_stats = {
            "totalCalls": int(tool),
            "totalSuccess": int(tool),
            "totalFail": 0,
            "totalDurationMs": 40 if tool else 0,
            "totalDecisions": decisions,
            "byName": {
                "run_shell_command": {
                    "count": 1,
                    "success": 1,
                    "fail": 0,
                    "durationMs": 40,
                    "decisions": decisions,
                }
            }
            if tool
            else {},
        }
        body = {
            "session_id": run.session,
            "response": run.answer,
            "stats": {
                "models": {
                    model: {
                        "api": {**api, "errorsByType": {}},
                        "tokens": tokens,
                        "roles": {"main": {**api, "tokens": tokens}},
                    }
                },
                "tools": tool_stats,
                "files": {"totalLinesAdded": 0, "totalLinesRemoved": 0},
            },
        }
        run.out(json.dumps(body, indent=2) + "\n")
    else:
        run.out(run.answer + "\n")
    return run.finish()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


COMMANDS = {"claude": claude, "codex": codex, "gemini": gemini}

# What C{--version} prints: the real CLI's line for the version the fakes
# follow, marked as a fake (clinvk.runs.installed.FAKE_MARK).
VERSIONS = {
    "claude": "2.1.197 (Claude Code) (clinvk fake)",
    "codex": "codex-cli 0.171.0 (clinvk fake)",
    "gemini": "0.61.0 (clinvk fake)",
}


# The long-lived mode of each fake (docs/design/live-sessions.md#live-protocol),
# in a module of its own: C{wants(args)} says whether C{args} start it,
# C{run(args)} serves turns on stdin until it ends.
LIVE_MODULES = {name: f"clinvk.testing.fake_live_{name}" for name in NAMES}


def _live_mode(name: str, args: list[str]) -> Any:
    """The module of fake C{name}'s long-lived mode if C{args} start it, else L{None}."""
    try:
        module = importlib.import_module(LIVE_MODULES[name])
    except ModuleNotFoundError:
        return None
    return module if module.wants(args) else None


def main(name: str, args: list[str]) -> int:
    """Run fake C{name} with C{args}; return its exit status."""
    if args == ["--version"]:
        print(VERSIONS[name])
        return 0
    live = _live_mode(name, args)
    if live is not None:
        return int(live.run(args))
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    try:
        return COMMANDS[name](args, stdin)
    except Usage as e:
        sys.stderr.write(f"error: {e}\n\nUsage: {name} [OPTIONS] [PROMPT]\n")
        return 2


def install(directory: str | os.PathLike[str], python: str = sys.executable) -> Path:
    """
    Write executables named C{claude}, C{codex} and C{gemini} into
    C{directory} that run these fakes with C{python}.

    @return: The directory, to put first on C{PATH}.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    module_root = Path(__file__).resolve().parents[2]
    for name in NAMES:
        script = target / name
        script.write_text(
            "#!/bin/sh\n"
            # Answered without starting Python: a server asks every CLI at start.
            f'if [ "$#" = 1 ] && [ "$1" = --version ]; then echo {shlex.quote(VERSIONS[name])}; exit 0; fi\n'
            f"PYTHONPATH='{module_root}'${{PYTHONPATH:+:$PYTHONPATH}} "
            f"exec '{python}' -m clinvk.testing.fake_cli {name} \"$@\"\n"
        )
        script.chmod(0o755)
    return target


USAGE = (
    "usage: python -m clinvk.testing.fake_cli install DIRECTORY\n"
    "       python -m clinvk.testing.fake_cli {claude,codex,gemini} [ARGS...]\n"
)


def command_line(argv: list[str]) -> int:
    """
    C{python -m clinvk.testing.fake_cli}: C{install DIRECTORY} writes the
    three fakes into DIRECTORY (what a person trying clinvk runs);
    C{<name> ARGS...} runs fake C{<name>} (what the installed executables
    run).

    @param argv: The arguments after the module name.
    @return: The exit status.
    """
    if argv[:1] == ["install"]:
        if len(argv) != 2:
            sys.stderr.write(USAGE)
            return 2
        target = install(argv[1]).resolve()
        print(f"Installed fake {', '.join(NAMES)} in {target}; put it first on PATH.")
        return 0
    if not argv or argv[0] not in COMMANDS:
        sys.stderr.write(USAGE)
        return 2
    return main(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(command_line(sys.argv[1:]))
