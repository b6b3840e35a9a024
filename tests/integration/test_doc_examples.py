"""
The example programs of the API guides (C{docs/examples/native},
C{docs/examples/openai}, C{docs/examples/anthropic}), run the way a reader
runs them: C{bash} for a C{.sh} file, Python for a C{.py} file, as a child
process with C{CLINVK_URL} naming a real server (L{SDKServerTestCase})
that has the fake CLIs on its C{PATH}.

Each test checks that the example exits 0 with nothing on stderr, that
what it printed is the fakes' deterministic answer, and that the output
sample the guide shows after the example is what it really printed (ids,
times and durations aside).  Servers of L{StreamingExampleTests} make the
fakes answer in three pieces a little apart (C{CLINVK_FAKE}), so a
streaming example is seen printing its answer piece by piece while the
CLI still runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs

from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests._docs import DOCS, EXAMPLES
from tests.integration._processes import TIMEOUT, CommandProtocol, get_json, reactor
from tests.integration._sdk_server import LIVE_SERVER, SDKServerTestCase, output_tokens, sse_lines
from tests.integration._server import Config

# The guide that shows the examples of each directory.
PAGES = {"native": "native-api.md", "openai": "openai-api.md", "anthropic": "anthropic-api.md"}

# What the examples' readers have on their PATH besides the examples'
# interpreter: curl, and bash to run the shell examples.
BASH = shutil.which("bash") or "/bin/bash"

# Settings of the caller that would send the examples' requests elsewhere.
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}

# A server session id.
SESSION_ID = re.compile(r"^[0-9a-f]{32}$")

# Parts of real output that differ from run to run, and what they become
# before an output is compared with the sample in a guide.
VARYING = [
    (re.compile(r'"(duration_ms|total_duration_ms|uptime_ms|created|session_count)":\d+'), r'"\1":<n>'),
    # An event's sequence counts the CLI's output lines, which differ between
    # CLI versions (and the fakes follow the recorded CLIs); the order of the
    # lines is still compared.
    (re.compile(r'"sequence":\d+'), '"sequence":<n>'),
    (re.compile(r'"uptime":"[0-9hms.]+"'), '"uptime":"<t>"'),
    (re.compile(r'"working_dir":"[^"]*"'), '"working_dir":"<dir>"'),
    # The wording of a JSON Schema, which its own tests look after.
    (re.compile(r'"description":"(?:[^"\\]|\\.)*"'), '"description":"<text>"'),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)"), "<time>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"\b(chatcmpl-|msg_)?[0-9a-f]{24,32}\b"), r"\1<id>"),
    (re.compile(r"\b[0-9a-f]{8}\b"), "<prefix>"),
]


def normalised(text: str) -> str:
    """C{text} with the parts that vary between runs replaced, lines right-stripped."""
    for pattern, replacement in VARYING:
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def documented_output(example: str) -> str:
    """
    The output sample of C{example} in its guide: the first fenced
    C{text}, C{json} or C{http} block after the C{literalinclude} of the
    example, with no other example included in between.
    """
    page = (DOCS / PAGES[example.split("/")[0]]).read_text()
    include = f"```{{literalinclude}} examples/{example}\n"
    start = page.index(include) + len(include)
    sample = re.compile(r"^```(?:text|json|http)\n(.*?)^```$", re.M | re.S).search(page, start)
    if sample is None or "{literalinclude}" in page[start : sample.start()]:
        raise AssertionError(f"no output sample follows examples/{example}")
    return sample.group(1)


@attrs.frozen
class ExampleRun:
    """
    What one run of an example did.

    @ivar stdout: Everything it printed.
    @ivar pieces: Its standard output in the pieces it arrived in.
    @ivar workdir: The directory it ran in.
    """

    stdout: str
    pieces: tuple[bytes, ...]
    workdir: Path

    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def json_lines(self) -> list[Any]:
        """Every line of the output as JSON."""
        return [json.loads(line) for line in self.lines()]


class ExampleProtocol(CommandProtocol):
    """A L{CommandProtocol} that also keeps the pieces stdout arrived in."""

    def __init__(self) -> None:
        super().__init__()
        self.pieces: list[bytes] = []

    def outReceived(self, data: bytes) -> None:
        self.pieces.append(data)
        super().outReceived(data)


class ExampleTestCase(SDKServerTestCase):
    """
    A real server per test, and L{run_example} to run an example against it.

    @cvar example_environment: Environment variables every example of the
        class gets, e.g. an API key.
    """

    example_environment: ClassVar[Mapping[str, str]] = {}

    def config_layers(self) -> list[Config]:
        # The examples run against a server as installed: live processes on.
        return [*super().config_layers(), LIVE_SERVER]

    async def run_example(self, example: str) -> ExampleRun:
        """
        Run C{docs/examples/<example>} in a new directory with C{CLINVK_URL}
        naming this test's server; fail unless it exits 0 with nothing on
        stderr.
        """
        path = EXAMPLES / example
        self.assertTrue(path.is_file(), path)
        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir(parents=True)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("CLINVK_") and key.lower() not in PROXY_VARIABLES
        }
        env.update(
            # python3 in a shell example is the interpreter of the tests.
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            HOME=str(workdir),
            CLINVK_URL=self.base_url,
            **self.example_environment,
        )
        command = [sys.executable, str(path)] if path.suffix == ".py" else [BASH, str(path)]
        protocol = ExampleProtocol()
        transport = reactor.spawnProcess(protocol, command[0], command, env=env, path=str(workdir))

        def stop(failure: Failure) -> Failure:
            transport.signalProcess("KILL")
            return failure

        status = await protocol.ended.addTimeout(TIMEOUT, reactor).addErrback(stop)
        stdout = protocol.stdout.decode("utf-8")
        stderr = protocol.stderr.decode("utf-8", "replace")
        self.assertEqual((status, stderr), (0, ""), f"{example} printed:\n{stdout}")
        return ExampleRun(stdout, tuple(protocol.pieces), workdir)

    def assert_documented(self, example: str, run: ExampleRun, any_order: bool = False) -> None:
        """
        The guide's output sample of C{example} is what C{run} printed,
        apart from ids, times and durations (in any line order if
        C{any_order}).
        """
        actual = run.stdout.replace(self.base_url, "http://127.0.0.1:8080")
        expected_lines = normalised(documented_output(example)).splitlines()
        actual_lines = normalised(actual).splitlines()
        if any_order:
            expected_lines.sort()
            actual_lines.sort()
        self.assertEqual(
            expected_lines, actual_lines, f"the sample of {example} in the guide; it printed:\n{actual}"
        )

    def assert_streamed(self, run: ExampleRun, answer: str) -> None:
        """
        C{run} printed C{answer} in the three pieces the fakes stream it
        in, one after the other (L{StreamingExampleTests}).
        """
        self.assertGreaterEqual(len(run.pieces), 3, run.pieces)
        self.assertIn(answer, run.stdout)


class NativeExampleTests(ExampleTestCase):
    """The examples of C{docs/native-api.md}."""

    async def test_health(self) -> None:
        """
        C{native/health.sh} shows the health, the backends, one JSON
        Schema and the request id it sent, and saves the OpenAPI document.
        """
        run = await self.run_example("native/health.sh")
        health, backends, schema, request_id = run.lines()
        available = [{"name": name, "available": True} for name in ("claude", "codex", "gemini")]
        self.assertEqual((json.loads(health)["status"], json.loads(health)["backends"]), ("ok", available))
        self.assertEqual(json.loads(backends)["backends"], [{**each, "live": "live"} for each in available])
        self.assertEqual(json.loads(schema)["type"], "object")
        self.assertEqual(request_id.lower(), "x-request-id: my-trace-1")
        document = json.loads((run.workdir / "openapi.json").read_text())
        self.assertTrue(document["openapi"].startswith("3.1"), document["openapi"])
        self.assertIn("/api/v1/prompt", document["paths"])
        self.assert_documented("native/health.sh", run)

    async def test_prompt(self) -> None:
        """C{native/prompt.sh} prints Claude's answer with its session."""
        run = await self.run_example("native/prompt.sh")
        [result] = run.json_lines()
        self.assertEqual(
            (result["backend"], result["exit_code"], result["output"]),
            ("claude", 0, "claude answers: What is 2+2?"),
        )
        self.assertRegex(result["session_id"], SESSION_ID)
        self.assert_documented("native/prompt.sh", run)

    async def test_continue(self) -> None:
        """
        C{native/continue.sh} runs a prompt and continues its session: the
        second run resumes the CLI's conversation, in the same session.
        """
        run = await self.run_example("native/continue.sh")
        first, second = run.json_lines()
        self.assertEqual(first["output"], "claude answers: Pick a number")
        self.assertEqual(second["output"], "claude answers: Double it")
        self.assertEqual(first["session_id"], second["session_id"])
        # The second turn went to the live claude the first one started.
        first_run, second_run = self.run_with("claude", "Pick a number"), self.run_with("claude", "Double it")
        self.assertEqual((second_run["pid"], second_run["turn"]), (first_run["pid"], 2))
        self.assertNotIn("--resume", first_run["argv"])
        status, session = await get_json(f"{self.base_url}/api/v1/sessions/{first['session_id']}")
        self.assertEqual((status, session["turn_count"]), (200, 2))
        self.assert_documented("native/continue.sh", run)

    async def test_session(self) -> None:
        """C{native/session.py} continues a session twice and shows its three turns."""
        run = await self.run_example("native/session.py")
        *answers, summary = run.lines()
        self.assertEqual(
            answers,
            ["claude answers: Pick a number", "claude answers: Double it", "claude answers: Now add ten"],
        )
        self.assertRegex(summary, r"^claude session [0-9a-f]{8}: 3 turns, completed$")
        self.assertEqual(len(self.runs("claude")), 3)
        self.assert_documented("native/session.py", run)

    async def test_sessions(self) -> None:
        """
        C{native/sessions.sh}, after C{native/prompt.sh}, lists that
        session, shows it by prefix and deletes it.
        """
        [prompted] = (await self.run_example("native/prompt.sh")).json_lines()
        run = await self.run_example("native/sessions.sh")
        listing, shown, deleted = run.json_lines()
        self.assertEqual([session["id"] for session in listing["sessions"]], [prompted["session_id"]])
        self.assertEqual((listing["total"], listing["limit"]), (1, 20))
        self.assertEqual((shown["id"], shown["turn_count"]), (prompted["session_id"], 1))
        self.assertEqual(deleted, {**deleted, "deleted": True, "id": prompted["session_id"][:8]})
        status, _ = await get_json(f"{self.base_url}/api/v1/sessions/{prompted['session_id']}")
        self.assertEqual(status, 404)
        self.assert_documented("native/sessions.sh", run)

    async def test_parallel(self) -> None:
        """C{native/parallel.sh} answers both tasks, in their order."""
        run = await self.run_example("native/parallel.sh")
        [result] = run.json_lines()
        self.assertEqual((result["total_tasks"], result["completed"], result["failed"]), (2, 2, 0))
        self.assertEqual(
            [(task["backend"], task["output"]) for task in result["results"]],
            [
                ("claude", "claude answers: Review the error handling in app.py"),
                ("gemini", "gemini answers: Review the tests in test_app.py"),
            ],
        )
        self.assert_documented("native/parallel.sh", run)

    async def test_chain(self) -> None:
        """C{native/chain.sh} gives the second step the first step's answer."""
        run = await self.run_example("native/chain.sh")
        [result] = run.json_lines()
        self.assertEqual((result["total_steps"], result["completed_steps"]), (2, 2))
        draft = "claude answers: Write a tagline for a bakery"
        self.assertEqual(
            [(step["name"], step["output"]) for step in result["results"]],
            [("draft", draft), ("review", f"gemini answers: Make this tagline shorter: {draft}")],
        )
        self.assert_documented("native/chain.sh", run)

    async def test_compare(self) -> None:
        """C{native/compare.sh} has every backend's answer, in the order asked."""
        run = await self.run_example("native/compare.sh")
        [result] = run.json_lines()
        self.assertEqual(
            [(each["backend"], each["output"]) for each in result["results"]],
            [(name, f"{name} answers: Name a prime number") for name in ("claude", "codex", "gemini")],
        )
        self.assert_documented("native/compare.sh", run)


class StreamingExampleTests(ExampleTestCase):
    """
    The streaming examples of the three guides, against fakes that stream
    every answer in three pieces 0.3 s apart.
    """

    server_environment = {"CLINVK_FAKE": "#fake chunks=3 chunk_delay=0.3"}

    async def test_native_stream_sh(self) -> None:
        """
        C{native/stream.sh} prints the NDJSON events as they come: the
        answer in three partial messages, then C{done}.
        """
        run = await self.run_example("native/stream.sh")
        events = run.json_lines()
        self.assertEqual(
            [event["type"] for event in events], ["init", "message", "message", "message", "done"]
        )
        self.assertEqual(
            "".join(event["content"]["text"] for event in events if event["type"] == "message"),
            "claude answers: Write a haiku about autumn",
        )
        self.assertEqual({event["session_id"] for event in events}, {events[0]["session_id"]})
        self.assert_streamed(run, '"type":"done"')
        self.assert_documented("native/stream.sh", run)

    async def test_native_stream_py(self) -> None:
        """C{native/stream.py} prints the answer as it comes, then the session and usage."""
        run = await self.run_example("native/stream.py")
        answer, summary = run.lines()
        self.assertEqual(answer, "claude answers: Write a haiku about autumn")
        self.assertRegex(summary, r"^\[session [0-9a-f]{32}, usage \{'input_tokens': 4, ")
        self.assert_streamed(run, answer)
        self.assert_documented("native/stream.py", run)

    async def test_openai_stream_py(self) -> None:
        """C{openai/stream.py} prints Claude's answer piece by piece."""
        run = await self.run_example("openai/stream.py")
        self.assertEqual(run.stdout, "claude answers: Write a haiku about autumn\n")
        self.assert_streamed(run, "claude answers: Write a haiku about autumn")
        self.assert_documented("openai/stream.py", run)

    async def test_openai_stream_sh(self) -> None:
        """
        C{openai/stream.sh} shows the chunks of the OpenAI stream: the role,
        the three pieces, the finish reason and C{[DONE]}.
        """
        run = await self.run_example("openai/stream.sh")
        lines = sse_lines(run.stdout.encode())
        self.assertEqual(lines[-1], "data: [DONE]")
        chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
        deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
        self.assertEqual(deltas[0]["role"], "assistant")
        self.assertEqual(
            "".join(delta.get("content", "") for delta in deltas), "claude answers: Count to three"
        )
        self.assertEqual([chunk["choices"][0]["finish_reason"] for chunk in chunks][-2:], [None, "stop"])
        self.assert_streamed(run, "data: [DONE]")
        self.assert_documented("openai/stream.sh", run)

    async def test_openai_async_stream(self) -> None:
        """
        C{openai/async_stream.py} streams from Claude and Gemini at once,
        then prints both answers.
        """
        run = await self.run_example("openai/async_stream.py")
        *pieces, claude, gemini = run.lines()
        self.assertEqual(
            (claude, gemini),
            ("claude answers: Explain Deferreds briefly", "gemini answers: Explain Deferreds briefly"),
        )
        for model, answer in (("claude", claude), ("gemini-2.5-pro", gemini)):
            prefix = f"[{model}] "
            own = [piece.removeprefix(prefix) for piece in pieces if piece.startswith(prefix)]
            self.assertEqual((len(own), "".join(own)), (3, answer), pieces)
        self.assertEqual(len(pieces), 6, pieces)
        self.assert_streamed(run, gemini)
        self.assertEqual(sorted(record["name"] for record in self.runs()), ["claude", "gemini"])
        self.assert_documented("openai/async_stream.py", run, any_order=True)

    async def test_langchain(self) -> None:
        """
        C{openai/langchain_chat.py} prints Claude's answer to C{invoke},
        then streams the second answer.
        """
        run = await self.run_example("openai/langchain_chat.py")
        self.assertEqual(
            run.lines(), ["claude answers: What is a reactor?", "claude answers: Write a haiku about autumn"]
        )
        self.assert_system_prompt(
            self.run_with("claude", "What is a reactor?"), "Answer in one sentence.", "What is a reactor?"
        )
        self.assert_streamed(run, "claude answers: Write a haiku about autumn")
        self.assert_documented("openai/langchain_chat.py", run)

    async def test_anthropic_stream_py(self) -> None:
        """
        C{anthropic/stream.py} prints the text stream piece by piece, then
        the final message's stop reason and output tokens.
        """
        run = await self.run_example("anthropic/stream.py")
        answer = "claude answers: Write a haiku about autumn"
        self.assertEqual(run.lines(), [answer, f"end_turn {output_tokens(answer)}"])
        self.assert_streamed(run, answer)
        self.assert_documented("anthropic/stream.py", run)

    async def test_anthropic_async_stream(self) -> None:
        """C{anthropic/async_stream.py} prints the text stream piece by piece."""
        run = await self.run_example("anthropic/async_stream.py")
        self.assertEqual(run.stdout, "claude answers: Write a haiku about autumn\n")
        self.assert_streamed(run, "claude answers: Write a haiku about autumn")
        self.assert_documented("anthropic/async_stream.py", run)

    async def test_anthropic_stream_sh(self) -> None:
        """C{anthropic/stream.sh} shows the Messages API's events in their order."""
        run = await self.run_example("anthropic/stream.sh")
        lines = sse_lines(run.stdout.encode())
        names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
        self.assertEqual(
            names,
            ["message_start", "content_block_start"]
            + ["content_block_delta"] * 3
            + ["content_block_stop", "message_delta", "message_stop"],
        )
        data = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
        self.assertEqual(
            "".join(each["delta"]["text"] for each in data if each["type"] == "content_block_delta"),
            "claude answers: Count to three",
        )
        self.assert_streamed(run, "message_stop")
        self.assert_documented("anthropic/stream.sh", run)


class OpenAIExampleTests(ExampleTestCase):
    """The examples of C{docs/openai-api.md} that do not stream."""

    async def test_chat(self) -> None:
        """C{openai/chat.py} prints Claude's answer; Claude got the system prompt."""
        run = await self.run_example("openai/chat.py")
        self.assertEqual(run.stdout, "claude answers: What is Twisted?\n")
        [record] = self.runs("claude")
        self.assert_system_prompt(record, "Answer in one sentence.", "What is Twisted?")
        self.assert_ephemeral([record], ephemeral=False)
        self.assert_documented("openai/chat.py", run)

    async def test_conversation(self) -> None:
        """
        C{openai/conversation.py} asks three questions as one conversation:
        one session, whose CLI was given each question alone.
        """
        run = await self.run_example("openai/conversation.py")
        self.assertEqual(
            run.lines(),
            [
                "claude answers: Pick a number",
                "claude answers: Double it",
                "claude answers: Now add ten",
                "sessions used: 1",
            ],
        )
        self.assertEqual(
            sorted(record["stdin"] for record in self.runs("claude")),
            ["Double it", "Now add ten", "Pick a number"],
        )
        self.assert_documented("openai/conversation.py", run)

    async def test_responses(self) -> None:
        """
        C{openai/responses.py} holds a conversation through the Responses
        API: each answer given to its input alone, in one live claude.
        """
        run = await self.run_example("openai/responses.py")
        questions = ["Pick a number", "Double it", "Now add ten"]
        self.assertEqual(run.lines(), [f"claude answers: {question}" for question in questions])
        runs = self.runs("claude")
        self.assertEqual(sorted(record["stdin"] for record in runs), sorted(questions))
        self.assertEqual(len({record["pid"] for record in runs}), 1)
        self.assert_documented("openai/responses.py", run)

    async def test_image(self) -> None:
        """C{openai/image.py} shows claude the image, as an image block of its input."""
        run = await self.run_example("openai/image.py")
        self.assertEqual(run.stdout, "claude answers: What colour is this square?\n")
        [record] = self.runs("claude")
        self.assertEqual([image["media_type"] for image in record["images"]], ["image/png"])
        self.assert_documented("openai/image.py", run)

    async def test_structured(self) -> None:
        """
        C{openai/structured.py} parses a schema-shaped answer of claude and
        of codex, each given the schema its own way.
        """
        run = await self.run_example("openai/structured.py")
        self.assertEqual(
            run.lines(),
            ["label='claude answers: Pick a colour' n=1", "label='codex answers: Pick a colour' n=1"],
        )
        [claude] = self.runs("claude")
        self.assertIn("--json-schema", claude["argv"])
        [codex] = self.runs("codex")
        self.assertEqual(codex["schema"]["required"], ["label", "n"])
        self.assert_documented("openai/structured.py", run)

    async def test_tools(self) -> None:
        """
        C{openai/tools.py} runs the tool claude's CLI asks for, and the
        answer comes from the same CLI run, with the result.
        """
        run = await self.run_example("openai/tools.py")
        self.assertEqual(
            run.lines(), ["claude asks for get_weather", "claude answers: get_weather said sunny, 21 C"]
        )
        [record] = self.runs("claude")
        self.assertEqual([call["result"] for call in record["tool_calls"]], ["sunny, 21 C"])
        self.assert_documented("openai/tools.py", run)

    async def test_responses_tools(self) -> None:
        """C{openai/responses_tools.py}: the same on codex, by previous_response_id."""
        run = await self.run_example("openai/responses_tools.py")
        self.assertEqual(
            run.lines(), ["codex asks for get_weather", "codex answers: get_weather said sunny, 21 C"]
        )
        [record] = self.runs("codex")
        self.assertEqual([call["result"] for call in record["tool_calls"]], ["sunny, 21 C"])
        self.assert_documented("openai/responses_tools.py", run)

    async def test_list_models(self) -> None:
        """C{openai/list_models.py} lists one model per backend."""
        run = await self.run_example("openai/list_models.py")
        self.assertEqual(run.lines(), ["claude clinvoker", "codex clinvoker", "gemini clinvoker"])
        self.assert_documented("openai/list_models.py", run)

    async def test_error_handling(self) -> None:
        """
        C{openai/error_handling.py} catches the C{BadRequestError} of its
        remote image URL; no CLI ran.
        """
        run = await self.run_example("openai/error_handling.py")
        self.assertEqual(
            run.stdout,
            "bad request (400): Error code: 400 - remote image URLs are n"
            "ot fetched: send the image inline, as a data URL such as data:image/png;base64,...\n",
        )
        self.assertEqual(self.runs(), [])
        self.assert_documented("openai/error_handling.py", run)


class AnthropicExampleTests(ExampleTestCase):
    """The examples of C{docs/anthropic-api.md} that do not stream."""

    async def test_message(self) -> None:
        """
        C{anthropic/message.py} prints Claude's answer, stop reason and
        usage; the model name reached Claude as its C{--model}.
        """
        run = await self.run_example("anthropic/message.py")
        answer = "claude answers: What is Twisted?"
        self.assertEqual(run.lines(), [answer, f"end_turn 4 {output_tokens(answer)}"])
        [record] = self.runs("claude")
        self.assert_model_flag(record["argv"], "sonnet")
        self.assert_documented("anthropic/message.py", run)

    async def test_tools(self) -> None:
        """C{anthropic/tools.py}: gemini's CLI asks for the tool, and answers with its result."""
        run = await self.run_example("anthropic/tools.py")
        self.assertEqual(
            run.lines(), ["gemini asks for get_weather", "gemini answers: get_weather said sunny, 21 C"]
        )
        [record] = self.runs("gemini")
        self.assertEqual([call["result"] for call in record["tool_calls"]], ["sunny, 21 C"])
        self.assert_documented("anthropic/tools.py", run)

    async def test_system_prompt(self) -> None:
        """
        C{anthropic/system_prompt.py}: Claude got the system prompt, and the
        conversation as one prompt with the earlier answer quoted.
        """
        run = await self.run_example("anthropic/system_prompt.py")
        self.assertEqual(run.stdout, "claude answers: Is time.sleep fine in a Twisted server?\n")
        self.assert_system_prompt(
            self.runs("claude")[0],
            "You are a terse code reviewer.",
            "Is time.sleep fine in a Twisted server?\n"
            "[Previous response: No: it blocks the reactor.]\n\n"
            "What should I use instead?",
        )
        self.assert_documented("anthropic/system_prompt.py", run)

    async def test_error_handling(self) -> None:
        """
        C{anthropic/error_handling.py} catches the C{BadRequestError} of its
        image block's URL source; no CLI ran.
        """
        run = await self.run_example("anthropic/error_handling.py")
        self.assertEqual(
            run.stdout,
            "bad request (400): image source type url is not supported: send the image as a base64 source\n",
        )
        self.assertEqual(self.runs(), [])
        self.assert_documented("anthropic/error_handling.py", run)


class APIKeyExampleTests(ExampleTestCase):
    """
    The API key examples of the three guides, against a server started
    with C{CLINVK_API_KEYS}, each given one of its keys in C{CLINVK_API_KEY}.
    """

    server_environment = {"CLINVK_API_KEYS": "sk-first,sk-second"}
    example_environment = {"CLINVK_API_KEY": "sk-second"}

    async def test_native(self) -> None:
        """C{native/api_key.sh} is let in with C{Authorization} and with C{X-Api-Key}."""
        run = await self.run_example("native/api_key.sh")
        result, backends = run.json_lines()
        self.assertEqual(result["output"], "claude answers: Hello")
        self.assertEqual(len(backends["backends"]), 3)
        self.assert_documented("native/api_key.sh", run)

    async def test_openai(self) -> None:
        """C{openai/api_key.py} is let in with the key as its C{api_key}."""
        run = await self.run_example("openai/api_key.py")
        self.assertEqual(run.stdout, "claude answers: Hello\n")
        self.assert_documented("openai/api_key.py", run)

    async def test_anthropic(self) -> None:
        """C{anthropic/api_key.py} is let in with the key as its C{api_key}."""
        run = await self.run_example("anthropic/api_key.py")
        self.assertEqual(run.stdout, "claude answers: Hello\n")
        self.assert_documented("anthropic/api_key.py", run)

    async def test_refused_without_key(self) -> None:
        """
        The server really wants a key: C{native/prompt.sh}, which sends
        none, gets the 401 body.
        """
        run = await self.run_example("native/prompt.sh")
        self.assertEqual(run.json_lines(), [{"error": "unauthorized", "message": "missing API key"}])


class CoverageTests(SynchronousTestCase):
    """Every example of the API guides is run here and shown in its guide."""

    def examples(self) -> list[str]:
        return sorted(
            path.relative_to(EXAMPLES).as_posix()
            for directory in PAGES
            for path in (EXAMPLES / directory).iterdir()
            if path.is_file()
        )

    def test_run_here(self) -> None:
        """Every example file is named by a test of this module."""
        source = Path(__file__).read_text()
        self.assertEqual([name for name in self.examples() if f'"{name}"' not in source], [])

    def test_shown(self) -> None:
        """Every example file is included by the guide of its directory."""
        missing = [
            name
            for name in self.examples()
            if f"```{{literalinclude}} examples/{name}\n"
            not in (DOCS / PAGES[name.split("/")[0]]).read_text()
        ]
        self.assertEqual(missing, [])
