# -*- test-case-name: tests.process.test_protocol -*-
"""
The mechanism of a child process's output: captures that keep or split
what it writes, and the C{ProcessProtocol} that feeds them.

Policy (timeouts, kills) lives in L{clinvk.process.runner}.  Output is
bounded by one memory cap per run: a non-streaming run keeps its whole
stdout (the CLIs print one JSON document at the end), a streaming run only
its current partial line, so a large tool result in one line is fine while
runaway output still stops with a clear error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from attrs import frozen

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface, implementer

STDERR_TAIL_BYTES = 64 * 1024


class ICapture(Interface):
    """Where a child's output goes."""

    overflowed = Attribute("Whether the output went past the run's memory cap.")

    def stdout(data: bytes) -> None:
        """Take a chunk of stdout."""

    def stderr(data: bytes) -> None:
        """Take a chunk of stderr."""

    def finish() -> None:
        """The child's output has ended."""


class _StderrTail:
    """The last L{STDERR_TAIL_BYTES} of a stream."""

    def __init__(self, limit: int = STDERR_TAIL_BYTES) -> None:
        self._limit = limit
        self._data = b""

    def add(self, data: bytes) -> None:
        self._data = (self._data + data)[-self._limit :]

    def text(self) -> str:
        return self._data.decode("utf-8", "replace")


@implementer(ICapture)
class BufferedCapture:
    """
    Keeps a non-streaming run's stdout (up to C{limit} bytes) and the tail
    of its stderr.

    @param merge_stderr: Put stderr into the stdout capture in arrival
        order, as the reference does for Claude (docs/design/cli-runs.md#capture).
    @ivar overflowed: Whether stdout went past the limit (the rest is
        dropped).
    """

    def __init__(self, limit: int, *, merge_stderr: bool = False) -> None:
        self._limit = limit
        self._merge = merge_stderr
        # One growing buffer rather than a list of chunks: it is decoded
        # without first being joined into a second copy of the output.
        self._stdout = bytearray()
        self._size = 0
        self._stderr = _StderrTail()
        self.overflowed = False

    def stdout(self, data: bytes) -> None:
        if self._size + len(data) > self._limit:
            self.overflowed = True
            return
        self._stdout += data
        self._size += len(data)

    def stderr(self, data: bytes) -> None:
        if self._merge:
            self.stdout(data)
        else:
            self._stderr.add(data)

    def finish(self) -> None:
        pass

    def stdout_text(self) -> str:
        """
        Everything kept of stdout, decoded (invalid UTF-8 replaced), once:
        the capture lets go of it, so that a large answer is not held
        twice while it is parsed and answered.
        """
        text = self._stdout.decode("utf-8", "replace")
        self._stdout = bytearray()
        return text

    def stderr_text(self) -> str:
        """The tail of stderr, decoded; empty when merged."""
        return self._stderr.text()


class _LineSplitter:
    """
    Splits a byte stream into lines.  The pieces of an unfinished line are
    kept as they came and joined once, when the line ends, so a long line
    costs time in proportion to its length.
    """

    def __init__(self, limit: int, deliver: Callable[[str], None]) -> None:
        self._limit = limit
        self._deliver = deliver
        self._pieces: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> bool:
        """Deliver the complete lines in C{data}; False once a line is too long."""
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            if self._size + end - start > self._limit:
                return False
            self._pieces.append(data[start:end])
            self._emit(b"".join(self._pieces))
            self._pieces, self._size = [], 0
            start = end + 1
        if start < len(data):
            self._pieces.append(data[start:])
            self._size += len(data) - start
        return self._size <= self._limit

    def _emit(self, line: bytes) -> None:
        self._deliver(line.rstrip(b"\r").decode("utf-8", "replace"))

    def finish(self) -> None:
        if self._pieces:
            # A child killed mid-line still has its last words heard.
            pieces, self._pieces = self._pieces, []
            self._emit(b"".join(pieces))


@implementer(ICapture)
class LineCapture:
    """
    Splits a streaming run's stdout into lines as they arrive and keeps the
    tail of its stderr.

    @param on_line: Called with each line, decoded, without its line end.
    @param limit: The longest partial line kept in memory.
    @param merge_stderr: Read stderr lines as stdout lines (Claude); they are
        split separately, so the two streams never splice mid-line.
    """

    def __init__(self, on_line: Callable[[str], None], limit: int, *, merge_stderr: bool = False) -> None:
        self._stdout = _LineSplitter(limit, on_line)
        self._merged = _LineSplitter(limit, on_line) if merge_stderr else None
        self._stderr = _StderrTail()
        self.overflowed = False

    def stdout(self, data: bytes) -> None:
        if not self.overflowed and not self._stdout.feed(data):
            self.overflowed = True

    def stderr(self, data: bytes) -> None:
        if self._merged is None:
            self._stderr.add(data)
        elif not self.overflowed and not self._merged.feed(data):
            self.overflowed = True

    def finish(self) -> None:
        if not self.overflowed:
            self._stdout.finish()
            if self._merged is not None:
                self._merged.finish()

    def stderr_text(self) -> str:
        """The tail of stderr, decoded; empty when merged."""
        return self._stderr.text()


@frozen
class ExitStatus:
    """How a child ended: an exit code, or the signal that killed it."""

    code: int | None
    signal: int | None

    @classmethod
    def from_failure(cls, reason: Failure) -> ExitStatus:
        value = reason.value
        if isinstance(value, (ProcessDone, ProcessTerminated)):
            return cls(value.exitCode, value.signal)
        return cls(None, None)


class CLIProcessProtocol(ProcessProtocol):
    """
    Writes the prompt to the child's stdin and closes it (or, for a live
    process, keeps it open for more), hands output to a capture, and
    reports the child's exit and end.

    @param keep_stdin: Leave stdin open after C{stdin} was written: a
        live process reads turn after turn on it
        (docs/design/live-sessions.md#live-protocol).

    @ivar exited: Fires with the L{ExitStatus} once the child has exited;
        its pipes may still be open (grandchildren can hold them).
    @ivar ended: Fires with the L{ExitStatus} once the child has exited and
        every pipe is closed, so all output has been captured.
    """

    def __init__(
        self,
        capture: ICapture,
        stdin: bytes,
        *,
        on_connected: Callable[[IProcessTransport], None] = lambda transport: None,
        on_output: Callable[[], None] = lambda: None,
        on_overflow: Callable[[], None] = lambda: None,
        keep_stdin: bool = False,
    ) -> None:
        self._capture = capture
        self._stdin = stdin
        self._keep_stdin = keep_stdin
        self._on_connected = on_connected
        self._on_output = on_output
        self._on_overflow = on_overflow
        self._overflow_reported = False
        self.exited: Deferred[ExitStatus] = Deferred()
        self.ended: Deferred[ExitStatus] = Deferred()

    def connectionMade(self) -> None:
        transport = cast("IProcessTransport", self.transport)
        self._on_connected(transport)
        if self._stdin:
            transport.write(self._stdin)
        if not self._keep_stdin:
            transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self._on_output()
        self._capture.stdout(data)
        self._check_overflow()

    def errReceived(self, data: bytes) -> None:
        self._on_output()
        self._capture.stderr(data)
        self._check_overflow()

    def _check_overflow(self) -> None:
        if self._capture.overflowed and not self._overflow_reported:
            self._overflow_reported = True
            self._on_overflow()

    def processExited(self, reason: Failure) -> None:
        if not self.exited.called:
            self.exited.callback(ExitStatus.from_failure(reason))

    def processEnded(self, reason: Failure) -> None:
        status = ExitStatus.from_failure(reason)
        if not self.exited.called:
            self.exited.callback(status)
        if self.ended.called:
            return
        self._capture.finish()
        self.ended.callback(status)
