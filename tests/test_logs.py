"""
Tests for L{clinvk.logs}: the key=value lines of C{clinvk serve}.
"""

from __future__ import annotations

import io

from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from clinvk.logs import format_logfmt, logfmt_observer, logfmt_value

TIME = 1741082400.123  # 2025-03-04T10:00:00.123Z


class FormatTests(SynchronousTestCase):
    """format_logfmt."""

    def test_fields(self) -> None:
        """A 'message name={name}…' event becomes msg plus one pair per field."""
        line = format_logfmt(
            {
                "log_format": "Starting server addr={addr}",
                "addr": "127.0.0.1:8080",
                "log_level": LogLevel.info,
                "log_time": TIME,
            }
        )
        self.assertEqual(
            line, 'time=2025-03-04T10:00:00.123+00:00 level=INFO msg="Starting server" addr=127.0.0.1:8080\n'
        )

    def test_request_line(self) -> None:
        """The access-log event renders as config.md 6.3 shows."""
        line = format_logfmt(
            {
                "log_format": "request method={method} path={path} status={status}",
                "method": "POST",
                "path": "/api/v1/prompt",
                "status": 200,
                "log_level": LogLevel.info,
                "log_time": TIME,
            }
        )
        self.assertEqual(
            line,
            "time=2025-03-04T10:00:00.123+00:00 level=INFO msg=request method=POST path=/api/v1/prompt status=200\n",
        )

    def test_other_formats(self) -> None:
        """Events of another shape (Twisted's own) become one quoted msg."""
        line = format_logfmt(
            {
                "log_format": "Site starting on {port}",
                "port": 8080,
                "log_level": LogLevel.warn,
                "log_time": TIME,
            }
        )
        self.assertEqual(line, 'time=2025-03-04T10:00:00.123+00:00 level=WARN msg="Site starting on 8080"\n')

    def test_quoting(self) -> None:
        """Values with spaces, quotes or nothing at all are quoted."""
        self.assertEqual(logfmt_value("a b"), '"a b"')
        self.assertEqual(logfmt_value('say "x"'), '"say \\"x\\""')
        self.assertEqual(logfmt_value(""), '""')
        self.assertEqual(logfmt_value(42), "42")

    def test_failure(self) -> None:
        """A logged failure adds its message and traceback."""
        try:
            raise ValueError("boom")
        except ValueError:
            failure = Failure()
        line = format_logfmt(
            {
                "log_format": "Unhandled error",
                "log_failure": failure,
                "log_level": LogLevel.critical,
                "log_time": TIME,
            }
        )
        assert line is not None
        first, rest = line.split("\n", 1)
        self.assertEqual(
            first, 'time=2025-03-04T10:00:00.123+00:00 level=CRITICAL msg="Unhandled error" error=boom'
        )
        self.assertIn("ValueError: boom", rest)

    def test_observer(self) -> None:
        """The observer writes one line per event."""
        out = io.StringIO()
        publisher = LogPublisher(logfmt_observer(out))
        Logger(observer=publisher).info("Server stopped")
        self.assertRegex(out.getvalue(), r'^time=\S+ level=INFO msg="Server stopped"\n$')
