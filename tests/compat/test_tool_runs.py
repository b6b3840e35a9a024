"""
Tool runs in segments (docs/design/client-tools.md#tool-runs), on a fake
clock, with a channel standing for the CLI's events.
"""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from clinvk.backends import events
from clinvk.compat.mcp import MCPBridge
from clinvk.compat.tool_runs import NO_RESULT, SETTLE_SECS, ToolCallsMade, ToolRun, collected
from clinvk.compat.tools import ClientTool, ToolResult
from clinvk.model import RunResult
from clinvk.runs.channel import StreamChannel
from clinvk.runs.runtime import EventChannel

TOOLS = [ClientTool("get_weather"), ClientTool("get_time")]


class ToolRunTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.bridge = MCPBridge()
        self.bridge.listening("http://127.0.0.1:1/mcp")
        self.expired: list[ToolRun] = []
        self.tool_run = ToolRun(
            bridge=self.bridge,
            tools=TOOLS,
            clock=self.clock,
            call_prefix="call_",
            timeout_secs=60,
            expired=self.expired.append,
        )
        self.cli: EventChannel = StreamChannel()
        self.cli.running()
        self.segment = self.tool_run.start(self.cli)
        self.secret = self.tool_run.url.rsplit("/", 1)[1]

    def call(self, name: str, **arguments: object) -> Deferred[object]:
        """The CLI calls C{name}; the Deferred fires with the bridge's JSON-RPC answer."""
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        }
        return Deferred.fromCoroutine(self.bridge.handle(self.secret, json.dumps(body).encode()))

    def test_segment_ends_with_the_calls(self) -> None:
        """
        Text goes to the segment as it comes; the calls made within the
        settling time end it together, each with an id and its arguments.
        """
        self.cli.put(events.message("Let me look", 1))
        self.call("get_weather", city="Paris")
        self.clock.advance(SETTLE_SECS / 2)
        self.call("get_time", city="Paris")
        self.clock.advance(SETTLE_SECS / 2)
        reading = Deferred.fromCoroutine(collected(self.segment))
        self.assertNoResult(reading)
        self.clock.advance(SETTLE_SECS)
        text, ended = self.successResultOf(reading)
        self.assertEqual(text, "Let me look")
        assert isinstance(ended, ToolCallsMade)
        self.assertEqual(
            [(c.name, c.arguments) for c in ended.calls],
            [("get_weather", '{"city":"Paris"}'), ("get_time", '{"city":"Paris"}')],
        )
        self.assertEqual(self.tool_run.waiting, tuple(call.id for call in ended.calls))
        for call in ended.calls:
            self.assertRegex(call.id, "^call_[0-9a-f]{24}$")

    def suspended(self) -> tuple[list[Deferred[object]], ToolCallsMade]:
        answers = [self.call("get_weather"), self.call("get_time")]
        self.clock.advance(SETTLE_SECS)
        ended = self.successResultOf(self.segment.result())
        assert isinstance(ended, ToolCallsMade)
        return answers, ended

    def test_resume(self) -> None:
        """
        The follow-up's results answer the waiting calls (one it left out
        as an error), and the next segment reads the rest of the run.
        """
        answers, ended = self.suspended()
        weather, _ = ended.calls
        # What the CLI printed while it waited goes to the next segment.
        self.cli.put(events.message("held ", 2))
        segment = self.tool_run.resume({weather.id: ToolResult(weather.id, "sunny")})
        results = [self.successResultOf(answer) for answer in answers]
        self.assertEqual([r.body["result"]["content"][0]["text"] for r in results], ["sunny", NO_RESULT])  # type: ignore[attr-defined]
        self.assertEqual([r.body["result"]["isError"] for r in results], [False, True])  # type: ignore[attr-defined]
        self.cli.put(events.message("done", 3))
        self.cli.close(RunResult(exit_code=0, output="held done"))
        text, end = self.successResultOf(Deferred.fromCoroutine(collected(segment)))
        self.assertEqual((text, end), ("held done", RunResult(exit_code=0, output="held done")))
        self.assertFalse(self.bridge.knows(self.secret))

    def test_expiry(self) -> None:
        """The client's time run out, the run is cancelled and its end told."""
        self.suspended()
        self.clock.advance(59)
        self.assertEqual(self.expired, [])
        self.clock.advance(1)
        self.assertEqual(self.expired, [self.tool_run])
        self.assertTrue(self.cli.cancelled)
        self.assertFalse(self.bridge.knows(self.secret))

    def test_reader_gone(self) -> None:
        """The reader of a running segment gone, the run is cancelled; of an ended one, nothing happens."""
        self.suspended()
        self.segment.cancel()
        self.assertFalse(self.cli.cancelled)
        segment = self.tool_run.resume({})
        segment.cancel()
        self.assertTrue(self.cli.cancelled)

    def test_ended_while_waiting(self) -> None:
        """A CLI that ended while the client had the calls: the next segment ends at once."""
        self.suspended()
        self.cli.close(RunResult(exit_code=1, error="gone"))
        segment = self.tool_run.resume({})
        self.assertEqual(self.successResultOf(segment.result()), RunResult(exit_code=1, error="gone"))

    def test_cli_hung_up_on_a_call(self) -> None:
        """A call whose CLI hung up was cancelled; the follow-up answers the others all the same."""
        answers, ended = self.suspended()
        self.tool_run.toolbox.pending[0].answer.cancel()
        self.tool_run.resume({call.id: ToolResult(call.id, "fine") for call in ended.calls})
        second = self.successResultOf(answers[1])
        self.assertEqual(second.body["result"]["content"][0]["text"], "fine")  # type: ignore[attr-defined]
