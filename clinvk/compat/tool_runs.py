# -*- test-case-name: tests.compat.test_tool_runs -*-
"""
A run whose CLI may call the client's tools (docs/design/client-tools.md#tool-runs):
one CLI process whose events reach the client in I{segments}, one per
request.  A segment ends with the run's result, or with the calls the
CLI made of the client's tools while it waits on them; the client's
follow-up answers the calls and reads the next segment.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence

import attrs

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from clinvk.compat.mcp import MCPBridge, PendingCall, Toolbox
from clinvk.compat.tools import ClientTool, ToolCall, ToolResult, canonical
from clinvk.model import RunResult, UnifiedEvent
from clinvk.runs.channel import StreamChannel
from clinvk.runs.runtime import EventChannel

log = Logger()

# After a call arrives, how long more calls of the same step may take to
# arrive before the segment ends: a CLI makes a step's calls at once.
SETTLE_SECS = 0.25

# What the CLI is told of a call the client's follow-up left unanswered.
NO_RESULT = "The client returned no result for this call."


@attrs.frozen
class ToolCallsMade:
    """How a segment ends when the CLI waits on calls of the client's tools."""

    calls: tuple[ToolCall, ...]


SegmentEnd = RunResult | ToolCallsMade

# The events of one segment, ending with the run's result or its calls.
Segment = StreamChannel[UnifiedEvent, SegmentEnd]


class ToolRun:
    """
    One CLI run with the client's tools.

    @param bridge: Serves the tools to the CLI.
    @param tools: The client's tools.
    @param clock: Times the settling of calls and the wait for the client.
    @param call_prefix: What this API's call ids start with (C{call_},
        C{toolu_}).
    @param timeout_secs: How long the client has to return results.
    @param expired: Told when that time ran out (the run is cancelled).
    """

    def __init__(
        self,
        *,
        bridge: MCPBridge,
        tools: Sequence[ClientTool],
        clock: IReactorTime,
        call_prefix: str,
        timeout_secs: float,
        expired: Callable[[ToolRun], object] = lambda run: None,
    ) -> None:
        self._bridge = bridge
        self._clock = clock
        self._prefix = call_prefix
        self._timeout = timeout_secs
        self._expired = expired
        self.toolbox: Toolbox = bridge.open(tools, self._called)
        self._cli: EventChannel | None = None
        self._segment: Segment | None = None
        self._held: list[UnifiedEvent] = []
        self._ended: RunResult | Failure | None = None
        self._waiting: dict[str, PendingCall] = {}
        self._new: list[ToolCall] = []
        self._settle: IDelayedCall | None = None
        self._expiry: IDelayedCall | None = None
        self._cancelled = False

    @property
    def url(self) -> str:
        """The URL the CLI reaches the tools at."""
        return self.toolbox.url

    @property
    def waiting(self) -> tuple[str, ...]:
        """The ids of the calls the CLI waits on."""
        return tuple(self._waiting)

    def start(self, cli: EventChannel) -> Segment:
        """The first segment of the run whose events C{cli} carries; the CLI runs."""
        self._cli = cli
        segment = self._open_segment()
        pumping = Deferred.fromCoroutine(self._pump(cli))
        pumping.addErrback(lambda reason: log.failure("A tool run's events stopped", reason))
        return segment

    def resume(self, results: Mapping[str, ToolResult]) -> Segment:
        """
        Answer the calls the CLI waits on with C{results} (a call without
        one gets an error) and give the next segment.
        """
        self._stop_timer("_expiry")
        segment = self._open_segment()
        waiting, self._waiting = self._waiting, {}
        for call_id, call in waiting.items():
            if not call.answer.called:
                # (A call whose CLI hung up was cancelled already.)
                call.answer.callback(results.get(call_id) or ToolResult(call_id, NO_RESULT, is_error=True))
        held, self._held = self._held, []
        for event in held:
            segment.put(event)
        if self._ended is not None:
            self._finish(self._ended)
        return segment

    def cancel(self) -> None:
        """Stop the run: its CLI, its tools, the calls it waits on."""
        if self._cancelled:
            return
        self._cancelled = True
        self._stop_timer("_settle")
        self._stop_timer("_expiry")
        self._bridge.close(self.toolbox)
        self._waiting.clear()
        if self._cli is not None:
            self._cli.cancel()

    # -- the segments

    def _open_segment(self) -> Segment:
        segment: Segment = StreamChannel()
        # Its reader gone while it runs, so is the run; once it has ended,
        # the run waits for the next reader.
        segment.stop_with(lambda: self.cancel() if segment is self._segment else None)
        segment.running()
        self._segment = segment
        return segment

    async def _pump(self, cli: EventChannel) -> None:
        async for event in cli:
            if self._segment is not None:
                self._segment.put(event)
            else:
                self._held.append(event)
        ended: RunResult | Failure
        try:
            ended = await cli.result()
        except BaseException:
            ended = Failure()
        self._stop_timer("_settle")
        self._bridge.close(self.toolbox)
        if self._segment is not None:
            self._finish(ended)
        else:
            # Suspended: the next segment, if any comes, ends at once.
            self._ended = ended

    def _finish(self, ended: RunResult | Failure) -> None:
        segment, self._segment = self._segment, None
        assert segment is not None
        self._stop_timer("_expiry")
        if isinstance(ended, Failure):
            segment.fail(ended)
        else:
            segment.close(ended)

    # -- the calls

    def _called(self, call: PendingCall) -> None:
        made = ToolCall(self._prefix + secrets.token_hex(12), call.name, canonical(call.arguments))
        self._waiting[made.id] = call
        self._new.append(made)
        self._stop_timer("_settle")
        self._settle = self._clock.callLater(SETTLE_SECS, self._suspend)

    def _suspend(self) -> None:
        self._settle = None
        segment = self._segment
        if segment is None or not self._new:
            return
        self._segment = None
        calls, self._new = tuple(self._new), []
        self._expiry = self._clock.callLater(self._timeout, self._expire)
        segment.close(ToolCallsMade(calls))

    def _expire(self) -> None:
        self._expiry = None
        log.info(
            "The client did not return its tools' results in time; the run is stopped calls={calls}",
            calls=",".join(self._waiting),
        )
        self.cancel()
        self._expired(self)

    def _stop_timer(self, name: str) -> None:
        timer: IDelayedCall | None = getattr(self, name)
        if timer is not None and timer.active():
            timer.cancel()
        setattr(self, name, None)


async def collected(segment: Segment) -> tuple[str, SegmentEnd]:
    """The text of C{segment}'s answer, and how it ended."""
    text = ""
    async for event in segment:
        piece = event.content.get("text") if event.type == "message" else None
        if piece:
            text += piece
    return text, await segment.result()
