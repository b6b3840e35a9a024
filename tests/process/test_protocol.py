"""
Tests for L{clinvk.process.protocol}: captures and the process protocol.
"""

from __future__ import annotations

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from clinvk.process.protocol import (
    STDERR_TAIL_BYTES,
    BufferedCapture,
    CLIProcessProtocol,
    ExitStatus,
    ICapture,
    LineCapture,
)
from clinvk.testing.reactor import FakeProcessReactor


class BufferedCaptureTests(SynchronousTestCase):
    """The capture of a non-streaming run."""

    def test_provides(self) -> None:
        """It provides ICapture."""
        verifyObject(ICapture, BufferedCapture(10))

    def test_keeps_stdout_and_stderr_tail(self) -> None:
        """Stdout is kept whole; stderr only its tail."""
        capture = BufferedCapture(100)
        capture.stdout(b"ab")
        capture.stdout(b"c\n")
        capture.stderr(b"x" * (STDERR_TAIL_BYTES + 10) + b"END")
        self.assertEqual(capture.stdout_text(), "abc\n")
        self.assertTrue(capture.stderr_text().endswith("END"))
        self.assertEqual(len(capture.stderr_text()), STDERR_TAIL_BYTES)

    def test_merged(self) -> None:
        """Merged stderr lands in stdout in arrival order."""
        capture = BufferedCapture(100, merge_stderr=True)
        capture.stdout(b"1 ")
        capture.stderr(b"2 ")
        capture.stdout(b"3")
        self.assertEqual((capture.stdout_text(), capture.stderr_text()), ("1 2 3", ""))

    def test_limit(self) -> None:
        """Past the limit the capture overflows and keeps what fitted."""
        capture = BufferedCapture(5)
        capture.stdout(b"1234")
        self.assertFalse(capture.overflowed)
        capture.stdout(b"56")
        self.assertTrue(capture.overflowed)
        self.assertEqual(capture.stdout_text(), "1234")

    def test_invalid_utf8(self) -> None:
        """Invalid UTF-8 is replaced, not an error."""
        capture = BufferedCapture(100)
        capture.stdout(b"ok \xff\xfe")
        self.assertEqual(capture.stdout_text(), "ok \ufffd\ufffd")

    def test_text_taken_once(self) -> None:
        """
        Reading the text lets go of it: a large answer is not kept twice,
        as bytes here and as the text the caller parses.
        """
        capture = BufferedCapture(100)
        capture.stdout(b"answer")
        self.assertEqual(capture.stdout_text(), "answer")
        self.assertEqual(capture.stdout_text(), "")


class LineCaptureTests(SynchronousTestCase):
    """The capture of a streaming run."""

    def setUp(self) -> None:
        self.lines: list[str] = []

    def test_provides(self) -> None:
        """It provides ICapture."""
        verifyObject(ICapture, LineCapture(self.lines.append, 10))

    def test_split_across_chunks(self) -> None:
        """Lines split at any byte, CRLF ends and multi-byte characters survive."""
        capture = LineCapture(self.lines.append, 100)
        data = "é one\r\ntwo\nthree".encode()
        for byte in data:
            capture.stdout(bytes([byte]))
        self.assertEqual(self.lines, ["é one", "two"])
        capture.finish()
        self.assertEqual(self.lines, ["é one", "two", "three"])

    def test_long_line_within_limit(self) -> None:
        """A line as long as the limit is fine, however many chunks it takes."""
        capture = LineCapture(self.lines.append, 1000)
        for _ in range(10):
            capture.stdout(b"x" * 100)
        capture.stdout(b"\n")
        self.assertEqual([len(line) for line in self.lines], [1000])
        self.assertFalse(capture.overflowed)

    def test_line_past_limit(self) -> None:
        """A partial line past the limit overflows; nothing more is delivered."""
        capture = LineCapture(self.lines.append, 10)
        capture.stdout(b"x" * 11)
        self.assertTrue(capture.overflowed)
        capture.stdout(b"\nmore\n")
        capture.finish()
        self.assertEqual(self.lines, [])

    def test_merged_streams_do_not_splice(self) -> None:
        """Merged stderr lines are split on their own, never glued to a stdout line."""
        capture = LineCapture(self.lines.append, 100, merge_stderr=True)
        capture.stdout(b"out-")
        capture.stderr(b"err\n")
        capture.stdout(b"line\n")
        self.assertEqual(self.lines, ["err", "out-line"])

    def test_stderr_tail(self) -> None:
        """Separate stderr is kept as a tail."""
        capture = LineCapture(self.lines.append, 100)
        capture.stderr(b"usage error\n")
        self.assertEqual((capture.stderr_text(), self.lines), ("usage error\n", []))


class ProtocolTests(SynchronousTestCase):
    """CLIProcessProtocol."""

    def setUp(self) -> None:
        self.reactor = FakeProcessReactor()
        self.capture = BufferedCapture(100)
        self.outputs: list[None] = []
        self.overflows: list[None] = []
        self.protocol = CLIProcessProtocol(
            self.capture,
            b"the prompt",
            on_output=lambda: self.outputs.append(None),
            on_overflow=lambda: self.overflows.append(None),
        )
        self.transport = self.reactor.spawnProcess(self.protocol, "x", ["x"])

    def test_stdin(self) -> None:
        """The prompt is written to stdin, which is then closed."""
        self.assertEqual(self.transport.stdin, b"the prompt")
        self.assertTrue(self.transport.stdin_closed)

    def test_output_reported(self) -> None:
        """Every chunk of output is captured and reported (for the idle watchdog)."""
        self.transport.emit_stdout(b"a")
        self.transport.emit_stderr(b"b")
        self.assertEqual(len(self.outputs), 2)
        self.assertEqual((self.capture.stdout_text(), self.capture.stderr_text()), ("a", "b"))

    def test_overflow_once(self) -> None:
        """An overflow is reported once."""
        self.transport.emit_stdout(b"x" * 101)
        self.transport.emit_stdout(b"y")
        self.assertEqual(len(self.overflows), 1)

    def test_exited_then_ended(self) -> None:
        """exited fires when the child exits; ended once its pipes are closed too."""
        self.transport.lingering = True
        self.transport.exit(3)
        self.assertEqual(self.successResultOf(self.protocol.exited), ExitStatus(3, None))
        self.assertNoResult(self.protocol.ended)
        self.transport.loseConnection()
        self.assertEqual(self.successResultOf(self.protocol.ended), ExitStatus(3, None))

    def test_status_from_failure(self) -> None:
        """Exit codes and signals are read from Twisted's failures."""
        self.assertEqual(ExitStatus.from_failure(Failure(ProcessDone(0))), ExitStatus(0, None))
        self.assertEqual(ExitStatus.from_failure(Failure(ProcessTerminated(signal=9))), ExitStatus(None, 9))
        self.assertEqual(ExitStatus.from_failure(Failure(ValueError())), ExitStatus(None, None))
