# -*- test-case-name: tests.test_logs -*-
"""
Log conventions and the observer of C{clinvk serve}.

clinvk logs through C{twisted.logger}.  Its messages follow one convention:
a short message, then the structured fields as C{name={name}} pairs, for
example C{"Starting server addr={addr}"}.  So Twisted's text output reads
like logfmt, C{twist --log-format json} carries every field as a key, and
L{logfmt_observer} can print the C{key=value} lines of
docs/design/configuration.md#log-lines::

    time=2025-03-04T10:00:00.123+00:00 level=INFO msg="Starting server" addr=127.0.0.1:8080

Library code never installs observers; the runner does (C{twist},
C{twistd}, or C{clinvk serve} with L{logfmt_observer}).  For JSON lines
under twistd, L{json_observer} is a factory for C{twistd --logger}::

    twistd --nodaemon --logger=clinvk.logs.json_observer clinvk --port 8080

Both observers write the C{info} level and above, as C{twist} does by
default: the C{debug} lines (one per run started) only when asked for.

Text from outside, such as what a failed CLI printed, passes through
L{redact} before it is logged.

L{ReopenableLogFile} is the log file of C{twistd clinvk --logfile}, which
SIGHUP reopens for log rotation tools.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from string import Formatter
from typing import IO, Any

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    eventAsJSON,
    formatEvent,
)
from twisted.python.logfile import LogFile

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@+,[]")


def logfmt_value(value: object) -> str:
    """
    Render a value for a C{key=value} pair, quoting it when it holds
    anything but plain characters.
    """
    text = value if isinstance(value, str) else str(value)
    if text and all(c in _SAFE for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


@functools.lru_cache(maxsize=256)
def _split_fields(log_format: str) -> tuple[str, tuple[str, ...]] | None:
    """
    Split a format string of the form C{"<message> a={a} b={b}"} into the
    message and the field names, or return L{None} when it has another
    shape.  Cached: a program logs few distinct format strings, many times.
    """
    try:
        parts = list(Formatter().parse(log_format))
    except ValueError:
        return None
    if not parts or parts[0][1] is None:
        return None
    first_literal, first_field = parts[0][0], parts[0][1]
    if not first_literal.endswith(f" {first_field}=") and first_literal != f"{first_field}=":
        return None
    message = first_literal[: -len(f"{first_field}=")].rstrip()
    fields = [first_field]
    for literal, field, _spec, _conversion in parts[1:]:
        if field is None:
            if literal.strip():
                return None
            continue
        if literal != f" {field}=":
            return None
        fields.append(field)
    return message, tuple(fields)


def format_logfmt(event: LogEvent) -> str | None:
    """
    Format one event as a C{time=… level=… msg=… key=value…} line,
    followed by the traceback of a logged failure.
    """
    when = datetime.fromtimestamp(event.get("log_time", 0.0), tz=UTC)
    level = event.get("log_level")
    line = f"time={when.isoformat(timespec='milliseconds')} level={level.name.upper() if level else 'INFO'}"
    log_format = event.get("log_format")
    split = _split_fields(log_format) if isinstance(log_format, str) else None
    if split is None:
        line += f" msg={logfmt_value(formatEvent(event))}"
    else:
        message, fields = split
        line += f" msg={logfmt_value(message)}"
        for field in fields:
            line += f" {field}={logfmt_value(_field_value(event, field))}"
    failure = event.get("log_failure")
    if failure is not None:
        line += f" error={logfmt_value(failure.getErrorMessage())}\n" + failure.getTraceback().rstrip()
    return line + "\n"


def _field_value(event: LogEvent, field: str) -> Any:
    # Fields are plain keys by convention; dotted or indexed names fall back
    # to the formatted text of that one field.
    if field in event:
        return event[field]
    return formatEvent({"log_format": "{" + field + "}", **event})


def _at_least(level: LogLevel, observer: ILogObserver) -> ILogObserver:
    """C{observer}, given only the events of C{level} and above."""
    return FilteringLogObserver(observer, [LogLevelFilterPredicate(defaultLogLevel=level)])


def logfmt_observer(out: IO[str], level: LogLevel = LogLevel.info) -> ILogObserver:
    """
    An observer writing L{format_logfmt} lines to C{out}, for the events
    of C{level} and above.
    """
    return _at_least(level, FileLogObserver(out, format_logfmt))


def format_json(event: LogEvent) -> str:
    """
    Format one event as one line of JSON, never raising.

    The line is Twisted's own encoding of the event (C{eventAsJSON}, as
    C{twist --log-format json} writes it, without the leading record
    separator), so every field of the message is a key.  An event it
    cannot encode (a circular value, say) becomes its formatted text with
    its namespace, level and time, and the reason in C{log_json_error}.
    """
    try:
        return eventAsJSON(event) + "\n"
    except Exception as e:
        when = event.get("log_time")
        fallback = {
            "log_text": formatEvent(event),
            "log_namespace": _text(event.get("log_namespace", "")),
            "log_level": {"name": _text(getattr(event.get("log_level"), "name", "info"))},
            "log_time": when if isinstance(when, int | float) else None,
            "log_json_error": _text(e),
        }
        return json.dumps(fallback) + "\n"


def _text(value: object) -> str:
    """C{str(value)}, or its type's name when even that fails."""
    try:
        return str(value)
    except Exception:
        return type(value).__name__


def json_observer(level: LogLevel = LogLevel.info) -> ILogObserver:
    """
    An observer writing one JSON object per line (L{format_json}) to
    standard output, for the events of C{level} and above: called with no
    argument, the factory for C{twistd --logger=clinvk.logs.json_observer}.

    twistd replaces C{--logfile} and C{--syslog} with the observer C{--logger}
    names, and a daemon's standard output is C{/dev/null}: use it with
    C{--nodaemon}, under a supervisor that collects standard output
    (systemd, a container runtime).  Standard output is taken when the
    factory is called, before twistd redirects it into the log.
    """
    return _at_least(level, FileLogObserver(sys.stdout, format_json))


REDACTED = "[REDACTED]"

# Environment variables whose values are secrets (ANTHROPIC_API_KEY,
# GEMINI_API_KEY, GITHUB_TOKEN, CLINVK_API_KEYS, ...).
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
# Shorter values are too likely to occur in any text by chance.
_SHORTEST_SECRET = 8

# Secrets by their shape, wherever they come from.  Each pattern's first
# group is kept; the rest of the match is replaced.
_SECRET_PATTERNS = (
    # name=value, name: value, "name": "value" (JSON), with an optional
    # "Bearer": an API key, token, secret or password.
    re.compile(
        r"""((?:\b|_|-)(?:api[_-]?keys?|x-api-key|x-goog-api-key|[a-z]*[_-]?token|secret|client[_-]secret"""
        r"""|password|passwd|authorization|credentials?)["']?\s*[:=]\s*["']?(?:bearer\s+)?)"""
        r"""[^\s"',;&]+""",
        re.IGNORECASE,
    ),
    # A key in a query string (Google's ?key=AIza...).
    re.compile(r"([?&]key=)[^&\s\"']+", re.IGNORECASE),
    # A bearer token anywhere else.
    re.compile(r"(\bbearer\s+)(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{16,}", re.IGNORECASE),
    # Anthropic and OpenAI keys (sk-ant-..., sk-proj-..., sk-...), Google API keys.
    re.compile(r"(\bsk-)[A-Za-z0-9_-]{8,}"),
    re.compile(r"()\bAIza[0-9A-Za-z_-]{20,}"),
    # The password of a URL (https://user:password@host).
    re.compile(r"(://[^/\s:@]+:)[^/\s@]+(?=@)"),
)


def secret_values(environ: Mapping[str, str]) -> tuple[str, ...]:
    """
    The values of the variables of C{environ} whose names say they are
    secrets (C{*_API_KEY}, C{*_TOKEN}, ...), for L{redact}; the longest
    first, so that a secret containing another is replaced whole.
    """
    values = {
        value.strip()
        for name, value in environ.items()
        if _SECRET_NAME.search(name) and len(value.strip()) >= _SHORTEST_SECRET
    }
    # Comma-separated lists of keys (CLINVK_API_KEYS) hold several.
    for value in list(values):
        values.update(part.strip() for part in value.split(",") if len(part.strip()) >= _SHORTEST_SECRET)
    return tuple(sorted(values, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """
    C{text} with what looks like a secret replaced by L{REDACTED}: the
    C{secrets} given (from L{secret_values}) wherever they occur, API
    keys and bearer tokens by their shape, the values of C{api_key=},
    C{token:}, C{"password": ...} and the like, and passwords in URLs.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    return text


class ReopenableLogFile(LogFile):
    """
    A L{LogFile} that a log rotation tool can move away: L{reopen} makes
    a new file at the path, and keeps the file it has when it cannot.

    C{twistd clinvk --logfile} writes to one of these (see
    C{clinvk.tap}), which SIGHUP reopens.
    """

    def reopen(self) -> None:
        """
        Write to a file at C{self.path} from now on, opening (and making)
        it anew: the file written so far may have been renamed.

        L{LogFile.reopen} closes the old file before it opens the new one,
        so a new file that cannot be opened (a missing directory, a file
        or directory without write permission, no descriptor left, no
        space) would leave nothing to write to.  This first opens the path
        the way L{LogFile} does (for reading and writing, made if missing
        with the current file creation mask), which fails for each of
        those, and only then reopens.

        @raise OSError: When the path cannot be opened; the old file stays
            in use.
        """
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666))
        super().reopen()
