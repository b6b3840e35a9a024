"""
Tests for L{clinvk.logs}: the key=value lines of C{clinvk serve} and the
JSON lines of C{twistd --logger=clinvk.logs.json_observer}.
"""

from __future__ import annotations

import io
import json
import sys

from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.python.failure import Failure
from twisted.scripts._twistd_unix import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

from clinvk.logs import format_json, format_logfmt, json_observer, logfmt_observer, logfmt_value

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


class JSONTests(SynchronousTestCase):
    """format_json and json_observer, for C{twistd --logger}."""

    def test_fields_are_keys(self) -> None:
        """Each field of the message is a key of the one-line object, as under twist."""
        line = format_json(
            {
                "log_format": "request method={method} path={path} status={status}",
                "method": "GET",
                "path": "/health",
                "status": 200,
                "log_level": LogLevel.info,
                "log_namespace": "clinvk.web._wrappers.AccessLog",
                "log_time": TIME,
            }
        )
        self.assertTrue(line.endswith("\n"))
        self.assertNotIn("\n", line[:-1])
        event = json.loads(line)
        self.assertEqual((event["method"], event["path"], event["status"]), ("GET", "/health", 200))
        self.assertEqual(event["log_level"]["name"], "info")
        self.assertEqual(event["log_time"], TIME)

    def test_unencodable_values(self) -> None:
        """Values JSON has no form for are marked, not fatal."""
        event = json.loads(format_json({"log_format": "x={x}", "x": object(), "log_time": TIME}))
        self.assertEqual(event["x"], {"unpersistable": True})

    def test_never_raises(self) -> None:
        """An event even Twisted's encoder refuses becomes its text and the reason."""
        circular: list[object] = []
        circular.append(circular)
        event = json.loads(
            format_json(
                {
                    "log_format": "Looping value={value}",
                    "value": circular,
                    "log_level": LogLevel.warn,
                    "log_namespace": "here",
                    "log_time": TIME,
                }
            )
        )
        self.assertEqual(
            {key: event[key] for key in ("log_text", "log_namespace", "log_level", "log_time")},
            {
                "log_text": "Looping value=[[...]]",
                "log_namespace": "here",
                "log_level": {"name": "warn"},
                "log_time": TIME,
            },
        )
        self.assertIn("ircular", event["log_json_error"])

    def test_observer_on_stdout(self) -> None:
        """The factory takes no argument and writes to the standard output of the moment."""
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        observer = json_observer()
        self.patch(sys, "stdout", io.StringIO())
        Logger(observer=observer).info("Starting server addr={addr}", addr="127.0.0.1:8080")
        [line] = out.getvalue().splitlines()
        event = json.loads(line)
        self.assertEqual(
            (event["log_format"], event["addr"]), ("Starting server addr={addr}", "127.0.0.1:8080")
        )

    def test_twistd_imports_it(self) -> None:
        """twistd's --logger resolves the dotted name to this factory."""
        options = ServerOptions()
        options.parseOptions(["--logger", "clinvk.logs.json_observer"])
        self.assertIs(options["logger"], json_observer)
