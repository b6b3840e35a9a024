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

from clinvk.logs import (
    REDACTED,
    format_json,
    format_logfmt,
    json_observer,
    logfmt_observer,
    logfmt_value,
    redact,
    secret_values,
)

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
        """The access-log event renders as docs/design/configuration.md#log-lines shows."""
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


class LevelTests(SynchronousTestCase):
    """Debug lines (one per run started) only when asked for (issue 16)."""

    def log_each_level(self, observer: object) -> None:
        logger = Logger(observer=LogPublisher(observer))  # type: ignore[arg-type]
        logger.debug("Started run run_id={run_id}", run_id=1)
        logger.info("Server stopped")
        logger.warn("Backend run failed backend={backend}", backend="claude")

    def test_logfmt_from_info(self) -> None:
        """clinvk serve's observer writes info and above by default, debug when given that level."""
        out = io.StringIO()
        self.log_each_level(logfmt_observer(out))
        self.assertEqual(
            [line.split(" ", 2)[1] for line in out.getvalue().splitlines()], ["level=INFO", "level=WARN"]
        )
        out = io.StringIO()
        self.log_each_level(logfmt_observer(out, LogLevel.debug))
        self.assertIn('level=DEBUG msg="Started run" run_id=1', out.getvalue())

    def test_json_from_info(self) -> None:
        """So does the JSON observer of twistd --logger."""
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        self.log_each_level(json_observer())
        levels = [json.loads(line)["log_level"]["name"] for line in out.getvalue().splitlines()]
        self.assertEqual(levels, ["info", "warn"])
        out.truncate(0)
        out.seek(0)
        self.log_each_level(json_observer(LogLevel.debug))
        self.assertEqual(len(out.getvalue().splitlines()), 3)


class RedactTests(SynchronousTestCase):
    """redact, for what a CLI said before it is logged."""

    def test_known_values(self) -> None:
        """The values of secret-named variables are replaced wherever they occur, whole."""
        secrets = secret_values(
            {
                "PATH": "/usr/local/bin:/usr/bin",
                "ANTHROPIC_API_KEY": "k",
                "MY_TOKEN": "opaque-value-42",
                "CLINVK_API_KEYS": "first-key-1, second-key-2",
            }
        )
        self.assertEqual(
            set(secrets), {"opaque-value-42", "first-key-1, second-key-2", "first-key-1", "second-key-2"}
        )
        self.assertEqual(
            redact("failed with opaque-value-42 and second-key-2 in /usr/local/bin:/usr/bin", secrets),
            f"failed with {REDACTED} and {REDACTED} in /usr/local/bin:/usr/bin",
        )

    def test_shapes(self) -> None:
        """Keys and tokens by their shape or their name; the rest of the message kept."""
        for text, redacted in (
            ("Invalid API key: sk-ant-api03-abcdefgh12", f"Invalid API key: sk-{REDACTED}"),
            ("Authorization: Bearer eyJhbGciOi.J9abc123", f"Authorization: Bearer {REDACTED}"),
            ("retry with bearer abcdefgh12345678xyz", f"retry with bearer {REDACTED}"),
            (
                '{"api_key": "hunter2", "max_tokens": 1000}',
                f'{{"api_key": "{REDACTED}", "max_tokens": 1000}}',
            ),
            (
                "access_token=ya29.a0Af; refresh_token=1//0g",
                f"access_token={REDACTED}; refresh_token={REDACTED}",
            ),
            ("x-api-key: abc", f"x-api-key: {REDACTED}"),
            (
                "GET /v1/models?key=AIzaSyA1234567890abcdefghijk&alt=sse",
                f"GET /v1/models?key={REDACTED}&alt=sse",
            ),
            ("key AIzaSyA1234567890abcdefghijk refused", f"key {REDACTED} refused"),
            ("proxy https://me:p4ss@proxy:3128 refused", f"proxy https://me:{REDACTED}@proxy:3128 refused"),
        ):
            self.assertEqual(redact(text), redacted)

    def test_ordinary_text_kept(self) -> None:
        """Messages without secrets pass unchanged."""
        for text in (
            "unexpected status 401 Unauthorized: Missing bearer authentication in header",
            "max_tokens: 1000 is too large; token limit reached",
            "Error: fake claude crashed",
            'API Error: 400 {"type":"error","error":{"message":"prompt is too long"}}',
        ):
            self.assertEqual(redact(text), text)
